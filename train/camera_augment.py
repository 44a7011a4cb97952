"""Camera-like augmentation: what a webcam and the daemon's own detector do to a face, on a batch.

FER2013's faces are well-lit, tightly framed 48x48 crops; the daemon's faces come from a
detector box on a live frame: boxes that vary in scale, shift and roll, faces 16-40 px across
upsampled to the input, out-of-focus and motion blur, sensor noise, JPEG / MJPEG artefacts,
dim rooms and back-lit windows. Each family below imitates one of these on a (B, 1, S, S)
batch in [0, 1], each image drawn on its own with the family's probability; `--camera`
chooses families (all, none, a list, or all-but-some for the ablation in docs/results.md).

`tone` stands in for colour-to-gray variants (white balance, a camera's own luma weights,
an RGB/BGR mix-up): FER2013 ships gray only, so a random monotone tone curve and gain is the
closest honest proxy; the pixel contract (BT.601 on the device) fixes the real conversion.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from .device_augment import Augment

Family = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _uniform(b: int, lo: float, hi: float, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return torch.rand(b, device=x.device, generator=g) * (hi - lo) + lo


def _pick(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """Which images of the batch this family touches."""
    return torch.rand(x.shape[0], device=x.device, generator=g) < p


def framing(a: Augment) -> Augment:
    """Detector boxes vary more than FER2013's crops: wider scale, shift, roll, and aspect
    (applied in the base warp, `device_augment.augment`)."""
    return replace(a, rotate=20.0, scale=(0.8, 1.25), shift=0.12, aspect=0.1)


def lowres(x: torch.Tensor, g: torch.Generator, p: float = 0.35) -> torch.Tensor:
    """A face 12-40 px across, upsampled to the input side (area down, bicubic up, clipped to the pixel
    range, as the crop's `resize_square` with the contract's ENLARGE does)."""
    pick = _pick(x, p, g)
    side = x.shape[-1]
    sides = torch.tensor([12, 16, 20, 24, 32, 40], device=x.device)
    which = sides[torch.randint(len(sides), (x.shape[0],), device=x.device, generator=g)]
    out = x.clone()
    for s in sides.tolist():
        m = pick & (which == s)
        if m.any() and s < side:
            small = F.interpolate(x[m], size=(s, s), mode="area")
            out[m] = F.interpolate(small, size=(side, side), mode="bicubic", align_corners=False).clamp(0, 1)
    return out


def blur(x: torch.Tensor, g: torch.Generator, p: float = 0.25) -> torch.Tensor:
    """Gaussian blur, sigma 0.4-1.6 px at the input side: focus and motion softness."""
    pick = _pick(x, p, g)
    if not pick.any():
        return x
    sel = x[pick]
    n = sel.shape[0]
    sigma = _uniform(n, 0.4, 1.6, x, g)
    r = torch.arange(-3, 4, device=x.device, dtype=x.dtype)
    k1 = torch.exp(-(r[None] ** 2) / (2 * sigma[:, None] ** 2))
    k1 = k1 / k1.sum(1, keepdim=True)
    k2 = (k1[:, :, None] * k1[:, None, :])[:, None]                       # (n, 1, 7, 7)
    padded = F.pad(sel.reshape(1, n, *sel.shape[-2:]), (3, 3, 3, 3), mode="replicate")
    out = x.clone()
    out[pick] = F.conv2d(padded, k2, groups=n).reshape(sel.shape)
    return out


def noise(x: torch.Tensor, g: torch.Generator, p: float = 0.35) -> torch.Tensor:
    """Sensor noise: Gaussian, sigma 1-8% of full scale, stronger in the dark (shot-noise-like)."""
    pick = _pick(x, p, g).view(-1, 1, 1, 1)
    sigma = _uniform(x.shape[0], 0.01, 0.08, x, g).view(-1, 1, 1, 1)
    n = torch.randn(x.shape, device=x.device, generator=g) * sigma * (0.5 + (1 - x))
    return torch.where(pick, (x + n).clamp(0, 1), x)


def jpeg(x: torch.Tensor, g: torch.Generator, p: float = 0.3) -> torch.Tensor:
    """JPEG / MJPEG artefacts at quality 10-70, through libjpeg (OpenCV) on the CPU."""
    pick = _pick(x, p, g)
    if not pick.any():
        return x
    quality = _uniform(x.shape[0], 10, 70, x, g)
    out = x.clone()
    for i in torch.nonzero(pick).flatten().tolist():
        img = (x[i, 0].detach().cpu().numpy() * 255).round().astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality[i])])
        dec = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
        out[i, 0] = torch.from_numpy(dec).to(x.device, x.dtype) / 255
    return out


def light(x: torch.Tensor, g: torch.Generator, p: float = 0.4) -> torch.Tensor:
    """Gamma 0.5-2, then for half of them a dim room (gain 0.25-0.7), for a third a back-lit
    scene (a brightness ramp across the face, 0.3-0.8 at its dark side, any direction)."""
    b, side = x.shape[0], x.shape[-1]
    pick = _pick(x, p, g).view(-1, 1, 1, 1)
    gamma = torch.exp(_uniform(b, math.log(0.5), math.log(2.0), x, g)).view(-1, 1, 1, 1)
    y = x.clamp(1e-4, 1) ** gamma
    dim = (torch.rand(b, device=x.device, generator=g) < 0.5).view(-1, 1, 1, 1)
    y = torch.where(dim, y * _uniform(b, 0.25, 0.7, x, g).view(-1, 1, 1, 1), y)
    ang = _uniform(b, 0, 2 * math.pi, x, g)
    t = torch.linspace(-1, 1, side, device=x.device, dtype=x.dtype)
    ramp = (torch.cos(ang)[:, None, None] * t[None, None, :] + torch.sin(ang)[:, None, None] * t[None, :, None])
    low = _uniform(b, 0.3, 0.8, x, g)[:, None, None]
    mask = 1 - (1 - low) * (ramp.clamp(-1, 1) + 1) / 2                     # 1 on the lit side, `low` on the other
    back = (torch.rand(b, device=x.device, generator=g) < 1 / 3).view(-1, 1, 1, 1)
    y = torch.where(back, y * mask[:, None], y)
    return torch.where(pick, y.clamp(0, 1), x)


def tone(x: torch.Tensor, g: torch.Generator, p: float = 0.3) -> torch.Tensor:
    """A random monotone tone curve x + k x (1 - x), k in +-0.5, and gain 0.8-1.2: the gray a
    different colour-to-gray conversion or white balance would give (see the module note)."""
    b = x.shape[0]
    pick = _pick(x, p, g).view(-1, 1, 1, 1)
    k = _uniform(b, -0.5, 0.5, x, g).view(-1, 1, 1, 1)
    gain = _uniform(b, 0.8, 1.2, x, g).view(-1, 1, 1, 1)
    return torch.where(pick, ((x + k * x * (1 - x)) * gain).clamp(0, 1), x)


# pixel families in the order a camera applies them: scene light, colour, optics, sensor size, noise, codec
FAMILIES: dict[str, Family | None] = {
    "framing": None,            # geometric: widens the base warp (`framing`), not a pixel pass
    "lowres": lowres, "blur": blur, "noise": noise, "jpeg": jpeg, "light": light, "tone": tone,
}
ORDER = ("light", "tone", "blur", "lowres", "noise", "jpeg")


def camera(x: torch.Tensor, families: tuple[str, ...], g: torch.Generator) -> torch.Tensor:
    """Apply the chosen pixel families to (B, 1, S, S) in [0, 1], in camera order."""
    for name in ORDER:
        if name in families:
            x = FAMILIES[name](x, g)
    return x

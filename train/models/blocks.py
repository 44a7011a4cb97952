"""Layers shared by the zoo: conv-BN-ReLU, residual blocks, Keras-style LSTM, attention."""
from __future__ import annotations

import torch
from torch import nn

NEG = -1e9   # "minus infinity" for online softmax; finite so exported graphs stay NaN-free


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1, padding: int | str = "same_k",
                 bias: bool = False) -> nn.Sequential:
    """bias=True only to match papers whose Keras layers carry one (a bias before BN is redundant)."""
    pad = k // 2 if padding == "same_k" else padding
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad, bias=bias), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """y = relu(F(x) + x) with F = two 3x3 conv-BN(-ReLU): the papers' eq. (1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                               nn.ReLU(inplace=True),
                               nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.f(x) + x)


class SingleBiasLSTM(nn.Module):
    """An LSTM with Keras' parameter count: one bias per gate instead of PyTorch's two.

    The bias is a weight column fed by a constant-1 input, so the layer is still one
    nn.LSTM (one ONNX LSTM node) with exactly 4*H*(D+H+1) parameters. The bias column
    starts at Keras' init: zeros with the forget gate at 1.
    """

    def __init__(self, input_size: int, hidden: int):
        super().__init__()
        self.lstm = nn.LSTM(input_size + 1, hidden, batch_first=True, bias=False)
        with torch.no_grad():
            self.lstm.weight_ih_l0[:, -1].zero_()
            self.lstm.weight_ih_l0[hidden:2 * hidden, -1].fill_(1.0)   # PyTorch gate order: i, f, g, o

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> last hidden state (B, H), as Keras' return_sequences=False."""
        ones = torch.ones(*x.shape[:2], 1, dtype=x.dtype, device=x.device)
        out, _ = self.lstm(torch.cat([x, ones], -1))
        return out[:, -1]


class AdditiveAttention(nn.Module):
    """e_t = v^T tanh(W_h H_t + b_h), a = softmax(e), z = sum_t a_t H_t (papers' eq. 8-10).

    `step` computes the same z online (running max, sum and weighted sum), so a stream
    of T frames gives exactly the windowed result over those T frames at O(1) per frame.
    """

    def __init__(self, dim: int, attn_dim: int | None = None):
        super().__init__()
        self.w = nn.Linear(dim, attn_dim or dim)
        self.v = nn.Linear(attn_dim or dim, 1, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a = torch.softmax(self.v(torch.tanh(self.w(h))), dim=1)
        return (a * h).sum(1)

    def init_state(self, batch: int, dim: int, device=None) -> dict[str, torch.Tensor]:
        return {"att_max": torch.full((batch, 1), NEG, device=device), "att_sum": torch.zeros(batch, 1, device=device),
                "att_acc": torch.zeros(batch, dim, device=device)}

    def step(self, h_t: torch.Tensor, state: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        e = self.v(torch.tanh(self.w(h_t)))
        m = torch.maximum(state["att_max"], e)
        scale, w = torch.exp(state["att_max"] - m), torch.exp(e - m)
        s = state["att_sum"] * scale + w
        acc = state["att_acc"] * scale + w * h_t
        return acc / s, {"att_max": m, "att_sum": s, "att_acc": acc}


def keras_param_count(model: nn.Module) -> int:
    """Parameters as Keras counts them: trainable weights plus BatchNorm moving mean/variance."""
    bn = sum(m.running_mean.numel() + m.running_var.numel() for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None)
    return sum(p.numel() for p in model.parameters()) + bn

"""Training-only augmentation, as the papers describe it, through albumentations.

Papers: rotation within ±30°, horizontal flip, random crop then resize back, and
brightness / contrast / saturation / hue jitter. On grayscale input (all our models)
saturation and hue jitter are identities; they are kept so colour inputs behave as the
papers say. Every pipeline takes a seed, so a training run is reproducible.
"""
from __future__ import annotations

import albumentations as A
import cv2
import numpy as np


def paper_augment(size: int, seed: int) -> A.Compose:
    """The papers' training augmentation for one image (uint8 gray, size x size)."""
    return A.Compose([
        A.Rotate(limit=30, border_mode=cv2.BORDER_REFLECT_101, p=0.5),
        A.HorizontalFlip(p=0.5),
        A.RandomResizedCrop(size=(size, size), scale=(0.8, 1.0), ratio=(0.9, 1.1), p=0.5),
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.05, p=0.5),
    ], seed=seed)


def frame_jitter(seed: int) -> A.Compose:
    """Small frame-to-frame changes of a webcam: shift, scale, tilt, exposure, sensor noise."""
    return A.Compose([
        A.Affine(translate_percent=(-0.04, 0.04), scale=(0.95, 1.05), rotate=(-5, 5),
                 border_mode=cv2.BORDER_REFLECT_101, p=1.0),
        A.RandomBrightnessContrast(brightness_limit=0.08, contrast_limit=0.08, p=1.0),
        A.GaussNoise(std_range=(0.0, 0.03), p=0.5),
    ], seed=seed)


def apply(pipeline: A.Compose, images: np.ndarray) -> np.ndarray:
    """Run a pipeline over a stack (N, H, W) uint8; each image gets its own random draw."""
    return np.stack([pipeline(image=img)["image"] for img in images]) if len(images) else images

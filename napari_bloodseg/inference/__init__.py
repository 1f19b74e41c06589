"""Running a network on images of any size, on GPU or CPU."""

from .device import DEVICE_CHOICES, available_devices, describe, resolve_device
from .predict import Cancelled, Prediction, Predictor, resize_image, segment
from .tiling import sliding_window, tile_starts

__all__ = [
    "DEVICE_CHOICES",
    "Cancelled",
    "Prediction",
    "Predictor",
    "available_devices",
    "describe",
    "resize_image",
    "resolve_device",
    "segment",
    "sliding_window",
    "tile_starts",
]

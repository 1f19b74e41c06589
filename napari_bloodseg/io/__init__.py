"""Reading images and masks, pairing them, and writing masks safely."""

from .images import IMAGE_SUFFIXES, ImageReadError, list_images, read_image
from .masks import MaskError, read_mask, write_mask
from .pairs import find_pairs

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageReadError",
    "MaskError",
    "find_pairs",
    "list_images",
    "read_image",
    "read_mask",
    "write_mask",
]

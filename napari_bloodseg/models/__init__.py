"""The three networks, their registry, model files and the model zoo.

Cards, names and the zoo load without torch (``bloodseg models``, the widgets' model lists); the network
classes load on first use (PEP 562).
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from .files import ModelCard, ModelFileError, load_model, read_card, save_model
from .registry import ARCHITECTURES, build_model
from .zoo import ModelInfo, UntrainedModelWarning, find_model, get_model, list_models, user_model_dir

if TYPE_CHECKING:
    from ._base import SegmentationNet
    from .deconvnet import DeconvNet
    from .segnet import SegNet
    from .unet import UNet

_EXPORTS = {"SegmentationNet": "._base", "DeconvNet": ".deconvnet", "SegNet": ".segnet", "UNet": ".unet"}

__all__ = [
    "ARCHITECTURES",
    "DeconvNet",
    "ModelCard",
    "ModelFileError",
    "ModelInfo",
    "SegNet",
    "SegmentationNet",
    "UNet",
    "UntrainedModelWarning",
    "build_model",
    "find_model",
    "get_model",
    "list_models",
    "load_model",
    "read_card",
    "save_model",
    "user_model_dir",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

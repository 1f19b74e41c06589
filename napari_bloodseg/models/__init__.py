"""The three networks, their registry, model files and the model zoo."""

from ._base import SegmentationNet
from .deconvnet import DeconvNet
from .files import ModelCard, ModelFileError, load_model, read_card, save_model
from .registry import ARCHITECTURES, build_model
from .segnet import SegNet
from .unet import UNet
from .zoo import ModelInfo, UntrainedModelWarning, find_model, get_model, list_models, user_model_dir

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

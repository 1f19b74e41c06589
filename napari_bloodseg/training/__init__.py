"""Training from scratch and fine-tuning: data loading, augmentation, loss, and the shared loop."""

from .data import Sample, load_samples, split_names
from .train import split_samples, train_model
from .trainer import EpochLog, FitResult, TrainConfig, fit, validate

__all__ = [
    "EpochLog",
    "FitResult",
    "Sample",
    "TrainConfig",
    "fit",
    "load_samples",
    "split_names",
    "split_samples",
    "train_model",
    "validate",
]

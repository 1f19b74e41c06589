"""Training from scratch and fine-tuning: data loading, augmentation, loss, and the shared loop.

Names load on first use (PEP 562): importing the package, as the CLI does to build ``--help``, does not import
torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .config import TrainConfig
    from .data import Sample, load_samples, split_names, split_samples
    from .train import train_model
    from .trainer import EpochLog, FitResult, fit, validate

_EXPORTS = {
    "Sample": ".data",
    "load_samples": ".data",
    "split_names": ".data",
    "split_samples": ".data",
    "train_model": ".train",
    "EpochLog": ".trainer",
    "FitResult": ".trainer",
    "TrainConfig": ".config",
    "fit": ".trainer",
    "validate": ".trainer",
}

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

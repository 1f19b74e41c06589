"""Training from scratch and fine-tuning: data loading, augmentation, loss, and the shared loop.

Names load on first use (PEP 562): importing the package, as the CLI does to build ``--help``, does not import
torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .data import Sample, load_samples, split_names
    from .train import split_samples, train_model
    from .trainer import EpochLog, FitResult, TrainConfig, fit, validate

_EXPORTS = {
    "Sample": ".data",
    "load_samples": ".data",
    "split_names": ".data",
    "split_samples": ".train",
    "train_model": ".train",
    "EpochLog": ".trainer",
    "FitResult": ".trainer",
    "TrainConfig": ".trainer",
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


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""Fine-tuning defaults on their own, free of torch, so the CLI can show them in --help without loading it."""

from __future__ import annotations

from typing import Any

from .config import TrainConfig

#: fine-tuning defaults (CLI, widget, library): measured on Dataset 1 -> 2 (docs/finetuning.md). The time
#: budget, not the epoch count, normally ends the run; BatchNorm statistics stay the base model's.
FINETUNE_DEFAULTS: dict[str, Any] = {
    "epochs": 100,
    "batch_size": 8,
    "lr": 1e-3,
    "colour_strength": 0.5,
    "max_minutes": 45 / 60,
    "freeze_bn": True,
}


def finetune_config(**overrides: Any) -> TrainConfig:
    """TrainConfig for fine-tuning: FINETUNE_DEFAULTS with ``overrides`` on top."""
    return TrainConfig(**{**FINETUNE_DEFAULTS, **overrides})

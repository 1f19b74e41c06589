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


#: on a CPU that computes bfloat16 natively (AVX512-BF16 or AMX) a step in bf16 + channels-last costs ~0.6 of an fp32
#: one, so the same budget holds more epochs, at a higher peak rate. Chosen by a rule written first on Dataset 2
#: dev splits 3-5 (docs/finetuning.md, session 22): cell Dice 0.9675 -> 0.9730, 3 of 3 up, nucleus and the guard
#: held, 30-34 s
FAST_CPU_RECIPE: dict[str, Any] = {"precision": "bf16", "channels_last": True, "epochs": 170, "lr": 2e-3}


def finetune_recipe(fast_cpu: bool) -> dict[str, Any]:
    """The fine-tuning defaults for this machine: :data:`FAST_CPU_RECIPE` on top of :data:`FINETUNE_DEFAULTS` where
    training runs on a CPU with native bfloat16 (``fast_cpu``), else the plain ones (GPUs already train in mixed
    precision; elsewhere bf16 is emulated and slower)."""
    return {**FINETUNE_DEFAULTS, **(FAST_CPU_RECIPE if fast_cpu else {})}


def finetune_config(**overrides: Any) -> TrainConfig:
    """TrainConfig for fine-tuning: FINETUNE_DEFAULTS with ``overrides`` on top."""
    return TrainConfig(**{**FINETUNE_DEFAULTS, **overrides})

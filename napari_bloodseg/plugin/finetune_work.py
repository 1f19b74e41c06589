"""The Fine-tune widget's worker thread: (load and split a folder,) fine-tune, and what it yields back to the GUI
thread. Nothing here touches a widget: the GUI thread's side is :mod:`.finetune_run`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QObject, Signal

from .devices import failure_message
from .finetune_pairs import split_for_finetune

if TYPE_CHECKING:  # pragma: no cover
    from ..training import Sample, TrainConfig


@dataclass
class Job:
    """One fine-tuning run as checked in the GUI thread: samples from layers, or a folder read in the worker."""

    base: str
    schema: str
    name: str
    cfg: TrainConfig
    guard: bool
    train: list[Sample] | None = None
    val: list[Sample] | None = None
    folder: str | None = None
    val_fraction: float | None = 0.2
    source: str = "napari layers"


@dataclass
class Split:
    """How many images train and validate (yielded before the training starts)."""

    n_train: int
    n_val: int


@dataclass
class Failure:
    """An expected refusal or error, as the user reads it: nothing was saved."""

    message: str


class CancelledRun:
    """The worker stopped at Cancel (nothing was saved)."""


class ProgressSignals(QObject):
    """Per-step and per-epoch progress from the training loop (worker thread), queued to the GUI thread."""

    step = Signal(int, int, float)
    epoch = Signal(object)


def work(job: Job, signals: ProgressSignals, cancel: Callable[[], bool]) -> Iterator[Any]:
    """Worker thread: (load and split a folder,) fine-tune, yield the :class:`Split`, then the result or a
    :class:`Failure` or :class:`CancelledRun`."""
    from ..inference import Cancelled
    from ..models import ModelFileError
    from ..training import load_samples
    from ..training.finetune import FinetuneError, finetune

    try:
        if job.folder is not None:
            samples = load_samples(job.folder, job.schema)
            job.train, job.val = split_for_finetune(samples, job.val_fraction)
        assert job.train is not None
        yield Split(len(job.train), len(job.val or []))
        result = finetune(
            job.base,
            job.train,
            job.val or [],
            name=job.name,
            cfg=job.cfg,
            guard=job.guard,
            data_source=job.source,
            on_step=signals.step.emit,
            on_epoch=signals.epoch.emit,
            cancel=cancel,
        )
        yield result
    except Cancelled:
        yield CancelledRun()
    except (FinetuneError, ModelFileError, ValueError, OSError, MemoryError) as exc:
        yield Failure(failure_message(exc))

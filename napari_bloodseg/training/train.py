"""Training a network from scratch on a folder of image+mask pairs, saving the best checkpoint + model card."""

from __future__ import annotations

import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..inference.device import resolve_device
from ..inference.edge_cells import check_min_fraction
from ..models import ModelCard, build_model, save_model
from ..models.files import DEFAULT_NORMALISATION, model_paths
from ..schemas import IGNORE_INDEX, get_schema
from .data import (
    RBC_MASKS_AS_WBC,
    WBC_MASKS_AS_RBC,
    TrainingDataWarning,
    check_not_rbc_masks,
    labelled,
    listed,
    load_samples,
    predicted_masks_note,
    shared_images,
    split_samples,
    typical_cell_size,
)
from .trainer import EpochLog, FitResult, TrainConfig, fit


def run_environment() -> dict[str, str]:
    """Machine, torch and bloodseg versions, for a model card: timings and results mean little without them."""
    threads = torch.get_num_threads()
    return {
        "machine": f"{platform.machine()} {platform.processor() or ''} {threads} threads".replace("  ", " "),
        "torch": torch.__version__,
        "bloodseg": __version__,
    }


def train_model(
    data: str | Path,
    out: str | Path,
    *,
    architecture: str = "unet",
    schema: str = "wbc",
    width: int = 16,
    depth: int = 4,
    cfg: TrainConfig | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.0,
    val_data: str | Path | None = None,
    input_scale: float = 1.0,
    edge_cell_min_fraction: float | None = None,
    tta_max_pixels: int | None = None,
    split_seed: int | None = None,
    name: str | None = None,
    description: str = "",
    version: str = "1",
    on_epoch: Callable[[EpochLog], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> tuple[ModelCard, FitResult]:
    """Train and save ``out`` (``out.safetensors`` + ``out.json``), writing the best checkpoint as it improves.

    ``input_scale`` resizes the data before training (and is recorded so inference does the same): big smear
    fields train and run faster at 0.5 with no loss of accuracy at this cell size. ``edge_cell_min_fraction``
    records the masks' edge-cell convention (see :mod:`napari_bloodseg.inference.edge_cells`), ``tta_max_pixels``
    how far ``tta="auto"`` reaches (see ``Predictor``). ``split_seed`` (default: the training seed) picks the
    validation and test ids, so a second training seed can be tried on the same split.
    """
    if tta_max_pixels is not None and tta_max_pixels <= 0:
        raise ValueError(f"tta_max_pixels must be positive, not {tta_max_pixels}")
    if edge_cell_min_fraction is not None:
        edge_cell_min_fraction = check_min_fraction(edge_cell_min_fraction, "edge_cell_min_fraction")
    cfg = cfg or TrainConfig()
    sch = get_schema(schema)
    split_seed = cfg.seed if split_seed is None else split_seed
    try:
        samples = load_samples(data, sch, scale=input_scale)
        if val_data is not None:
            train, test = split_samples(samples, 0.0, test_fraction, split_seed)[::2]
            val = load_samples(val_data, sch, scale=input_scale)
        else:
            train, val, test = split_samples(samples, val_fraction, test_fraction, split_seed)
        # a wholly unlabelled mask teaches nothing, and in the validation part it stopped the run after an epoch
        # with "nothing to score" (for some seeds): left out, named; the split stays the one of all the names
        blank = [s.name for s in train if not labelled(s)] + [f"{s.name} (validation)" for s in val if not labelled(s)]
        train, val = [s for s in train if labelled(s)], [s for s in val if labelled(s)]
        if not train:
            held = f"{len(val)} for validation, {len(test)} for test" + (f", {len(blank)} unlabelled" if blank else "")
            raise ValueError(f"{data}: no training image is left ({held})")
        check_not_rbc_masks(train + val, sch.num_classes)
        if not set().union(*(np.unique(s.labels).tolist() for s in train)) - {0, IGNORE_INDEX}:
            raise ValueError(f"{data}: the masks mark no cell anywhere (all background): a network learns nothing")
        if copies := shared_images(train, val):
            pairs = listed([f"{v} = {t}" for v, t in copies])
            if val_data is not None:  # the folder given as validation is (partly) the training images
                raise ValueError(
                    f"{len(copies)} validation images are training images ({pairs}): validation must be images "
                    "the network does not learn from"
                )
            warnings.warn(
                TrainingDataWarning(
                    f"{len(copies)} validation images are copies of training images ({pairs}): their score is "
                    "not that of new images"
                ),
                stacklevel=2,
            )
    except ValueError as exc:
        if str(exc).endswith(RBC_MASKS_AS_WBC):
            raise ValueError(f"{exc}; train with schema rbc (--schema rbc)") from None
        if str(exc).endswith(WBC_MASKS_AS_RBC):  # finetune shares the message, but has no --schema
            raise ValueError(f"{exc} (--schema wbc)") from None
        raise
    if blank:
        warnings.warn(TrainingDataWarning(f"left out, no pixel labelled: {listed(blank)}"), stacklevel=2)
    if note := predicted_masks_note(train + val):
        warnings.warn(TrainingDataWarning(note), stacklevel=2)
    torch.manual_seed(cfg.seed)
    model = build_model(architecture, num_classes=sch.num_classes, width=width, depth=depth)
    out = model_paths(out)[0].with_suffix("")  # "m", "m.safetensors" and "m.json" all mean the model m
    card = ModelCard(
        name=name or out.name,
        config=model.config,
        schema=sch.name,
        normalisation=dict(DEFAULT_NORMALISATION),
        # None when no whole cell could be measured (cells painted on a clear layer all touch unlabelled pixels)
        cell_size_px=round(size / input_scale, 1) if (size := typical_cell_size(samples)) else None,
        input_scale=input_scale,
        edge_cell_min_fraction=edge_cell_min_fraction,
        tta_max_pixels=tta_max_pixels,
        description=description,
        version=str(version),
    )
    t0 = time.perf_counter()

    device = str(resolve_device(cfg.device))  # "cpu", not the "auto" asked for, in the cards saved on the way

    def training_info(
        result_epochs: int, best_epoch: int, seconds: float, device: str, finished: bool = True
    ) -> dict[str, Any]:
        return {
            "data": str(Path(data).absolute()),  # a later fine-tune replays these images from any folder
            "val_data": str(Path(val_data).absolute()) if val_data else None,
            "n_train": len(train),
            "n_val": len(val),
            "split_seed": split_seed,
            "val_ids": [s.name for s in val] if val_data is None else "(separate folder)",
            "test_ids": [s.name for s in test],
            "settings": cfg.to_dict(),
            "epochs_run": result_epochs,
            "best_epoch": best_epoch,
            "seconds": round(seconds, 1),
            "device": device,
            # False in the card saved with each new best epoch; True once the run has ended (not interrupted)
            "finished": finished,
            **run_environment(),
        }

    def save_best(m, log: EpochLog) -> None:
        card.training = training_info(log.epoch, log.epoch, time.perf_counter() - t0, device, finished=False)
        card.metrics = {"val": log.val} if log.val else {}
        save_model(m, card, out, overwrite=True)

    result = fit(model, card, train, val, cfg, on_epoch=on_epoch, on_best=save_best, cancel=cancel)
    card.training = training_info(len(result.history), result.best_epoch, result.seconds, result.device)
    card.metrics = {"val": result.best_val} if result.best_val else {}
    save_model(model, card, out, overwrite=True)
    return card, result

"""Human-in-the-loop fine-tuning: teach a network from a handful of corrected images, without losing the
original model or the original domain.

- The base model is never modified: a deep copy is trained and saved under a new name in the user model dir.
- Magnification is matched automatically: the corrected cells' size is compared with the base model's
  training cell size, the data are rescaled to it, and the new card's ``input_scale`` records that.
- Guard rail: when the base model's own data are on this machine (its card names them), half of every batch
  comes from its training part (the replay pool), BatchNorm statistics stay frozen, and the Dice on its
  validation part is measured before and after; a drop of more than ``max_base_drop`` refuses to save (unless
  the guard is switched off).
- Augmentation (patch size, colour and scale jitter) is the base model's own, read from its card.
- Pixels labelled IGNORE_INDEX (partial corrections) do not count in the loss.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..inference import Cancelled
from ..models import ModelCard, SegmentationNet, get_model, save_model, user_model_dir
from ..models.files import MAX_INPUT_SCALE
from ..models.manage import next_free_name
from ..models.zoo import find_model
from ..schemas import IGNORE_INDEX
from .config import RunLength
from .data import (
    Sample,
    labelled,
    listed,
    load_samples,
    predicted_masks_note,
    rescale_sample,
    shared_images,
    typical_cell_size,
)
from .finetune_checks import FinetuneError, check_samples
from .finetune_defaults import finetune_config
from .train import run_environment
from .trainer import EpochLog, TrainConfig, fit, selection_score, validate

if TYPE_CHECKING:
    import torch


@dataclass
class FinetuneResult:
    card: ModelCard
    path: Path | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    base_before: dict[str, Any] | None = None
    base_after: dict[str, Any] | None = None
    seconds: float = 0.0
    history: list[EpochLog] = field(default_factory=list)
    #: share of the fine-tuning kept: 1, or less when the weights were mixed with the base to pass the guard
    weight_mix: float = 1.0
    #: images left out because none of their pixels is labelled
    unlabelled: list[str] = field(default_factory=list)
    #: why the guard asked for did not check the base domain (None: it did, or it was off)
    guard_skipped: str | None = None
    #: what about the data the scores depend on (predicted masks, validation copies of training images)
    data_notes: list[str] = field(default_factory=list)
    #: steps done of those planned, and whether the time budget ended the run
    length: RunLength = field(default_factory=RunLength)

    @property
    def caveats(self) -> list[str]:
        """What a user should know before trusting the new model: it was saved, but its scores say little or say
        it is worse than its base."""
        out = list(self.data_notes)
        if self.unlabelled:
            out.append(f"left out, no pixel labelled: {listed(self.unlabelled)}")
        n = int((self.after or {}).get("n_images", 0))
        if not n:
            out.append(
                "no image was held out for validation, so nothing checked the new model on images it did not learn "
                "from and its last state was saved; check it on a few more of your images (Evaluate) before "
                "relying on it"
            )
        elif n < CONVINCING_VAL_IMAGES:
            out.append(
                f"the before/after scores rest on {n} validation image{'s' if n > 1 else ''}: a weak guide; check "
                "the new model on a few more of your images (Evaluate) before relying on it"
            )
        if self.before and self.after:
            old, new = selection_score(self.before), selection_score(self.after)
            if new < old - 5e-4:  # below that, noise of a few pixels
                base = f"its base {self.card.base_model}" if self.card.base_model else "its base"
                out.append(
                    f"the new model scores lower than {base} on the validation images (mean Dice {old:.4f} -> "
                    f"{new:.4f}): keep using the base, or correct more images and fine-tune again"
                )
        return out


#: fewer validation images than this and the before/after change is reported with a caveat: with one re-stained
#: RBC field as validation, a fine-tune read +0.026 IoU there while six other fields lost 0.017
#: (benchmarks/finetune_rbc.py, docs/finetuning.md)
CONVINCING_VAL_IMAGES = 3


#: the augmentation a fine-tune copies from the base model's card: the data it sees should look like the data the
#: base learnt from (rbc-deconvnet on re-stained fields: IoU 0.845 with 128 px patches and mild colour jitter,
#: 0.869 with its own 192 px patches and strong jitter; benchmarks/finetune_rbc.py)
AUGMENTATION_FROM_BASE = ("patch_size", "colour_strength", "scale_range", "red_cells")


def augment_like_base(cfg: TrainConfig, card: ModelCard) -> TrainConfig:
    """``cfg`` with the base model's own patch size, colour and scale jitter, where its card records them."""
    settings = (card.training or {}).get("settings") or {}
    same = {k: settings[k] for k in AUGMENTATION_FROM_BASE if settings.get(k) is not None}
    if "scale_range" in same:
        same["scale_range"] = tuple(same["scale_range"])
    return dataclasses.replace(cfg, **same)


def _base_data_folder(recorded: str | None) -> Path | None:
    """The base model's training folder: as recorded; for the shipped models (trained from a checkout, their cards
    say ``../shared/data/...``) relative to the checkout, under ``$BLOODSEG_DATA`` (the folder holding ``wbc/``
    and ``rbc/``, as for scripts/train_shipped.sh), or, for Dataset 1, the public copy the Zheng sample downloads;
    so the guard works from any working directory and on an installed package."""
    if not recorded:
        return None
    candidates = [Path(recorded), Path(__file__).resolve().parents[2] / recorded]
    parts = Path(recorded).parts
    inside = Path(*parts[parts.index("data") + 1 :]) if "data" in parts[:-1] else None
    if inside is not None and os.environ.get("BLOODSEG_DATA"):
        candidates.append(Path(os.environ["BLOODSEG_DATA"]) / inside)
    if inside == Path("wbc", "dataset1"):
        from ..data.public import cache_dir

        candidates.append(cache_dir() / "wbc-dataset1")
    return next((c for c in candidates if c.is_dir()), None)


def base_domain(card: ModelCard) -> dict[str, Any]:
    """Where the original domain's images are: the base's training data, or, for a fine-tuned base, the data of
    the model it descends from (recorded in its card), so a second fine-tune guards Dataset 1, not the first
    fine-tune's corrected images."""
    info = card.training or {}
    root = info.get("base_domain")
    if isinstance(root, dict):
        return root
    keys = ("data", "val_ids", "test_ids", "val_data")
    return {k: info.get(k) for k in keys} | {"schema": card.schema, "input_scale": card.input_scale or 1.0}


def base_domain_samples(card: ModelCard, n_replay: int, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """(replay pool, guard) images from the original domain's data (:func:`base_domain`), if they are on this
    machine (else empty lists).

    The replay pool is the base's training part (``n_replay`` < 0: all of it) and guard images its validation
    part (or its separate validation folder, ``train --val DIR``), so the guard measures images the fine-tune never
    trained on; the base's test ids are never touched.
    """
    info = base_domain(card)
    data, val_ids = _base_data_folder(info.get("data")), info.get("val_ids")
    val_folder = None if isinstance(val_ids, list) else _base_data_folder(info.get("val_data"))
    if data is None or (val_folder is None and not isinstance(val_ids, list)):
        return [], []
    schema, scale = info.get("schema") or card.schema, info.get("input_scale") or 1.0
    try:
        samples = load_samples(data, schema, scale=scale)
        guard = load_samples(val_folder, schema, scale=scale) if val_folder is not None else None
    except (ValueError, OSError):
        return [], []
    if guard is None:
        held = set(val_ids) | set(info.get("test_ids") or [])
        guard = [s for s in samples if s.name in set(val_ids)]
    else:
        held = set(info.get("test_ids") or [])
    pool = [s for s in samples if s.name not in held]
    rng = np.random.default_rng(seed)
    keep = len(pool) if n_replay < 0 else n_replay
    replay = [pool[i] for i in rng.permutation(len(pool))[:keep]]
    return replay, guard


def guard_unavailable(card: ModelCard) -> str:
    """Why :func:`base_domain_samples` found no guard images for ``card``: said as it is (the message used to
    blame a missing folder, and advise BLOODSEG_DATA, for a base trained with no validation part)."""
    info = base_domain(card)
    if not info.get("data"):
        return "the base model's card records no training data, so there is no base domain to check"
    if info.get("val_ids") == [] and not info.get("val_data"):
        return "the base model was trained with no validation images, so there are none to check its domain on"
    where = info.get("val_data") if not isinstance(info.get("val_ids"), list) else info.get("data")
    return (
        f"the base model's own validation images ({where}) are not on this machine, so the base domain was not "
        "checked; set BLOODSEG_DATA to the folder holding wbc/ and rbc/ (for the WBC models, opening the Zheng "
        "Dataset 1 sample in napari once downloads them)"
    )


def auto_scale(
    card: ModelCard,
    samples: list[Sample],
    model: SegmentationNet | None = None,
    cancel: Callable[[], bool] | None = None,
) -> float:
    """Factor from these images to the network input: it brings their cells to the size the base network works
    at (its card's cell size times its input scale). The base's own input scale when the sizes are unknown or
    within 10 %; e.g. 0.5 for the RBC model on fields like its own, 0.4 for the WBC U-Net on Dataset 2.

    The cells are measured in the labels; where partial corrections leave no whole cell to measure, ``model`` (the
    base) measures the images, as ``--cell-size auto`` does for predict."""
    base = card.input_scale or 1.0
    if not card.cell_size_px:
        return base
    mine = typical_cell_size(samples)
    if not mine and model is not None and any((s.labels == IGNORE_INDEX).any() for s in samples):
        from ..inference import Predictor
        from ..inference.cell_size import CellSizeError, estimate_batch_cell_size

        try:
            images = [s.image for s in samples]
            estimate = estimate_batch_cell_size(Predictor(model, card, device="cpu"), images, cancel=cancel)
        except CellSizeError:
            return base
        return float(base * estimate.scale)
    if not mine:
        return base
    ratio = card.cell_size_px / mine
    return base if abs(ratio - 1) < 0.1 else float(base * ratio)


#: shares of the fine-tuned weights tried, in order, when the fine-tuned model fails the base-domain guard
WEIGHT_MIXES = (0.75, 0.5, 0.25)


def mix_weights(base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], share: float) -> dict[str, torch.Tensor]:
    """``base + share * (tuned - base)`` for every float tensor (counters stay as tuned). Weight-space ensembling
    (Wortsman et al., WiSE-FT, CVPR 2022): between a model and its fine-tuned self, a mix usually keeps most of
    the new domain's gain and much of the old domain's accuracy. On Dataset 2 (split seed 1) the full fine-tune
    lowered Dataset 1 validation Dice by 0.026; the half mix by 0.0095, and scored higher on the new images."""
    out = {}
    for k, v in tuned.items():  # the base may sit on the CPU (the cached copy) and the tuned model on a GPU
        out[k] = base[k].to(v.device) + share * (v - base[k].to(v.device)) if v.is_floating_point() else v
    return out


#: the most pixels one rescaled training image may have (a whole 1944 x 1383 field at 4 times its size)
MAX_FINETUNE_PIXELS = 50_000_000


def _check_new_name(name: str, out_dir: Path | None) -> Path:
    """Where the new model ``name`` goes; FinetuneError when the name is not usable or taken."""
    from ..io.atomic import check_can_write_in
    from ..models.manage import check_model_name, name_clash, taken_message

    try:
        check_model_name(name)
    except ValueError as exc:
        raise FinetuneError(str(exc)) from None
    folder = Path(out_dir) if out_dir else user_model_dir()
    if (clash := name_clash(folder, name)) is not None:
        raise FinetuneError(f"{taken_message(folder, name, clash)} (in {folder})")
    try:
        check_can_write_in(folder)
    except OSError as exc:
        raise FinetuneError(f"cannot save models in {folder}: {exc}") from None
    return folder / name


def _stop_if_cancelled(cancel: Callable[[], bool] | None) -> None:
    """Cancel pressed after the training loop (the guard's checks, the mixing, the last scores take seconds, a
    minute on RBC fields) still saved the model."""
    if cancel is not None and cancel():
        raise Cancelled("fine-tuning cancelled; nothing saved")


def finetune(
    base: str,
    train: list[Sample],
    val: list[Sample],
    *,
    name: str | None = None,
    cfg: TrainConfig | None = None,
    scale: float | str = "auto",
    guard: bool = True,
    max_base_drop: float = 0.01,
    replay: int = -1,
    out_dir: Path | None = None,
    data_source: str = "napari layers",
    val_source: str | None = None,
    like_base: bool = True,
    on_epoch: Callable[[EpochLog], None] | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> FinetuneResult:
    """Fine-tune ``base`` (name/path) on corrected samples at their native resolution; save as ``name``.

    Nothing is written unless training completes and passes the guard, so cancel leaves no partial model.
    ``replay`` base-domain training images form a pool that fills half of every batch (-1: the base's whole
    training part, when it is on this machine; 0: none). ``like_base``: patch size, colour and scale jitter as the
    base model was trained (:data:`AUGMENTATION_FROM_BASE`), whatever ``cfg`` says.
    """
    cfg = cfg or finetune_config()
    t0 = time.perf_counter()
    # an image left wholly unlabelled teaches nothing and cannot be scored: left out, named in the result (in the
    # validation part it stopped the run with "nothing to score", depending on the split's seed)
    blank = [s.name for s in train + val if not labelled(s)]
    if len(blank) < len(train + val):  # with none labelled at all, check_samples refuses below with its message
        blank_train = [s.name for s in train if not labelled(s)]
        train, val = [s for s in train if labelled(s)], [s for s in val if labelled(s)]
        if not train and blank_train:
            raise FinetuneError(
                f"every training image is wholly unlabelled ({listed(blank_train)}): only the validation part has "
                "labels; correct some of the training images"
            )
        if not train:  # "every training image is wholly unlabelled ()" blamed images that were not there
            raise FinetuneError(
                f"no training image: all {len(val)} corrected images are held out for validation; hold out fewer"
            )
    else:
        blank = []
    notes = [note] if (note := predicted_masks_note(train + val)) else []
    if copies := shared_images(train, val):
        pairs = listed([f"{v} = {t}" for v, t in copies])
        if val_source is not None:  # a separate validation folder that holds (copies of) the training images
            raise FinetuneError(
                f"{len(copies)} validation images are training images ({pairs}): validation must be images the "
                "fine-tune does not learn from"
            )
        notes.append(
            f"{len(copies)} validation images are copies of training images ({pairs}): their score is not "
            "that of new images"
        )
    if name is not None:  # refused before any training time is spent (and checked again before saving)
        _check_new_name(name, out_dir)
    info = find_model(base)
    if info.source == "untrained":
        raise FinetuneError(f"{base} is untrained: fine-tune a trained model (or use `bloodseg train`)")
    shared_model, base_card = get_model(info)
    if name is None:  # a base named before names had rules may hold spaces: its fine-tunes get portable names
        name = next_free_name(re.sub(r"[^A-Za-z0-9._+-]+", "-", base_card.name).strip("-.") or "model")
        _check_new_name(name, out_dir)
    if like_base:
        cfg = augment_like_base(cfg, base_card)
    check_samples(train + val, shared_model.num_classes)
    model = copy.deepcopy(shared_model)  # the cached base stays untouched
    # the data go to the network at ``factor`` (base input scale included): "auto" matches cell sizes
    factor = auto_scale(base_card, train + val, shared_model, cancel) if scale == "auto" else float(scale)
    if not 0 < factor <= MAX_INPUT_SCALE:  # also NaN and inf
        raise FinetuneError(f"scale must be 'auto' or a factor above 0 and at most {MAX_INPUT_SCALE:g}, not {scale!r}")
    largest = max(s.image.shape[0] * s.image.shape[1] for s in train + val) * factor**2
    if largest > MAX_FINETUNE_PIXELS:
        raise FinetuneError(
            f"scale {factor:g} makes the largest image {largest / 1e6:.0f} megapixels, too big to fine-tune on: check "
            "the scale (0.4, not 40)"
        )
    train_s = [rescale_sample(s, factor) for s in train]
    val_s = [rescale_sample(s, factor) for s in val]

    card = copy.deepcopy(base_card)
    card.input_scale = 1.0  # validation below runs on already-rescaled data
    _stop_if_cancelled(cancel)  # between the steps before training: each takes seconds (a minute on RBC fields)
    before = validate(model, card, val_s, cfg.device) if val_s else None
    _stop_if_cancelled(cancel)
    replay_s, base_val = base_domain_samples(base_card, replay, cfg.seed)
    if not guard:
        base_val = []
    work = copy.deepcopy(base_card)
    work.input_scale = 1.0
    _stop_if_cancelled(cancel)
    base_before = validate(model, work, base_val, cfg.device) if base_val else None

    result = fit(
        model, card, train_s, val_s, cfg, on_epoch=on_epoch, on_step=on_step, cancel=cancel, replay=replay_s or None
    )
    _stop_if_cancelled(cancel)
    base_after = validate(model, work, base_val, cfg.device) if base_val else None
    skipped = guard_unavailable(base_card) if guard and not base_val else None
    share = 1.0
    if base_before and base_after:
        drop = selection_score(base_before) - selection_score(base_after)
        if drop > max_base_drop:
            # the largest share of the fine-tuning that passes the guard (WiSE-FT), rather than nothing at all
            tuned = copy.deepcopy(model.state_dict())
            base_state = shared_model.state_dict()
            for share in WEIGHT_MIXES:
                _stop_if_cancelled(cancel)
                model.load_state_dict(mix_weights(base_state, tuned, share))
                base_after = validate(model, work, base_val, cfg.device)
                if selection_score(base_before) - selection_score(base_after) <= max_base_drop:
                    break
            else:
                raise FinetuneError(
                    f"fine-tuning would lower the base model's own validation Dice by {drop:.3f} (> {max_base_drop}),"
                    f" and still too much when mixed {WEIGHT_MIXES[-1]:g} : {1 - WEIGHT_MIXES[-1]:g} with the base; "
                    "nothing saved. Use more corrected images, fewer epochs, or switch the guard off"
                )
    _stop_if_cancelled(cancel)
    after = validate(model, card, val_s, cfg.device) if val_s else None
    target = _check_new_name(name, out_dir)
    folder = target.parent
    try:
        version = str(int(base_card.version) + 1)
    except ValueError:
        version = f"{base_card.version}.1"
    # ``factor`` maps the user's pixels to the network input, so it is the new model's whole input scale, and the
    # user's cells are those that land on the base network's working size
    working = base_card.cell_size_px * (base_card.input_scale or 1.0) if base_card.cell_size_px else None
    users_cells = round(working / factor, 1) if working else None
    new = ModelCard(
        name=name,
        config=model.config,
        schema=base_card.schema,
        version=version,
        normalisation=base_card.normalisation,
        cell_size_px=users_cells,
        input_scale=factor,
        edge_cell_min_fraction=base_card.edge_cell_min_fraction,  # the users' masks follow the base's convention
        tta_max_pixels=base_card.tta_max_pixels,
        base_model=base_card.name,
        description=f"fine-tuned from {base_card.name} on {len(train)} corrected images"
        + (f", weights mixed {share:g} : {1 - share:g} with the base to pass the guard" if share < 1 else ""),
        training={
            "data": data_source,
            # a separate --val folder, a part of the data, or none held out
            "val_data": val_source or (data_source if val else None),
            "n_train": len(train),
            "n_val": len(val),
            "replayed_base_images": len(replay_s),
            "train_ids": [s.name for s in train],
            "val_ids": [s.name for s in val],
            "scale": factor,
            "settings": cfg.to_dict(),
            "epochs_run": len(result.history),
            "best_epoch": result.best_epoch,
            "seconds": round(time.perf_counter() - t0, 1),
            "device": result.device,
            **run_environment(),
            "guard": guard,
            # whether the guard did check: the base's validation images may not be on this machine
            "guard_checked": base_before is not None,
            "weight_mix": share,
            # which base exactly: a name can be renamed, deleted and made again
            "base_version": base_card.version,
            "base_weights_sha256": base_card.weights_sha256,
            "base_domain": base_domain(base_card),
        },
        metrics={
            "val_before": before,
            "val_after": after,
            "base_val_before": base_before,
            "base_val_after": base_after,
        },
    )
    folder.mkdir(parents=True, exist_ok=True)
    _stop_if_cancelled(cancel)  # the last moment: from here the save runs to its end
    save_model(model, new, target)
    return FinetuneResult(
        new,
        target,
        before,
        after,
        base_before,
        base_after,
        time.perf_counter() - t0,
        result.history,
        share,
        blank,
        guard_skipped=skipped,
        data_notes=notes,
        length=result.length,
    )

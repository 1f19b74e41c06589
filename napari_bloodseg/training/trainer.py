"""The training loop shared by ``bloodseg train`` (from scratch) and fine-tuning (from a base model).

Reproducible for a given seed and thread count: sampling, augmentation and initialisation all draw from
seeded generators. The best validation checkpoint is what callers keep; ``on_best`` lets ``train`` save it as
it goes (so Ctrl-C keeps the last best), while fine-tuning saves only at the end (cancel leaves nothing).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..inference import Cancelled, Predictor, resolve_device
from ..inference.device import autocast_dtype
from ..metrics import aggregate, score_image
from ..models import ModelCard, SegmentationNet
from ..schemas import get_schema
from .augment import colour_jitter, dihedral, random_crop_pad, random_warp, scale_jitter
from .config import RunLength, TrainConfig
from .data import Sample
from .losses import ce_dice_loss
from .red_cells import paste_red_cells


@dataclass
class EpochLog:
    epoch: int
    loss: float
    val: dict[str, Any] | None
    score: float | None
    seconds: float


@dataclass
class FitResult:
    best_state: dict[str, torch.Tensor]
    best_score: float
    best_epoch: int
    best_val: dict[str, Any] | None
    history: list[EpochLog] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"
    length: RunLength = field(default_factory=RunLength)

    @property
    def stopped_early(self) -> bool:
        """The time budget ended the run before its planned steps."""
        return self.length.cut_by_budget


#: how far past its budget a run must be projected before the clock takes over its schedule (see ``fit``): at
#: once after the first epoch when far over (a fine-tune, whose budget is its schedule), after the warm-up's 5 %
#: of the steps when just over (so a slow start on a busy machine does not decide it)
FAR_OVER, OVERRUN = 2.0, 1.1
#: fp16 steps in a row whose loss may overflow (the gradient scaler skips them) before the run counts as diverged
MAX_SKIPPED_STEPS = 10


class TrainingDiverged(ValueError):
    """The loss or the weights stopped being finite numbers: saving them would give a model that finds nothing
    (NaN weights predict all background, which still beat an untrained score)."""


def _all_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


def _batch(samples: list[Sample], idx: list[int], cfg: TrainConfig, rng: np.random.Generator, norm: dict):
    images, labels = [], []
    hi = cfg.scale_range[1]
    window = int(math.ceil(cfg.patch_size * hi)) + 2
    for i in idx:
        s = samples[i]
        img = torch.from_numpy(np.array(s.image)).permute(2, 0, 1).float() / 255.0
        lab = torch.from_numpy(np.array(s.labels))
        if max(img.shape[1:]) > window:  # big fields: cut a window before the (costly) resize
            img, lab = random_crop_pad(img, lab, window, rng)
        img, lab = scale_jitter(img, lab, *cfg.scale_range, rng)
        if cfg.red_cells and rng.random() < cfg.red_cells:
            img = paste_red_cells(img, lab, rng)
        img, lab = random_crop_pad(img, lab, cfg.patch_size, rng)
        k = int(rng.integers(8))
        images.append(dihedral(img, k))
        labels.append(dihedral(lab, k))
    x, y = random_warp(torch.stack(images), torch.stack(labels), cfg.deform, rng)
    x = colour_jitter(x, cfg.colour_strength, rng)
    mean = torch.tensor(norm["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(norm["std"]).view(1, 3, 1, 1)
    return (x - mean) / std, y.long()


def _loss(
    net: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    device: torch.device,
    amp: torch.dtype | None,
    scaler: torch.amp.GradScaler,
) -> torch.Tensor:
    """Forward and backward of one batch (the backward inside, so a compiled backward that fails is caught too)."""
    with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
        logits = net(x)
    loss = ce_dice_loss(logits.float(), y, cfg.dice_weight)  # softmax and sums in fp32 whatever the forward's type
    scaler.scale(loss).backward()
    return loss


PRECISIONS = ("auto", "fp32", "bf16")


def training_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: plain fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    return autocast_dtype(device)


def validate(model: SegmentationNet, card: ModelCard, samples: list[Sample], device: str = "auto") -> dict[str, Any]:
    """Score whole validation images with the same Predictor users run (so selection matches inference)."""
    modes = {m: m.training for m in model.modules()}  # per module: frozen BatchNorm stays in eval mode
    predictor = Predictor(model, card, device=device, tile_size=1024, overlap=64, tta=False)  # selection: plain
    scores = [
        score_image(predictor.predict(s.image, scale=1 / predictor.input_scale).labels, s.labels, card.schema)
        for s in samples
    ]
    for m, mode in modes.items():
        m.training = mode
    return aggregate(scores)


def selection_score(val: dict[str, Any]) -> float:
    """Mean Dice over the reported classes: what checkpoint selection maximises."""
    return float(np.mean([v["dice"] for v in val["per_class"].values()]))


def warmup_cosine(warmup: float = 0.05) -> Callable[[float], float]:
    """LR factor of training progress in [0, 1]: linear warm-up, then cosine decay to 1 %."""

    def factor(progress: float) -> float:
        if progress < warmup:
            return max(progress / warmup, 0.02)
        t = min((progress - warmup) / (1 - warmup), 1.0)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))

    return factor


def _freeze(model: SegmentationNet, what: str) -> None:
    if what == "none":
        return
    if what != "encoder":
        raise ValueError("freeze must be 'encoder' or 'none'")
    for name, module in model.named_children():
        if name in ("down", "encoders"):
            for p in module.parameters():
                p.requires_grad_(False)


def _set_bn_eval(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


class _WeightAverage:
    """An exponential moving average of a model's state (timm's ``ModelEmaV2`` semantics: buffers averaged too),
    with a warm-up so the early, random weights fade fast: decay min(d, (1 + step) / (10 + step))."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"ema must be in [0, 1), not {decay}")
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                self.state[k].lerp_(v.detach(), 1 - d)
            else:
                self.state[k].copy_(v)

    def swapped_in(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Load the average into ``model``; returns the raw state to put back."""
        raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.state)
        return raw


def fit(
    model: SegmentationNet,
    card: ModelCard,
    train: list[Sample],
    val: list[Sample],
    cfg: TrainConfig,
    *,
    on_epoch: Callable[[EpochLog], None] | None = None,
    on_best: Callable[[SegmentationNet, EpochLog], None] | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    replay: list[Sample] | None = None,
) -> FitResult:
    """Train ``model`` in place on ``train`` and keep the best state on ``val`` (the last state if no val, or if
    ``cfg.keep`` says "last").

    ``replay`` (fine-tuning): a pool of base-domain images; ``cfg.replay_fraction`` (half) of every batch is drawn
    afresh from it, so the network keeps seeing its whole original domain rather than a few images it could memorise.
    """
    if not train:
        raise ValueError("no training images")
    if cfg.keep not in ("best", "last"):
        raise ValueError(f"keep must be 'best' or 'last', not {cfg.keep!r}")
    labelled = sum(int((s.labels != 255).sum()) for s in train)
    if labelled == 0:
        raise ValueError("the training labels contain no labelled pixels")
    get_schema(card.schema)
    if cfg.red_cells and card.schema != "wbc":
        raise ValueError(f"red_cells pastes red cells as background: WBC schema only, not {card.schema!r}")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = resolve_device(cfg.device)
    model.to(device).train()
    _freeze(model, cfg.freeze)
    if cfg.freeze_bn:
        _set_bn_eval(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if not 0 <= cfg.replay_fraction < 1:
        raise ValueError(f"replay_fraction must be in [0, 1), not {cfg.replay_fraction}")
    n_replay = min(int(cfg.batch_size * cfg.replay_fraction), cfg.batch_size - 1) if replay else 0
    steps = cfg.steps_per_epoch or max(1, math.ceil(len(train) / (cfg.batch_size - n_replay)))
    total = steps * cfg.epochs
    if cfg.max_steps is not None:
        if cfg.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, not {cfg.max_steps}")
        total = min(total, cfg.max_steps)
    lr_factor = warmup_cosine()
    budget_s = cfg.max_minutes * 60 if cfg.max_minutes else None
    amp = training_dtype(cfg.precision, device)
    # fp16 (GPUs without bf16, Apple MPS) needs loss scaling, or small gradients flush to zero; bf16/fp32 do not
    scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    net: Callable[[torch.Tensor], torch.Tensor] = torch.compile(model) if cfg.compile else model
    t0 = time.perf_counter()
    # the budget's clock: restarted after a compiled first step, so ~30 s of compiling neither jumps the LR schedule
    # ahead (which made compiled runs irreproducible) nor eats into the training budget
    clock0 = t0
    best = FitResult(copy.deepcopy(model.state_dict()), -1.0, 0, None, device=str(device))
    average = _WeightAverage(model, cfg.ema) if cfg.ema else None
    order: list[int] = []
    replay_order: list[int] = []
    step = skipped = 0
    timed = False  # the clock drives the schedule: latched once the run is projected to overrun its budget
    for epoch in range(1, cfg.epochs + 1):
        te = time.perf_counter()
        losses = []
        for _ in range(steps):
            if cancel is not None and cancel():
                raise Cancelled("training cancelled")
            # progress is steps done; under a time budget it becomes whichever of steps and time is further along
            # once the run is projected to overrun the budget (FAR_OVER, OVERRUN), so the schedule still anneals
            # fully on a slower machine, while a run that fits stays on steps and repeats bit for bit (before,
            # the clock also steered runs that fitted whenever a slow step or a validation pass put time ahead;
            # a run the budget cuts in its last tenth stops with its LR at about 3 % of the peak anyway)
            progress = step / total
            if budget_s:
                spent = time.perf_counter() - clock0
                projected = spent / step * total if step >= steps else 0.0
                over = FAR_OVER if step < max(steps, total // 20) else OVERRUN
                timed = timed or projected > over * budget_s
                if timed:
                    progress = max(progress, spent / budget_s)
            if progress >= 1.0:
                break
            for group in opt.param_groups:
                group["lr"] = cfg.lr * lr_factor(progress)
            n_own = cfg.batch_size - n_replay
            if len(order) < n_own:
                order += list(rng.permutation(len(train)))
            idx, order = order[:n_own], order[n_own:]
            x, y = _batch(train, idx, cfg, rng, card.normalisation)
            if n_replay:
                if len(replay_order) < n_replay:
                    replay_order += list(rng.permutation(len(replay)))
                ridx, replay_order = replay_order[:n_replay], replay_order[n_replay:]
                xr, yr = _batch(replay, ridx, cfg, rng, card.normalisation)
                x, y = torch.cat([x, xr]), torch.cat([y, yr])
            x, y = x.to(device, memory_format=memory_format), y.to(device)
            opt.zero_grad(set_to_none=True)
            try:
                loss = _loss(net, x, y, cfg, device, amp, scaler)
            except Exception as exc:  # compilation happens in the first step; anything else is not ours to hide
                if net is model or step > 0:
                    raise
                net = model
                opt.zero_grad(set_to_none=True)
                loss = _loss(
                    net, x, y, cfg, device, amp, scaler
                )  # an error of the data (bad labels) raises here as usual
                warnings.warn(f"torch.compile failed, training without it: {exc}", RuntimeWarning, stacklevel=2)
            scaler.step(opt)  # a plain opt.step() unless fp16 (then skipped when the scaled gradients overflowed)
            scaler.update()
            step += 1
            if average is not None:
                average.update(model, step)
            if step == 1 and net is not model:
                clock0 = time.perf_counter()
            value = float(loss.detach())
            if not math.isfinite(value):  # fp16: an overflow the scaler skipped, unless it keeps happening
                skipped += 1
                if amp is not torch.float16 or skipped >= MAX_SKIPPED_STEPS:
                    raise TrainingDiverged(
                        f"the loss became {value} at step {step} of {total} (epoch {epoch}): training diverged; "
                        f"try a lower learning rate than {cfg.lr:g}"
                    )
                continue
            skipped = 0
            losses.append(value)
            if on_step is not None:
                on_step(step, total, losses[-1])
        out_of_time = budget_s is not None and time.perf_counter() - clock0 >= budget_s
        out_of_steps = step >= total
        last = epoch == cfg.epochs or out_of_time or out_of_steps
        val_report = score = None
        if not _all_finite(model):  # a finite last loss, then a step that made the weights NaN or inf
            raise TrainingDiverged(
                f"the weights stopped being finite numbers in epoch {epoch}: training diverged; try a lower learning "
                f"rate than {cfg.lr:g}"
            )
        raw = average.swapped_in(model) if average is not None else None  # judged and saved: the average
        if val and (epoch % cfg.val_every == 0 or last):
            val_report = validate(model, card, val, cfg.device)
            score = selection_score(val_report)
        log = EpochLog(
            epoch, float(np.mean(losses)) if losses else float("nan"), val_report, score, time.perf_counter() - te
        )
        best.history.append(log)
        if cfg.keep == "last":
            improved = last
        else:
            improved = (score is not None and score > best.best_score) or (not val and last)
        if improved:
            best.best_state = copy.deepcopy(model.state_dict())
            best.best_score, best.best_epoch, best.best_val = (score if score is not None else -1.0), epoch, val_report
            if on_best is not None:
                on_best(model, log)
        if on_epoch is not None:
            on_epoch(log)  # with ema it sees the average, like the validation in ``log``
        if raw is not None:
            model.load_state_dict(raw)
        if out_of_time or out_of_steps:
            break
    best.length = RunLength(step, total, budget_s)
    model.load_state_dict(best.best_state)
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    best.seconds = time.perf_counter() - t0
    return best

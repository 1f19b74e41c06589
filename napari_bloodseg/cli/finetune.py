"""``bloodseg finetune``: teach a model from corrected masks; saves a new version, never touches the base."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ..training.finetune_defaults import FAST_CPU_RECIPE, FINETUNE_DEFAULTS
from .common import (
    UsageError,
    add_training_speed_args,
    below_one_arg,
    check_device,
    interrupted_status,
    learning_rate_arg,
    non_negative_arg,
    positive_int_arg,
    seed_arg,
    stopped_by,
    training_speed_note,
    usage_error,
)


def add_parser(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune a model on corrected masks (saved as a new user model)")
    p.add_argument("--model", required=True, help="base model name or path")
    p.add_argument("--data", required=True, type=Path, help="folder of corrected image+mask pairs")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--val", type=Path, help="separate validation folder")
    g.add_argument(
        "--val-fraction",
        type=below_one_arg,
        default=0.2,
        help="part of --data held out for the before/after scores and the checkpoint choice (0: train on all)",
    )
    e = p.add_mutually_exclusive_group()
    e.add_argument(
        "--epochs",
        type=positive_int_arg,
        default=None,
        help=f"passes over the data (default {FINETUNE_DEFAULTS['epochs']}; {FAST_CPU_RECIPE['epochs']} with the fast "
        "CPU arithmetic, see --precision)",
    )
    e.add_argument(
        "--steps",
        type=positive_int_arg,
        default=None,
        help="this many optimiser steps instead of epochs (validated every 10 steps); --max-seconds may end the run "
        "first, which is then said",
    )
    p.add_argument(
        "--lr",
        type=learning_rate_arg,
        default=None,
        help=f"peak learning rate (default {FINETUNE_DEFAULTS['lr']:g}; {FAST_CPU_RECIPE['lr']:g} with the fast CPU "
        "arithmetic, see --precision)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int_arg,
        default=FINETUNE_DEFAULTS["batch_size"],
        help="crops per step (default %(default)s)",
    )
    p.add_argument(
        "--freeze",
        choices=["encoder", "none"],
        default="none",
        help="encoder: train only the decoder (cheaper steps, less to forget); none: train everything (default)",
    )
    p.add_argument(
        "--scale",
        default="auto",
        help="resize factor for --data on top of the base model's own input scale, as predict's --scale (1: as the "
        "base runs its own data; 0.45: Dataset 2 crops for a Dataset 1 model), or 'auto' (from cell sizes)",
    )
    p.add_argument(
        "--max-seconds",
        type=non_negative_arg,
        default=FINETUNE_DEFAULTS["max_minutes"] * 60,
        help="time budget of the training loop (0: none)",
    )
    p.add_argument(
        "--update-bn", action="store_true", help="let BatchNorm statistics follow the new images (default: frozen)"
    )
    p.add_argument(
        "--keep",
        choices=["best", "last"],
        default="best",
        help="state to save: best on the validation images, or the last (1-2 validation images choose noisily)",
    )
    p.add_argument(
        "--replay-fraction",
        type=below_one_arg,  # a batch of replayed images only would not learn the new ones
        default=0.5,
        help="share of every batch drawn from the base model's own training images, when they are on this machine "
        "(keeps the base domain; 0: off)",
    )
    p.add_argument("--no-guard", action="store_true", help="save even if the base domain gets worse")
    add_training_speed_args(
        p,
        auto="on a CPU with native bfloat16 the fast CPU recipe (bf16, channels-last, more epochs at a higher "
        "rate in the same time; bf16 there takes it too), else fp32",
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="auto: cuda > mps > cpu")
    p.add_argument("--seed", type=seed_arg, default=0, help="seeds the split, sampling and augmentation")
    p.add_argument("--name", default=None, help="name of the new model (default: BASE-ftN)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..models import ModelFileError
    from ..training import load_samples
    from ..training.data import split_for_finetuning
    from ..training.finetune import FinetuneError, finetune, finetune_config

    if not args.data.is_dir():
        raise UsageError(f"{args.data}: not a folder")
    before_run = _user_cards()
    info = None
    if args.val is not None and args.val.resolve() == args.data.resolve():
        raise UsageError("--val names the --data folder: validation images must not be training images")
    check_device(args.device)
    try:
        from ..models import find_model
        from ..models.files import read_card

        info = find_model(args.model)
        schema = info.schema
        base_scale = (read_card(info.path).input_scale or 1.0) if info.path else 1.0
        # as predict's --scale: on top of the model's own input scale (the library takes the whole factor),
        # refused before the data are read
        scale = args.scale if args.scale == "auto" else _scale_factor(args.scale, base_scale)
        samples = load_samples(args.data, schema)
        if args.val:
            train, val = samples, load_samples(args.val, schema)
        else:
            train, val = split_for_finetuning(samples, args.val_fraction, args.seed)
        recipe = _recipe(args)
        steps = max_steps = None
        epochs = args.epochs or recipe["epochs"]
        if args.steps:  # epochs of up to 10 steps (one validation each), the last one cut to make exactly --steps
            steps, max_steps = min(args.steps, 10), args.steps
            epochs = -(-args.steps // steps)
        cfg = finetune_config(
            epochs=epochs,
            steps_per_epoch=steps,
            max_steps=max_steps,
            batch_size=args.batch_size,
            lr=args.lr or recipe["lr"],
            freeze=args.freeze,
            keep=args.keep,
            replay_fraction=args.replay_fraction,
            freeze_bn=not args.update_bn,
            seed=args.seed,
            device=args.device,
            max_minutes=args.max_seconds / 60 if args.max_seconds else None,
            precision=recipe["precision"],
            channels_last=recipe["channels_last"],
        )
        res = finetune(
            args.model,
            train,
            val,
            name=args.name,
            cfg=cfg,
            scale=scale,
            guard=not args.no_guard,
            data_source=str(args.data.absolute()),  # as train's cards: still findable from another folder
            val_source=str(args.val.absolute()) if args.val else None,
            on_epoch=_print_epoch,
        )
    except (FinetuneError, ModelFileError, ValueError, OSError) as exc:  # OSError: e.g. the disk filled up
        raise usage_error(exc) from None
    except KeyboardInterrupt as exc:
        # a signal held back while the model's files were renamed into place arrives once they are: then it is saved
        new = _user_cards() - before_run  # another program may have saved models meanwhile: only this run's name
        auto = f"{info.name}-ft" if info is not None and args.name is None else None  # the name finetune picks
        saved = sorted(n for n in new if n == args.name or (auto and n.startswith(auto)))
        done = f"{', '.join(saved)} was saved whole just before" if saved else "nothing saved"
        print(f"bloodseg: {stopped_by(exc)}; {done}, the base model is unchanged", file=sys.stderr)
        return interrupted_status(exc)

    def fmt(rep):
        return ", ".join(f"{k} Dice {v['dice']:.4f}" for k, v in rep["per_class"].items()) if rep else "-"

    print(f"before: {fmt(res.before)}")
    print(f"after:  {fmt(res.after)}")
    for caveat in res.caveats:
        print(f"bloodseg: warning: {caveat}", file=sys.stderr)
    if cut := res.length.budget_note():
        print(f"bloodseg: note: {cut}; for every step, give a larger --max-seconds (0: no limit)", file=sys.stderr)
    if res.base_before:
        print(f"base-domain validation before: {fmt(res.base_before)}")
        print(f"base-domain validation after:  {fmt(res.base_after)}")
    elif res.guard_skipped:  # said, as the widget says it: the card's "guard": true alone read as "checked"
        print(f"bloodseg: warning: {res.guard_skipped}", file=sys.stderr)
    if res.weight_mix < 1:
        print(
            f"the full fine-tune lowered the base domain beyond the guard: saved the weights mixed "
            f"{res.weight_mix:g} : {1 - res.weight_mix:g} with the base instead (WiSE-FT)"
        )
    print(
        f"saved {res.card.name} (v{res.card.version}) to {res.path} in {res.seconds:.1f} s; "
        f"use it as --model {res.card.name}"
    )
    note = training_speed_note(args)  # after the run, so a refusal stays one line
    if note:
        print(f"bloodseg: note: {note}", file=sys.stderr)
    return 0


def _recipe(args: argparse.Namespace) -> dict:
    """The defaults for this machine (:func:`~..training.finetune_defaults.finetune_recipe`): ``--precision auto``
    or ``bf16`` on a CPU with native bfloat16 takes the fast CPU recipe; the options given win. ``args`` then says
    what runs, so the speed note after the run does not suggest what was used."""
    from ..inference.device import cpu_bf16
    from ..training.finetune_defaults import finetune_recipe

    fast = args.precision in ("auto", "bf16") and bool(cpu_bf16(args.device))  # bf16 asked for: its recipe too
    recipe = finetune_recipe(fast)
    if fast:
        if args.precision == "auto":  # said, as the card alone would not tell what "auto" chose
            epochs = f"{args.steps} steps" if args.steps else f"{args.epochs or recipe['epochs']} epochs"
            print(
                f"bloodseg: note: this CPU computes bfloat16 natively: fine-tuning in bf16 + channels-last, {epochs} "
                f"at lr {args.lr or recipe['lr']:g} (the fast CPU recipe; --precision fp32 for the plain one)",
                file=sys.stderr,
            )
        args.precision, args.channels_last = "bf16", True
    else:
        recipe = {**recipe, "precision": args.precision, "channels_last": args.channels_last}
    return recipe


def _scale_factor(text: str, base_scale: float) -> float:
    """``--scale`` times the base's own input scale, refused in the user's terms: the library's limit is on the
    product, and its message quoted 150 and "at most 100" for ``--scale 300`` on a model that runs at 0.5."""
    from ..models.files import MAX_INPUT_SCALE

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    top = MAX_INPUT_SCALE / base_scale
    if not 0 < value <= top:  # also NaN and inf
        raise UsageError(f"--scale must be 'auto' or a factor above 0 and at most {top:g} for this model, not {text!r}")
    return value * base_scale


def _user_cards() -> set[str]:
    """The names of the models in the user model folder now."""
    from ..models.files import CARD_SUFFIX
    from ..models.zoo import user_model_dir

    folder = user_model_dir()
    return {p.name[: -len(CARD_SUFFIX)] for p in folder.glob(f"*{CARD_SUFFIX}")} if folder.is_dir() else set()


def _print_epoch(log) -> None:
    """One line an epoch: the loss, and the validation score where this epoch was validated."""
    from ..training.trainer import selection_score

    val = f", validation mean Dice {selection_score(log.val):.4f}" if log.val else ""
    print(f"epoch {log.epoch}: loss {log.loss:.4f}{val}", file=sys.stderr)

"""``bloodseg train``: train U-Net / SegNet / DeconvNet from scratch on a folder of image+mask pairs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..models.files import MAX_INPUT_SCALE
from .common import (
    UsageError,
    add_training_speed_args,
    below_one_arg,
    check_device,
    data_warnings_printed,
    finite_non_negative_arg,
    fraction_arg,
    interrupted_status,
    learning_rate_arg,
    non_negative_arg,
    number_arg,
    number_in_arg,
    positive_int_arg,
    seed_arg,
    stopped_by,
    training_speed_note,
    usage_error,
)

#: --colour-jitter's top: 1 is already strong (rbc-deconvnet's); at 2 a crop's saturation factor (1 +- 0.5 sd)
#: turns negative, colours inverted, for 2 % of crops and 7 % of pixels clip at black or white, and it gets
#: quickly worse beyond (3: 9 % inverted, 13 % clipped)
MAX_COLOUR_JITTER = 2.0
#: --deform's top per crop side: the warp moves control points 4 x strength px (sd) on a 5 x 5 grid spread over
#: the crop, so folds depend on strength / patch size; up to patch / 64 (2 for the default 128 px crops) about
#: 1 % of pixels fold, beyond it the warp folds parts of most crops over themselves (128 px at 3: every crop, 8 %)
DEFORM_PER_PIXEL = 1 / 64
#: --scale-jitter factors, either way: resizing a crop more than 10 times is not augmentation (and HI sets the
#: window cut before the resize: at 1e4 a 128 px crop asked for a 1.3 M px wide window; inf was a traceback)
MAX_SCALE_JITTER = 10.0


def input_scale_arg(text: str) -> float:
    """argparse type for --input-scale: above 0 and at most a model card's limit (a card above it is refused by
    every loader, so a run at 120 trained, said "saved", and left a model nothing could open)."""
    return number_arg(
        text, float, lambda v: 0 < v <= MAX_INPUT_SCALE, f"a number above 0 and at most {MAX_INPUT_SCALE:g}"
    )


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a network from scratch")
    p.add_argument("--model", required=True, choices=["unet", "segnet", "deconvnet"], help="architecture")
    p.add_argument("--data", required=True, type=Path, help="folder of image+mask pairs")
    p.add_argument(
        "--schema",
        default="wbc",
        choices=["wbc", "rbc"],
        help="label schema of the masks: wbc (0/128/255: cytoplasm, nucleus) or rbc (0/255: cell)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--val-fraction", type=below_one_arg, default=0.1, help="part of --data held out for model selection"
    )
    g.add_argument("--val", type=Path, help="separate validation folder")
    p.add_argument(
        "--test-fraction",
        type=below_one_arg,
        default=0.0,
        help="part of --data never used (ids saved in the card, for an honest benchmark)",
    )
    p.add_argument("--epochs", type=positive_int_arg, default=60, help="passes over the training images")
    p.add_argument(
        "--steps-per-epoch", type=positive_int_arg, default=None, help="optimiser steps per epoch (default: one pass)"
    )
    p.add_argument("--lr", type=learning_rate_arg, default=3e-3, help="peak learning rate (warm-up, then cosine decay)")
    p.add_argument("--batch-size", type=positive_int_arg, default=16, help="crops per step")
    p.add_argument("--patch-size", type=positive_int_arg, default=128, help="side of the training crops in pixels")
    p.add_argument(
        "--width", type=positive_int_arg, default=16, help="channels of the first level (doubling per level)"
    )
    p.add_argument("--depth", type=positive_int_arg, default=4, help="number of poolings")
    p.add_argument(
        "--colour-jitter",
        type=number_in_arg(0, MAX_COLOUR_JITTER),
        default=0.5,
        help=f"stain/colour augmentation strength, 0 (off) to {MAX_COLOUR_JITTER:g}",
    )
    p.add_argument(
        "--deform",
        type=finite_non_negative_arg,
        default=0.0,
        help="free rotation + elastic deformation strength (0: off; 1: ~4 px), at most --patch-size / 64 "
        "(beyond, the warp folds crops over themselves)",
    )
    p.add_argument(
        "--red-cells",
        type=number_in_arg(0, 1),
        default=0.0,
        help="WBC: share of crops, 0 (off) to 1, given synthetic red cells around the white cell, learnt as background",
    )
    p.add_argument(
        "--ema",
        type=below_one_arg,
        default=0.0,
        help="keep an exponential moving average of the weights with this decay (e.g. 0.995) and validate and "
        "save it instead of the raw weights (0: off)",
    )
    p.add_argument(
        "--scale-jitter",
        type=float,
        nargs=2,
        default=(0.9, 1.12),
        metavar=("LO", "HI"),
        help=f"random resize range for augmentation, factors from {1 / MAX_SCALE_JITTER:g} to {MAX_SCALE_JITTER:g}",
    )
    p.add_argument(
        "--input-scale",
        type=input_scale_arg,
        default=1.0,
        help=f"resize data by this factor (e.g. 0.5 for big fields), above 0 and at most {MAX_INPUT_SCALE:g}",
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="auto: cuda > mps > cpu")
    p.add_argument(
        "--seed", type=seed_arg, default=0, help="seeds the split, initialisation, sampling and augmentation"
    )
    p.add_argument(
        "--split-seed", type=seed_arg, default=None, help="seed of the validation/test split only (default: --seed)"
    )
    p.add_argument("--val-every", type=positive_int_arg, default=1, help="validate every N epochs (and after the last)")
    p.add_argument(
        "--max-minutes",
        type=non_negative_arg,
        default=None,
        help="stop after this long (keeps the best so far; 0: no limit)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="compile the training step with torch.compile: ~15 %% faster steps after ~30 s of compiling on a CPU "
        "(worth it for runs of 1000+ steps; falls back to plain PyTorch if it cannot compile)",
    )
    add_training_speed_args(p)
    p.add_argument(
        "--name",
        default=None,
        help="model name in its card: the --out file name, which is the model's name everywhere (bloodseg models, "
        "--model, the predicted-by mark of its masks); any other name is refused (name the file instead)",
    )
    p.add_argument("--version", default="1", help="version label in the model card (shipped models count releases)")
    p.add_argument(
        "--edge-cell-min-fraction",
        type=fraction_arg,
        default=None,
        help="the masks leave out cells cut by the image edge that show less than this fraction of a typical "
        "cell: recorded in the card so predictions (and validation) follow it (rbc: 0.45)",
    )
    p.add_argument(
        "--tta-max-pixels",
        type=positive_int_arg,
        default=None,
        help="--tta auto averages the 8 rotations/flips up to this many network-input pixels (default: single-cell "
        "crops, 100000); recorded in the card (rbc: 1000000, whole fields)",
    )
    p.add_argument(
        "--out", required=True, help="output path, a model name in a folder; writes OUT.safetensors + OUT.json"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a model at --out (from its first saved epoch on: cancelling then leaves the new best)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..training import TrainConfig, train_model
    from ..training.trainer import TrainingDiverged

    if not args.data.is_dir():
        raise UsageError(f"{args.data}: not a folder")
    if args.red_cells and args.schema != "wbc":
        raise UsageError("--red-cells pastes red cells as background: for --schema wbc only")
    if args.val is None and args.val_fraction + args.test_fraction >= 1:
        raise UsageError(f"--val-fraction {args.val_fraction} and --test-fraction {args.test_fraction} leave no image")
    if args.patch_size < 4 * 2**args.depth:  # depth 12 built a 16384-channel bottom and ran for minutes first
        raise UsageError(
            f"--depth {args.depth} halves a {args.patch_size} px crop to under 4 px: use --depth "
            f"{max(1, (args.patch_size // 4).bit_length() - 1)} or less, or a larger --patch-size"
        )
    lo, hi = args.scale_jitter
    if not 1 / MAX_SCALE_JITTER <= lo <= hi <= MAX_SCALE_JITTER:  # also NaN and inf
        raise UsageError(
            f"--scale-jitter {lo:g} {hi:g}: two factors from {1 / MAX_SCALE_JITTER:g} to {MAX_SCALE_JITTER:g}, "
            "the smaller first (e.g. 0.9 1.12)"
        )
    if args.deform > args.patch_size * DEFORM_PER_PIXEL:
        raise UsageError(
            f"--deform {args.deform:g} folds {args.patch_size} px crops over themselves: use 0 to "
            f"{args.patch_size * DEFORM_PER_PIXEL:g} (--patch-size / 64), or a larger --patch-size"
        )
    if args.val is not None and args.val.resolve() == args.data.resolve():
        raise UsageError("--val names the --data folder: validation images must not be training images")
    out = _out_path(args.out)
    weights, card_path = _check_out(out, args.overwrite)
    if args.name is not None and args.name != card_path.stem:
        raise UsageError(_name_differs(args.name, card_path))
    check_device(args.device)
    earlier = _sha256_or_none(weights)  # with --overwrite: the model that was there before this run
    cfg = TrainConfig(
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        lr=args.lr,
        patch_size=args.patch_size,
        colour_strength=args.colour_jitter,
        deform=args.deform,
        red_cells=args.red_cells,
        scale_range=tuple(args.scale_jitter),
        seed=args.seed,
        device=args.device,
        max_minutes=args.max_minutes,
        val_every=args.val_every,
        compile=args.compile,
        ema=args.ema,
        precision=args.precision,
        channels_last=args.channels_last,
    )
    bar = tqdm(total=args.epochs, desc=f"train {args.model}", unit="epoch", file=sys.stderr)

    def on_epoch(log) -> None:
        bar.update(1)
        post = {"loss": f"{log.loss:.4f}"}
        if log.val:
            post |= {f"val_iou_{k}": f"{v['jaccard']:.3f}" for k, v in log.val["per_class"].items()}
        bar.set_postfix(post)

    try:
        with data_warnings_printed():
            card, result = train_model(
                args.data,
                out,
                architecture=args.model,
                schema=args.schema,
                width=args.width,
                depth=args.depth,
                cfg=cfg,
                val_fraction=args.val_fraction,
                test_fraction=args.test_fraction,
                val_data=args.val,
                input_scale=args.input_scale,
                edge_cell_min_fraction=args.edge_cell_min_fraction,
                tta_max_pixels=args.tta_max_pixels,
                split_seed=args.split_seed,
                name=args.name,
                version=args.version,
                on_epoch=on_epoch,
            )
    except KeyboardInterrupt as exc:
        bar.close()
        print(f"bloodseg: {stopped_by(exc)}; {_what_is_kept(weights, earlier)}", file=sys.stderr)
        return interrupted_status(exc)
    except TrainingDiverged as exc:
        bar.close()
        raise UsageError(f"{exc}; {_what_is_kept(weights, earlier)}") from None
    except (ValueError, OSError) as exc:  # OSError: the disk filled up or went away while saving
        bar.leave = bar.n > 0  # a refusal before the first epoch: wipe the empty bar; later, show how far it got
        bar.close()
        if isinstance(exc, OSError) and _sha256_or_none(weights) is not None:  # a later save failed: what is kept
            raise UsageError(f"{exc}; {_what_is_kept(weights, earlier)}") from None
        raise usage_error(exc) from None
    bar.close()
    validated = (
        f"best epoch {result.best_epoch}/{len(result.history)}, val mean Dice {result.best_score:.4f}"
        if any(log.val for log in result.history)
        else f"no validation images: kept the last of {len(result.history)} epochs"
    )
    print(
        f"bloodseg: {validated}, {result.seconds:.0f} s on {result.device}; saved {weights} + {card_path.name}",
        file=sys.stderr,
    )
    if cut := result.length.budget_note(unit="min"):
        print(f"bloodseg: note: {cut}; for every epoch, give a larger --max-minutes (0: no limit)", file=sys.stderr)
    note = training_speed_note(args)  # after the run, so a refusal stays one line
    if note:
        print(f"bloodseg: note: {note}", file=sys.stderr)
    return 0


def _sha256_or_none(path: Path) -> str | None:
    from ..models.files import _sha256

    return _sha256(path) if path.is_file() else None


def _what_is_kept(weights: Path, earlier: str | None) -> str:
    """What a stopped run leaves at ``--out``: its best epoch so far, the earlier model it would have replaced, or
    nothing (said as such: "the best model so far is intact" sent users to a file that was not there)."""
    now = _sha256_or_none(weights)
    if now is None:
        return "no model was saved (stopped before the first validated epoch)"
    if now == earlier:
        return f"nothing of this run was saved; the earlier model at {weights} is unchanged"
    epoch = _saved_epoch(weights)
    return f"the best model of this run so far is saved at {weights}" + (f" (epoch {epoch})" if epoch else "")


def _saved_epoch(weights: Path) -> int | None:
    """The epoch of the model saved at ``weights``, from its card (None when the card cannot say)."""
    from ..models import ModelFileError
    from ..models.files import model_paths, read_card

    try:
        return (read_card(model_paths(weights)[1]).training or {}).get("best_epoch")
    except (ModelFileError, OSError, ValueError):
        return None


def _out_path(text: str) -> Path:
    """``--out`` as a path, refused when it names a folder: the model landed beside it as FOLDER.safetensors."""
    seps = tuple(s for s in (os.sep, os.altsep) if s)
    if text.endswith(seps) or Path(text).is_dir():
        folder = Path(text)
        raise UsageError(
            f"--out {text}: a folder; give the model a name inside it, e.g. --out {folder / 'NAME'} "
            "(writes NAME.safetensors + NAME.json there)"
        )
    return Path(text)


def _name_differs(name: str, card_path: Path) -> str:
    """Why ``--name`` must be the --out file name: every loader knows a model by its file name (``bloodseg
    models`` lists the file name, ``--model`` finds it by it, ``models import`` and ``rename`` write it into the
    card), while the card's name is what predictions record as ``predicted-by`` and what fine-tunes call their
    base; a card naming another model (or "bar baz/../../x") sent users after a model nothing resolves."""
    plain = name not in ("", ".", "..") and Path(name).name == name and not any(s in name for s in "/\\")
    hint = f"; to call it {name}, give --out {card_path.parent / name}" if plain else ""
    return (
        f"--name {name!r} differs from the --out file name {card_path.stem!r}: a model is known by its file name "
        f"(bloodseg models, --model, its masks' predicted-by mark){hint}"
    )


def _check_out(out: Path, overwrite: bool) -> tuple[Path, Path]:
    """The model files ``--out`` names, refused before any training when they exist (without ``--overwrite``),
    sit among the shipped models, or cannot be written."""
    from ..io.atomic import check_can_write_in
    from ..models.files import model_paths
    from ..models.zoo import SHIPPED_DIR, user_model_dir

    weights, card = model_paths(out)
    if weights.parent.resolve() == SHIPPED_DIR.resolve():
        raise UsageError(f"--out {out}: the shipped models' folder is not for new models")
    if weights.parent.resolve() == user_model_dir().resolve():  # a user model: its name must stay reachable
        from ..models.manage import check_model_name, name_clash, taken_message

        name = card.stem
        try:
            check_model_name(name)  # wbc-unet there was hidden by the shipped one; unet shadowed the architecture
        except ValueError as exc:
            raise UsageError(f"--out {out}: {exc}") from None
        clash = name_clash(weights.parent, name)  # the same name is --overwrite's to decide, below
        if clash is not None and clash != name:
            raise UsageError(f"--out {out}: {taken_message(weights.parent, name, clash)}")
    taken = [p for p in (weights, card) if p.exists()]
    if taken and not overwrite:
        raise UsageError(f"{taken[0]} exists: choose another --out, or --overwrite to replace that model")
    try:
        check_can_write_in(weights.parent)
    except OSError as exc:
        raise UsageError(f"--out {out}: {exc}") from None
    return weights, card

"""What every subcommand shares: clean one-line errors (exit 2) and model/device options."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from ..inference.defaults import DEFAULT_OVERLAP, DEFAULT_TILE_SIZE
from ..inference.device import DEVICE_CHOICES, DeviceUnavailable
from ..inference.edge_cells import check_min_fraction


class UsageError(Exception):
    """Bad input from the user: reported as one line on stderr, exit code 2, no traceback."""


def error(msg: str) -> None:
    print(f"bloodseg: error: {msg}", file=sys.stderr)


def usage_error(exc: Exception) -> UsageError:
    """``exc`` as a one-line usage error. A device this machine lacks gets the command line's advice here: the
    core's message names no front end's option, as the widgets have a Device choice instead."""
    if isinstance(exc, DeviceUnavailable):
        return UsageError(f"{exc} (use --device auto or cpu)")
    return UsageError(str(exc))


@contextlib.contextmanager
def own_warnings_printed() -> Iterator[None]:
    """The library's own warnings (a TIFF's pages left out, training data notes) as ``bloodseg: warning: ...``
    lines, like every other message of the CLI, not in Python's ``file:line: Category`` format; others as usual."""
    shown = warnings.showwarning

    def show(message, category, *args, **kwargs) -> None:
        if category.__module__.startswith("napari_bloodseg."):
            print(f"bloodseg: warning: {message}", file=sys.stderr, flush=True)
        else:
            shown(message, category, *args, **kwargs)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


@contextlib.contextmanager
def data_warnings_printed() -> Iterator[None]:
    """Print the training data's warnings (``TrainingDataWarning``) the moment they are raised, every time: before
    the minutes of a run, not after it."""
    from ..training.data import TrainingDataWarning

    with own_warnings_printed():
        warnings.simplefilter("always", TrainingDataWarning)
        yield


def check_device(device: str) -> None:
    """Refuse a device this machine lacks before any data is read: training found out only when it first moved
    a batch there, after loading every image."""
    from ..inference.device import resolve_device

    try:
        resolve_device(device)
    except ValueError as exc:
        raise usage_error(exc) from None


def add_model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument(
        "--model",
        required=required,
        help="model name (see `bloodseg models`), path to a model file, or unet|segnet|deconvnet[:wbc|rbc]",
    )
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="auto picks cuda > mps > cpu")


def add_training_speed_args(p: argparse.ArgumentParser, auto: str = "fp32 on CPUs") -> None:
    """``--precision`` and ``--channels-last``, shared by train and finetune; ``auto`` says what auto does on CPUs."""
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16"],
        help=f"forward-pass arithmetic: auto = mixed precision on GPUs, {auto}; bf16 on a CPU with AVX512-BF16 "
        "or AMX trains ~1.7x faster (elsewhere slower); weights stay fp32",
    )
    p.add_argument(
        "--channels-last",
        action="store_true",
        help="train in channels-last (NHWC) layout, which CPU convolutions prefer",
    )


def training_speed_note(args: argparse.Namespace) -> str | None:
    """One line on the arithmetic when it matters on a CPU: bf16 asked for where it is emulated (slower), or not
    asked for where the CPU computes it natively (~1.7x faster, benchmarks/train_speed.py)."""
    from ..inference.device import cpu_bf16

    native = cpu_bf16(args.device)
    if native is None:
        return None
    if args.precision == "bf16" and not native:
        return "this CPU has no native bfloat16 (AVX512-BF16 or AMX): --precision bf16 runs emulated, slower than fp32"
    if args.precision == "auto" and native and not args.channels_last:
        return "this CPU computes bfloat16 natively: --precision bf16 --channels-last trains ~1.7x faster"
    return None


def add_inference_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tile-size", type=int, default=DEFAULT_TILE_SIZE, help="tile side for big images (0: whole image at once)"
    )
    p.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP, help="tile overlap in pixels")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="tiles per forward pass (default: 1 on a CPU, 4 on a GPU)",
    )
    p.add_argument(
        "--tta",
        choices=["auto", "on", "off"],
        default="auto",
        help="test-time augmentation, the mean of 8 rotations/flips (8x the cost); auto: single-cell crops "
        "(network input up to 0.1 MP), or up to the model card's limit (rbc-deconvnet: fields up to 1 MP of input)",
    )
    p.add_argument(
        "--edge-cells",
        type=edge_cells_arg,
        default="auto",
        metavar="auto|keep|FRACTION",
        help="cells cut by the image edge: auto follows the model card (rbc-deconvnet drops those showing less "
        "than 0.45 of a typical cell, as its training masks do), keep keeps all, a number sets the fraction",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--scale",
        type=float,
        default=None,
        help="resize factor for your images on top of the model's own input scale (its card): 0.45 brings Dataset 2 "
        "cells, ~2.2x larger, to a Dataset 1 model's size (--cell-size auto measures it); 1: as the model runs its "
        "own data",
    )
    g.add_argument(
        "--cell-size",
        type=cell_size_arg,
        default=None,
        metavar="PX|auto",
        help="typical cell diameter in px in your images, rescaled to the model's training size; auto: the model "
        "measures it on up to 8 of the images (segmenting each at a ladder of scales, seconds each), and their "
        "median sets one scale for the run",
    )


def cell_size_arg(value: str) -> float | str:
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a diameter in pixels or auto, not {value!r}") from None


def edge_cells_arg(value: str) -> str | float:
    if value in ("auto", "keep"):
        return value
    try:
        return check_min_fraction(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, keep or a fraction between 0 and 1, not {value!r}") from None


def fraction_arg(value: str) -> float:
    """argparse type for an edge-cell fraction: refused before any work starts."""
    try:
        return check_min_fraction(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, not {value!r}") from None


class DefaultsFormatter(argparse.HelpFormatter):
    """--help says each option's default, where it has one and its help does not say it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            action.option_strings
            and not any(default is absent for absent in (None, False, argparse.SUPPRESS))  # 0 is a default
            and "default" not in text
            and not isinstance(action, argparse._HelpAction)
        ):
            shown = " ".join(map(str, default)) if isinstance(default, (tuple, list)) else "%(default)s"
            text = f"{text} (default: {shown})" if text else f"default: {shown}"
        return text


def number_arg(text: str, kind: type, ok: Callable[[Any], bool], expected: str) -> Any:
    """``text`` as ``kind`` when ``ok`` says so, else argparse's one-line error saying what was expected."""
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not ok(value):  # ok() is False for NaN too
        raise argparse.ArgumentTypeError(f"expected {expected}, not {text!r}")
    return value


def non_negative_arg(text: str) -> float:
    """argparse type for a time budget: 0 (none) or more."""
    return number_arg(text, float, lambda v: v >= 0, "a number of 0 or more")


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C (same clean-up) but reported with its own exit status."""


def stopped_by(exc: KeyboardInterrupt) -> str:
    """How a stopped run says what stopped it, the same in every command: "terminated" (SIGTERM) or "interrupted"."""
    return "terminated" if isinstance(exc, Terminated) else "interrupted"


def interrupted_status(exc: KeyboardInterrupt) -> int:
    """The shell's exit status for a run stopped by ``exc``: 128 + the signal number (SIGINT 130, SIGTERM 143)."""
    return 143 if isinstance(exc, Terminated) else 130


def positive_arg(text: str) -> float:
    """argparse type for a factor that must be above 0 (an input scale)."""
    return number_arg(text, float, lambda v: 0 < v < math.inf, "a number above 0")


def learning_rate_arg(text: str) -> float:
    """argparse type for --lr: above 0 (0 trains nothing and saves a copy; torch refused -1 after the data load)."""
    return number_arg(text, float, lambda v: 0 < v < math.inf, "a learning rate above 0")


def positive_int_arg(text: str) -> int:
    """argparse type for a count that must be at least 1 (epochs, steps, batch size, width)."""
    return number_arg(text, int, lambda v: v >= 1, "a whole number of at least 1")


def below_one_arg(text: str) -> float:
    """argparse type for a number in [0, 1): a replayed share of a batch, a moving average's decay."""
    return number_arg(text, float, lambda v: 0 <= v < 1, "a number from 0 up to (not including) 1")


def number_in_arg(low: float, high: float) -> Callable[[str], float]:
    """argparse type for a number from ``low`` to ``high``, both included (NaN and infinities refused): a share
    of the crops from 0 to 1, an augmentation strength with a sensible top."""

    def parse(text: str) -> float:
        return number_arg(text, float, lambda v: low <= v <= high, f"a number from {low:g} to {high:g}")

    return parse


def finite_non_negative_arg(text: str) -> float:
    """argparse type for a strength that is 0 (off) or more, but a real number (not NaN, not infinite)."""
    return number_arg(text, float, lambda v: 0 <= v < math.inf, "a number of 0 or more")


#: numpy's seed limit (``np.random.seed``; torch's is wider): a larger seed failed only after the data were read
MAX_SEED = 2**32 - 1


def seed_arg(text: str) -> int:
    """argparse type for a random seed: a whole number from 0 to :data:`MAX_SEED` (-1 was 'expected non-negative
    integer', 10**23 'Overflow when unpacking long long', both after loading the data and naming no option)."""
    return number_arg(text, int, lambda v: 0 <= v <= MAX_SEED, f"a whole number from 0 to {MAX_SEED}")


def load_model_or_fail(spec: str, width: int = 16):
    from ..models import ModelFileError, UntrainedModelWarning, get_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UntrainedModelWarning)
        try:
            model, card = get_model(spec, width=width)
        except (ModelFileError, ValueError) as exc:
            raise UsageError(str(exc)) from None
    for w in caught:
        print(f"bloodseg: warning: {w.message}", file=sys.stderr)
    return model, card


def make_predictor(args: argparse.Namespace, model, card):
    from ..inference import Predictor

    try:
        return Predictor(
            model,
            card,
            device=args.device,
            tile_size=args.tile_size,
            overlap=args.overlap,
            batch_size=args.batch_size,
            tta={"on": True, "off": False}.get(args.tta, "auto"),
            edge_cells=args.edge_cells,
            log=lambda m: print(f"bloodseg: {m}", file=sys.stderr),
        )
    except ValueError as exc:
        raise usage_error(exc) from None


#: a --scale beyond this factor either way is more likely a typo (0.04 for 0.4) than real data: said, not refused
EXTREME_SCALE = 10.0


def _extreme_scale_warning(scale: float, predictor) -> str:
    """Why the user should look at their --scale again, in cell sizes when the model knows its own."""
    how = f"shrinks the images {1 / scale:.0f} times" if scale < 1 else f"enlarges the images {scale:.0f} times"
    size = getattr(getattr(predictor, "card", None), "cell_size_px", None)
    cells = f": the model's ~{size:.0f} px cells would be ~{size / scale:.0f} px in your images" if size else ""
    return f"bloodseg: warning: --scale {scale:g} {how}{cells}; check the value (or use --cell-size auto)"


def scale_from_args(args: argparse.Namespace, predictor) -> float | None:
    """The scale for every image, or None for ``--cell-size auto`` (then :func:`auto_scale` measures it)."""
    if getattr(args, "scale", None) is not None:  # 0 is a bad scale, not "no scale"
        if not 0 < args.scale < float("inf"):
            raise UsageError(f"--scale must be positive, not {args.scale}")
        if not 1 / EXTREME_SCALE <= args.scale <= EXTREME_SCALE:
            print(_extreme_scale_warning(float(args.scale), predictor), file=sys.stderr)
        return float(args.scale)
    if getattr(args, "cell_size", None) is not None:
        if not (predictor.card and predictor.card.cell_size_px):
            raise UsageError("this model's card has no cell_size_px; use --scale instead")
        if args.cell_size == "auto":
            return None
        if not 0 < args.cell_size < float("inf"):
            raise UsageError(f"--cell-size must be positive, not {args.cell_size}")
        return predictor.scale_for_cell_size(args.cell_size)
    return 1.0


def auto_scale(predictor, paths: list, read: Callable[[Any], Any]) -> float:
    """``--cell-size auto``: the model measures the cells of up to 8 of the images, spread through the batch
    (``read(path)`` opens one); their median diameter sets one scale for the run, said on stderr so it can be
    reused as ``--cell-size``. Images that cannot be read or hold no cells are skipped; none left is an error."""
    from ..inference.cell_size import CellSizeError, estimate_batch_cell_size

    class Images:
        def __len__(self) -> int:
            return len(paths)

        def __getitem__(self, i: int) -> Any:
            try:
                return read(paths[i])
            except (OSError, ValueError) as exc:  # the main loop reports the file itself
                raise CellSizeError(str(exc)) from None

    try:
        est = estimate_batch_cell_size(predictor, Images())
    except CellSizeError as exc:
        raise UsageError(f"--cell-size auto: {exc}; give --cell-size PX or --scale instead") from None
    print(
        f"bloodseg: cells ~{est.diameter_px:.0f} px across (median of {est.n_images} image(s)): scale {est.scale:.2f}",
        file=sys.stderr,
    )
    return est.scale

"""Entry point of the ``bloodseg`` console script."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

from .. import __version__
from ..io.pairs import LayoutError
from . import evaluate, finetune, models, predict, train
from .common import (
    DefaultsFormatter,
    Terminated,
    UsageError,
    error,
    interrupted_status,
    own_warnings_printed,
    stopped_by,
)

SUBCOMMANDS = [predict, evaluate, train, finetune, models]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bloodseg", description="Blood smear segmentation: U-Net, SegNet, DeconvNet")
    parser.add_argument("--version", action="version", version=f"napari-bloodseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for mod in SUBCOMMANDS:
        mod.add_parser(sub)
    for command in sub.choices.values():
        command.formatter_class = DefaultsFormatter
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "models":
        from ..inference.allocator import keep_freed_memory

        keep_freed_memory()  # a process of our own: tiles and training steps reuse freed memory (15-20 % faster)
    try:
        with _terminate_as_interrupt(), own_warnings_printed():
            return int(args.func(args) or 0)
    except (UsageError, LayoutError) as exc:  # LayoutError: a dataset folder whose masks cannot be told apart
        error(str(exc))
        return 2
    except KeyboardInterrupt as exc:
        error(stopped_by(exc))
        return interrupted_status(exc)
    except BrokenPipeError:
        # the reader went away (`bloodseg models | head`): stop quietly, as command-line tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, ``timeout``, a batch scheduler) stops a run as Ctrl-C does: temporary files are
    removed and the last best model is kept. Without this it died where it stood, leaving hidden temporary
    files of up to the size of a slide's mask."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        yield  # a parent that made us ignore SIGTERM meant it, as Python itself keeps an ignored SIGINT
        return

    def interrupt(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())

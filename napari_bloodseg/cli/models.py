"""``bloodseg models``: list (one model per line: name, schema, architecture, source, version, path), and
rename / delete / export / import user models."""

from __future__ import annotations

import argparse
import errno
import sys

from .common import UsageError


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list and manage models")
    p.add_argument("action", nargs="?", default="list", choices=["list", "rename", "delete", "export", "import"])
    p.add_argument("args", nargs="*", help="rename OLD NEW | delete NAME | export NAME DIR | import PATH [NAME]")
    p.set_defaults(func=run)


_ARITY = {"list": (0, 0), "rename": (2, 2), "delete": (1, 1), "export": (2, 2), "import": (1, 2)}


def run(args: argparse.Namespace) -> int:
    from ..models import ARCHITECTURES, ModelFileError, list_models, manage, user_model_dir

    lo, hi = _ARITY[args.action]
    if not lo <= len(args.args) <= hi:
        raise UsageError(f"models {args.action}: wrong number of arguments (see bloodseg models --help)")
    try:
        if args.action == "rename":
            print(f"renamed to {manage.rename_model(*args.args)}")
        elif args.action == "delete":
            manage.delete_model(args.args[0])
            print(f"deleted {args.args[0]}")
        elif args.action == "export":
            print(f"exported to {manage.export_model(*args.args)}")
        elif args.action == "import":
            print(f"imported as {manage.import_model(*args.args)}")
        else:
            for info in list_models():
                print(info.line())
            for arch in ARCHITECTURES:
                print(f"{arch}\twbc|rbc\t{arch}\tuntrained\tv0\t(random weights: train or fine-tune before use)")
            print(f"# user models: {user_model_dir()}")
            from ..models.zoo import all_cardless_weights, skipped_cards

            for skipped in skipped_cards():  # a damaged model must not vanish from the list without a word
                print(f"bloodseg: warning: {skipped.note()}", file=sys.stderr)
            for weights in all_cardless_weights():  # nor weights whose card is gone (an interrupted save)
                print(
                    f"bloodseg: warning: skipped {weights}: weights without their card; put the card beside them, "
                    f"or bloodseg models delete {weights.name[: -len('.safetensors')]}",
                    file=sys.stderr,
                )
    except BrokenPipeError:
        raise
    except ModelFileError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:  # "[Errno 30] Read-only file system: 'x'" → "x: read-only file system"
        # a full disk: the file named in the error may be the source being copied, not where it did not fit
        where = (
            f"models {args.action}"
            if exc.errno == errno.ENOSPC
            else exc.filename or (args.args[-1] if args.args else "")
        )
        raise UsageError(f"{where}: {(exc.strerror or str(exc)).lower()}" if exc.strerror else str(exc)) from None
    return 0

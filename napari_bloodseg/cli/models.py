"""``bloodseg models``: one model per line: name, schema, architecture, source, version, path."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list available models")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..models import ARCHITECTURES, list_models, user_model_dir

    for info in list_models():
        print(info.line())
    for arch in ARCHITECTURES:
        print(f"{arch}\twbc|rbc\t{arch}\tuntrained\tv0\t(random weights: train or fine-tune before use)")
    print(f"# user models: {user_model_dir()}")
    return 0

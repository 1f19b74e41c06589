"""``bloodseg predict``: one mask PNG per image, in the on-disk grey convention of the model's schema."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import (
    UsageError,
    add_inference_args,
    add_model_args,
    error,
    load_model_or_fail,
    make_predictor,
    scale_from_args,
)


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="segment images and write mask PNGs")
    add_model_args(p)
    add_inference_args(p)
    p.add_argument("--out", required=True, type=Path, help="output folder for <image stem>.png masks")
    p.add_argument("--overwrite", action="store_true", help="replace existing masks in --out")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..evaluation import images_in
    from ..io import ImageReadError, MaskError, read_image, write_mask

    images = images_in(args.images)
    if not images:
        raise UsageError("no images found in " + " ".join(args.images))
    model, card = load_model_or_fail(args.model)
    predictor = make_predictor(args, model, card)
    scale = scale_from_args(args, predictor)
    print(f"bloodseg: {card.name} ({card.schema}) on {predictor.device_name}", file=sys.stderr)
    failures = 0
    for path in tqdm(images, desc="predict", unit="img", disable=len(images) < 2 or not sys.stderr.isatty()):
        out = args.out / f"{Path(path).stem}.png"
        try:
            if out.exists() and not args.overwrite:
                raise FileExistsError(f"{out} exists (use --overwrite to replace it)")
            image = read_image(path, as_float=False)
            pred = predictor.predict(image, scale=scale)
            write_mask(out, pred.labels, card.schema, overwrite=args.overwrite)
        except (ImageReadError, MaskError, FileExistsError, ValueError) as exc:
            error(str(exc))
            failures += 1
    print(f"bloodseg: wrote {len(images) - failures} masks to {args.out}", file=sys.stderr)
    return 2 if failures else 0

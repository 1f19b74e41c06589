"""``bloodseg evaluate``: per-class Jaccard and Dice of predictions (or a model's output) against expert masks."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .common import (
    UsageError,
    add_inference_args,
    add_model_args,
    auto_scale,
    error,
    load_model_or_fail,
    make_predictor,
    scale_from_args,
)


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="score predictions against expert masks")
    p.add_argument("--masks", required=True, type=Path, help="folder of expert masks (or image+mask pairs)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pred", type=Path, help="folder of predicted masks, paired with --masks by file stem")
    src.add_argument("--images", nargs="+", help="images to segment with --model")
    add_model_args(p, required=False)
    add_inference_args(p)
    p.add_argument("--schema", choices=["wbc", "rbc"], help="label schema of --pred masks (default: guessed)")
    p.add_argument("--json", type=Path, help="write the full report here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import build_report, format_table, images_in, mask_index
    from ..io import ImageReadError, MaskError, read_image, read_mask
    from ..metrics import score_image
    from ..schemas import get_schema, guess_schema

    try:
        masks = mask_index(args.masks)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    if not masks:
        raise UsageError(f"no masks found in {args.masks}")
    predictor = None
    if args.images:
        if not args.model:
            raise UsageError("--images needs --model")
        sources = images_in(args.images)
        model, card = load_model_or_fail(args.model)
        predictor = make_predictor(args, model, card)
        scale = scale_from_args(args, predictor)
        if scale is None:
            scale = auto_scale(predictor, sources, lambda p: read_image(p, as_float=False))
        schema = card.label_schema
    else:
        if not args.pred.is_dir():
            raise UsageError(f"{args.pred}: not a folder")
        sources = sorted(mask_index(args.pred).values())
        schema = get_schema(args.schema) if args.schema else None
    if not sources:
        raise UsageError("no images or predictions found")

    from ..io.pairs import _key

    names, scores, errors = [], [], []
    t0 = time.perf_counter()
    for src in sources:
        name = Path(src).stem
        try:
            truth_path = masks.get(_key(name))
            if truth_path is None:
                raise MaskError(f"{name}: no expert mask with this name in {args.masks}")
            if predictor is not None:
                image = read_image(src, as_float=False)
                truth, _ = read_mask(truth_path, schema, shape=image.shape[:2])
                pred = predictor.predict(image, scale=scale).labels
            else:
                if schema is None:  # guess once from the first expert mask, then hold it for the batch
                    from ..io.images import _read_raw
                    from ..io.masks import grey_from_array

                    schema = guess_schema(grey_from_array(_read_raw(Path(truth_path))))
                pred, _ = read_mask(src, schema)
                truth, _ = read_mask(truth_path, schema, shape=pred.shape)
            scores.append(score_image(pred, truth, schema))
            names.append(name)
        except (ImageReadError, MaskError, ValueError) as exc:
            error(str(exc))
            errors.append(str(exc))
    seconds = time.perf_counter() - t0
    if schema is None:
        raise UsageError("nothing could be evaluated")
    report = build_report(
        names,
        scores,
        schema,
        model=args.model,
        seconds=seconds,
        device=predictor.device_name if predictor else "none",
        errors=errors,
    )
    if scores:
        print(format_table(report))
    if args.json:
        from ..io.atomic import atomic_write

        text = json.dumps(report, indent=2)
        atomic_write(args.json, lambda tmp: tmp.write_text(text + "\n"), overwrite=True)
        print(f"bloodseg: report written to {args.json}", file=sys.stderr)
    if not scores:
        raise UsageError("no image could be evaluated")
    return 2 if errors else 0

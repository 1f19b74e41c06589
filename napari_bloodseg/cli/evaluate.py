"""``bloodseg evaluate``: per-class Jaccard and Dice of predictions (or a model's output) against expert masks."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:  # pragma: no cover
    from ..schemas import LabelSchema


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="score predictions against expert masks")
    p.add_argument("--masks", required=True, type=Path, help="folder of expert masks (or image+mask pairs)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pred", type=Path, help="folder of predicted masks, paired with --masks by file stem")
    src.add_argument("--images", nargs="+", help="images to segment with --model")
    add_model_args(p, required=False)
    add_inference_args(p)
    p.add_argument("--schema", choices=["wbc", "rbc"], help="label schema of --pred masks (default: guessed)")
    p.add_argument("--json", type=Path, help="write the full report here (JSON)")
    p.add_argument("--csv", type=Path, help="write the scores here as CSV: per image and class, then mean and sem rows")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..evaluation import (
        MOSTLY_UNLABELLED,
        build_report,
        format_table,
        images_in,
        mask_index,
        one_per_name,
        prediction_files,
    )
    from ..io import ImageReadError, MaskError, read_image, read_mask
    from ..io.images import file_problem
    from ..io.masks import predicted_by
    from ..metrics import label_counts, score_image
    from ..schemas import get_schema

    if args.json and args.json.suffix.lower() == ".csv":
        raise UsageError(f"--json {args.json}: a .csv name for a JSON report; for CSV use --csv {args.json}")
    if args.csv and args.csv.suffix.lower() == ".json":
        raise UsageError(f"--csv {args.csv}: a .json name for a CSV report; for JSON use --json {args.csv}")
    if args.json and args.csv and args.json.resolve() == args.csv.resolve():
        raise UsageError(f"--json and --csv name one file ({args.json}): give each its own")
    for flag, path, earlier in (("--json", args.json, _is_report), ("--csv", args.csv, _is_csv_report)):
        if path:
            _check_report_path(flag, path, earlier)
    try:
        masks = mask_index(args.masks)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    if not masks:
        raise UsageError(f"no masks found in {args.masks}")
    predictor = None
    clashes: list[str] = []
    if args.images:
        if args.model is None:  # an empty name is find_model's to explain
            raise UsageError("--images needs --model")
        from ..io.pairs import glob_advice, mask_named_with_its_image

        given = images_in(args.images)
        if found := mask_named_with_its_image(given):  # `--images d1/*`: each expert mask named beside its image
            raise UsageError(glob_advice(*found))
        # two files named 001 from two folders would both be scored against the one mask 001
        sources, clashes = one_per_name(given, "images of one name, one expert mask; none scored (evaluate them apart)")
        for problem in clashes:
            error(problem)
        model, card = load_model_or_fail(args.model)
        schema = card.label_schema
        if args.schema and args.schema != schema.name:  # before any work (--cell-size auto measures for seconds)
            raise UsageError(
                f"--schema {args.schema}: {args.model} segments {schema.name}, so its masks are read as {schema.name} "
                "(--schema chooses for --pred)"
            )
        predictor = make_predictor(args, model, card)
        scale = scale_from_args(args, predictor)
        if scale is None:
            scale = auto_scale(predictor, sources, lambda p: read_image(p, as_float=False))
    else:
        if not args.pred.is_dir():
            raise UsageError(f"{args.pred}: not a folder")
        ignored = _inference_options_given(args)
        if ignored:
            verb = "is" if len(ignored) == 1 else "are"
            print(f"bloodseg: warning: {', '.join(ignored)} {verb} for --images; ignored with --pred", file=sys.stderr)
        if args.model:
            print(f"bloodseg: --model {args.model} names the predictions in the report; nothing runs", file=sys.stderr)
        sources, clashes = prediction_files(args.pred)
        for problem in clashes:
            error(problem)
        schema = get_schema(args.schema) if args.schema else _guess_batch_schema(sources, masks)
    if not sources:
        raise UsageError("nothing left to score (see above)" if clashes else "no images or predictions found")

    from ..io.pairs import _key
    from ..schemas import IGNORE_INDEX

    names, scores, errors = [], [], list(clashes)
    sparse: list[str] = []  # masks mostly transparent: partial corrections, or a mask painted on a clear layer
    predicted_truth: list[str] = []  # "expert masks" that record being predictions (bloodseg:predicted-by)
    truth_classes: set[int] = set()
    t0 = time.perf_counter()
    for src in sources:
        name = Path(src).stem
        try:
            if predictor is not None and (problem := file_problem(Path(src))):  # before the mask: its error misleads
                raise ImageReadError(f"{src}: {problem}")
            truth_path = masks.get(_key(name))
            if truth_path is None:
                raise MaskError(f"{name}: no expert mask with this name in {args.masks}")
            if predictor is None and Path(src).resolve() == Path(truth_path).resolve():
                raise MaskError(f"{src}: this is the expert mask itself, not a prediction of it")
            if predictor is not None:
                image = read_image(src, as_float=False)
                truth, _ = read_mask(truth_path, schema, shape=image.shape[:2])
                pred = predictor.predict(image, scale=scale).labels
            else:
                pred, _ = read_mask(src, schema)
                truth, _ = read_mask(truth_path, schema, shape=pred.shape, shape_of=f"the prediction {src}")
            scores.append(score_image(pred, truth, schema))  # counted in chunks: a slide-sized pair fits
            names.append(name)
            counts = label_counts(truth)
            truth_classes |= set(np.flatnonzero(counts).tolist())
            unlabelled = float(counts[IGNORE_INDEX] / truth.size) if truth.size else 0.0
            if unlabelled >= MOSTLY_UNLABELLED:
                sparse.append(f"{name} ({unlabelled:.0%})")
            if model_of := predicted_by(truth_path):
                predicted_truth.append(f"{Path(truth_path).name} ({model_of})")
        except (ImageReadError, MaskError, ValueError) as exc:
            error(str(exc))
            errors.append(str(exc))
    seconds = time.perf_counter() - t0
    if sparse:
        more = f" and {len(sparse) - 5} more" if len(sparse) > 5 else ""
        print(
            f"bloodseg: warning: {len(sparse)} expert mask{'s are' if len(sparse) > 1 else ' is'} mostly unlabelled "
            f"(transparent), scored on the labelled pixels only: {', '.join(sparse[:5])}{more}. A mask drawn on a "
            "transparent layer: flatten it onto black (background) before saving",
            file=sys.stderr,
        )
    if predicted_truth:  # a model scored against predictions measures agreement between models, not accuracy
        n = len(predicted_truth)
        more = f" and {n - 5} more" if n > 5 else ""
        print(
            f"bloodseg: warning: {n} of the expert masks {'are' if n > 1 else 'is'} a prediction of bloodseg "
            f"(the file says so), not an expert's: {', '.join(predicted_truth[:5])}{more}. The scores measure "
            "agreement with that model",
            file=sys.stderr,
        )
    if args.pred:  # an expert mask without a prediction is a gap in the batch: said, not silently left out
        predicted = {_key(Path(src).stem) for src in sources}
        unscored = sorted(Path(m).name for k, m in masks.items() if k not in predicted)
        if unscored:
            more = f" and {len(unscored) - 5} more" if len(unscored) > 5 else ""
            print(
                f"bloodseg: warning: {len(unscored)} expert mask{'s' if len(unscored) > 1 else ''} without a "
                f"prediction in {args.pred}, not scored: {', '.join(unscored[:5])}{more}",
                file=sys.stderr,
            )
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
    if schema.name == "wbc" and truth_classes == {0, 2}:
        print(
            "bloodseg: warning: no expert mask has a cytoplasm (grey 128) pixel, only nucleus (255): if these are "
            "RBC masks (0/255), score them with an RBC model or --schema rbc",
            file=sys.stderr,
        )
    if scores:  # a run that scored nothing leaves an earlier report where it is
        from ..evaluation import report_csv, report_json

        for flag, path, text in (
            ("--json", args.json, report_json(report) + "\n"),
            ("--csv", args.csv, report_csv(report)),
        ):
            if path:
                _write_report(flag, path, text)
    if not scores:
        raise UsageError("no image could be evaluated")
    return 2 if errors else 0


def _check_report_path(flag: str, path: Path, is_earlier: Callable[[Path], bool]) -> None:
    """Refuse before any work: a folder, a place that cannot be written, or a file that is not an earlier report."""
    from ..io.atomic import check_can_write_in

    try:
        if path.is_dir():
            suffix = ".csv" if flag == "--csv" else ".json"  # the advice must pass the suffix check of this flag
            raise IsADirectoryError(f"a folder: name the report file, e.g. {path / ('report' + suffix)}")
        check_can_write_in(path.parent)
    except OSError as exc:
        raise UsageError(f"{flag} {path}: {exc}") from None
    if path.exists() and not is_earlier(path):
        raise UsageError(f"{flag} {path}: exists and is not a bloodseg report (an image or mask?); name a new file")


def _write_report(flag: str, path: Path, text: str) -> None:
    from ..io.atomic import atomic_write

    replaced = path.exists()
    try:
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite=True)
    except OSError as exc:
        raise UsageError(f"{flag} {path}: {exc.strerror or exc}") from None
    print(f"bloodseg: report written to {path}{' (replaced the one there)' if replaced else ''}", file=sys.stderr)


def _is_csv_report(path: Path) -> bool:
    """An earlier ``--csv`` report (or the widget's export): its first line is our header."""
    from ..evaluation import CSV_HEADER

    try:
        with path.open(encoding="utf-8", newline="") as f:
            return f.readline(200).rstrip("\r\n") == ",".join(CSV_HEADER)
    except (OSError, UnicodeDecodeError):
        return False


def _is_report(path: Path) -> bool:
    """An earlier ``--json`` report (safe to replace), not an input or any other file."""
    try:
        if path.stat().st_size > 100_000_000:
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and {"per_class", "images", "schema"} <= data.keys()


def _inference_options_given(args: argparse.Namespace) -> list[str]:
    """The options that run a model, given with --pred (where nothing runs)."""
    defaults = _option_defaults()
    return [
        "--" + name.replace("_", "-")
        for name in ("device", "tile_size", "overlap", "batch_size", "tta", "edge_cells", "scale", "cell_size")
        if getattr(args, name, None) != defaults.get(name)
    ]


def _option_defaults() -> dict:
    """Defaults of the evaluate options, as the parser sets them."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_parser(sub)
    return {a.dest: a.default for a in sub.choices["evaluate"]._actions}


def _guess_batch_schema(sources: list, masks: dict) -> LabelSchema | None:
    """The schema of a batch of on-disk predictions and expert masks, from up to 8 of each: WBC when any of them
    reads as WBC (one mask may hold no cytoplasm, or nothing at all, and then read as an RBC mask); said on stderr,
    since it decides every score."""
    from ..io.masks import MaskError, read_mask
    from ..io.pairs import _key
    from ..schemas import RBC, WBC

    guesses = []
    for src in sources:  # the first 8 readable predictions with their masks (the main loop reports the rest)
        try:
            found = [read_mask(Path(src))[1]]
            mask = masks.get(_key(Path(src).stem))
            if mask is not None:
                found.append(read_mask(Path(mask))[1])
        except (OSError, MaskError):
            continue
        guesses += found
        if len(guesses) >= 16:
            break
    if not guesses:
        return None
    schema = WBC if WBC in guesses else RBC
    print(f"bloodseg: read the masks as {schema.name.upper()} (--schema to choose)", file=sys.stderr)
    return schema

"""Batch evaluation: pair predictions with expert masks, score each image, aggregate, and build the report
that the CLI writes as JSON and the widget shows as a table (one code path for both)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .io import strict_json
from .io.images import ARRAY_SUFFIXES, IMAGE_SUFFIXES, hidden, is_zarr, list_images
from .io.pairs import MASK_SUFFIXES, _key, find_pairs
from .metrics import aggregate, score_image
from .schemas import LabelSchema, get_schema

#: an expert mask with at least this share of unlabelled (transparent) pixels gets a warning: a mask painted on a
#: clear layer scores only what was painted (an everything-cytoplasm prediction would score cell Jaccard 1.0)
MOSTLY_UNLABELLED = 0.5


def build_report(
    names: list[str],
    image_scores: list[dict[str, Any]],
    schema: LabelSchema | str,
    *,
    model: str | None = None,
    seconds: float = 0.0,
    device: str = "none",
    errors: Iterable[str] = (),
) -> dict[str, Any]:
    """The evaluation report (``bloodseg evaluate --json`` shape): per-class mean ± SEM plus per-image scores."""
    sch = get_schema(schema)
    agg = aggregate(image_scores) if image_scores else {"per_class": {}, "pixel_accuracy": float("nan")}
    return {
        "model": model,
        "schema": sch.name,
        "n_images": len(image_scores),
        "seconds": float(seconds),
        "device": device,
        "per_class": agg["per_class"],
        "pixel_accuracy": agg["pixel_accuracy"],
        "pixel_accuracy_sem": agg.get("pixel_accuracy_sem", float("nan")),
        "images": [{"name": n, **s} for n, s in zip(names, image_scores, strict=True)],
        "errors": list(errors),
    }


def score_pairs(
    pairs: Iterable[tuple[str, np.ndarray, np.ndarray]], schema: LabelSchema | str
) -> tuple[list[str], list[dict[str, Any]]]:
    """Score ``(name, prediction, truth)`` label arrays."""
    names, scores = [], []
    for name, pred, truth in pairs:
        names.append(name)
        scores.append(score_image(pred, truth, schema))
    return names, scores


def format_table(report: dict[str, Any]) -> str:
    """Plain-text table: per class Jaccard and Dice (mean ± SEM) and the class-vs-rest pixel accuracy."""
    n = report["n_images"]
    lines = [
        f"{n} image{'' if n == 1 else 's'}, schema {report['schema']}, model {report['model'] or '-'}, "
        f"device {report['device']}, {report['seconds']:.1f} s",
        f"{'class':<10} {'Jaccard (IoU)':>17} {'Dice':>17} {'pixel acc.':>17}",
    ]
    for name, s in report["per_class"].items():
        # the SEM of one image is undefined (NaN): shown as a dash, not as a perfect ± 0.0000
        cells = [
            f"{s[k]:.4f} ± " + (f"{s[k + '_sem']:.4f}" if math.isfinite(s[k + "_sem"]) else "   -  ")
            for k in ("jaccard", "dice", "pixel_accuracy")
        ]
        lines.append(f"{name:<10} {cells[0]:>17} {cells[1]:>17} {cells[2]:>17}")
    lines.append(f"overall pixel accuracy {report['pixel_accuracy']:.4f}")
    return "\n".join(lines)


def images_in(paths: Iterable[str | Path]) -> list[Path]:
    """Images named by files/folders; in a folder holding image+mask pairs (Dataset 1 layout) only the images,
    in another folder its images, ``.npy`` arrays and zarr stores too (a zarr store is one image; an array named
    as an image beside it is that image's data).

    A file named twice (``d1 d1/001.bmp``, overlapping globs, a relative and an absolute path) is listed once:
    twice, it counted twice in the mean and its second output clashed with its first."""
    out: list[Path] = []
    seen: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir() and not is_zarr(p):  # a zarr store is one image
            pairs = find_pairs(p)
            if any(m is not None for _, m in pairs):
                found = [img for img, _ in pairs]
            else:
                found = list_images([p])
                stems = {f.stem for f in found}  # 001.npy beside 001.bmp is that image's data, not another image
                found += sorted(
                    q
                    for q in p.iterdir()
                    if q.suffix.lower() in ARRAY_SUFFIXES
                    and not hidden(q)
                    and q.stem not in stems
                    and (q.is_file() or is_zarr(q))
                )
        else:
            found = [p]
        for f in found:
            real = f.resolve()
            if real not in seen:
                seen.add(real)
                out.append(f)
    return out


def report_json(report: dict[str, Any]) -> str:
    """The report as strict JSON (``JSON.parse`` and ``jq`` refuse ``NaN``): a value that is not a number is null."""
    return strict_json.dumps(report, indent=2)


CSV_HEADER = ("image", "class", "jaccard", "dice", "pixel_accuracy", "model")


def report_csv(reports: dict[str, Any] | list[dict[str, Any]]) -> str:
    """CSV text (``bloodseg evaluate --csv``, the Evaluate widget's export): one row per image and class, then
    ``mean`` and ``sem`` rows per class, one block per model; an undefined value (the SEM of one image) is empty."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for report in [reports] if isinstance(reports, dict) else reports:
        model = report.get("model") or ""
        for img in report["images"]:
            for cls, s in img["per_class"].items():
                w.writerow([img["name"], cls, repr(s["jaccard"]), repr(s["dice"]), repr(s["pixel_accuracy"]), model])
        for row, suffix in (("mean", ""), ("sem", "_sem")):
            for cls, s in report["per_class"].items():
                values = (s[k + suffix] for k in ("jaccard", "dice", "pixel_accuracy"))
                w.writerow([row, cls, *(repr(v) if math.isfinite(v) else "" for v in values), model])
    return buf.getvalue()


def prediction_files(folder: str | Path) -> tuple[list[Path], list[str]]:
    """Every mask file of a folder of predictions (not read as image + mask pairs: ``slide.png`` beside
    ``slide.tif`` are two predictions) and, for stems that more than one file shares, one problem each."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    suffixes = MASK_SUFFIXES + IMAGE_SUFFIXES
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in suffixes and not hidden(p)]
    return one_per_name(files, "predictions of one image name, none scored (keep one)", str_of=lambda p: p.name)


def one_per_name(paths: list[Path], why: str, *, str_of: Callable[[Path], str] = str) -> tuple[list[Path], list[str]]:
    """The files whose image name (stem, case and mask tags aside) no other file shares, in order, and one
    problem per shared name (``"a, b: <why>"``): two files of one name would be scored against one mask."""
    groups: dict[str, list[Path]] = {}
    for p in paths:
        groups.setdefault(_key(p.stem), []).append(p)
    keep = [p for p in paths if len(groups[_key(p.stem)]) == 1]
    clashes = [f"{', '.join(map(str_of, g))}: {why}" for g in groups.values() if len(g) > 1]
    return keep, clashes


def mask_index(folder: str | Path) -> dict[str, Path]:
    """Masks in ``folder`` keyed by the image stem they belong to: the masks of its image + mask pairs (a dataset
    folder), and every other file on its own (a folder of masks). An image among the masks (``001.bmp`` beside
    ``001.png``) used to make the folder a dataset whose only mask was 001's, and the others were reported missing;
    a file that is not a mask is now named by the mask reader instead."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    pairs = find_pairs(folder)
    index = {_key(img.stem): m for img, m in pairs if m is not None}
    used = {f for pair in pairs if pair[1] is not None for f in pair}
    if used:  # a dataset folder: its unpaired BMP/JPEG/TIFF are images still to annotate, not masks
        used |= {img for img, mask in pairs if mask is None and img.suffix.lower() != ".png"}
    suffixes = MASK_SUFFIXES + IMAGE_SUFFIXES
    for p in sorted(folder.iterdir()):
        if p not in used and p.suffix.lower() in suffixes and not hidden(p):
            index.setdefault(_key(p.stem), p)
    return index

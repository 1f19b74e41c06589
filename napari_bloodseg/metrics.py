"""Per-class Jaccard (IoU) and Dice from a confusion matrix, per image and as mean ± SEM over images.

Conventions (MONAI-like, stated because published numbers differ on them):
- Scores are computed per image, then averaged over images (not pooled over all pixels).
- A class absent from both prediction and ground truth in an image scores 1.0 for that image (nothing to find,
  nothing wrongly found); absent in one but not the other scores 0.0.
- Pixels equal to ``IGNORE_INDEX`` in the ground truth are left out.
- ``pixel_accuracy`` per class is the binary accuracy of the class-vs-rest map, (TP + TN) / N: this is what the
  published WBC "Jaccard" values of 0.95–0.99 actually measured. The top-level ``pixel_accuracy`` is the usual
  multi-class fraction of correct pixels.
- SEM is the sample standard deviation (ddof=1) over images divided by sqrt(n); undefined (NaN) for a single
  image, so that no report shows one image as a perfect ± 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .schemas import IGNORE_INDEX, LabelSchema, get_schema

SCORE_KEYS = ("jaccard", "dice", "pixel_accuracy")


#: pixels counted at a time: the int64 codes of a whole slide-sized pair took ~27 bytes a pixel (3.2 GB for 120 MP)
COUNT_CHUNK = 1 << 18


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """``cm[t, p]`` = number of pixels with true class t predicted as p. Pixels unlabelled (IGNORE_INDEX) in
    either are dropped: a mask may leave a region unassessed, and a prediction being corrected may have parts
    painted "unlabelled" (Correct widget) that nobody has judged yet. Counted :data:`COUNT_CHUNK` pixels at a
    time, so the memory it needs beyond the two arrays is a few MB whatever their size."""
    pred = np.asarray(pred)
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from mask shape {target.shape}")
    t_all, p_all = target.reshape(-1), pred.reshape(-1)  # views of contiguous arrays
    n2 = num_classes * num_classes
    cm = np.zeros(n2, np.int64)
    for start in range(0, t_all.size, COUNT_CHUNK):
        t, p = t_all[start : start + COUNT_CHUNK], p_all[start : start + COUNT_CHUNK]
        keep = (t != IGNORE_INDEX) & (p != IGNORE_INDEX)
        for what, a in (("mask", t), ("prediction", p)):
            outside = keep & ((a >= num_classes) | (a < 0))
            if outside.any():
                bad = np.unique(a[outside])[:5].tolist()
                raise ValueError(
                    f"the {what} has label values {bad}: classes are 0..{num_classes - 1} ({IGNORE_INDEX}: unlabelled)"
                )
        codes = t.astype(np.int64)
        codes *= num_classes
        codes += p.astype(np.int64, copy=False)  # uint64 or float labels do not add into int64 in place
        if not keep.all():
            codes[~keep] = n2  # an extra bin for the dropped pixels, cut off below
        cm += np.bincount(codes, minlength=n2 + 1)[:n2]
    return cm.reshape(num_classes, num_classes)


def label_counts(labels: np.ndarray) -> np.ndarray:
    """Pixels per value (0..255, IGNORE_INDEX included) of a uint8 label array, :data:`COUNT_CHUNK` at a time:
    which classes a mask holds and how much of it is unlabelled, without a sorted or boolean copy of a slide."""
    flat = np.asarray(labels, dtype=np.uint8).reshape(-1)
    counts = np.zeros(256, np.int64)
    for start in range(0, flat.size, COUNT_CHUNK):
        counts += np.bincount(flat[start : start + COUNT_CHUNK], minlength=256)
    return counts


def _binary_scores(tp: float, fp: float, fn: float, tn: float) -> dict[str, float]:
    union = tp + fp + fn
    n = tp + fp + fn + tn
    if union == 0:
        jac = dice = 1.0
    else:
        jac = tp / union
        dice = 2 * tp / (2 * tp + fp + fn)
    return {"jaccard": float(jac), "dice": float(dice), "pixel_accuracy": float((tp + tn) / n) if n else 1.0}


def scores_from_confusion(cm: np.ndarray, schema: LabelSchema | str) -> dict[str, Any]:
    """Scores for each reported class (schema.foreground, composites included) and overall pixel accuracy."""
    sch = get_schema(schema)
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    per_class: dict[str, dict[str, float]] = {}
    for name, members in sch.foreground.items():
        m = list(members)
        tp = cm[np.ix_(m, m)].sum()
        fn = cm[m, :].sum() - tp
        fp = cm[:, m].sum() - tp
        per_class[name] = _binary_scores(tp, fp, fn, total - tp - fp - fn)
    acc = float(np.trace(cm) / total) if total else 1.0
    return {"per_class": per_class, "pixel_accuracy": acc}


def score_image(
    pred: np.ndarray, target: np.ndarray, schema: LabelSchema | str, *, rows: int | None = None
) -> dict[str, Any]:
    """Scores of one image. With ``rows``, both arrays are read that many rows at a time (memmap, zarr, dask:
    a slide-sized pair is scored in bounded memory); the counts, and so the scores, are the same."""
    sch = get_schema(schema)
    if rows is None:
        cm = confusion_matrix(pred, target, sch.num_classes)
    else:
        if tuple(pred.shape) != tuple(target.shape):
            raise ValueError(f"prediction shape {tuple(pred.shape)} differs from mask shape {tuple(target.shape)}")
        cm = np.zeros((sch.num_classes, sch.num_classes), np.int64)
        for r in range(0, pred.shape[0], rows):
            cm += confusion_matrix(np.asarray(pred[r : r + rows]), np.asarray(target[r : r + rows]), sch.num_classes)
    if not cm.sum() and np.asarray(target).size:  # all unlabelled: "perfect" scores would mean nothing
        raise ValueError("no pixel is labelled in both the mask and the prediction: nothing to score")
    return scores_from_confusion(cm, sch)


def mean_sem(values: Sequence[float]) -> tuple[float, float]:
    """Mean and SEM; the SEM of one value is NaN (the spread of one image is unknown, not zero)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    sem = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")
    return float(v.mean()), sem


def aggregate(image_scores: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± SEM over images of the per-class scores produced by :func:`score_image`."""
    if not image_scores:
        raise ValueError("no images to aggregate")
    per_class: dict[str, dict[str, float]] = {}
    for name in image_scores[0]["per_class"]:
        entry: dict[str, float] = {}
        for key in SCORE_KEYS:
            mean, sem = mean_sem([s["per_class"][name][key] for s in image_scores])
            entry[key] = mean
            entry[f"{key}_sem"] = sem
        per_class[name] = entry
    acc, acc_sem = mean_sem([s["pixel_accuracy"] for s in image_scores])
    return {"per_class": per_class, "pixel_accuracy": acc, "pixel_accuracy_sem": acc_sem, "n_images": len(image_scores)}

"""Where an RBC model's error lies on its validation or test fields, as users get it (auto TTA, edge-cell rule):
error pixels split into boundary pixels of cells both label, whole cells the mask leaves unlabelled (interior or
touching the field edge) and cells the model misses; then IoU after eroding or dilating every predicted cell by
1-2 px (does a uniform outline offset explain the false positives?). For the record: choose nothing on test.

    .venv/bin/python benchmarks/rbc_error_sources.py [--data ../shared/data/rbc] [--model rbc-deconvnet] [--part test]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KINDS = ("boundary FP", "unlabelled cell FP, interior", "unlabelled cell FP, edge", "boundary FN", "missed cell FN")
#: a predicted cell overlapping the mask by less than this is "unlabelled"; a mask cell covered less, "missed"
WHOLE = 0.1
OFFSETS = (-2, -1, 0, 1, 2)


def error_split(pred: np.ndarray, gt: np.ndarray) -> dict[str, int]:
    """Error pixels of one field by kind (see KINDS); plus true positives as "TP"."""
    from scipy import ndimage as ndi

    comps, n = ndi.label(pred)
    edge = np.zeros(n + 1, bool)
    for side in (comps[0], comps[-1], comps[:, 0], comps[:, -1]):
        edge[np.unique(side)] = True
    unlabelled = np.asarray(ndi.mean(gt, comps, index=np.arange(n + 1))) < WHOLE
    unlabelled[0] = False
    fp, fn = pred & ~gt, gt & ~pred
    out = {"TP": int((pred & gt).sum())}
    out[KINDS[1]] = int((fp & (unlabelled & ~edge)[comps]).sum())
    out[KINDS[2]] = int((fp & (unlabelled & edge)[comps]).sum())
    out[KINDS[0]] = int(fp.sum()) - out[KINDS[1]] - out[KINDS[2]]
    gcomps, gn = ndi.label(gt)
    missed = np.asarray(ndi.mean(pred, gcomps, index=np.arange(gn + 1))) < WHOLE
    missed[0] = False
    out[KINDS[4]] = int((fn & missed[gcomps]).sum())
    out[KINDS[3]] = int(fn.sum()) - out[KINDS[4]]
    return out


def shifted_iou(pred: np.ndarray, gt: np.ndarray, px: int) -> float:
    from scipy import ndimage as ndi

    if px:
        grow = ndi.binary_dilation if px > 0 else ndi.binary_erosion
        pred = grow(pred, iterations=abs(px))
    return float((pred & gt).sum() / max(int((pred | gt).sum()), 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/rbc"))
    ap.add_argument("--model", default="rbc-deconvnet")
    ap.add_argument("--part", choices=("val", "test"), default="val")
    args = ap.parse_args()
    from napari_bloodseg.inference import Predictor
    from napari_bloodseg.models import get_model
    from napari_bloodseg.training import load_samples

    model, card = get_model(args.model)
    ids = set(card.training[f"{args.part}_ids"])
    predictor = Predictor(model, card, device="cpu")
    total = dict.fromkeys(("TP", *KINDS), 0)
    ious = {px: [] for px in OFFSETS}
    print(f"{args.model} on its {len(ids)} {args.part} fields\n")
    print("| field | IoU |\n|---|---|")
    for s in load_samples(args.data, "rbc"):
        if s.name not in ids:
            continue
        gt, pred = s.labels > 0, predictor.predict(s.image).labels > 0
        for k, v in error_split(pred, gt).items():
            total[k] += v
        for px in OFFSETS:
            ious[px].append(shifted_iou(pred, gt, px))
        print(f"| {s.name[:8]} | {ious[0][-1]:.4f} |", flush=True)
    err = sum(total[k] for k in KINDS)
    fp = sum(total[k] for k in KINDS[:3])
    print(f"\nmean IoU {np.mean(ious[0]):.4f}; false positives : false negatives = {fp / (err - fp):.2f}\n")
    print("| error kind | share of error pixels |\n|---|---|")
    for k in KINDS:
        print(f"| {k} | {total[k] / err:.3f} |")
    print("\n| every predicted cell grown by | mean IoU |\n|---|---|")
    for px in OFFSETS:
        print(f"| {px:+d} px | {np.mean(ious[px]):.4f} |")


if __name__ == "__main__":
    main()

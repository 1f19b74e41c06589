"""Automatic cell size (``--cell-size auto``, the Segment widget's *Estimate*): how close, how fast, and what it
does to the segmentation, against the cell size the expert masks say.

Per image: the estimate against the mask's typical cell diameter (median equivalent diameter, as model cards
record it), and the seconds it takes. Per set: the batch estimate ``--cell-size auto`` makes (median of up to 8
images) and mean cell Dice (WBC) / IoU (RBC) at its scale, at the scale the docs use (Dataset 1 and RBC fields
1.0, Dataset 2 0.4) and at no scale at all (1.0). Dataset 2 dev and the RBC training fields served to tune the
search (its constants in ``napari_bloodseg/inference/cell_size.py``); Dataset 1 and RBC test ids did not.
Sets: Dataset 1 test ids and Dataset 2 dev with ``wbc-unet``, RBC test fields with ``rbc-deconvnet`` (from
``--data``, skipped when absent), and the project's synthetic crops and fields at several magnifications
(always). Run from the repo root:

    .venv/bin/python benchmarks/cell_size.py [--data ../shared/data] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, setup_process  # noqa: E402

from napari_bloodseg.data import synthetic_rbc, synthetic_wbc  # noqa: E402
from napari_bloodseg.inference import Predictor  # noqa: E402
from napari_bloodseg.inference.cell_size import estimate_batch_cell_size, estimate_cell_size  # noqa: E402
from napari_bloodseg.metrics import score_image  # noqa: E402
from napari_bloodseg.models import get_model  # noqa: E402
from napari_bloodseg.training import load_samples  # noqa: E402
from napari_bloodseg.training.data import Sample, typical_cell_size  # noqa: E402


def cell_score(pred: np.ndarray, truth: np.ndarray, schema: str) -> float:
    s = score_image(pred, truth, schema)["per_class"]["cell"]
    return s["dice"] if schema == "wbc" else s["jaccard"]


def run_set(label: str, model_name: str, samples: list[Sample], ref_scale: float) -> str:
    model, card = get_model(model_name)
    predictor = Predictor(model, card, device="cpu")
    ratios, secs = [], []
    for s in samples:  # each image on its own: how close is one image's measure
        t0 = time.perf_counter()
        est = estimate_cell_size(predictor, s.image)
        secs.append(time.perf_counter() - t0)
        ratios.append(est.diameter_px / typical_cell_size([s]))
    batch = estimate_batch_cell_size(predictor, [s.image for s in samples])  # what --cell-size auto uses

    def score(scale: float) -> float:
        return float(
            np.mean(
                [cell_score(predictor.predict(s.image, scale=scale).labels, s.labels, card.schema) for s in samples]
            )
        )

    auto, ref = score(batch.scale), score(ref_scale)
    none = ref if ref_scale == 1.0 else score(1.0)
    r = np.array(ratios)
    worst = r[np.argmax(np.abs(np.log(r)))]
    metric = "Dice" if card.schema == "wbc" else "IoU"
    print(f"{label}: {len(samples)} images, {np.sum(secs):.1f} s", file=sys.stderr)
    return (
        f"| {label} | {model_name} | {len(samples)} | {typical_cell_size(samples):.0f} | {np.median(r):.3f} | "
        f"{worst:.3f} | {np.mean(secs):.2f} | {batch.diameter_px:.0f} px, scale {batch.scale:.2f} | "
        f"{metric} {auto:.4f} | {ref:.4f} (scale {ref_scale:.2f}) | {none:.4f} |"
    )


def synthetic_sets(quick: bool) -> list[tuple[str, str, list[Sample], float]]:
    seeds = range(2 if quick else 5)
    out = []
    for size in (120, 240, 360):  # the cell grows with the crop: 1x, 2x, 3x a Dataset 1 cell
        samples = [Sample(f"wbc{size}-{k}", *synthetic_wbc(size=size, seed=k)) for k in seeds]
        out.append((f"synthetic WBC crops, {size} px", "wbc-unet", samples, 120 / size))
    for h, w in ((600, 800), (1200, 1600)):  # cells ~60 px and ~100 px
        samples = [Sample(f"rbc{h}-{k}", *synthetic_rbc(size=(h, w), seed=k)) for k in seeds[:2]]
        out.append((f"synthetic RBC fields, {h}x{w}", "rbc-deconvnet", samples, 1.0))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="synthetic sets only, fewer images")
    args = ap.parse_args()
    setup_process(args.threads)
    sets = []
    if not args.quick:
        _, wbc_card = get_model("wbc-unet")
        _, rbc_card = get_model("rbc-deconvnet")
        d1, d2, rbc = (args.data / p for p in ("wbc/dataset1", "wbc/dataset2-dev", "rbc"))
        if d1.is_dir():
            test = set(wbc_card.training["test_ids"])
            sets.append(("Dataset 1 test", "wbc-unet", [s for s in load_samples(d1, "wbc") if s.name in test], 1.0))
        if d2.is_dir():
            sets.append(("Dataset 2 dev (the search was tuned on it)", "wbc-unet", load_samples(d2, "wbc"), 0.4))
        if rbc.is_dir():
            test = set(rbc_card.training["test_ids"])
            fields = [s for s in load_samples(rbc, "rbc") if s.name in test]
            sets.append(("RBC test fields", "rbc-deconvnet", fields, 1.0))
    sets += synthetic_sets(args.quick)
    print(machine_line())
    print()
    print(
        "| images | model | n | mask cell diameter (px, median) | one image's estimate / its mask's, median "
        "| worst | s per image | batch estimate (`--cell-size auto`) | cell score at that scale "
        "| at the reference scale | at scale 1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, model_name, samples, ref in sets:
        print(run_set(label, model_name, samples, ref), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

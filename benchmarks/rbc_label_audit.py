"""How the RBC masks treat cells cut by the field edge, on the training + validation fields only (the card's test
fields are skipped, never looked at): per field, the predicted cells (>= 200 px) on the edge and inside that lie
in the mask (>50 % of their pixels) or outside it (<=10 %); then the share of edge cells labelled by how much of
a typical cell they show; then the mean IoU when cells showing less than a fraction are dropped
(`edge_cell_min_fraction` in the model card, :mod:`napari_bloodseg.inference.edge_cells`).

    .venv/bin/python benchmarks/rbc_label_audit.py [--data ../shared/data/rbc] [--model rbc-deconvnet]

Why: `rbc-deconvnet` stops near IoU 0.87 against these masks. Session 6 found the rule the masks follow: edge
cells that show under ~half a cell are left out. docs/benchmarks.md has the numbers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FRACTION_BINS = [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0), (1.0, np.inf)]
RULE_FRACTIONS = [0.35, 0.4, 0.45, 0.5, 0.55]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/rbc"))
    ap.add_argument("--model", default="rbc-deconvnet")
    ap.add_argument("--min-px", type=int, default=200)
    args = ap.parse_args()
    from scipy import ndimage as ndi

    from napari_bloodseg.inference import Predictor
    from napari_bloodseg.inference.edge_cells import DEFAULT_CELL_DIAMETER, drop_partial_edge_cells
    from napari_bloodseg.models import get_model
    from napari_bloodseg.training import load_samples

    model, card = get_model(args.model)
    predictor = Predictor(model, card, device="cpu", edge_cells="keep")  # the network's own output
    skip = set(card.training.get("test_ids", []))
    print("| field | size | edge cells in mask | edge cells not in mask | interior in | interior not in | IoU |")
    print("|---|---|---|---|---|---|---|")
    mixed, edge_cells, ious = 0, [], {f: [] for f in [None, *RULE_FRACTIONS]}
    for s in load_samples(args.data, "rbc"):
        if s.name in skip:
            continue
        gt, pred = s.labels > 0, predictor.predict(s.image).labels > 0
        comps, _ = ndi.label(pred)
        h, w = gt.shape
        counts = {"edge_in": 0, "edge_out": 0, "in": 0, "out": 0}
        field_edge, interior_areas = [], []
        for i, box in enumerate(ndi.find_objects(comps), 1):
            cell = comps[box] == i
            if cell.sum() < args.min_px:
                continue
            inside = gt[box][cell].mean()
            edge = box[0].start == 0 or box[1].start == 0 or box[0].stop == h or box[1].stop == w
            prefix = "edge_" if edge else ""
            counts[prefix + "in"] += inside > 0.5
            counts[prefix + "out"] += inside <= 0.1
            if edge:
                field_edge.append((int(cell.sum()), inside > 0.5))
            else:
                interior_areas.append(int(cell.sum()))
        typical = float(np.median(interior_areas)) if interior_areas else np.nan
        edge_cells += [(area / typical, labelled) for area, labelled in field_edge]
        mixed += counts["edge_in"] > 0 and counts["edge_out"] > 0
        for f in ious:
            kept = pred.copy()
            if f is not None:
                drop_partial_edge_cells(kept, card.cell_size_px or DEFAULT_CELL_DIAMETER, f)
            ious[f].append((gt & kept).sum() / max((gt | kept).sum(), 1))
        print(
            f"| {s.name[:8]} | {w}x{h} | {counts['edge_in']} | {counts['edge_out']} | {counts['in']} | "
            f"{counts['out']} | {ious[None][-1]:.3f} |"
        )
    print(f"fields with both labelled and unlabelled edge cells: {mixed}\n")
    print("| edge cell shows (of the field's median interior cell) | cells | labelled in the mask |")
    print("|---|---|---|")
    frac = np.array([f for f, _ in edge_cells])
    labelled = np.array([b for _, b in edge_cells], bool)
    for lo, hi in FRACTION_BINS:
        m = (frac >= lo) & (frac < hi)
        print(f"| {lo:g}–{hi:g} | {m.sum()} | {labelled[m].mean():.0%} |")
    print("\n| edge cells dropped below | mean IoU ± SEM |")
    print("|---|---|")
    for f, v in ious.items():
        sem = np.std(v, ddof=1) / np.sqrt(len(v))
        print(f"| {'none (keep all)' if f is None else f} | {np.mean(v):.4f} ± {sem:.4f} |")


if __name__ == "__main__":
    main()

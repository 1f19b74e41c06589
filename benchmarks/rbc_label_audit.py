"""How consistently the RBC masks label whole cells: per field, the predicted cells (>= 200 px) that touch the
field edge and lie inside the mask (>50 % of their pixels) or outside it (<=10 %), the same for interior cells,
and the field's IoU. Test fields of the model's card are skipped (never looked at).

    .venv/bin/python benchmarks/rbc_label_audit.py [--data ../shared/data/rbc] [--model rbc-deconvnet]

Why: `rbc-deconvnet` stops near IoU 0.87 against these masks; if edge cells were labelled by a fixed rule
(per field, per image size), a post-processing step could follow it. docs/benchmarks.md has the answer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/rbc"))
    ap.add_argument("--model", default="rbc-deconvnet")
    ap.add_argument("--min-px", type=int, default=200)
    args = ap.parse_args()
    from scipy import ndimage as ndi

    from napari_bloodseg.inference import Predictor
    from napari_bloodseg.models import get_model
    from napari_bloodseg.training import load_samples

    model, card = get_model(args.model)
    predictor = Predictor(model, card, device="cpu")
    skip = set(card.training.get("test_ids", []))
    print("| field | size | edge cells in mask | edge cells not in mask | interior in | interior not in | IoU |")
    print("|---|---|---|---|---|---|---|")
    mixed = 0
    for s in load_samples(args.data, "rbc"):
        if s.name in skip:
            continue
        gt, pred = s.labels > 0, predictor.predict(s.image).labels > 0
        comps, _ = ndi.label(pred)
        h, w = gt.shape
        counts = {"edge_in": 0, "edge_out": 0, "in": 0, "out": 0}
        for i, box in enumerate(ndi.find_objects(comps), 1):
            cell = comps[box] == i
            if cell.sum() < args.min_px:
                continue
            inside = gt[box][cell].mean()
            edge = box[0].start == 0 or box[1].start == 0 or box[0].stop == h or box[1].stop == w
            prefix = "edge_" if edge else ""
            counts[prefix + "in"] += inside > 0.5
            counts[prefix + "out"] += inside <= 0.1
        mixed += counts["edge_in"] > 0 and counts["edge_out"] > 0
        iou = (gt & pred).sum() / max((gt | pred).sum(), 1)
        print(
            f"| {s.name[:8]} | {w}x{h} | {counts['edge_in']} | {counts['edge_out']} | {counts['in']} | "
            f"{counts['out']} | {iou:.3f} |"
        )
    print(f"fields with both labelled and unlabelled edge cells: {mixed}")


if __name__ == "__main__":
    main()

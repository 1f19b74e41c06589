"""How close the synthetic RBC field (the napari "Synthetic RBC field" sample) is to the project's real red-cell
fields, and what ``rbc-deconvnet`` makes of it.

On real fields (``--data``; only ``rbc-deconvnet``'s training fields, never its validation or test ids; skipped when
absent) and on synthetic seeds, at full size: plasma colour, grain (sd of the image minus its gaussian blur at
2 px) and whole sd; per whole cell (not cut by the field edge) its colour by depth from the edge (0) to the centre
(1), the within-cell brightness sd (deeper than 6 px), the brightness across the mask's edge (the optics' blur, and
where the experts drew the line), diameter and short/long axis ratio; the share of the field covered by cells.
The ``_FIELD_*`` constants in ``napari_bloodseg/data/synthetic.py`` come from these figures. With ``--models``,
cell IoU of ``rbc-deconvnet`` (default settings) on synthetic fields at 1200x1600 (cells ~104 px, as real fields)
and 600x800 (~61 px, unscaled). Run from the repo root:

    .venv/bin/python benchmarks/synthetic_realism_rbc.py [--data ../shared/data] [--fields 20] [--seeds 3] [--models]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import setup_process  # noqa: E402

from napari_bloodseg.data import synthetic_rbc  # noqa: E402
from napari_bloodseg.io import read_image, read_mask  # noqa: E402

EDGE_PX = (-6, -3, -1, 1, 3, 6)  # signed distance from the mask's edge, negative inside
DEPTHS = 5


def field_stats(image: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    from scipy import ndimage as ndi

    img = image.astype(np.float32) / 255
    lum = img.mean(-1)
    grain = img - ndi.gaussian_filter(img, (2, 2, 0))
    cells = mask > 0
    away = ~ndi.binary_dilation(cells, iterations=6)
    plasma = away & (np.abs(img - np.median(img[away], 0)).max(-1) < 0.08)  # not white cells or debris
    labels, _ = ndi.label(cells)
    h, w = mask.shape
    depth, within, edge, diameter, ratio = [], [], [], [], []
    for i, box in enumerate(ndi.find_objects(labels), 1):
        if box is None or box[0].start == 0 or box[1].start == 0 or box[0].stop == h or box[1].stop == w:
            continue
        win = tuple(slice(max(s.start - 8, 0), s.stop + 8) for s in box)
        own = labels[win] == i
        if own.sum() < 500:
            continue
        d_in = ndi.distance_transform_edt(own)
        signed = np.where(own, 0.5 - d_in, ndi.distance_transform_edt(~own) - 0.5)
        free = ~((labels[win] > 0) & ~own)  # not a neighbouring cell
        sub, sub_lum = img[win], lum[win]
        bins = np.minimum((d_in[own] / d_in.max() * DEPTHS).astype(int), DEPTHS - 1)
        depth.append([sub[own][bins == b].mean(0) if (bins == b).any() else np.full(3, np.nan) for b in range(DEPTHS)])
        within.append(sub_lum[own & (d_in > 6)].std())
        edge.append([sub_lum[(np.abs(signed - t) < 0.5) & free].mean() for t in EDGE_PX])
        diameter.append(2 * np.sqrt(own.sum() / np.pi))
        ys, xs = np.nonzero(own)
        low, high = np.linalg.eigvalsh(np.cov(np.stack([ys, xs])))
        ratio.append(np.sqrt(low / high))
    inner = cells & (ndi.distance_transform_edt(cells) > 6)
    return {
        "plasma": img[plasma].mean(0),
        "plasma grain": grain[plasma].std(0),
        "plasma whole sd": img[plasma].std(0),
        "cell grain": grain[inner].std(0),
        "depth": np.nanmean(depth, 0),
        "within": np.array(within),
        "edge": np.nanmean(edge, 0),
        "diameter": np.array(diameter),
        "ratio": np.array(ratio),
        "coverage": np.array(cells.mean()),
    }


def summarise(title: str, fields: list[dict[str, np.ndarray]]) -> None:
    def mean(key: str) -> np.ndarray:
        return np.mean([f[key] for f in fields], 0).round(3)

    def pooled(key: str) -> np.ndarray:
        return np.concatenate([np.atleast_1d(f[key]) for f in fields])

    print(f"{title} ({len(fields)} fields, {len(pooled('diameter'))} whole cells; RGB in [0, 1])")
    print(f"  plasma      mean {mean('plasma')}  grain sd {mean('plasma grain')}  whole sd {mean('plasma whole sd')}")
    print(
        f"  cells       grain sd {mean('cell grain')}  "
        f"brightness sd within a cell, median {np.median(pooled('within')):.3f}"
    )
    for b, colour in enumerate(mean("depth")):
        print(f"  cell colour at depth {b / DEPTHS:.1f}-{(b + 1) / DEPTHS:.1f} (edge to centre) {colour}")
    print(
        "  brightness across the mask edge, "
        + ", ".join(f"{t:+d} px {v:.3f}" for t, v in zip(EDGE_PX, mean("edge"), strict=True))
    )
    print(
        f"  diameter median {np.median(pooled('diameter')):.1f} px, short/long axis {np.median(pooled('ratio')):.3f}, "
        f"cells cover {np.mean(pooled('coverage')):.3f} of the field"
    )


def training_fields(folder: Path) -> list[Path]:
    """rbc-deconvnet's training fields: every field that its card does not list for validation or test."""
    from napari_bloodseg.models.files import read_card
    from napari_bloodseg.models.zoo import SHIPPED_DIR

    training = read_card(SHIPPED_DIR / "rbc-deconvnet").training
    held = set(training["val_ids"]) | set(training["test_ids"])
    return [p for p in sorted(folder.glob("*.jpg")) if p.stem not in held and p.with_suffix(".png").exists()]


def score_model(seeds: int) -> None:
    from napari_bloodseg.inference import Predictor
    from napari_bloodseg.metrics import score_image
    from napari_bloodseg.models import get_model

    model, card = get_model("rbc-deconvnet")
    predictor = Predictor(model, card, device="cpu")
    for size in ((1200, 1600), (600, 800)):
        iou = []
        for seed in range(seeds):
            image, mask = synthetic_rbc(size, seed=seed)
            iou.append(score_image(predictor.predict(image).labels, mask, "rbc")["per_class"]["cell"]["jaccard"])
        print(
            f"rbc-deconvnet v{card.version} on synthetic {size[0]}x{size[1]}: cell IoU mean {np.mean(iou):.3f} "
            f"(min {np.min(iou):.3f}), seeds 0-{seeds - 1}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--fields", type=int, default=20, help="how many training fields to measure")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--models", action="store_true", help="also score rbc-deconvnet on 6 synthetic seeds")
    args = parser.parse_args()
    setup_process(2)
    folder = args.data / "rbc"
    if folder.is_dir():
        paths = training_fields(folder)[: args.fields]
        real = [field_stats(read_image(p, as_float=False), read_mask(p.with_suffix(".png"), "rbc")[0]) for p in paths]
        summarise("real RBC training fields", real)
    else:
        print(f"{folder} absent: synthetic figures only")
    summarise(
        "synthetic_rbc(1200x1600)", [field_stats(*synthetic_rbc((1200, 1600), seed=s)) for s in range(args.seeds)]
    )
    if args.models:
        score_model(6)


if __name__ == "__main__":
    main()

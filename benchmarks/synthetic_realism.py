"""How close the synthetic WBC crop (the napari sample, ``make napari``'s demo) is to a real Dataset 2 cell, and what
the shipped WBC models make of it.

Per class (plasma, red cell, cytoplasm, nucleus): interior mean RGB, grain (per-channel sd of the image minus its
gaussian blur at sigma 2 px) and the interior's whole sd, on the Dataset 2 dev crops reduced 2x (their cells are
~163 px across, the synthetic crop's ~80 px: the scale a model sees both at; ``--data``, skipped when absent) and
on synthetic seeds. Two figures, fine grain and whole sd, because one alone can be met by grain of the wrong
size. Red cells in Dataset 2 are unlabelled: taken as background pixels with green below the plasma's by 0.10.
The constants in ``napari_bloodseg/data/synthetic.py`` are these Dataset 2 figures. With ``--models``, cell and
nucleus Dice of each shipped WBC model on the synthetic seeds (unscaled, default TTA). Run from the repo root:

    .venv/bin/python benchmarks/synthetic_realism.py [--data ../shared/data] [--seeds 12] [--models]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import setup_process  # noqa: E402

from napari_bloodseg.data import synthetic_wbc  # noqa: E402
from napari_bloodseg.io import find_pairs, read_image, read_mask  # noqa: E402

CLASSES = ("plasma", "rbc", "cyto", "nucleus")


def class_stats(image: np.ndarray, labels: np.ndarray, sigma: float = 2.0) -> dict[str, tuple[np.ndarray, ...]]:
    """Interior mean RGB, grain sd and whole sd per class of one crop (regions eroded 3 px, off blurred edges)."""
    from scipy import ndimage as ndi

    img = image[..., :3].astype(np.float32) / 255
    grain = img - ndi.gaussian_filter(img, (sigma, sigma, 0))
    background = labels == 0
    plasma_colour = np.median(img[background], 0)
    rbc = ndi.binary_opening(background & (img[..., 1] < plasma_colour[1] - 0.10), iterations=2)
    regions = {
        "plasma": background & ~ndi.binary_dilation(rbc, iterations=3),
        "rbc": ndi.binary_erosion(rbc, iterations=3),
        "cyto": ndi.binary_erosion(labels == 1, iterations=3),
        "nucleus": ndi.binary_erosion(labels == 2, iterations=3),
    }
    return {k: (img[r].mean(0), grain[r].std(0), img[r].std(0)) for k, r in regions.items() if r.sum() > 50}


def reduce_2x(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half size by 2x2 box averaging (PIL ``reduce``), labels by taking every other pixel."""
    from PIL import Image

    small = np.asarray(Image.fromarray(image).reduce(2))
    return small, labels[::2, ::2][: small.shape[0], : small.shape[1]]


def summarise(title: str, crops: list[tuple[np.ndarray, np.ndarray]]) -> None:
    per_class: dict[str, list] = {k: [] for k in CLASSES}
    for image, labels in crops:
        for k, v in class_stats(image, labels).items():
            per_class[k].append(v)
    print(f"{title} ({len(crops)} crops; RGB in [0, 1])")
    for k, rows in per_class.items():
        if rows:
            mean, grain, whole = (np.mean([r[i] for r in rows], 0).round(3) for i in range(3))
            print(f"  {k:8s} mean {mean}  grain sd {grain}  whole sd {whole}  ({len(rows)} crops)")


def score_models(seeds: int) -> None:
    from napari_bloodseg.inference import Predictor
    from napari_bloodseg.metrics import score_image
    from napari_bloodseg.models import get_model

    crops = [synthetic_wbc(120, seed) for seed in range(seeds)]
    for name in ("wbc-unet", "wbc-segnet", "wbc-deconvnet"):
        model, card = get_model(name)
        predictor = Predictor(model, card, device="cpu")
        cell, nucleus = [], []
        for image, mask in crops:
            scores = score_image(predictor.predict(image).labels, mask, "wbc")["per_class"]
            cell.append(scores["cell"]["dice"])
            nucleus.append(scores["nucleus"]["dice"])
        print(
            f"{name} v{card.version}: cell Dice mean {np.mean(cell):.3f} (min {np.min(cell):.3f}), "
            f"nucleus {np.mean(nucleus):.3f} (min {np.min(nucleus):.3f}); per seed cell "
            + " ".join(f"{c:.2f}" for c in cell)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--models", action="store_true", help="also score the shipped WBC models on the seeds")
    args = parser.parse_args()
    setup_process(2)
    dev = args.data / "wbc" / "dataset2-dev"
    if dev.is_dir():
        crops = [reduce_2x(read_image(i, as_float=False), read_mask(m, "wbc")[0]) for i, m in find_pairs(dev) if m]
        summarise("Dataset 2 dev, reduced 2x", crops)
    else:
        print(f"{dev} absent: synthetic figures only")
    summarise("synthetic_wbc(120)", [synthetic_wbc(120, seed) for seed in range(args.seeds)])
    if args.models:
        score_models(args.seeds)


if __name__ == "__main__":
    main()

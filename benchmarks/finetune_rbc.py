"""The RBC half of the fine-tuning experiment: a new kind of smear, 5 corrected fields, IoU on the rest.

By default the new kind is made from held-out fields: the `rbc-deconvnet` test fields (never trained on) are
re-stained (colour channels rotated: bluish-grey becomes pink-violet) and imaged at 0.8x magnification. Five of
them are the user's corrected fields (4 to train, 1 for selection), the other six are scored before and after
fine-tuning with the library's default settings.

    .venv/bin/python benchmarks/finetune_rbc.py [--data ../shared/data] [--base rbc-deconvnet]

``--real`` uses a real new kind instead: 7 of the 90 fields come from another camera (1944x1383, darker and
greyer than the 83 fields of 1600x1200). A base trained on the 83 only (its card's data folder holds none of the
7) is fine-tuned on 5 of the 7 and scored on the other 2 (``--seed`` picks them). ``--link-base-fields DIR``
makes that base's data folder (links to the 83 fields) and prints the command that trains it.

``--fields val`` runs the same on the model's validation fields instead (5 tune, 4 scored), to compare settings
(``--lr``, ``--freeze``) without looking at the test fields. ``--harder`` makes a shift the base does not handle
(0.6x, defocused, washed out as well as re-stained).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def new_kind_of_smear(sample, magnification: float = 0.8, harder: bool = False):
    """Another stain (channels rotated) at another magnification: a shift the base model never saw. ``harder``
    adds what a worse microscope or a thick smear does: 0.6x instead, defocus (Gaussian blur, sigma 1.5 px) and
    a washed-out, low-contrast stain."""
    from scipy import ndimage as ndi

    from napari_bloodseg.training.data import Sample, rescale_sample

    s = rescale_sample(sample, 0.6 if harder else magnification)
    image = s.image[..., [2, 0, 1]]
    if harder:
        image = ndi.gaussian_filter(image.astype(np.float32), sigma=(1.5, 1.5, 0))
        image = np.clip(0.55 * image + 0.45 * 235, 0, 255).round().astype(np.uint8)
    return Sample(s.name, np.ascontiguousarray(image), s.labels)


#: the camera of 83 of the 90 fields; the other 7 (1944x1383) are the real new kind of ``--real``
BASE_CAMERA_SIZE = (1600, 1200)


def link_base_fields(rbc: Path, folder: Path) -> int:
    """A data folder of links to the fields of the base camera, and the command that trains ``--real``'s base."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for image in sorted(rbc.glob("*.jpg")):
        with Image.open(image) as im:
            if im.size != BASE_CAMERA_SIZE:
                continue
        for f in (image, image.with_suffix(".png")):
            if not (folder / f.name).exists():
                (folder / f.name).symlink_to(f.resolve())
        n += 1
    print(f"linked {n} fields of {BASE_CAMERA_SIZE[0]}x{BASE_CAMERA_SIZE[1]} into {folder}; train the base with:")
    print(
        f"bloodseg train --model deconvnet --data {folder} --schema rbc --val-fraction 0.1 --test-fraction 0.12 "
        "--seed 0 --input-scale 0.5 --width 10 --epochs 48 --steps-per-epoch 16 --batch-size 8 --patch-size 192 "
        "--colour-jitter 1.0 --scale-jitter 0.8 1.25 --val-every 8 --max-minutes 30 --edge-cell-min-fraction 0.45 "
        "--tta-max-pixels 1000000 --compile --name rbc1600-deconvnet --out rbc1600-deconvnet"
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--base", default="rbc-deconvnet")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", default="auto", help="fine-tuning scale: auto (from cell sizes) or a factor")
    ap.add_argument("--fields", choices=("test", "val"), default="test", help="which held-out fields to re-stain")
    ap.add_argument("--harder", action="store_true", help="0.6x, defocused and washed out as well as re-stained")
    ap.add_argument("--lr", type=float, default=None, help="fine-tuning learning rate (default: the library's)")
    ap.add_argument("--freeze", choices=("none", "encoder"), default=None, help="default: the library's")
    ap.add_argument("--real", action="store_true", help="the new kind: the fields the base's data folder lacks")
    ap.add_argument("--link-base-fields", type=Path, help="link the 1600x1200 fields into this folder and stop")
    args = ap.parse_args()
    if args.link_base_fields:
        return link_base_fields(args.data / "rbc", args.link_base_fields)
    os.environ["BLOODSEG_MODEL_DIR"] = tempfile.mkdtemp(prefix="bloodseg-ft-")

    from napari_bloodseg.evaluation import build_report
    from napari_bloodseg.inference import Predictor
    from napari_bloodseg.metrics import score_image
    from napari_bloodseg.models import get_model
    from napari_bloodseg.training import load_samples, split_names
    from napari_bloodseg.training.finetune import finetune, finetune_config

    _, base_card = get_model(args.base)
    if args.real:
        seen = {p.stem for p in Path(base_card.training.get("data") or ".").glob("*.png")}
        fields = [s for s in load_samples(args.data / "rbc", "rbc") if s.name not in seen]
        described = "other-camera"
    else:
        held_out = set(base_card.training.get(f"{args.fields}_ids") or [])
        fields = [
            new_kind_of_smear(s, harder=args.harder)
            for s in load_samples(args.data / "rbc", "rbc")
            if s.name in held_out
        ]
        described = args.fields
    if len(fields) < 7:
        print(f"need at least 7 {described} fields (none the base trained on), found {len(fields)}", file=sys.stderr)
        return 1
    tune_ids, _ = split_names([s.name for s in fields], (5 / len(fields),), seed=args.seed)
    tune = [s for s in fields if s.name in set(tune_ids)]
    rest = [s for s in fields if s.name not in set(tune_ids)]

    def evaluate(name: str, scale: float = 1.0) -> dict:
        model, card = get_model(name)
        p = Predictor(model, card, device="cpu")
        scores = [score_image(p.predict(s.image, scale=scale).labels, s.labels, "rbc") for s in rest]
        return build_report([s.name for s in rest], scores, "rbc", model=name)

    before = evaluate(args.base)
    t0 = time.perf_counter()
    res = finetune(
        args.base,
        tune[:4],
        tune[4:],
        cfg=finetune_config(
            seed=args.seed,
            device="cpu",
            **({"lr": args.lr} if args.lr else {}),
            **({"freeze": args.freeze} if args.freeze else {}),
        ),
        name="rbc-ft",
        data_source=f"{'' if args.real else 're-stained '}RBC {described} fields (5)",
        scale=args.scale if args.scale == "auto" else float(args.scale),
    )
    seconds = time.perf_counter() - t0
    after = evaluate("rbc-ft")
    rescaled = evaluate(args.base, scale=res.card.input_scale / (base_card.input_scale or 1.0))
    kind = "re-stained, 0.6x, defocused, washed-out" if args.harder else "re-stained 0.8x"
    if args.real:
        kind = "real, 1944x1383"
    print(f"fine-tuned on {len(tune)} {kind} {described} fields; scored on {len(rest)} others")
    print("tuned:", " ".join(s.name[:8] for s in tune), "| scored:", " ".join(s.name[:8] for s in rest))
    print("| model | cell IoU | cell Dice |")
    print("|---|---|---|")
    for label, rep in [
        (f"{args.base}, as is", before),
        (f"{args.base}, rescaled by the automatic factor", rescaled),
        ("fine-tuned", after),
    ]:
        c = rep["per_class"]["cell"]
        print(f"| {label} | {c['jaccard']:.4f} ± {c['jaccard_sem']:.4f} | {c['dice']:.4f} ± {c['dice_sem']:.4f} |")
    if res.before and res.after:  # what the user sees: the one selection field, before and after
        b, a = res.before["per_class"]["cell"], res.after["per_class"]["cell"]
        print(f"selection field (the fine-tune's own validation) cell IoU: {b['jaccard']:.4f} -> {a['jaccard']:.4f}")
    if res.base_before:
        b, a = res.base_before["per_class"]["cell"], res.base_after["per_class"]["cell"]
        print(f"base-domain validation cell Dice (guard): {b['dice']:.4f} -> {a['dice']:.4f}")
    print(f"fine-tuning wall time: {seconds:.1f} s (CPU {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Accuracy of the shipped models, in the form of the published tables, on data never used for training.

- WBC Dataset 1: the test ids each model card records (held out of training and of checkpoint selection).
- WBC Dataset 2 (dev part): zero-shot, cells rescaled to the training size with --d2-scale (default 0.4).
- RBC: the test ids of the RBC model card, whole fields, tiled.
Per class: Jaccard (IoU) and Dice mean ± SEM over images, and class-vs-rest pixel accuracy (what the papers
called "Jaccard"). Prints a Markdown table; run from the repo root:

    .venv/bin/python benchmarks/accuracy.py [--data ../shared/data] [--tta auto|on|off] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from napari_bloodseg.evaluation import build_report  # noqa: E402
from napari_bloodseg.inference import Predictor  # noqa: E402
from napari_bloodseg.metrics import score_image  # noqa: E402
from napari_bloodseg.models import get_model, list_models  # noqa: E402
from napari_bloodseg.training import load_samples  # noqa: E402


def run(model_name: str, samples, scale: float, tta: bool | str) -> dict:
    model, card = get_model(model_name)
    pred = Predictor(model, card, device="cpu", tta=tta)
    t0 = time.perf_counter()
    scores = [score_image(pred.predict(s.image, scale=scale).labels, s.labels, card.schema) for s in samples]
    return build_report(
        [s.name for s in samples],
        scores,
        card.schema,
        model=model_name,
        seconds=time.perf_counter() - t0,
        device=pred.device_name,
    )


def rows(report: dict, label: str) -> list[str]:
    out = []
    for cls, s in report["per_class"].items():
        out.append(
            f"| {label} | {cls} | {s['jaccard']:.4f} ± {s['jaccard_sem']:.4f} | {s['dice']:.4f} ± {s['dice_sem']:.4f}"
            f" | {s['pixel_accuracy']:.4f} | {report['n_images']} |"
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--tta", choices=["auto", "on", "off"], default="auto", help="auto: as users get it (crops only)")
    ap.add_argument("--d2-scale", type=float, default=0.4)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    models = [m for m in list_models() if m.source == "shipped"]
    if not models:
        print("no shipped models found", file=sys.stderr)
        return 1
    d1 = load_samples(args.data / "wbc/dataset1", "wbc") if (args.data / "wbc/dataset1").is_dir() else []
    d2 = load_samples(args.data / "wbc/dataset2-dev", "wbc") if (args.data / "wbc/dataset2-dev").is_dir() else []
    rbc = load_samples(args.data / "rbc", "rbc") if (args.data / "rbc").is_dir() else []
    lines = [
        "| model · data | class | Jaccard (IoU) mean ± SEM | Dice mean ± SEM | pixel accuracy (class vs rest) | n |",
        "|---|---|---|---|---|---|",
    ]
    reports = {}
    for m in models:
        _, card = get_model(m.name)
        test_ids = set(card.training.get("test_ids") or [])
        tag = f"{m.name}{' +TTA' if args.tta == 'on' else ' TTA off' if args.tta == 'off' else ''}"
        if m.schema == "wbc":
            test = [s for s in d1 if s.name in test_ids]
            jobs = [
                ("Dataset 1 test", test, 1.0),
                (f"Dataset 2 dev, zero-shot, scale {args.d2_scale}", d2, args.d2_scale),
            ]
        else:
            jobs = [("RBC test fields", [s for s in rbc if s.name in test_ids], 1.0)]
        for label, samples, scale in jobs:
            if not samples:
                continue
            rep = run(m.name, samples, scale, {"on": True, "off": False}.get(args.tta, "auto"))
            reports[f"{m.name} · {label}"] = rep
            lines += rows(rep, f"{tag} · {label}")
            print(f"{tag} · {label}: {rep['seconds']:.1f} s", file=sys.stderr)
        tr = card.training
        print(
            f"{m.name}: trained {tr.get('seconds')} s on {tr.get('device')} ({tr.get('machine')}), "
            f"{tr.get('epochs_run')} epochs, best {tr.get('best_epoch')}",
            file=sys.stderr,
        )
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

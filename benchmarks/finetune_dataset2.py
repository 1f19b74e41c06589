"""The human-in-the-loop experiment of docs/finetuning.md: fine-tune the shipped WBC U-Net on 10 corrected
Dataset 2 images and score the other 10, before and after; also the Dataset 1 validation guard.

    .venv/bin/python benchmarks/finetune_dataset2.py [--data ../shared/data] [--base wbc-unet] [--seconds 45]

All ten teach the model by default (``--val-count 0``; the other ten are the scores). ``--val-count 2`` holds two of
them out, as the widget's and CLI's default validation part of 0.2 does: they score the model before and after and,
with ``--keep best``, choose the checkpoint. ``--ceiling`` trains on all 20 and scores those same 20: not a
result, but how far the fine-tune gets on images it has seen (what the time budget allows at best).

Writes the new model into a temporary model folder (the user's models are not touched) and prints
before/after Dice per class and the seconds taken.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--base", default="wbc-unet")
    ap.add_argument("--seconds", type=float, default=None, help="time budget of the training loop (default: the CLI's)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0, help="split of the 20 images (and training seed, unless given)")
    ap.add_argument("--train-seed", type=int, default=None, help="training seed (default: --seed)")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--freeze-bn", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--freeze", default="none")
    ap.add_argument("--replay", type=int, default=-1, help="Dataset 1 images replayed (-1: as many as tuned)")
    ap.add_argument("--val-count", type=int, default=0, help="of the ten, how many are held out for validation")
    ap.add_argument("--keep", choices=("best", "last"), default="best", help="checkpoint kept when there is validation")
    ap.add_argument("--replay-fraction", type=float, default=None, help="share of every batch from Dataset 1")
    ap.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="forward-pass arithmetic; auto: as bloodseg finetune (the fast CPU recipe on a CPU with native bf16)",
    )
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None, help="NHWC layout")
    ap.add_argument("--ceiling", action="store_true", help="train on all 20 and score the same 20 (a ceiling check)")
    ap.add_argument("--no-guard", action="store_true", help="report the Dataset 1 drop but do not refuse")
    args = ap.parse_args()
    if not 0 <= args.val_count <= 8:
        ap.error("--val-count must be 0..8 (of the ten fine-tuning images)")
    os.environ["BLOODSEG_MODEL_DIR"] = tempfile.mkdtemp(prefix="bloodseg-ft-")

    from napari_bloodseg.evaluation import build_report
    from napari_bloodseg.inference import Predictor
    from napari_bloodseg.inference.device import native_bf16_cpu
    from napari_bloodseg.metrics import score_image
    from napari_bloodseg.models import get_model
    from napari_bloodseg.training import load_samples, split_names
    from napari_bloodseg.training.finetune import finetune, finetune_config
    from napari_bloodseg.training.finetune_defaults import finetune_recipe

    d2 = load_samples(args.data / "wbc/dataset2-dev", "wbc")
    tune_ids, _ = split_names([s.name for s in d2], (0.5,), seed=args.seed)
    tune = [s for s in d2 if s.name in set(tune_ids)]
    rest = [s for s in d2 if s.name not in set(tune_ids)]
    if args.ceiling:
        if args.val_count:
            ap.error("--ceiling trains on all 20: use it with --val-count 0")
        tune = rest = d2

    def evaluate(name: str) -> dict:
        model, card = get_model(name)
        p = Predictor(model, card, device="cpu")
        scores = [score_image(p.predict(s.image).labels, s.labels, "wbc") for s in rest]
        return build_report([s.name for s in rest], scores, "wbc", model=name)

    base_model, base_card = get_model(args.base)
    # the base at its native scale, and at the scale fine-tuning picks, so the gain is not just rescaling
    before = evaluate(args.base)
    t0 = time.perf_counter()
    # the defaults bloodseg finetune and the widget take on this machine, so "defaults" here are what users get
    fast = args.precision == "auto" and native_bf16_cpu()
    recipe = {k: finetune_recipe(fast)[k] for k in ("epochs", "lr", "precision", "channels_last")}
    given = {
        "epochs": args.epochs,
        "lr": args.lr,
        "max_minutes": args.seconds and args.seconds / 60,
        "replay_fraction": args.replay_fraction,
        "precision": None if args.precision == "auto" else args.precision,
        "channels_last": args.channels_last,
    }
    cfg = finetune_config(
        seed=args.seed if args.train_seed is None else args.train_seed,
        device="cpu",
        freeze_bn=args.freeze_bn,
        freeze=args.freeze,
        keep=args.keep,
        **{**recipe, **{k: v for k, v in given.items() if v is not None}},
    )
    res = finetune(
        args.base,
        tune[: len(tune) - args.val_count],
        tune[len(tune) - args.val_count :],
        cfg=cfg,
        name="d2-ft",
        data_source=f"dataset2-dev ({len(tune)} images)",
        replay=args.replay,
        max_base_drop=1.0 if args.no_guard else 0.01,
    )
    seconds = time.perf_counter() - t0
    after = evaluate("d2-ft")
    scale = res.card.input_scale
    p = Predictor(base_model, base_card, device="cpu")
    scaled = build_report(
        [s.name for s in rest],
        [score_image(p.predict(s.image, scale=scale).labels, s.labels, "wbc") for s in rest],
        "wbc",
        model=f"{args.base} @ scale {scale:.2f}",
    )
    held = f", {args.val_count} of them held out for validation" if args.val_count else ""
    scored = "the same images (--ceiling)" if rest is tune else f"{len(rest)} others"
    print(f"fine-tuned on {len(tune)} images ({', '.join(s.name for s in tune)}{held}); scored on {scored}")
    print(f"| model | {' | '.join(f'{c} Dice' for c in before['per_class'])} |")
    print("|---|" + "---|" * len(before["per_class"]))
    for label, rep in [
        (f"{args.base}, no rescale", before),
        (f"{args.base} @ scale {scale:.2f}", scaled),
        ("fine-tuned", after),
    ]:
        cells = " | ".join(f"{v['dice']:.4f} ± {v['dice_sem']:.4f}" for v in rep["per_class"].values())
        print(f"| {label} | {cells} |")
    if res.base_before:
        b, a = res.base_before["per_class"], res.base_after["per_class"]
        print(
            "Dataset 1 validation Dice (guard): "
            + ", ".join(f"{c} {b[c]['dice']:.4f} -> {a[c]['dice']:.4f}" for c in b)
        )
    if res.weight_mix < 1:
        print(f"weights mixed {res.weight_mix:g} : {1 - res.weight_mix:g} with the base to pass the guard (WiSE-FT)")
    print(
        f"fine-tuning wall time: {seconds:.1f} s (training loop budget {cfg.max_minutes * 60:.0f} s, CPU "
        f"{os.cpu_count()} cores)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

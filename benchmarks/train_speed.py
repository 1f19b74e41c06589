"""Seconds per training step, plain PyTorch against ``torch.compile`` (``bloodseg train --compile``), for the
shipped WBC recipe's batch (16 crops of 128², CE + Dice, AdamW), and what compiling costs up front.

    .venv/bin/python benchmarks/train_speed.py [--models wbc-unet wbc-segnet] [--steps 30] [--threads 2]

Each model runs eager first, then compiled, in one process; the compiler's cache goes to a fresh folder so the
compile time is a cold one, as on a user's machine. Prints one line per model and mode.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_model, setup_process  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["wbc-unet"])
    ap.add_argument("--steps", type=int, default=30, help="timed steps per mode (after 3 warm-up steps)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--patch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="bloodseg-inductor-"))
    setup_process(args.threads)
    import torch

    from napari_bloodseg.training.losses import ce_dice_loss

    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, 3, args.patch_size, args.patch_size, generator=g)
    for name in args.models:
        shipped, _card, label = load_model(name)
        y = torch.randint(0, shipped.num_classes, (args.batch_size, args.patch_size, args.patch_size), generator=g)
        per_step, first_step = {}, {}
        for mode in ("eager", "compiled"):
            model = copy.deepcopy(shipped).train()
            net = torch.compile(model) if mode == "compiled" else model
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

            t0 = time.perf_counter()
            _step(net, opt, x, y, ce_dice_loss)
            first_step[mode] = time.perf_counter() - t0
            for _ in range(2):
                _step(net, opt, x, y, ce_dice_loss)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                _step(net, opt, x, y, ce_dice_loss)
            per_step[mode] = (time.perf_counter() - t0) / args.steps
            print(
                f"{label:<28} {mode:<9} {per_step[mode]:.4f} s/step   first step {first_step[mode]:5.1f} s "
                f"({args.batch_size}x{args.patch_size}², {args.threads} threads)",
                flush=True,
            )
        saved = per_step["eager"] - per_step["compiled"]
        print(
            f"{label:<28} compiled is {saved / per_step['eager']:.0%} faster per step; compiling pays off after "
            f"~{'never' if saved <= 0 else round((first_step['compiled'] - per_step['compiled']) / saved)} steps",
            flush=True,
        )


def _step(net, opt, x, y, loss_fn) -> None:
    opt.zero_grad(set_to_none=True)
    loss_fn(net(x), y, 1.0).backward()
    opt.step()


if __name__ == "__main__":
    main()

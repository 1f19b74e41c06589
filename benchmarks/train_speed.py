"""Seconds per training step for the shipped WBC recipe's batch (16 crops of 128², CE + Dice, AdamW): plain
PyTorch, ``torch.compile`` (``bloodseg train --compile``), channels-last (``--channels-last``) and bfloat16
autocast (``--precision bf16``), and what compiling costs up front.

    .venv/bin/python benchmarks/train_speed.py [--models wbc-unet wbc-segnet] [--steps 30] [--threads 2]
        [--modes eager compiled channels-last bf16 bf16-channels-last] [--rounds 2]

Each model runs every mode in one process, ``--rounds`` times in turn (the best round is reported, so a busy
moment on a shared machine does not decide it); the compiler's cache goes to a fresh folder, so the compile time
is a cold one, as on a user's machine. bf16 is fast only on CPUs with AVX512-BF16 or AMX (the script says
whether this one has them); elsewhere it is emulated and slower.
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

MODES = ("eager", "compiled", "channels-last", "bf16", "bf16-channels-last")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["wbc-unet"])
    ap.add_argument("--steps", type=int, default=30, help="timed steps per mode (after 3 warm-up steps)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--patch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--rounds", type=int, default=2, help="passes over the modes; the best is reported")
    args = ap.parse_args()
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="bloodseg-inductor-"))
    setup_process(args.threads)
    import torch

    from napari_bloodseg.inference.device import native_bf16_cpu
    from napari_bloodseg.training.losses import ce_dice_loss

    print(f"CPU with native bf16 (AVX512-BF16 or AMX): {'yes' if native_bf16_cpu() else 'no'}")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, 3, args.patch_size, args.patch_size, generator=g)
    for name in args.models:
        shipped, _card, label = load_model(name)
        y = torch.randint(0, shipped.num_classes, (args.batch_size, args.patch_size, args.patch_size), generator=g)
        per_step: dict[str, float] = {}
        first_step: dict[str, float] = {}
        for _ in range(args.rounds):
            for mode in args.modes:
                layout = torch.channels_last if mode.endswith("channels-last") else torch.contiguous_format
                model = copy.deepcopy(shipped).train().to(memory_format=layout)
                net = torch.compile(model) if mode == "compiled" else model
                opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
                xm = x.contiguous(memory_format=layout)
                amp = torch.bfloat16 if mode.startswith("bf16") else None

                t0 = time.perf_counter()
                _step(net, opt, xm, y, ce_dice_loss, amp)
                first_step[mode] = max(first_step.get(mode, 0.0), time.perf_counter() - t0)
                for _ in range(2):
                    _step(net, opt, xm, y, ce_dice_loss, amp)
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    _step(net, opt, xm, y, ce_dice_loss, amp)
                per_step[mode] = min(per_step.get(mode, float("inf")), (time.perf_counter() - t0) / args.steps)
        base = per_step.get("eager")
        for mode in args.modes:
            rel = f"  {base / per_step[mode]:.2f}x eager" if base else ""
            print(
                f"{label:<28} {mode:<18} {per_step[mode]:.4f} s/step{rel}   first step {first_step[mode]:5.1f} s "
                f"({args.batch_size}x{args.patch_size}², {args.threads} threads, best of {args.rounds})",
                flush=True,
            )
        if base and "compiled" in per_step:
            saved = base - per_step["compiled"]
            pays = "never" if saved <= 0 else round((first_step["compiled"] - per_step["compiled"]) / saved)
            print(f"{label:<28} compiling pays off after ~{pays} steps", flush=True)


def _step(net, opt, x, y, loss_fn, amp) -> None:
    opt.zero_grad(set_to_none=True)
    with torch_autocast(amp):
        logits = net(x)
    loss_fn(logits.float(), y, 1.0).backward()
    opt.step()


def torch_autocast(amp):
    import torch

    return torch.autocast("cpu", dtype=amp, enabled=amp is not None)


if __name__ == "__main__":
    main()

"""Inference speed and peak memory per network and shipped model, from 0.25 to 64 megapixels, CPU and GPU.

For every device (CPU with its thread count; CUDA with bf16 autocast when a GPU is present), model and image
size, one fresh child process builds the Predictor (defaults: tiles of at most 1088 px shared evenly, overlap 64,
one tile per pass on a CPU and 4 on a GPU, fused network), warms it up on one batch of full tiles, times
``predict`` on a square synthetic smear of that many megapixels (best of ``--repeat``; by default 3 runs below
1 MP, 2 at 1 MP, else 1) and reports its absolute peak RSS (VmHWM:
torch, the model and the uint8 image included) and on a GPU ``torch.cuda.max_memory_allocated``.

Throughput is also given as achieved GFLOP/s: the network's FLOPs per pixel (``FlopCounterMode`` on one tile)
times the pixels the network really processed (tile overlap and a model's input scale included), divided by the
seconds, and as a fraction of this machine's dense matmul peak measured at the start of the same run with the
same thread count (fp32 2048^2 on CPU, bf16 8192^2 on GPU).

The networks are untrained (speed does not depend on the weights) at the shipped width (8); shipped models are
loaded from ``napari_bloodseg/pretrained`` (their card's input scale applies, e.g. 0.5 for the RBC model).

    .venv/bin/python benchmarks/speed.py                   # everything: ~15-30 min on 2 idle CPU cores
    .venv/bin/python benchmarks/speed.py --quick           # 0.25 and 1 MP only: ~1-2 min
    .venv/bin/python benchmarks/speed.py --models unet --sizes 64        # the 64 MP (8000^2) memory check
    .venv/bin/python benchmarks/speed.py --threads 1 --json speed.json   # pin threads, keep the numbers

On a shared machine pass ``--threads 1`` when another process is busy: OpenMP threads that compete with it
spin-wait, and the timings then measure the contention.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    NETWORKS,
    flops_per_pixel,
    load_model,
    machine_line,
    matmul_peak_gflops,
    peak_rss_mb,
    print_table,
    run_child,
    setup_process,
    shipped_model_names,
    smear_field,
)

from napari_bloodseg.inference.defaults import DEFAULT_OVERLAP, DEFAULT_TILE_SIZE  # noqa: E402

SIZES_MP = (0.25, 1.0, 4.0, 16.0, 64.0)
QUICK_SIZES_MP = (0.25, 1.0)


def side_for(mp: float) -> int:
    return int(round(math.sqrt(mp * 1e6)))


def default_repeat(mp: float) -> int:
    return 3 if mp < 1 else 2 if mp < 2 else 1


def child(args: argparse.Namespace) -> None:
    setup_process(args.threads)
    import numpy as np
    import torch

    from napari_bloodseg.inference import Predictor
    from napari_bloodseg.inference.tiling import tile_spans

    model, card, _ = load_model(args.child_model)
    side = side_for(args.child_mp)
    image = smear_field(side, side, kind=card.schema if card else "rbc")
    predictor = Predictor(
        model,
        card,
        device=args.child_device,
        tile_size=args.tile,
        overlap=args.overlap,
        batch_size=args.batch_size or None,
        fuse=not args.no_fuse,
        compile=args.compile,
        tta={"on": True, "off": False}.get(args.tta, "auto"),
    )
    real_forward, net_pixels = predictor._forward, [0]

    def counting_forward(tiles, tta=False):
        net_pixels[0] += tiles.shape[0] * tiles.shape[1] * tiles.shape[2]
        return real_forward(tiles, tta)

    predictor._forward = counting_forward
    # warm-up: one batch of every tile shape the run will use (even tiling makes them e.g. 720 px at 2000 px,
    # and the last row/column may differ): oneDNN primitive creation, cuDNN autotuning (or compilation)
    side_in = max(round(side * predictor.input_scale), 8)
    tile = args.tile or side_in
    sizes = sorted({n for _, n in tile_spans(side_in, tile, min(args.overlap, tile // 2), model.stride)})
    tta = predictor.uses_tta(side_in, side_in)
    for h in sizes:
        for w in sizes:
            real_forward(np.zeros((predictor.batch_size, h, w, 3), np.uint8), tta)
    if args.child_device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    best = float("inf")
    for _ in range(args.repeat or default_repeat(args.child_mp)):
        net_pixels[0] = 0
        t0 = time.perf_counter()
        labels = predictor.predict(image).labels
        best = min(best, time.perf_counter() - t0)
    out = {
        "seconds": best,
        "pixels": side * side,
        "side": side,
        "net_pixels": net_pixels[0],
        "peak_rss_mb": peak_rss_mb(),
        "threads": torch.get_num_threads(),
        "device": predictor.device_name,
        "labels_seen": int(len(set(labels[:: max(side // 64, 1), :: max(side // 64, 1)].ravel().tolist()))),
    }
    if args.child_device.startswith("cuda"):
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=float, nargs="+", help=f"megapixels (default {' '.join(map(str, SIZES_MP))})")
    ap.add_argument("--quick", action="store_true", help=f"sizes {' '.join(map(str, QUICK_SIZES_MP))} MP only")
    ap.add_argument("--models", nargs="+", help="networks and/or shipped model names (default: all)")
    ap.add_argument("--device", choices=("cpu", "cuda", "all"), default="all", help="all: CPU, and CUDA if present")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--tile", type=int, default=DEFAULT_TILE_SIZE)
    ap.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP)
    ap.add_argument("--batch-size", type=int, default=0, help="tiles per pass (0: the default, 1 on CPU, 4 on GPU)")
    ap.add_argument("--no-fuse", action="store_true", help="run the network as trained (no inference rewrites)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the network (compile time not timed)")
    ap.add_argument(
        "--tta",
        choices=("auto", "on", "off"),
        default="auto",
        help="test-time augmentation as users get it (auto: crops, and rbc-deconvnet fields up to 1 MP of network "
        "input, 8x the time there), or on/off",
    )
    ap.add_argument("--repeat", type=int, default=0, help="timed runs per size, best kept (0: 3/2/1 by size)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per child run")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    ap.add_argument("--child", nargs=3, metavar=("MODEL", "MP", "DEVICE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.child_model, args.child_mp, args.child_device = args.child[0], float(args.child[1]), args.child[2]
        child(args)
        return

    setup_process(args.threads)
    import torch

    sizes = args.sizes or (QUICK_SIZES_MP if args.quick else SIZES_MP)
    devices = ["cpu"] if args.device == "cpu" else ["cuda"] if args.device == "cuda" else ["cpu"]
    if args.device == "all" and torch.cuda.is_available():
        devices.append("cuda")
    if "cuda" in devices and not torch.cuda.is_available():
        sys.exit("speed.py: --device cuda asked for, but PyTorch sees no CUDA GPU")
    models = args.models or [*NETWORKS, *shipped_model_names()]
    t_start = time.perf_counter()
    print(f"# Inference speed: {machine_line(devices[-1])}")
    print(
        f"tile {args.tile}, overlap {args.overlap}, batch {args.batch_size or 'default (CPU 1, GPU 4)'}, "
        f"{'unfused' if args.no_fuse else 'fused'} network{', torch.compile' if args.compile else ''}, "
        f"TTA {args.tta}; "
        "each size in a fresh process; peak RSS = absolute VmHWM (torch + model + image + inference)"
    )
    child_flags = ["--threads", str(args.threads), "--tile", str(args.tile), "--overlap", str(args.overlap)]
    child_flags += ["--batch-size", str(args.batch_size), "--repeat", str(args.repeat)]
    child_flags += ["--no-fuse"] * args.no_fuse + ["--compile"] * args.compile + ["--tta", args.tta]

    results = []
    for device in devices:
        peak, how = matmul_peak_gflops(device)
        print(f"{device}: dense matmul peak {peak:.1f} GFLOP/s ({how}, {torch.get_num_threads()} threads)")
        for spec in models:
            try:
                model, card, label = load_model(spec)
            except Exception as exc:  # e.g. a shipped model file rewritten right now by a training run
                print(f"  {spec}: skipped ({type(exc).__name__}: {exc})")
                continue
            fpp = flops_per_pixel(model, args.tile)
            for mp in sizes:
                res = run_child([__file__, "--child", spec, str(mp), device, *child_flags], timeout=args.timeout)
                res |= {"device_kind": device, "model": label, "mp": mp, "flops_per_pixel": fpp, "peak": peak}
                results.append(res)
                if "error" in res:
                    print(f"  {label} {mp} MP: failed: {res['error']}")

    headers = ["device", "model", "MP", "image", "s", "s/MP", "MP/s", "GFLOP/MP", "GFLOP/s", "% peak", "peak RSS MB"]
    if "cuda" in devices:
        headers.append("GPU peak MB")
    rows = []
    for r in results:
        if "error" in r:
            continue
        mp_real = r["pixels"] / 1e6
        gflop = r["flops_per_pixel"] * r["net_pixels"] / 1e9
        rate = gflop / r["seconds"]
        row = [
            r["device"],
            r["model"],
            f"{r['mp']:g}",
            f"{r['side']}x{r['side']}",
            f"{r['seconds']:.2f}",
            f"{r['seconds'] / mp_real:.3f}",
            f"{mp_real / r['seconds']:.2f}",
            f"{gflop / mp_real:.1f}",
            f"{rate:.1f}",
            f"{100 * rate / r['peak']:.0f}",
            f"{r['peak_rss_mb']:.0f}",
        ]
        if "cuda" in devices:
            row.append(f"{r['gpu_peak_mb']:.0f}" if "gpu_peak_mb" in r else "-")
        rows.append(row)
    print()
    print_table(headers, rows)
    print()
    for device in devices:
        for spec_label in dict.fromkeys(r["model"] for r in results if "error" not in r):
            runs = [
                r
                for r in results
                if "error" not in r and r["model"] == spec_label and r["device_kind"] == device and r["mp"] >= 1
            ]
            if len(runs) >= 2:
                per = {r["mp"]: r["seconds"] / (r["pixels"] / 1e6) for r in runs}
                # the same per megapixel the network really ran on: what is left once tile overlap is taken out
                per_net = [r["seconds"] / (r["net_pixels"] / 1e6) for r in runs]
                print(
                    f"{device} {spec_label}: s/MP from {min(per):g} to {max(per):g} MP spans "
                    f"x{max(per.values()) / min(per.values()):.2f} (flat within 20 % means <= x1.20); per MP of "
                    f"network input (tile overlap taken out) x{max(per_net) / min(per_net):.2f}"
                )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"total {time.perf_counter() - t_start:.0f} s; load average {load:.1f} at the end")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

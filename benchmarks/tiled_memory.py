"""Tiled inference memory and time on CPU: a 4000x4000 and a 2000x2000 RGB uint8 field, default U-Net (width 16).

Each measurement runs in its own child process so that its peak RSS is its own. The peak is read after loading
torch, the model and the image, with the kernel's high-water mark reset first (Linux ``/proc/self/clear_refs``),
so "inference peak" is the extra memory inference needed on top of what the caller already holds. Where that
reset is not available the absolute peak is shown instead (``ru_maxrss``).

Tiled memory should depend on the image width (one band of tiles) and the outputs, not on the area; untiled
memory grows with the area. The labels of tiled and untiled inference are compared on the 2000x2000 field,
on the pixels farther than overlap + 32 px from every interior tile boundary and overall.

The network is untrained (no weights are downloaded) but not inert: its BatchNorm statistics are measured on a
crop of the field, so its labels vary across the image and a tiled/untiled mismatch would show.

    python benchmarks/tiled_memory.py [--threads N]   # about 1-3 minutes on 2 CPU cores

On a shared machine, pass --threads 1 when another process is busy: two OpenMP threads competing with it
spin-wait and the timings then measure the contention, not the tiling.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import _status_kb, peak_rss_mb, setup_process  # noqa: E402

TILE, OVERLAP = 512, 64


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _rss_mb() -> float:
    rss = _status_kb("VmRSS")
    if rss is not None:
        return rss / 1024
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        return float("nan")


def _model(calibration_crop: np.ndarray):
    import torch

    from napari_bloodseg.models import build_model

    torch.manual_seed(0)
    model = build_model("unet")  # the default config: 3 classes, width 16, depth 4
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    x = (torch.from_numpy(calibration_crop).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        model.train()(x)
    return model.eval()


def child(mode: str, image_path: str, labels_out: str, threads: int) -> None:
    import torch

    from napari_bloodseg.inference import Predictor

    setup_process(threads, keep_freed_memory=False)  # growth above the loaded state: default malloc
    image = np.load(image_path)
    model = _model(np.ascontiguousarray(image[:512, :512]))
    predictor = Predictor(model, device="cpu", tile_size=TILE if mode == "tiled" else 0, overlap=OVERLAP)
    predictor.predict(image[:64, :64])  # warm-up (oneDNN kernels), not timed
    base = _rss_mb()
    reset = _reset_peak()
    t0 = time.perf_counter()
    labels = predictor.predict(image).labels
    seconds = time.perf_counter() - t0
    peak = peak_rss_mb()
    np.save(labels_out, labels)
    print(
        json.dumps(
            {
                "mode": mode,
                "size": image.shape[0],
                "seconds": seconds,
                "peak_mb": peak,
                "base_mb": base,
                "reset": reset,
                "threads": torch.get_num_threads(),
                "class_fractions": (np.bincount(labels.ravel(), minlength=3) / labels.size).round(3).tolist(),
            }
        )
    )


def _far_from_seams(n: int) -> np.ndarray:
    from napari_bloodseg.inference.tiling import tile_spans

    spans = tile_spans(n, TILE, OVERLAP, 16)
    edges = sorted(({s for s, _ in spans} | {s + size for s, size in spans}) - {0, n})
    far = np.ones(n, bool)
    for e in edges:
        far[max(e - OVERLAP - 32, 0) : e + OVERLAP + 32] = False
    return far[:, None] & far[None, :]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", nargs=3, metavar=("MODE", "IMAGE", "LABELS"), help=argparse.SUPPRESS)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 4000])
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.threads)
        return

    from napari_bloodseg.data import synthetic_rbc

    t_start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = [("tiled", n) for n in args.sizes] + [("untiled", min(args.sizes))]
        images = {}
        for n in sorted({n for _, n in runs}):
            image, _ = synthetic_rbc((n, n), seed=0)
            images[n] = tmp / f"field{n}.npy"
            np.save(images[n], image)
        for mode, n in runs:
            out = tmp / f"{mode}{n}.npy"
            cmd = [sys.executable, __file__, "--child", mode, str(images[n]), str(out), "--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
            if proc.returncode != 0:
                sys.exit(f"{mode} {n}: child failed\n{proc.stderr}")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]) | {"labels": out})

        threads = rows[0]["threads"]
        print(f"U-Net width 16, tile {TILE}, overlap {OVERLAP}, CPU {threads} threads, uint8 RGB input, default malloc")
        what = "inference peak above the loaded state" if rows[0]["reset"] else "absolute peak RSS"
        print(f"memory: {what}")
        print(f"{'mode':<8} {'size':>11} {'seconds':>8} {'base MB':>8} {'peak MB':>8} {'extra MB':>9}  classes")
        for r in rows:
            extra = r["peak_mb"] - r["base_mb"] if r["reset"] else float("nan")
            print(
                f"{r['mode']:<8} {r['size']:>5}x{r['size']:<5} {r['seconds']:>8.1f} {r['base_mb']:>8.0f} "
                f"{r['peak_mb']:>8.0f} {extra:>9.0f}  {r['class_fractions']}"
            )
        tiled = {r["size"]: r for r in rows if r["mode"] == "tiled"}
        if len(tiled) >= 2:
            small, big = min(tiled), max(tiled)
            ratio = (tiled[big]["peak_mb"] - tiled[big]["base_mb"]) / (
                tiled[small]["peak_mb"] - tiled[small]["base_mb"]
            )
            print(f"tiled extra memory {big}px / {small}px: x{ratio:.2f} for x{(big / small) ** 2:.0f} the area")
        untiled = next(r for r in rows if r["mode"] == "untiled")
        n = untiled["size"]
        a, b = np.load(tiled[n]["labels"]), np.load(untiled["labels"])
        far = _far_from_seams(n)
        print(
            f"tiled vs untiled labels at {n}x{n}: {np.mean(a[far] == b[far]):.6f} agreement on the {far.mean():.0%} "
            f"of pixels > {OVERLAP + 32} px from tile seams ({int((a[far] != b[far]).sum())} differ), "
            f"{np.mean(a == b):.4f} overall"
        )
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()

"""What the speed benchmarks share: machine description, peak memory, matmul peak, FLOP counts, test images."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: The networks, built at the width the shipped models use (read from the wbc-unet card: 8 since version 2).
NETWORKS = ("unet", "segnet", "deconvnet")
SHIPPED_WIDTH = int(json.loads((REPO / "napari_bloodseg/pretrained/wbc-unet.json").read_text())["config"]["width"])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(device: str = "cpu") -> str:
    import torch

    parts = [
        f"CPU {cpu_model()} ({os.cpu_count()} logical cores)",
        f"torch {torch.__version__}",
        f"{torch.get_num_threads()} intra-op threads",
    ]
    if device.startswith("cuda") and torch.cuda.is_available():
        parts.append(f"GPU {torch.cuda.get_device_name(0)}")
    parts.append("malloc keeps freed memory (as the CLI)" if _PROCESS["kept_freed_memory"] else "default malloc")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    parts.append(f"load average {load:.1f} at start")
    return ", ".join(parts)


#: what :func:`setup_process` did, for :func:`machine_line`
_PROCESS = {"kept_freed_memory": False}


def setup_process(threads: int, keep_freed_memory: bool = True) -> None:
    """Torch's CPU threads (0: its default), and the allocator setting the ``bloodseg`` CLI uses
    (:func:`napari_bloodseg.inference.allocator.keep_freed_memory`), so the numbers are what the CLI gets.
    ``keep_freed_memory=False`` for memory-growth measurements: memory kept from a warm-up would hide growth."""
    import torch

    from napari_bloodseg.inference import allocator

    _PROCESS["kept_freed_memory"] = keep_freed_memory and allocator.keep_freed_memory()
    if threads > 0:
        torch.set_num_threads(threads)


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux VmHWM; else psutil/ru_maxrss)."""
    hwm = _status_kb("VmHWM")
    if hwm is not None:
        return hwm / 1024
    try:
        import psutil

        info = psutil.Process().memory_info()
        return getattr(info, "peak_wset", info.rss) / 2**20
    except ImportError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, kB on Linux
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak_gflops(device: str = "cpu", n: int = 2048, reps: int = 5) -> tuple[float, str]:
    """Best dense matmul rate (GFLOP/s) over ``reps`` runs: fp32 on the CPU, bf16 on a GPU (what inference uses)."""
    import torch

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    if device.startswith("cuda"):
        n = max(n, 8192)  # a GPU needs a big product to reach its peak
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # warm-up
    sync(device)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9, f"{n}x{n} {str(dtype).replace('torch.', '')} matmul, best of {reps}"


def flops_per_pixel(model, tile: int, device: str = "cpu") -> float:
    """Network FLOPs per input pixel, counted by ``FlopCounterMode`` on one tile x tile input (2 per MAC)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, model.in_channels, tile, tile, device=device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / (tile * tile)


def smear_field(height: int, width: int, seed: int = 0, kind: str = "rbc") -> np.ndarray:
    """A big synthetic smear, fast: one 1024 x 1024 synthetic field tiled over the area (uint8 RGB)."""
    from napari_bloodseg.data import synthetic_rbc, synthetic_wbc

    base = synthetic_rbc((1024, 1024), seed=seed)[0] if kind == "rbc" else synthetic_wbc(1024, seed=seed)[0]
    reps = (-(-height // 1024), -(-width // 1024), 1)
    return np.ascontiguousarray(np.tile(base, reps)[:height, :width])


def calibrated(model, sample: np.ndarray):
    """Set an untrained network's BatchNorm statistics on ``sample`` so its labels vary across an image
    (a fresh network in eval mode gives nearly one label everywhere, which would make agreement trivial)."""
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    x = (torch.from_numpy(np.ascontiguousarray(sample)).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        model.train()(x)
    return model.eval()


def load_model(spec: str, num_classes: int = 3):
    """(model, card, label) for a network name (untrained, at SHIPPED_WIDTH) or a shipped model name."""
    import warnings

    import torch

    from napari_bloodseg.models import UntrainedModelWarning, build_model, get_model

    if spec in NETWORKS:
        torch.manual_seed(0)
        model = build_model(spec, num_classes=num_classes, width=SHIPPED_WIDTH).eval()
        return model, None, f"{spec} w{SHIPPED_WIDTH} (untrained)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedModelWarning)
        model, card = get_model(spec)
    cfg = card.config
    scale = f", input scale {card.input_scale}" if card.input_scale and card.input_scale != 1 else ""
    return model, card, f"{spec} ({cfg['architecture']} w{cfg['width']}{scale})"


def shipped_model_names() -> list[str]:
    from napari_bloodseg.models import list_models

    try:
        return [m.name for m in list_models() if m.source == "shipped"]
    except Exception:  # a model file being rewritten by a training run is not a reason to fail a benchmark
        return []


def run_child(argv: list[str], timeout: float | None = None) -> dict:
    """Run ``python argv...`` in a fresh process (its own peak memory) and parse its last stdout line as JSON."""
    proc = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=timeout, env=os.environ.copy(), cwd=REPO
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit {proc.returncode}"}
    return json.loads(lines[-1])


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """A Markdown table (pipes), columns padded for reading in a terminal too."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")

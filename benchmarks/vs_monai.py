"""Our tiled inference against MONAI's ``sliding_window_inference``: same network, tile, overlap and batch.

Both run in this process on the same synthetic smear (uint8 RGB in, uint8 labels out, normalisation and
softmax included in both timings), and both blend softmax probabilities of overlapping tiles: ours with a
linear ramp over the overlap, MONAI with its ``--monai-mode`` (default ``gaussian``). Each one's labels are
compared with one untiled pass of the plain network over the whole image (fraction of equal labels).

Rows: ours as shipped (fused inference copy of the network, channels-last input); ours with the network as
trained; MONAI with the usual contiguous NCHW input tensor; MONAI with a channels-last input tensor (the layout
ours uses), which separates the tiling machinery from the memory-layout effect.

The network (default: U-Net at the shipped width 8, 3 classes) is untrained, with BatchNorm statistics measured
on the image so its labels vary (class fractions are printed: agreement is not trivially 1). Defaults are the
shipped CPU inference settings: tile 1024 (ours: at most 1024, shared evenly), overlap 64 px, one tile per pass.

    .venv/bin/python benchmarks/vs_monai.py                      # 2048 x 2048, ~1 min on 2 idle CPU cores
    .venv/bin/python benchmarks/vs_monai.py --size 1024 --repeat 1 --threads 1   # quick
Needs MONAI (the bench extra: pip install -e ".[bench]").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import NETWORKS, calibrated, machine_line, print_table, setup_process, smear_field  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=2048, help="image side in px (square)")
    ap.add_argument("--model", default="unet", choices=NETWORKS)
    ap.add_argument(
        "--width", type=int, default=8, help="network width (the shipped wbc-unet uses 8, the other shipped models 10)"
    )
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=1, help="tiles per forward pass, both methods")
    ap.add_argument("--monai-mode", default="gaussian", choices=("gaussian", "constant"))
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per method, best kept")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = ap.parse_args()

    setup_process(args.threads)
    import torch

    try:
        from monai.inferers import sliding_window_inference
    except ImportError:
        sys.exit('vs_monai.py needs MONAI: pip install -e ".[bench]"')

    from napari_bloodseg.inference import Predictor
    from napari_bloodseg.models import build_model

    device = torch.device(args.device)
    image = smear_field(args.size, args.size, seed=1)
    torch.manual_seed(0)
    model = calibrated(build_model(args.model, num_classes=3, width=args.width), image[:1024, :1024]).to(device)
    amp = torch.bfloat16 if device.type == "cuda" else None

    def to_tensor(img: np.ndarray, channels_last: bool) -> torch.Tensor:
        x = torch.from_numpy(img).to(device).permute(2, 0, 1)[None].float() / 255.0
        x = (x - 0.5) / 0.25
        return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    def run_monai(img: np.ndarray, channels_last: bool) -> np.ndarray:
        x = to_tensor(img, channels_last)
        with torch.inference_mode(), torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            probs = sliding_window_inference(
                x,
                roi_size=(args.tile, args.tile),
                sw_batch_size=args.batch_size,
                predictor=lambda t: torch.softmax(model(t).float(), dim=1),
                overlap=args.overlap / args.tile,
                mode=args.monai_mode,
            )
        return probs[0].argmax(0).to(torch.uint8).cpu().numpy()

    ours = Predictor(model, device=device, tile_size=args.tile, overlap=args.overlap, batch_size=args.batch_size)
    ours_plain = Predictor(
        model, device=device, tile_size=args.tile, overlap=args.overlap, batch_size=args.batch_size, fuse=False
    )
    methods = {
        "ours (fused, channels-last)": lambda img: ours.predict(img).labels,
        "ours (network as trained)": lambda img: ours_plain.predict(img).labels,
        f"MONAI {args.monai_mode}, NCHW input": lambda img: run_monai(img, False),
        f"MONAI {args.monai_mode}, channels-last input": lambda img: run_monai(img, True),
    }

    print(f"# Tiled inference vs MONAI sliding_window_inference: {machine_line(args.device)}")
    print(
        f"{args.model} w{args.width}, {args.size}x{args.size} ({args.size**2 / 1e6:.2f} MP), tile {args.tile}, "
        f"overlap {args.overlap} px (MONAI overlap {args.overlap / args.tile:.4f}), batch {args.batch_size}, "
        f"{args.device}{' bf16' if amp else ' fp32'}, best of {args.repeat}"
    )
    t0 = time.perf_counter()
    with torch.inference_mode(), torch.autocast(device.type, dtype=amp, enabled=amp is not None):
        reference = model(to_tensor(image, False)).argmax(1)[0].to(torch.uint8).cpu().numpy()
    fractions = np.bincount(reference.ravel(), minlength=3) / reference.size
    print(f"untiled reference: {time.perf_counter() - t0:.1f} s, class fractions {np.round(fractions, 3).tolist()}")

    crop = image[: min(args.size, args.tile), : min(args.size, 2 * args.tile)]
    rows, speed = [], {}
    for name, fn in methods.items():
        fn(crop)  # warm-up (oneDNN primitives), not timed
        best, labels = float("inf"), None
        for _ in range(args.repeat):
            t = time.perf_counter()
            labels = fn(image)
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
        speed[name] = args.size**2 / 1e6 / best
        rows.append([name, f"{best:.2f}", f"{speed[name]:.3f}", f"{np.mean(labels == reference):.5f}"])
    monai_ref = speed[f"MONAI {args.monai_mode}, NCHW input"]
    for row, name in zip(rows, methods, strict=True):
        row.insert(3, f"x{speed[name] / monai_ref:.2f}")
    print()
    print_table(["method", "s", "MP/s", "speed vs MONAI NCHW", "agreement with untiled"], rows)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

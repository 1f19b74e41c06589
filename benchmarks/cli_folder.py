"""End-to-end ``bloodseg predict`` on a folder of smears: total time, per file, and the per-file overhead.

Writes ``--n`` synthetic smears (default 100 WBC crops of 120 x 120 px, the size of WBC Dataset 1, as BMP like
that dataset) to a temporary folder, then times the CLI as a user runs it, in a fresh process:

* on one file: process start, imports, model load (once) and one image;
* on the whole folder: the same fixed cost plus N images.

The marginal cost per file is (folder - one) / (N - 1); the fixed cost is one - marginal. The pure network
time per image (``Predictor.predict`` in this process, warmed up) is subtracted from the marginal cost to show
the per-file overhead of reading, writing the mask PNG and the loop.

    .venv/bin/python benchmarks/cli_folder.py                         # 100 WBC crops, wbc-unet: ~1 min
    .venv/bin/python benchmarks/cli_folder.py --kind rbc --size 600 --n 20
    .venv/bin/python benchmarks/cli_folder.py --n 10 --threads 1      # quick
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, machine_line, print_table, setup_process, shipped_model_names  # noqa: E402


def bloodseg_cmd() -> list[str]:
    script = Path(sys.executable).with_name("bloodseg")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from napari_bloodseg.cli.main import main; sys.exit(main())"]


def timed_cli(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(bloodseg_cmd() + args, capture_output=True, text=True, env=env, cwd=REPO)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"bloodseg {' '.join(args)} failed:\n{proc.stderr}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100, help="number of smears")
    ap.add_argument("--kind", choices=("wbc", "rbc"), default="wbc")
    ap.add_argument("--size", type=int, help="image side in px (default 120 for wbc, 600 for rbc)")
    ap.add_argument("--model", help="default: the shipped model for --kind, else the untrained network")
    ap.add_argument("--format", default="bmp", choices=("bmp", "png", "tif", "jpg"))
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    ap.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS for the CLI (0: torch's default)")
    args = ap.parse_args()
    if args.n < 2:
        sys.exit("--n must be at least 2")

    setup_process(args.threads)
    import torch
    from PIL import Image

    from napari_bloodseg.data import synthetic_rbc, synthetic_wbc

    size = args.size or (120 if args.kind == "wbc" else 600)
    shipped = {"wbc": "wbc-unet", "rbc": "rbc-deconvnet"}[args.kind]
    model = args.model or (shipped if shipped in shipped_model_names() else f"unet:{args.kind}")
    env = os.environ.copy()
    if args.threads > 0:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)

    print(f"# bloodseg predict on a folder: {machine_line(args.device)}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src, one = tmp / "in", tmp / "one"
        src.mkdir()
        one.mkdir()
        t0 = time.perf_counter()
        for i in range(args.n):
            if args.kind == "wbc":
                img = synthetic_wbc(size, seed=i)[0]
            else:
                img = synthetic_rbc((size, size), seed=i)[0]
            Image.fromarray(img).save(src / f"smear{i:04d}.{args.format}")
        (one / f"smear0000.{args.format}").write_bytes((src / f"smear0000.{args.format}").read_bytes())
        print(
            f"{args.n} synthetic {args.kind.upper()} smears {size}x{size} .{args.format} written in "
            f"{time.perf_counter() - t0:.1f} s; model {model}, device {args.device}"
        )

        common = ["predict", "--model", model, "--device", args.device, "--overwrite"]
        t_one = timed_cli([*common, "--out", str(tmp / "out1"), str(one)], env)
        t_all = timed_cli([*common, "--out", str(tmp / "out"), str(src)], env)
        written = len(list((tmp / "out").glob("*.png")))
        if written != args.n:
            sys.exit(f"expected {args.n} masks, found {written}")

        # the network alone, in this process (same Predictor settings as the CLI's defaults)
        from napari_bloodseg.cli.common import load_model_or_fail
        from napari_bloodseg.inference import Predictor
        from napari_bloodseg.io import read_image

        net, card = load_model_or_fail(model)
        predictor = Predictor(net, card, device=args.device)
        images = [read_image(p, as_float=False) for p in sorted(src.iterdir())[:10]]
        predictor.predict(images[0])
        t = time.perf_counter()
        for im in images:
            predictor.predict(im)
        t_net = (time.perf_counter() - t) / len(images)

    marginal = (t_all - t_one) / (args.n - 1)
    fixed = t_one - marginal
    rows = [
        [f"folder of {args.n}", f"{t_all:.2f}", f"{t_all / args.n * 1000:.1f}"],
        ["one file", f"{t_one:.2f}", "-"],
        ["fixed cost (start, imports, model load)", f"{fixed:.2f}", "-"],
        ["marginal per file", "-", f"{marginal * 1000:.1f}"],
        ["  network (Predictor.predict, in process)", "-", f"{t_net * 1000:.1f}"],
        ["  overhead (read, write mask, loop)", "-", f"{(marginal - t_net) * 1000:.1f}"],
    ]
    print(f"torch threads in the CLI: {args.threads or torch.get_num_threads()}")
    print()
    print_table(["what", "seconds", "ms per file"], rows)


if __name__ == "__main__":
    main()

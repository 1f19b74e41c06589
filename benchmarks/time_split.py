"""Where the seconds of one big prediction go: the network, the input normalisation + softmax around it, and
everything else (tiling, blending, labels). One line per image size.

    .venv/bin/python benchmarks/time_split.py [--model wbc-unet] [--sides 4000 8000] [--threads 2] [--tile 1088]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_model, setup_process, smear_field  # noqa: E402

from napari_bloodseg.inference.defaults import DEFAULT_TILE_SIZE  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="wbc-unet")
    ap.add_argument("--sides", type=int, nargs="+", default=[4000, 8000])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tile", type=int, default=DEFAULT_TILE_SIZE)
    args = ap.parse_args()
    setup_process(args.threads)
    import torch

    from napari_bloodseg.inference import Predictor

    model, card, label = load_model(args.model)
    predictor = Predictor(model, card, device="cpu", tile_size=args.tile)
    net_s, forward_s = [0.0], [0.0]

    class TimedNet(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t0 = time.perf_counter()
            y = self.net(x)
            net_s[0] += time.perf_counter() - t0
            return y

    predictor._net = TimedNet(predictor._net)
    real_forward = predictor._forward

    def timed_forward(tiles, tta=False):
        t0 = time.perf_counter()
        y = real_forward(tiles, tta)
        forward_s[0] += time.perf_counter() - t0
        return y

    predictor._forward = timed_forward
    print(f"{label}, tile {args.tile}, {torch.get_num_threads()} threads")
    print("| image | total s | network s | normalise + softmax s | tiling, blending, labels s | network % |")
    print("|---|---|---|---|---|---|")
    for side in args.sides:
        image = smear_field(side, side, kind=card.schema if card else "wbc")
        predictor.predict(image[: args.tile, : args.tile])  # warm-up: oneDNN primitives
        net_s[0] = forward_s[0] = 0.0
        t0 = time.perf_counter()
        predictor.predict(image)
        total = time.perf_counter() - t0
        print(
            f"| {side}x{side} | {total:.2f} | {net_s[0]:.2f} | {forward_s[0] - net_s[0]:.2f} | "
            f"{total - forward_s[0]:.2f} | {100 * net_s[0] / total:.0f} |"
        )


if __name__ == "__main__":
    main()

"""Run the inference benchmarks one after the other, each printing its table (see benchmarks/README.md).

    .venv/bin/python benchmarks/run_all.py            # full: speed (0.25-64 MP), vs MONAI, CLI folder, tiled memory
    .venv/bin/python benchmarks/run_all.py --quick    # small settings, a few minutes: checks that everything runs
    .venv/bin/python benchmarks/run_all.py --threads 1 --only speed vs_monai
    make bench BENCH_ARGS="--quick"                   # installs the bench extra first

A benchmark that fails is reported and the others still run; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: name -> (full arguments, quick arguments)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "speed": ([], ["--quick", "--repeat", "1"]),
    "vs_monai": ([], ["--size", "1024", "--repeat", "1"]),
    "cli_folder": ([], ["--n", "10"]),
    "tiled_memory": ([], ["--sizes", "1024", "2048"]),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small settings for every benchmark")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads for every benchmark (0: default)")
    ap.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run these only")
    args = ap.parse_args()

    failed = []
    t_start = time.perf_counter()
    for name in args.only or BENCHMARKS:
        full, quick = BENCHMARKS[name]
        cmd = [sys.executable, str(HERE / f"{name}.py"), *(quick if args.quick else full)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        print(f"\n$ {' '.join(Path(c).name if i < 2 else c for i, c in enumerate(cmd))}", flush=True)
        t0 = time.perf_counter()
        if subprocess.run(cmd, cwd=HERE.parent).returncode != 0:
            failed.append(name)
        print(f"[{name}: {time.perf_counter() - t0:.0f} s]", flush=True)
    print(
        f"\nall benchmarks: {time.perf_counter() - t_start:.0f} s"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

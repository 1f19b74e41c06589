"""Keep freed memory in the process, so the big tensors that tiled inference and training allocate again and
again come back without page faults.

glibc hands blocks of ~32 MB and more (one 8-channel activation of a 1024² tile is exactly 32 MiB) straight to the
kernel with ``mmap`` and returns them with ``munmap`` when freed, and trims freed memory off the top of its heap:
every tile then faults in fresh zeroed pages for each of its activations. With mmap off and the heap left
untrimmed below 1 GB, the same pages are reused. ``speed.py --models wbc-unet --threads 2`` (2-core VM, idle)
went from 0.20-0.25 s/MP at 57-68 % of the matmul peak to 0.16-0.19 s/MP at 68-80 %, with the same peak RSS
(docs/performance.md); a U-Net training step from 0.270 to 0.241 s (batch assembly included). What PyTorch's CPU
tuning advice gets from jemalloc or tcmalloc, without preloading a library.

Process-wide, so only our own processes call it: the ``bloodseg`` CLI, the benchmarks and ``make napari``; the
plugin does not change the allocator of a napari that someone else started. Linux with glibc only (a no-op
returning False elsewhere).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
#: free memory at the top of the heap beyond this is still given back to the system
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Switch glibc's malloc to reuse freed big blocks (see the module docstring); True when it took effect."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))

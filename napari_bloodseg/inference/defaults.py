"""Tiling defaults, free of torch so the CLI and the widgets can show them without loading it."""

#: tile overlap in pixels: neighbouring tiles blend over this width, so seams vanish
DEFAULT_OVERLAP = 64
#: tile side in pixels: a 1024 px core plus the overlap, so a 2000 px field takes two tiles a side instead of three
#: (wbc-unet, 2 threads, session 6, two runs each: s/MP spread from 1 to 64 MP x1.11 / x1.08 against x1.17 / x1.17
#: at 1024; 4 MP 0.68-0.71 s against 0.74-0.75 s; peak RSS at 4 MP 1.0-1.3 GB against 0.64-0.68 GB)
DEFAULT_TILE_SIZE = 1024 + DEFAULT_OVERLAP

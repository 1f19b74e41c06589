"""Tiling defaults, free of torch so the CLI and the widgets can show them without loading it."""

#: tile overlap in pixels: neighbouring tiles blend over this width, so seams vanish
DEFAULT_OVERLAP = 64
#: tile side in pixels: a 1024 px core plus the overlap, so a 2000 px field takes two tiles a side instead of three
#: (wbc-unet, 2 threads, session 6, two runs each: s/MP spread from 1 to 64 MP x1.11 / x1.08 against x1.17 / x1.17
#: at 1024; 4 MP 0.68-0.71 s against 0.74-0.75 s; peak RSS at 4 MP 1.0-1.3 GB against 0.64-0.68 GB)
DEFAULT_TILE_SIZE = 1024 + DEFAULT_OVERLAP

#: the smallest tile worth running: a few cells of context (an 8 px tile gave an all-background mask)
MIN_TILE_SIZE = 64


def check_tiling(tile_size: int, overlap: int, batch_size: int) -> None:
    """ValueError for tilings that cannot work, before any image is read: tiles of 0 (whole image) or at least
    :data:`MIN_TILE_SIZE`, an overlap of 0 or more (the Predictor caps it at half a tile), at least one tile per
    pass."""
    if tile_size < 0 or 0 < tile_size < MIN_TILE_SIZE:
        raise ValueError(f"tile size must be 0 (whole image) or at least {MIN_TILE_SIZE} px, not {tile_size}")
    if overlap < 0:
        raise ValueError(f"tile overlap must be 0 or more, not {overlap}")
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1 tile per pass, not {batch_size}")

"""Label schemas: the one place that says what each label value means, on disk and on screen.

Label space (what networks, metrics and napari Labels layers use) is 0..n-1 per class. On disk the
experts' masks use grey levels (WBC 0/128/255, RBC 0/255), so conversion always goes through a schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Label value for "not annotated": excluded from losses and metrics (partial corrections).
IGNORE_INDEX = 255


@dataclass(frozen=True)
class LabelSchema:
    name: str
    class_names: tuple[str, ...]  # index = label value; index 0 is background
    grey_levels: tuple[int, ...]  # on-disk grey value per label value
    colors: tuple[tuple[int, int, int, int], ...]  # RGBA 0-255 per label value, for napari
    #: Derived classes reported by metrics, e.g. WBC "cell" = cytoplasm ∪ nucleus.
    composites: dict[str, tuple[int, ...]] = field(default_factory=dict)
    description: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def foreground(self) -> dict[str, tuple[int, ...]]:
        """Classes that metrics report: each non-background class, then the composites."""
        out = {name: (i,) for i, name in enumerate(self.class_names) if i > 0}
        for name, members in self.composites.items():
            out.setdefault(name, members)
        return out

    def to_disk(self, labels: np.ndarray) -> np.ndarray:
        """Label values → grey levels (uint8). IGNORE_INDEX pixels are written as background."""
        lut = np.zeros(256, dtype=np.uint8)
        lut[: self.num_classes] = self.grey_levels
        return lut[np.asarray(labels, dtype=np.uint8)]

    def from_disk(self, grey: np.ndarray) -> np.ndarray:
        """Grey levels → label values, snapping stray values (e.g. 2-50 in hand-made masks) to the nearest level."""
        levels = np.asarray(self.grey_levels, dtype=np.int32)
        lut = np.abs(np.arange(256)[:, None] - levels[None, :]).argmin(axis=1).astype(np.uint8)
        return lut[np.asarray(grey, dtype=np.uint8)]

    def napari_colors(self) -> dict[int | None, tuple[float, ...]]:
        """Colour dict for ``napari.utils.colormaps.DirectLabelColormap``."""
        colors: dict[int | None, tuple[float, ...]] = {
            i: tuple(c / 255 for c in rgba) for i, rgba in enumerate(self.colors)
        }
        colors[IGNORE_INDEX] = (0.0, 0.0, 0.0, 0.0)
        colors[None] = (1.0, 0.0, 1.0, 1.0)
        return colors


WBC = LabelSchema(
    name="wbc",
    class_names=("background", "cytoplasm", "nucleus"),
    grey_levels=(0, 128, 255),
    colors=((0, 0, 0, 0), (80, 200, 255, 255), (230, 60, 160, 255)),
    composites={"cell": (1, 2)},
    description="White blood cell crops: cytoplasm and nucleus (Zheng et al. 2018 convention 0/128/255).",
)

RBC = LabelSchema(
    name="rbc",
    class_names=("background", "cell"),
    grey_levels=(0, 255),
    colors=((0, 0, 0, 0), (255, 90, 60, 255)),
    description="Blood smear fields: every cell vs background (0/255).",
)

SCHEMAS: dict[str, LabelSchema] = {s.name: s for s in (WBC, RBC)}


def get_schema(name: str | LabelSchema) -> LabelSchema:
    if isinstance(name, LabelSchema):
        return name
    try:
        return SCHEMAS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown label schema {name!r}; choose one of {', '.join(SCHEMAS)}") from None


#: masks smaller than this (64 x 64) are WBC when any pixel is mid-grey, without the edge-band test
GUESS_MIN_PIXELS = 4096


def guess_schema(grey: np.ndarray) -> LabelSchema:
    """Guess the schema of an on-disk mask (a 2-D grey image): WBC when it has a mid-grey (about 128) *region*,
    RBC when it is black and white. Mid-grey pixels only along the black/white edges, as a JPEG or a resized 0/255
    mask has them, are not cytoplasm (such a red-cell mask was scored as WBC). Label space (values below 16, e.g.
    0/1/2): WBC when class 2 (nucleus) covers a real part of the foreground, not a few JPEG-bent pixels."""
    g = np.asarray(grey)
    if g.size == 0:
        return RBC
    top = int(g.max())
    if top < 16:
        n2 = int((g >= 2).sum())
        return WBC if n2 and n2 >= 0.1 * int((g >= 1).sum()) else RBC
    mid = (g > 64) & (g < 192)
    if not mid.any():
        return RBC
    if g.ndim != 2 or g.size < GUESS_MIN_PIXELS:  # too small for edge bands to be told from regions
        return WBC
    # mid pixels whose four neighbours are mid too: the inside of a cytoplasm region, not a 1-2 px edge band
    inner = mid[1:-1, 1:-1] & mid[:-2, 1:-1] & mid[2:, 1:-1] & mid[1:-1, :-2] & mid[1:-1, 2:]
    n_inner = int(inner.sum())
    return WBC if n_inner >= max(10, 0.005 * int((g > 64).sum())) else RBC

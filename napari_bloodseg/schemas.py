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


def guess_schema(grey: np.ndarray) -> LabelSchema:
    """Guess the schema of an on-disk mask: any mid-grey pixels (about 128) mean WBC, else RBC."""
    values = np.unique(np.asarray(grey))
    mid = values[(values > 64) & (values < 192)]
    if mid.size:
        return WBC
    if values.size and values.max() <= 2 and 2 in values:  # label-space WBC mask (0/1/2)
        return WBC
    return RBC

"""What the Segment widget's model list offers: trained models (shipped and the user's) and bare architectures.

Apart from the widget so the choice of a starting model for the images at hand reads, and is tested, on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from napari.layers import Image

    from ..models import ModelInfo


@dataclass
class ModelChoice:
    """One entry of the model combo: what to pass to ``get_model`` and what to show."""

    spec: str
    schema: str
    architecture: str
    source: str
    version: str

    @property
    def label(self) -> str:
        tag = "untrained" if self.source == "untrained" else f"v{self.version}, {self.source}"
        return f"{self.spec}  ({self.schema}, {self.architecture}, {tag})"


def model_choices() -> list[ModelChoice]:
    """Pretrained and user models first (newest files wins per name), then the bare architectures per schema."""
    from ..models import ARCHITECTURES, list_models
    from ..schemas import SCHEMAS

    out: list[ModelChoice] = []
    try:
        infos: list[ModelInfo] = list_models()
    except Exception:  # noqa: BLE001 - a broken model folder must not break the widget
        infos = []
    for info in infos:
        out.append(ModelChoice(info.name, info.schema, info.architecture, info.source, str(info.version)))
    for arch in ARCHITECTURES:
        for schema in SCHEMAS:
            spec = arch if schema == "wbc" else f"{arch}:{schema}"
            out.append(ModelChoice(spec, schema, arch, "untrained", "0"))
    return out


def default_choice(choices: list[ModelChoice], schema: str = "wbc") -> int:
    """Index the widget starts on for images of ``schema``: the trained model
    :func:`~napari_bloodseg.models.zoo.default_index` picks, else the first entry."""
    from ..models.zoo import default_index

    trained = [i for i, c in enumerate(choices) if c.source != "untrained"]
    pick = default_index([(choices[i].spec, choices[i].schema) for i in trained], schema)
    return trained[pick] if pick is not None else 0


def image_kind(layers: list[Image]) -> str | None:
    """``"rbc"`` when every layer is a smear field, ``"wbc"`` when every one is a single-cell crop, None when
    they are mixed or there are none (:func:`~napari_bloodseg.models.zoo.schema_for_image`)."""
    from ..models.zoo import schema_for_image

    kinds = set()
    for layer in layers:
        shape = layer.data[0].shape if getattr(layer, "multiscale", False) else layer.data.shape
        kinds.add(schema_for_image(*shape[-3:-1] if layer.rgb else shape[-2:]))
    return kinds.pop() if len(kinds) == 1 else None


def weights_stamp(choice: ModelChoice) -> float:
    """Modification time of a model's weights: a model re-trained or fine-tuned while napari runs is reloaded."""
    if choice.source == "untrained":
        return 0.0
    try:
        from ..models import find_model
        from ..models.files import model_paths

        info = find_model(choice.spec)
        weights, _ = model_paths(info.path) if info.path else (None, None)
        return weights.stat().st_mtime if weights is not None and weights.exists() else 0.0
    except (OSError, ValueError):
        return 0.0

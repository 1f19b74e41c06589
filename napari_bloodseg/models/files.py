"""Model files: weights in safetensors + a JSON model card beside them (``NAME.safetensors`` + ``NAME.json``).

Loading never unpickles: safetensors holds raw tensors only, and the card is plain JSON. The card records a
SHA-256 of the weights so a swapped or truncated weight file is caught with a clear message.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..io import strict_json
from ..io.atomic import atomic_write_group
from ..schemas import LabelSchema, get_schema
from .registry import build_model

if TYPE_CHECKING:  # torch loads with the weights, not with the cards (listing models stays fast)
    import torch

    from ._base import SegmentationNet

FORMAT_VERSION = 1
WEIGHTS_SUFFIX = ".safetensors"
CARD_SUFFIX = ".json"
#: the largest input scale a card may hold (a network fed crops enlarged 100 times sees one colour)
MAX_INPUT_SCALE = 100.0
#: ImageNet-free default: images are scaled to [0, 1] then centred per channel.
DEFAULT_NORMALISATION = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


class ModelFileError(ValueError):
    """A model file is missing, corrupt, or does not match its card."""


@dataclass
class ModelCard:
    name: str
    config: dict[str, Any]
    schema: str
    version: str = "1"
    normalisation: dict[str, list[float]] = field(default_factory=lambda: dict(DEFAULT_NORMALISATION))
    #: typical cell diameter in pixels in the training images (at their native resolution)
    cell_size_px: float | None = None
    #: resize factor the network expects on data like its training data (e.g. 0.5 for full-res RBC fields)
    input_scale: float = 1.0
    #: the training masks leave out cells cut by the image edge that show less than this fraction of a typical
    #: cell; predictions follow that convention (None: every cell is kept; see inference/edge_cells.py)
    edge_cell_min_fraction: float | None = None
    #: ``tta="auto"`` averages the 8 rotations/flips up to this many network-input pixels (None: the Predictor's
    #: default, single-cell crops); set where it was measured to pay, e.g. whole RBC fields
    tta_max_pixels: int | None = None
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    base_model: str | None = None
    description: str = ""
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    bloodseg_version: str = __version__
    format_version: int = FORMAT_VERSION
    weights_sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        return str(self.config["architecture"])

    @property
    def label_schema(self) -> LabelSchema:
        return get_schema(self.schema)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"architecture": self.architecture}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "card") -> ModelCard:
        """A card from its JSON; ModelFileError naming ``source`` for anything a run could not use. One bad card in
        the model folder made every command fail (a model list reads them all), and an imported card's scale of 0
        or NaN, or a 0 std, ran silently at another scale or gave garbage."""
        missing = [k for k in ("name", "config", "schema") if k not in d]
        if missing:
            raise ModelFileError(f"{source}: model card lacks {', '.join(missing)}")
        if not isinstance(d["config"], dict) or not isinstance(d["config"].get("architecture"), str):
            raise ModelFileError(f"{source}: model card config must be a mapping that names its architecture")
        fmt = d.get("format_version", 1)
        if not _is_int(fmt):
            raise ModelFileError(f"{source}: format_version must be a whole number, not {fmt!r}")
        if fmt > FORMAT_VERSION:
            raise ModelFileError(f"{source}: made by a newer napari-bloodseg (format {fmt}); upgrade")
        problem = _card_problem(d)
        if problem:
            raise ModelFileError(f"{source}: model card {problem}")
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["version"] = str(known.get("version", "1"))
        return cls(**known)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any, *, low: float = -math.inf, high: float = math.inf, above: bool = False) -> bool:
    """A finite JSON number in [low, high] (above: low itself excluded)."""
    if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
        return False
    return (v > low if above else v >= low) and v <= high


def _card_problem(d: dict[str, Any]) -> str | None:
    """What in a card's fields a run could not use, or None."""
    for key in ("name", "schema"):
        if not isinstance(d[key], str):
            return f"{key} must be a string, not {d[key]!r}"
    try:
        get_schema(d["schema"])
    except ValueError as exc:
        return str(exc)
    for key in ("training", "metrics", "extra"):
        if not isinstance(d.get(key, {}), dict):
            return f"{key} must be a mapping"
    for key in ("base_model", "description", "created", "bloodseg_version", "weights_sha256"):
        if d.get(key) is not None and not isinstance(d[key], str):
            return f"{key} must be a string"
    if not isinstance(d.get("version", "1"), str | int) or isinstance(d.get("version"), bool):
        return "version must be a string"
    norm = d.get("normalisation", DEFAULT_NORMALISATION)
    channels = d["config"].get("in_channels", 3)
    if not isinstance(norm, dict) or not all(
        isinstance(norm.get(k), list) and len(norm[k]) == channels and all(_is_number(x) for x in norm[k])
        for k in ("mean", "std")
    ):
        return f"normalisation must give a number per input channel ({channels}) for mean and std"
    if not all(x > 0 for x in norm["std"]):
        return "normalisation std must be above 0"
    if not _is_number(d.get("input_scale", 1.0), low=0, high=MAX_INPUT_SCALE, above=True):
        return f"input_scale must be a number above 0 (at most {MAX_INPUT_SCALE:g}), not {d.get('input_scale')!r}"
    if d.get("cell_size_px") is not None and not _is_number(d["cell_size_px"], low=0):  # 0: unknown (older cards)
        return f"cell_size_px must be a number of 0 (unknown) or more, not {d['cell_size_px']!r}"
    if d.get("edge_cell_min_fraction") is not None and not _is_number(d["edge_cell_min_fraction"], low=0, high=1):
        return f"edge_cell_min_fraction must be between 0 and 1, not {d['edge_cell_min_fraction']!r}"
    if d.get("tta_max_pixels") is not None and not (_is_int(d["tta_max_pixels"]) and d["tta_max_pixels"] >= 0):
        return f"tta_max_pixels must be a whole number of pixels, not {d['tta_max_pixels']!r}"
    return None


def model_paths(path: str | Path) -> tuple[Path, Path]:
    """``(weights, card)`` for a path given as either file or the common stem."""
    p = Path(path)
    if p.suffix in (WEIGHTS_SUFFIX, CARD_SUFFIX):
        p = p.with_suffix("")
    return p.with_name(p.name + WEIGHTS_SUFFIX), p.with_name(p.name + CARD_SUFFIX)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(
    model: SegmentationNet, card: ModelCard, path: str | Path, *, overwrite: bool = False
) -> tuple[Path, Path]:
    """Write weights and card as one atomic group (:func:`~napari_bloodseg.io.atomic.atomic_write_group`): a
    reader sees the old model or the new one, never new weights beside the old card."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    weights, card_path = model_paths(path)
    if not overwrite:
        for p in (weights, card_path):
            if p.exists():
                raise FileExistsError(f"{p} exists; choose another name or pass overwrite=True")
    card.config = dict(model.config)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}

    def write_weights(tmp: Path) -> None:
        try:
            save_file(state, str(tmp), metadata={"format": "pt"})
        except SafetensorError as exc:  # e.g. "No space left on device (os error 28)": an OSError for callers
            raise OSError(f"{weights}: {exc}") from None
        card.weights_sha256 = _sha256(tmp)

    def write_card(tmp: Path) -> None:
        tmp.write_text(strict_json.dumps(card.to_dict(), indent=2, sort_keys=False) + "\n")  # no NaN in a card

    # both files complete before either replaces anything: an interrupt or a full disk leaves the old model whole
    atomic_write_group([(weights, write_weights), (card_path, write_card)], overwrite=overwrite)
    return weights, card_path


def read_card(path: str | Path) -> ModelCard:
    _, card_path = model_paths(path)
    if not card_path.is_file():
        raise ModelFileError(f"{card_path}: model card not found")
    try:
        data = json.loads(card_path.read_text())
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad UTF-8, bad JSON, a 5000-digit number
        raise ModelFileError(f"{card_path}: not a valid JSON model card ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{card_path}: not a valid JSON model card")
    return ModelCard.from_dict(data, source=str(card_path))


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[SegmentationNet, ModelCard]:
    """Load a model (eval mode) and its card; every failure is a :class:`ModelFileError` saying which file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights, _ = model_paths(path)
    card = read_card(path)
    if not weights.is_file():
        raise ModelFileError(f"{weights}: weights file not found (its card exists)")
    if card.weights_sha256 and _sha256(weights) != card.weights_sha256:
        raise ModelFileError(f"{weights}: weights do not match their card (changed or corrupt file)")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{weights}: corrupt safetensors file ({exc})") from None
    try:
        model = build_model(card.architecture, **card.config)
        model.load_state_dict(state, strict=True)
    except (ValueError, RuntimeError, TypeError) as exc:  # TypeError: a config key the architecture does not take
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        detail = next((line for line in lines[1:] if not line.startswith("Error(s)")), lines[0] if lines else "")
        detail = detail if len(detail) <= 160 else detail[:157] + "..."  # "Missing key(s): ..." lists every key
        raise ModelFileError(
            f"{weights}: weights do not fit a {card.architecture} with {card.config} ({detail.rstrip('.')})"
        ) from None
    try:
        schema = card.label_schema
    except ValueError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    outputs = int(model.head.out_channels)  # every architecture ends in a 1x1 conv named head
    if outputs != schema.num_classes:
        raise ModelFileError(
            f"{path}: the card says {schema.name} ({schema.num_classes} classes) but the weights have {outputs} "
            "outputs: the card was edited or belongs to another model"
        )
    return model.to(device).eval(), card

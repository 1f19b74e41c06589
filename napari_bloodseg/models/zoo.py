"""Finding models by name: shipped ones (in the package), user ones (user data dir), paths, bare architectures.

The user model directory is the platform's user data dir (``BLOODSEG_MODEL_DIR`` overrides it). Loaded models
are cached per file and modification time, so the widgets and batch runs never reload weights per image.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from ..schemas import get_schema
from .files import CARD_SUFFIX, WEIGHTS_SUFFIX, ModelCard, ModelFileError, load_model, model_paths, read_card
from .registry import ARCHITECTURES, build_model

if TYPE_CHECKING:
    from ._base import SegmentationNet

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
#: the model the widgets start on per schema: the most accurate shipped one (docs/benchmarks.md); WBC first, for
#: the single-cell crops most users bring
DEFAULT_MODELS = {"wbc": "wbc-unet", "rbc": "rbc-deconvnet"}
DEFAULT_MODEL = DEFAULT_MODELS["wbc"]
#: Images of at least this many pixels are taken for smear fields (red cells, the RBC models' data: 1.9-2.7 MP),
#: smaller ones for single-cell crops (WBC: Dataset 1 ~0.01 MP, Dataset 2 0.09 MP)
FIELD_MIN_PIXELS = 500_000


def schema_for_image(height: int, width: int) -> str:
    """The schema whose models were trained on images like this one: ``"rbc"`` for a smear field, else ``"wbc"``."""
    return "rbc" if height * width >= FIELD_MIN_PIXELS else "wbc"


def default_index(models: Sequence[tuple[str, str]], schema: str = "wbc") -> int | None:
    """Which of the trained ``(name, schema)`` models a widget starts on: the schema's entry in
    :data:`DEFAULT_MODELS`, else its first model, else :data:`DEFAULT_MODEL`, else the first WBC model, else the
    first one; None for an empty list. One rule for every widget: the lists are alphabetical, so without it
    ``rbc-deconvnet`` came first for WBC crops."""
    rules = (
        lambda n, s: n == DEFAULT_MODELS.get(schema),
        lambda n, s: s == schema,
        lambda n, s: n == DEFAULT_MODEL,
        lambda n, s: s == "wbc",
        lambda n, s: True,
    )
    for keep in rules:
        for i, (name, model_schema) in enumerate(models):
            if keep(name, model_schema):
                return i
    return None


class UntrainedModelWarning(UserWarning):
    """A bare architecture was asked for: its output means nothing until it is trained."""


def user_model_dir() -> Path:
    env = os.environ.get("BLOODSEG_MODEL_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("napari-bloodseg", appauthor=False)) / "models"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    schema: str
    architecture: str
    source: str  # "shipped" | "user" | "file" | "untrained"
    path: Path | None
    version: str = "1"

    def line(self) -> str:
        return f"{self.name}\t{self.schema}\t{self.architecture}\t{self.source}\tv{self.version}\t{self.path or '-'}"


@dataclass(frozen=True)
class SkippedCard:
    """A model card file in a model folder that is not a usable model, and why: listed as a note, never as a
    model (a card without weights was listed as usable; a broken one vanished from the list without a word)."""

    path: Path
    reason: str

    def note(self) -> str:
        return f"skipped {self.path}: {self.reason}"


def _scan(folder: Path, source: str) -> tuple[list[ModelInfo], list[SkippedCard]]:
    """The usable models in ``folder`` (a card and its weights), and the card files that are not."""
    out: list[ModelInfo] = []
    skipped: list[SkippedCard] = []
    if not folder.is_dir():
        return out, skipped
    for card_path in sorted(folder.glob(f"*{CARD_SUFFIX}")):
        if card_path.name.startswith("."):  # a temporary file of an interrupted save, or a macOS ._ file
            continue
        try:
            card = read_card(card_path)
        except ModelFileError as exc:
            reason = str(exc).removeprefix(f"{card_path}: ")
            skipped.append(SkippedCard(card_path, f"not a usable model card ({reason})"))
            continue
        weights, _ = model_paths(card_path)
        if not weights.is_file():
            skipped.append(
                SkippedCard(card_path, f"no weights file beside it ({weights.name}): put it there or delete the card")
            )
            continue
        out.append(
            ModelInfo(card_path.stem, card.schema, card.architecture, source, card_path.with_suffix(""), card.version)
        )
    return out, skipped


def list_models() -> list[ModelInfo]:
    """Shipped models first, then the user's; a user model never hides a shipped one of the same name. Card files
    that are not usable models are left out: :func:`skipped_cards` says which and why."""
    shipped = _scan(SHIPPED_DIR, "shipped")[0]
    names = {m.name for m in shipped}
    return shipped + [m for m in _scan(user_model_dir(), "user")[0] if m.name not in names]


def skipped_cards() -> list[SkippedCard]:
    """The card files in the shipped and user model folders that :func:`list_models` leaves out, with why."""
    return _scan(SHIPPED_DIR, "shipped")[1] + _scan(user_model_dir(), "user")[1]


def all_cardless_weights() -> list[Path]:
    """Every weights file in the user model folder with no card beside it: a save interrupted between its two
    renames, or a copy by hand. The hidden temporary files of a save in progress are not among them."""
    folder = user_model_dir()
    if not folder.is_dir():
        return []
    return [
        w
        for w in sorted(folder.glob(f"*{WEIGHTS_SUFFIX}"))
        if not w.name.startswith(".") and not model_paths(w)[1].exists()
    ]


def cardless_weights(name: str) -> Path | None:
    """Weights in the user model folder called ``name`` (its exact case first, then any case) with no card beside
    them, or None. No list of models shows them (the card says what they are)."""
    found = [w for w in all_cardless_weights() if w.name[: -len(WEIGHTS_SUFFIX)].casefold() == name.casefold()]
    exact = [w for w in found if w.name[: -len(WEIGHTS_SUFFIX)] == name]
    return (exact or found or [None])[0]


def find_model(spec: str) -> ModelInfo:
    """Resolve a model name (its exact case first, then any case when only one model has it: ``--model WBC-UNet``),
    a path to a model file, or a bare architecture name."""
    models = list_models()
    if not spec.strip() or Path(spec).expanduser().name in ("", ".", ".."):
        # an unset variable in a script (--model "$MODEL"), or a folder: the file lookup below said only
        # "PosixPath('.') has an empty name"
        what = "empty model name" if not spec.strip() else f"{spec!r} is a folder, not a model"
        raise ModelFileError(f"{what}: give {_what_to_give(models)}")
    for info in models:
        if info.name == spec:
            return info
    if spec in ARCHITECTURES:  # "unet" is the architecture, not an older user model named "Unet"
        return ModelInfo(spec, "wbc", spec, "untrained", None)
    same_letters = [info for info in models if info.name.casefold() == spec.casefold()]
    if len(same_letters) == 1:
        return same_letters[0]
    if same_letters:  # made on a case-sensitive disk before such names were refused
        raise ModelFileError(f"{spec!r} could be any of {', '.join(m.name for m in same_letters)}: type it exactly")
    p = Path(spec).expanduser()
    weights, card = model_paths(p)
    if card.is_file() or weights.is_file():
        c = read_card(p)
        return ModelInfo(card.stem, c.schema, c.architecture, "file", card.with_suffix(""), c.version)
    arch, _, schema = spec.partition(":")
    if arch.lower() in ARCHITECTURES:
        return ModelInfo(spec, get_schema(schema or "wbc").name, arch.lower(), "untrained", None)
    if p.is_dir():
        raise ModelFileError(f"{spec!r} is a folder, not a model: give {_what_to_give(models)}")
    unusable = [c for c in skipped_cards() if c.path.stem.casefold() == spec.casefold()]
    if unusable:  # a damaged model asked for by name: say what is wrong with it, not that it is unknown
        raise ModelFileError(f"model {spec!r} cannot be used: {unusable[0].path}: {unusable[0].reason}")
    if (weights := cardless_weights(spec)) is not None:  # "unknown model" sent the user looking for a typo
        raise ModelFileError(
            f"model {spec!r} cannot be used: {weights} has no card beside it (an interrupted save?); delete it"
        )
    known = ", ".join(m.name for m in models) or "none installed"
    raise ModelFileError(
        f"unknown model {spec!r}: not a model name ({known}), a model file, or an architecture "
        f"({', '.join(ARCHITECTURES)})"
    )


def _what_to_give(models: Sequence[ModelInfo]) -> str:
    """What ``find_model`` takes, with the names there are (``bloodseg models`` lists them with their details)."""
    known = ", ".join(m.name for m in models) or "none installed"
    return (
        f"a model name ({known}; `bloodseg models` lists them), a model file, or an architecture "
        f"({', '.join(ARCHITECTURES)})"
    )


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> tuple[SegmentationNet, ModelCard]:
    return load_model(path)


def get_model(spec: str | ModelInfo, *, width: int = 16, seed: int = 0) -> tuple[SegmentationNet, ModelCard]:
    """Model + card for a name/path/architecture (``unet`` or ``unet:rbc``), on CPU in eval mode.

    Loaded weights are cached and shared: callers that train must deep-copy first.
    """
    info = spec if isinstance(spec, ModelInfo) else find_model(spec)
    if info.source == "untrained":
        import torch

        warnings.warn(
            f"{info.architecture} is untrained (random weights): its output is meaningless until trained",
            UntrainedModelWarning,
            stacklevel=2,
        )
        torch.manual_seed(seed)
        schema = get_schema(info.schema)
        model = build_model(info.architecture, num_classes=schema.num_classes, width=width).eval()
        card = ModelCard(
            name=info.architecture,
            config=model.config,
            schema=schema.name,
            version="0",
            description="untrained network",
        )
        return model, card
    assert info.path is not None
    weights, _ = model_paths(info.path)
    mtime = weights.stat().st_mtime if weights.exists() else 0.0
    return _load_cached(str(info.path), mtime)

"""User model management: rename, delete, export, import. Shipped models are read-only."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from ..io import strict_json
from ..io.atomic import atomic_write_group, signals_held
from .files import CARD_SUFFIX, WEIGHTS_SUFFIX, ModelFileError, load_model, model_paths
from .registry import ARCHITECTURES
from .zoo import SHIPPED_DIR, cardless_weights, find_model, user_model_dir

#: a model's name is its file name and what users type after ``--model``: portable characters only
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
#: file systems allow 255 bytes a name; the weights suffix and the atomic write's temporary prefix need room too
MAX_NAME_LENGTH = 100


def check_model_name(name: str) -> str:
    """``name`` if a new user model may take it; ModelFileError saying why not. A name must stay reachable: one
    with a path in it landed outside the model folder, and one that is a shipped model's or an architecture's was
    shadowed by that model (``--model wbc-unet`` kept loading the shipped one) or shadowed it."""
    if not MODEL_NAME.match(name) or name.lower().endswith((WEIGHTS_SUFFIX, CARD_SUFFIX)):
        raise ModelFileError(
            f"{name!r} is not a usable model name: letters, digits, '.', '_', '-' and '+' only, starting with a "
            "letter or digit, without a file suffix"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise ModelFileError(f"a model name may have at most {MAX_NAME_LENGTH} characters; this one has {len(name)}")
    if name.lower() in ARCHITECTURES:
        raise ModelFileError(f"{name!r} names the untrained {name.lower()} architecture: choose another name")
    shipped = {p.stem.lower() for p in SHIPPED_DIR.glob(f"*{CARD_SUFFIX}")}
    if name.lower() in shipped:
        raise ModelFileError(f"{name!r} is a shipped model's name: choose another name")
    return name


def _user_model(name: str) -> Path:
    info = find_model(name)
    if info.source == "shipped":
        raise ModelFileError(f"{name} is a shipped model and cannot be changed; export it and import a copy")
    in_folder = info.path is not None and info.path.parent.resolve() == user_model_dir().resolve()
    if info.source == "file" and in_folder:  # named by its path: the same user model
        return info.path
    if info.source != "user" or info.path is None:
        raise ModelFileError(f"{name} is not a model in the user model folder ({user_model_dir()})")
    return info.path


def name_clash(folder: Path, name: str, *, ignore: str | None = None) -> str | None:
    """The model in ``folder`` that a new model ``name`` would collide with (``ignore``: a model being renamed), or
    None. Names that differ only in case collide: they are one file on macOS and Windows, and one model to a user
    typing them (``--model MyNet`` finds ``mynet``)."""
    if not folder.is_dir():
        return None
    key, skip = name.casefold(), (ignore or "").casefold()
    for entry in folder.iterdir():
        for suffix in (WEIGHTS_SUFFIX, CARD_SUFFIX):
            stem = entry.name[: -len(suffix)] if entry.name.endswith(suffix) else None
            if stem and not stem.startswith(".") and stem.casefold() == key and stem.casefold() != skip:
                return stem
    return None


def next_free_name(base_name: str) -> str:
    """``<base>-ft1``, ``-ft2`` …: the first name no user model has, for a model fine-tuned from ``base_name``."""
    folder = user_model_dir()
    i = 1
    while name_clash(folder, f"{base_name}-ft{i}") is not None:
        i += 1
    return f"{base_name}-ft{i}"


def taken_message(folder: Path, name: str, clash: str) -> str:
    """Why ``name`` cannot be a new model's name in ``folder``, given the model it clashes with."""
    weights, card = model_paths(folder / clash)
    if not card.exists():  # no model to list or load: weights left by a save killed between its two renames
        return f"{weights} exists without its card (an interrupted save?): delete it or choose another name"
    if clash == name:
        return f"a model named {name!r} exists already: choose another name"
    return f"a model named {clash!r} exists already and {name!r} differs from it only in case: choose another name"


def _check_free(target: Path, *, ignore: str | None = None) -> None:
    """A user model's files free to take (shipped names were refused by :func:`check_model_name`)."""
    clash = name_clash(target.parent, target.name, ignore=ignore)
    if clash is not None:
        raise ModelFileError(taken_message(target.parent, target.name, clash))


def rename_model(old: str, new: str) -> Path:
    src = _user_model(old)
    dst = src.with_name(check_model_name(new))
    if dst.name == src.name:
        return src
    _check_free(dst, ignore=src.name)  # a change of case only (mynet -> MyNet) is the same model's name
    (sw, sc), (dw, dc) = model_paths(src), model_paths(dst)
    if _same_file(sw, dw):  # a change of case on a case-insensitive disk: the new card would be the old card's
        return rename_model(rename_model(src.name, f"{src.name}.renaming").name, new)  # file, then removed as it
    card = json.loads(sc.read_text())
    card["name"] = new
    # the new card is written in full first (a full disk stops here, the model untouched); then the weights move,
    # the card lands and the old card goes, with interrupts held back: the model is under one name or the other
    text = strict_json.dumps(card, indent=2) + "\n"
    atomic_write_group([(dc, lambda tmp: tmp.write_text(text))], moves=[(sw, dw)], remove=[sc])
    return dst


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``b`` is ``a`` under another name (macOS and Windows disks ignore case)."""
    return b.exists() and os.path.samefile(a, b)


def delete_model(name: str) -> None:
    """The card goes first (the model is no longer listed), then the weights, with interrupts held back: never a
    card left without its weights. A user card that is no usable model (its weights gone, or unreadable) is deleted
    too when named: the list names it as skipped, and deleting it was the only way out besides the file manager.
    So are weights left without their card. The name's exact case decides first: ``delete MINE`` with a usable
    ``mine`` and card-less ``MINE.safetensors`` beside it deleted ``mine``."""
    path = None if _usable_exactly(name) else _damaged_user_model(name, exact=True)
    if path is None:
        try:
            path = _user_model(name)
        except ModelFileError:
            path = _damaged_user_model(name, exact=False)
            if path is None:
                raise
    weights, card = model_paths(path)
    with signals_held():
        card.unlink(missing_ok=True)
        weights.unlink(missing_ok=True)


def _usable_exactly(name: str) -> bool:
    """A listed model is called ``name`` in exactly this case."""
    from .zoo import list_models

    return any(info.name == name for info in list_models())


def _damaged_user_model(name: str, *, exact: bool) -> Path | None:
    """The path, without suffix, of a user card that is no usable model (:func:`~.zoo.skipped_cards`) or of weights
    without their card, called ``name`` (in exactly this case, or in any case), or None."""
    from .zoo import skipped_cards

    def same(stem: str) -> bool:
        return stem == name if exact else stem.casefold() == name.casefold()

    folder = user_model_dir().resolve()
    for skipped in skipped_cards():
        stem = skipped.path.name[: -len(CARD_SUFFIX)]
        if skipped.path.parent.resolve() == folder and same(stem):
            return skipped.path.with_name(stem)
    weights = cardless_weights(name)
    if weights is not None and same(weights.name[: -len(WEIGHTS_SUFFIX)]):
        return weights.with_name(weights.name[: -len(WEIGHTS_SUFFIX)])
    return None


def export_model(name: str, folder: str | Path) -> Path:
    """Copy a model's safetensors + card to ``folder`` (any model, shipped ones included)."""
    info = find_model(name)
    if info.path is None:
        raise ModelFileError(f"{name} is an untrained architecture: nothing to export")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder: name the folder to export into")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / info.path.name
    if any(p.exists() for p in model_paths(target)):
        raise FileExistsError(f"{target} exists; choose another folder")
    (src_w, src_c), (dst_w, dst_c) = model_paths(info.path), model_paths(target)
    _copy_model(src_w, dst_w, dst_c, src_c.read_text())
    return target


def _copy_model(src_weights: Path, dst_weights: Path, dst_card: Path, card_text: str) -> None:
    """Weights and card written as one group: an interrupted copy or a full disk leaves no half model (orphan
    weights blocked every retry: 'a model named ... exists already')."""
    atomic_write_group(
        [
            (dst_weights, lambda tmp: shutil.copyfile(src_weights, tmp)),
            (dst_card, lambda tmp: tmp.write_text(card_text)),
        ]
    )


def import_model(path: str | Path, name: str | None = None) -> Path:
    """Check a model file loads (never unpickling), then copy it into the user model folder as ``name`` (default:
    the file's name), which its card then says too."""
    if not any(p.is_file() for p in model_paths(path)):  # e.g. an image: not "<image>.json: card not found"
        raise ModelFileError(f"{path}: not a model file (NAME{WEIGHTS_SUFFIX} with NAME{CARD_SUFFIX} beside it)")
    load_model(path)  # raises ModelFileError with the reason if it is broken
    target = user_model_dir() / check_model_name(name or Path(model_paths(path)[1]).stem)
    _check_free(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    src_w, src_c = model_paths(path)
    dst_w, dst_c = model_paths(target)
    data = json.loads(src_c.read_text())
    data["name"] = target.name
    _copy_model(src_w, dst_w, dst_c, strict_json.dumps(data, indent=2) + "\n")
    return target

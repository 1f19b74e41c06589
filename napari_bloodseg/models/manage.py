"""User model management: rename, delete, export, import. Shipped models are read-only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .files import ModelFileError, load_model, model_paths, read_card
from .zoo import SHIPPED_DIR, find_model, user_model_dir


def _user_model(name: str) -> Path:
    info = find_model(name)
    if info.source == "shipped":
        raise ModelFileError(f"{name} is a shipped model and cannot be changed; export it and import a copy")
    if info.source != "user" or info.path is None:
        raise ModelFileError(f"{name} is not a model in the user model folder ({user_model_dir()})")
    return info.path


def _check_free(target: Path) -> None:
    if any(p.exists() for p in model_paths(target)) or model_paths(SHIPPED_DIR / target.name)[1].exists():
        raise ModelFileError(f"a model named {target.name!r} exists already")


def rename_model(old: str, new: str) -> Path:
    src = _user_model(old)
    dst = src.with_name(new)
    _check_free(dst)
    (sw, sc), (dw, dc) = model_paths(src), model_paths(dst)
    card = json.loads(sc.read_text())
    card["name"] = new
    shutil.move(sw, dw)
    dc.write_text(json.dumps(card, indent=2) + "\n")
    sc.unlink()
    return dst


def delete_model(name: str) -> None:
    for p in model_paths(_user_model(name)):
        p.unlink(missing_ok=True)


def export_model(name: str, folder: str | Path) -> Path:
    """Copy a model's safetensors + card to ``folder`` (any model, shipped ones included)."""
    info = find_model(name)
    if info.path is None:
        raise ModelFileError(f"{name} is an untrained architecture: nothing to export")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / info.path.name
    if any(p.exists() for p in model_paths(target)):
        raise FileExistsError(f"{target} exists; choose another folder")
    for src, dst in zip(model_paths(info.path), model_paths(target), strict=True):
        shutil.copy2(src, dst)
    return target


def import_model(path: str | Path, name: str | None = None) -> Path:
    """Check a model file loads (never unpickling), then copy it into the user model folder."""
    load_model(path)  # raises ModelFileError with the reason if it is broken
    card = read_card(path)
    target = user_model_dir() / (name or Path(model_paths(path)[1]).stem)
    _check_free(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    src_w, src_c = model_paths(path)
    dst_w, dst_c = model_paths(target)
    shutil.copy2(src_w, dst_w)
    data = json.loads(src_c.read_text())
    data["name"] = target.name if name else card.name
    dst_c.write_text(json.dumps(data, indent=2) + "\n")
    return target

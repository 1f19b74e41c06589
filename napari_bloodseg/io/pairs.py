"""Pair images with their expert masks by file stem, in the layouts the public datasets use."""

from __future__ import annotations

from pathlib import Path

from .images import IMAGE_SUFFIXES, hidden

#: in a masks/ folder anything readable is a mask, JPEG too (lossy, but the grey levels survive it)
MASK_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg")
_MASK_TAGS = ("_mask", "_masks", "_label", "_labels", "_gt", "-mask", "_seg")
_MASK_DIRS = ("masks", "mask", "labels", "label", "gt", "groundtruth", "annotations")
_IMAGE_DIRS = ("images", "image", "imgs", "img")


def _key(stem: str) -> str:
    s = stem.lower()
    for tag in _MASK_TAGS:
        if s.endswith(tag):
            return s[: -len(tag)]
    return s


def _subdir(folder: Path, names: tuple[str, ...]) -> Path | None:
    for child in folder.iterdir() if folder.is_dir() else ():
        if child.is_dir() and child.name.lower() in names:
            return child
    return None


def find_pairs(folder: str | Path, mask_folder: str | Path | None = None) -> list[tuple[Path, Path | None]]:
    """Return ``(image, mask or None)`` pairs sorted by name.

    Layouts: ``images/`` + ``masks/`` subfolders; an explicit ``mask_folder``; or one folder holding
    ``NNN.bmp``/``NNN.jpg`` images with ``NNN.png`` masks (Zheng et al. Dataset 1, the RBC fields). Masks may
    also be tagged (``NNN_mask.png``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    img_dir = folder
    if mask_folder is None:
        sub_masks = _subdir(folder, _MASK_DIRS)
        if sub_masks is not None:
            mask_folder = sub_masks
            img_dir = _subdir(folder, _IMAGE_DIRS) or folder
    files = sorted(p for p in img_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not hidden(p))
    if mask_folder is not None:
        mask_folder = Path(mask_folder)
        found = sorted(p for p in mask_folder.iterdir() if p.suffix.lower() in MASK_SUFFIXES and not hidden(p))
        masks = {_key(p.stem): p for p in found}
        return [(p, masks.get(_key(p.stem))) for p in files]

    by_key: dict[str, list[Path]] = {}
    for p in files:
        by_key.setdefault(_key(p.stem), []).append(p)
    pairs: list[tuple[Path, Path | None]] = []
    for _key_, group in sorted(by_key.items()):
        tagged = [p for p in group if p.stem.lower() != _key_]
        plain = [p for p in group if p.stem.lower() == _key_]
        if tagged:  # NNN.png + NNN_mask.png
            images, masks = plain, tagged
        else:  # NNN.bmp + NNN.png: the PNG is the mask when a non-PNG image shares its stem
            masks = [p for p in plain if p.suffix.lower() == ".png"] if len(plain) > 1 else []
            images = [p for p in plain if p not in masks]
        for img in images:
            pairs.append((img, masks[0] if masks else None))
    return pairs

"""Pair images with their expert masks by file stem, in the layouts the public datasets use."""

from __future__ import annotations

import os
from collections.abc import Iterable
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


class LayoutError(ValueError):
    """A folder whose expert masks cannot be told apart: two mask folders, or two masks for one image. Taking one
    by listing order scored a model against its own predictions (a ``labels/`` written beside ``masks/``)."""


def _subdir(folder: Path, names: tuple[str, ...]) -> Path | None:
    found = mask_dirs(folder) if names == _MASK_DIRS else _subdirs(folder, names)
    if len(found) > 1:
        kind = "expert masks" if names == _MASK_DIRS else "images"
        listed = " and ".join(f"{p.name}/" for p in found)
        raise LayoutError(
            f"{folder} has {listed}: which holds the {kind} is not clear; move or rename the others "
            "(or name the folder where a command takes one, e.g. evaluate --masks)"
        )
    return found[0] if found else None


def _subdirs(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """The subfolders of ``folder`` named as in ``names`` (case aside), sorted."""
    children = sorted(folder.iterdir()) if folder.is_dir() else []
    return [c for c in children if c.is_dir() and c.name.lower() in names]


def mask_dirs(folder: str | Path) -> list[Path]:
    """Every subfolder of ``folder`` named like a masks folder (``masks/``, ``labels/``, ``gt/`` ...) that holds a
    mask file, sorted: an ``annotations/`` of COCO JSON or a ``labels/`` of YOLO text beside ``masks/`` is no
    second masks folder."""
    return [d for d in _subdirs(Path(folder), _MASK_DIRS) if any(_is_mask_file(p) for p in d.iterdir())]


def _is_mask_file(path: Path) -> bool:
    return path.suffix.lower() in MASK_SUFFIXES and not hidden(path) and path.is_file()


def dataset_files(folder: str | Path) -> list[Path]:
    """Every image or mask file of a dataset folder, its image and mask subfolders included, pairs or not: what
    must not be written over when :func:`find_pairs` cannot tell its masks apart."""
    folder = Path(folder)
    suffixes = IMAGE_SUFFIXES + MASK_SUFFIXES
    out: list[Path] = []
    for d in [folder, *mask_dirs(folder), *_subdirs(folder, _IMAGE_DIRS)]:
        out += [p for p in sorted(d.iterdir()) if p.is_file() and p.suffix.lower() in suffixes and not hidden(p)]
    return out


def find_pairs(folder: str | Path, mask_folder: str | Path | None = None) -> list[tuple[Path, Path | None]]:
    """Return ``(image, mask or None)`` pairs sorted by name.

    Layouts: ``images/`` + ``masks/`` subfolders; an explicit ``mask_folder``; or one folder holding
    ``NNN.bmp``/``NNN.jpg`` images with ``NNN.png`` masks (Zheng et al. Dataset 1, the RBC fields). Masks may
    also be tagged (``NNN_mask.png``). Raises :class:`LayoutError` when the masks are ambiguous: two mask
    folders (``masks/`` and ``labels/``), or two masks of one image (``001.png`` and ``001_mask.png`` beside
    ``001.bmp``; beside no other image, ``001.png`` is the image of ``001_mask.png``).
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
        masks: dict[str, list[Path]] = {}
        for p in found:
            masks.setdefault(_key(p.stem), []).append(p)
        _refuse_two_masks(mask_folder, [masks.get(_key(p.stem), []) for p in files])
        return [(p, masks[_key(p.stem)][0] if _key(p.stem) in masks else None) for p in files]

    by_key: dict[str, list[Path]] = {}
    for p in files:
        by_key.setdefault(_key(p.stem), []).append(p)
    pairs: list[tuple[Path, Path | None]] = []
    twice: list[list[Path]] = []
    for _key_, group in sorted(by_key.items()):
        tagged = [p for p in group if p.stem.lower() != _key_]  # NNN_mask.png
        plain = [p for p in group if p.stem.lower() == _key_]
        # NNN.bmp + NNN.png: the PNG is the mask when a non-PNG image shares its stem, with or without a tagged
        # mask beside it (then the image has two masks: taking NNN.png as a second image trained on the mask)
        plain_masks = [p for p in plain if p.suffix.lower() == ".png"] if len(plain) > 1 else []
        images = [p for p in plain if p not in plain_masks]
        masks_ = plain_masks + tagged
        if images:
            twice.append(masks_)
        for img in images:
            pairs.append((img, masks_[0] if masks_ else None))
    _refuse_two_masks(folder, twice)
    return pairs


def _refuse_two_masks(folder: Path, groups: list[list[Path]]) -> None:
    """Two masks for one image (``001.png`` and ``001-mask.png``): neither is taken, both are named."""
    clashes = [g for g in groups if len(g) > 1]
    if clashes:
        named = "; ".join(", ".join(p.name for p in g) for g in clashes[:3]) + (" ..." if len(clashes) > 3 else "")
        raise LayoutError(f"{folder}: more than one mask for one image ({named}): keep one of each")


def dataset_folders(image_folders: Iterable[str | Path]) -> set[Path]:
    """The folders whose pairs hold the images in ``image_folders``: each folder, and the one above an ``images/``
    folder (its ``masks/`` beside it hold the expert masks)."""
    folders = {real_path(f) for f in image_folders}
    return folders | {f.parent for f in folders if f.name.lower() in _IMAGE_DIRS}


def dataset_protected(folders: Iterable[Path]) -> dict[Path, str]:
    """The images and expert masks of these dataset folders (real path → what it is, for a refusal): what no
    mask written by ``bloodseg predict``, Export or Save may replace. When the masks cannot be told apart
    (:class:`LayoutError`), every image or mask file there is kept."""
    out: dict[Path, str] = {}
    for folder in sorted(set(folders)):
        try:
            pairs = find_pairs(folder)
        except LayoutError:
            for f in dataset_files(folder):
                out.setdefault(real_path(f), f"a file of the dataset in {folder}")
            continue
        except OSError:  # a folder gone or unreadable holds nothing that can be listed
            continue
        for image, mask in pairs:
            out.setdefault(real_path(image), f"the image {image.name}")
            if mask is not None:
                out.setdefault(real_path(mask), f"the expert mask of {image.name}")
    return out


def real_path(path: str | Path) -> Path:
    """One spelling per file (absolute, links followed), so two names of the same file compare equal."""
    return Path(os.path.realpath(Path(path).expanduser()))


def mask_named_with_its_image(paths: list[Path]) -> tuple[Path, Path] | None:
    """``(mask, image)`` when ``paths`` name an image and its expert mask beside it, as a shell glob over a dataset
    folder does (``d1/*``): a mask named as an input would be segmented or scored as an image."""
    groups: dict[tuple[Path, str], list[Path]] = {}
    for p in map(Path, paths):
        groups.setdefault((p.parent, _key(p.stem)), []).append(p)
    given = set(map(Path, paths))
    for (folder, _), group in sorted(groups.items()):
        if len(group) < 2 or not folder.is_dir():
            continue
        try:
            pairs = find_pairs(folder)
        except (OSError, ValueError):
            continue
        for image, mask in pairs:
            if mask is not None and image in given and mask in given:
                return mask, image
    return None


def glob_advice(mask: Path, image: Path) -> str:
    return (
        f"{mask} is the expert mask of {image}: pass the folder ({image.parent}), "
        f"or only the images (e.g. {image.parent / ('*' + image.suffix)})"
    )

"""npe2 writer and batch export: Labels layers → masks in the schema's grey convention (WBC 0/128/255, RBC 0/255).

The schema comes from the layer's bloodseg metadata, or is guessed from its values. Files are written atomically
through :func:`napari_bloodseg.io.write_mask`. napari's Save dialog has already asked about replacing a file, so
the npe2 writer overwrites; the batch export never replaces a file unless asked to.

Labels read from disk and too big to copy (a big image segmented by the Segment widget, backed by a memory map)
are written as PNG or TIFF band by band (:func:`napari_bloodseg.io.lazy.write_mask_banded`); other formats are
refused with a message, since their encoders need the whole image in memory.

Neither ever writes over a file a layer came from (:func:`protected_files`), whatever was ticked or confirmed:
the image a prediction was made from, an expert mask that was opened, or the expert masks beside those images,
as ``bloodseg predict`` refuses them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..io.masks import write_mask
from ..io.pairs import real_path as _real
from ..schemas import LabelSchema, get_schema
from .layers import META_KEY, guess_labels_schema, labels_in_schema, layer_schema, meta, strip_tags, too_big_to_load

if TYPE_CHECKING:  # pragma: no cover
    from napari.layers import Labels, Layer

_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]+')


def _schema_from_attributes(data: np.ndarray, attributes: dict[str, Any]) -> LabelSchema:
    info = (attributes.get("metadata") or {}).get(META_KEY) or {}
    if info.get("schema"):
        return get_schema(info["schema"])
    return guess_labels_schema(data)


def _plane(data: Any, name: str) -> np.ndarray:
    arr = np.asarray(_level0(data))
    arr = arr.squeeze() if arr.ndim > 2 else arr
    if arr.ndim != 2:
        raise ValueError(f"{name}: only 2-D label layers can be written as masks (shape {arr.shape})")
    return arr


def _write_big(
    path: str | Path,
    data: Any,
    schema: str | None,
    name: str,
    *,
    overwrite: bool,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Path:
    """Labels too big to copy: a PNG or TIFF written band by band, or a clear refusal."""
    from ..io.lazy import write_mask_banded

    h, w = data.shape[:2]
    if Path(path).suffix.lower() not in (".png", ".tif", ".tiff"):
        raise ValueError(
            f"{name}: {w} x {h} labels read from disk are written as .png or .tif (band by band); "
            f"a {Path(path).suffix or 'file without suffix'} would need the whole image in memory"
        )
    if not schema:
        raise ValueError(f"{name}: no schema recorded for these {w} x {h} labels (it is not guessed from disk)")
    try:
        return write_mask_banded(path, data, schema, overwrite=overwrite, progress=progress, cancel=cancel)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _level0(data: Any) -> Any:
    """Full-resolution data: level 0 of a multiscale layer's list (the writer gets data, not the layer)."""
    return data[0] if isinstance(data, list) else data


def _files_of(name: str, info: Any) -> dict[Path, str]:
    """The files one layer came from, each with what it is (for the refusal message)."""
    if not isinstance(info, dict):
        return {}
    out: dict[Path, str] = {}
    role = info.get("role")
    if info.get("image_path"):
        out[_real(info["image_path"])] = f"the image that '{name}' was made from"
    if info.get("path"):
        what = "expert mask" if role == "mask" else "image" if role == "image" else "file"
        out.setdefault(_real(info["path"]), f"the {what} that layer '{name}' was opened from")
    if info.get("labels_file"):
        out.setdefault(_real(info["labels_file"]), f"the file that layer '{name}' is read from")
    return out


def protected_files(layers: Iterable[tuple[str, Any]]) -> dict[Path, str]:
    """Files no export may replace, even with Overwrite, from ``(layer name, bloodseg metadata)`` of the layers
    open: what each came from (:func:`_files_of`), and the images and expert masks in those images' folders
    (paired as ``bloodseg predict`` pairs them: ``002.png`` beside ``002.bmp`` is its expert mask, opened or not).
    Replacing one would lose the image or the expert's annotation for good."""
    from ..io.pairs import dataset_folders, dataset_protected

    out: dict[Path, str] = {}
    folders: set[Path] = set()
    for name, info in layers:
        if not isinstance(info, dict):  # a layer napari or another plugin opened: nothing of ours to protect
            continue
        files = _files_of(name, info)
        out.update({p: what for p, what in files.items() if p not in out})
        image = info.get("image_path") or (info.get("path") if info.get("role") == "image" else None)
        if image:
            folders.add(_real(image).parent)
    for path, what in dataset_protected(dataset_folders(folders)).items():
        out.setdefault(path, what)
    return out


def layer_files(layers: Iterable[Layer]) -> list[tuple[str, Any]]:
    """``(name, bloodseg metadata)`` of napari layers, for :func:`protected_files`."""
    return [(layer.name, layer.metadata.get(META_KEY)) for layer in layers]


class WriteRefused(RuntimeError):
    """A mask the writer will not write, with the reason the user must read. Not a ValueError: napari takes a
    writer's ValueError for "no writer for this file", and the user read only "No data written! A plugin could
    not be found to write these 1 layers"."""


def write_labels(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """npe2 single-layer writer for Labels → ``.png``/``.tif`` grey mask. Returns the written path.

    napari's Save dialog asked before replacing a file, but not whether it is the image these labels were made
    from or an expert mask beside it: those are refused (an edited expert mask may still be saved over itself)."""
    try:
        return _write_labels(path, data, attributes)
    except ValueError as exc:  # a refusal of these labels or this name (disk errors stay OSErrors)
        raise WriteRefused(str(exc)) from None


def _write_labels(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    name = str(attributes.get("name", "labels"))
    info = (attributes.get("metadata") or {}).get(META_KEY)
    protected = protected_files([(name, info if isinstance(info, dict) else {})])
    if isinstance(info, dict) and info.get("role") == "mask" and info.get("path"):
        protected.pop(_real(info["path"]), None)
    what = protected.get(_real(path))
    if what:
        raise ValueError(f"{Path(path).name} is {what}: it is not replaced; save the labels under another name")
    if too_big_to_load(_level0(data)):
        schema_name = ((attributes.get("metadata") or {}).get(META_KEY) or {}).get("schema")
        return [str(_write_big(path, _level0(data), schema_name, name, overwrite=True))]
    arr = _plane(data, name)
    schema = _schema_from_attributes(arr, attributes)
    labels = labels_in_schema(arr, schema)
    out = write_mask(path, labels, schema, overwrite=True)
    return [str(out)]


def export_name(layer: Labels) -> str:
    """File stem for an exported mask: the source image's name (so it pairs with the image on disk)."""
    info = meta(layer)
    stem = info.get("source") or strip_tags(layer.name)
    stem = Path(str(stem)).stem if Path(str(stem)).suffix.lower() in (".png", ".bmp", ".jpg", ".tif") else stem
    return _UNSAFE.sub("_", str(stem)).strip() or "mask"


@dataclass
class ExportResult:
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # existed, overwrite not asked for
    failed: list[str] = field(default_factory=list)  # "layer: reason"
    refused: list[str] = field(default_factory=list)  # "file is <what>": a file a layer came from, never replaced
    cancelled: list[Path] = field(default_factory=list)  # not written because the export was cancelled


@dataclass
class ExportJob:
    """One layer to write: what :func:`plan_export` read from it on the GUI thread, so the writing can run in a
    worker while the user goes on editing (an in-memory layer is copied; a disk-backed one is read in bands)."""

    name: str
    target: Path
    labels: Any  # a 2-D copy of the layer's labels, or its on-disk array when too big to copy
    schema: Any  # a LabelSchema; for a disk-backed layer its recorded name, None when none (refused when written)
    big: bool

    @property
    def pixels(self) -> int:
        return int(np.prod(self.labels.shape[:2]))


def export_stems(layers: list[Labels]) -> list[str]:
    """File stems for ``layers``, the same whatever their order in the layer list.

    A layer alone on its image gets the image's name. When several layers share one image (two models, a
    prediction beside its expert mask), the one marked corrected keeps the plain name if it is the only one; the
    others are tagged with their model (or ``mask``, or what their layer name adds to the image's name)."""
    stems = [export_name(layer) for layer in layers]
    groups: dict[str, list[int]] = {}
    for i, stem in enumerate(stems):
        groups.setdefault(stem.lower(), []).append(i)
    plain: set[int] = set()
    for members in groups.values():
        corrected = [i for i in members if meta(layers[i]).get("corrected")]
        if len(members) == 1 or len(corrected) == 1:
            plain.add(members[0] if len(members) == 1 else corrected[0])
    out = list(stems)
    used = {stems[i].lower() for i in plain}
    for key in sorted(groups):  # sorted, not in layer order: a tag that clashes gets its _2 the same way every time
        for i in sorted(groups[key], key=lambda i: layers[i].name.lower()):
            if i in plain:
                continue
            stem = f"{stems[i]}_{_export_tag(layers[i], stems[i])}"
            candidate, n = stem, 2
            while candidate.lower() in used:
                candidate, n = f"{stem}_{n}", n + 1
            used.add(candidate.lower())
            out[i] = candidate
    return out


def _export_tag(layer: Labels, stem: str) -> str:
    info = meta(layer)
    tag = info.get("model") or ("mask" if info.get("role") == "mask" else None)
    if not tag:
        rest = layer.name[len(stem) :] if layer.name.lower().startswith(stem.lower()) else layer.name
        tag = rest.strip(" _-") or "labels"
    return _UNSAFE.sub("_", str(tag)).replace(" ", "_")


def plan_export(
    layers: Iterable[Labels],
    folder: str | Path,
    *,
    suffix: str = ".png",
    protected: Mapping[Path, str] | None = None,
) -> tuple[list[ExportJob], ExportResult]:
    """The files ``layers`` export to (``folder/<source image><suffix>``, :func:`export_stems`), with the data to
    write; the files in ``protected`` (by default :func:`protected_files` of ``layers``) are refused in the result
    and get no job. Runs on the GUI thread: it reads the layers."""
    folder = Path(folder)
    result = ExportResult()
    layers = list(layers)
    if protected is None:
        protected = protected_files(layer_files(layers))
    jobs = []
    for layer, stem in zip(layers, export_stems(layers), strict=True):
        target = folder / f"{stem}{suffix}"
        what = protected.get(_real(target))
        if what:
            result.refused.append(f"{target.name} is {what}")
            continue
        data = _level0(layer.data)
        try:
            if too_big_to_load(data):
                jobs.append(ExportJob(layer.name, target, data, meta(layer).get("schema"), big=True))
            else:
                arr = np.array(_plane(data, layer.name))  # a copy: brush strokes during the export do not tear it
                jobs.append(ExportJob(layer.name, target, arr, layer_schema(layer), big=False))
        except ValueError as exc:
            result.failed.append(f"{layer.name}: {exc}")
    return jobs, result


def write_export(
    jobs: Iterable[ExportJob],
    result: ExportResult,
    *,
    overwrite: bool = False,
    progress: Callable[[float], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> ExportResult:
    """Write the planned files into ``result``; an existing file is skipped unless ``overwrite``.

    ``progress(fraction)`` follows the pixels written (big layers band by band). When ``cancel()`` says stop, the
    file being written is dropped (writes are atomic, so an earlier file there stays as it was), the files written
    before it are kept, and the rest are listed in ``result.cancelled``."""
    from ..cancellation import Cancelled

    jobs = list(jobs)
    total = max(1, sum(job.pixels for job in jobs))
    done = 0
    for i, job in enumerate(jobs):

        def band_progress(k: int, n: int, before: int = done, size: int = job.pixels) -> None:
            if progress is not None:
                progress((before + size * k / max(n, 1)) / total)

        try:
            if cancel is not None and cancel():
                raise Cancelled("export cancelled")
            if job.big:
                big = {"overwrite": overwrite, "progress": band_progress, "cancel": cancel}
                _write_big(job.target, job.labels, job.schema, job.name, **big)
            else:
                write_mask(job.target, labels_in_schema(job.labels, job.schema), job.schema, overwrite=overwrite)
        except Cancelled:
            result.cancelled.extend(j.target for j in jobs[i:])
            break
        except FileExistsError:
            result.skipped.append(job.target)
        except (ValueError, OSError) as exc:
            result.failed.append(f"{job.name}: {exc}")
        else:
            result.written.append(job.target)
        done += job.pixels
        if progress is not None:
            progress(done / total)
    return result

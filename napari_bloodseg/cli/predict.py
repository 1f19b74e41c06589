"""``bloodseg predict``: one mask PNG per image, in the on-disk grey convention of the model's schema.

Images too big to hold comfortably (TIFF, ``.npy`` or ``.zarr`` of :data:`STREAM_MIN_PIXELS` or more, or any of
those with ``--stream``) stream from disk to a TIFF mask band by band: memory stays bounded by the image width.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import (
    UsageError,
    add_inference_args,
    add_model_args,
    auto_scale,
    error,
    load_model_or_fail,
    make_predictor,
    scale_from_args,
)

#: Lazily readable images of at least this many pixels (10000 x 10000) are streamed to a TIFF mask.
STREAM_MIN_PIXELS = 100_000_000


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="segment images and write mask PNGs (TIFF for streamed images)")
    add_model_args(p)
    add_inference_args(p)
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output folder for the masks: <image stem>.png, or <image stem>.tif for streamed images "
        "(see --stream-format)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace earlier bloodseg predictions in --out (never expert masks, exported corrections or images)",
    )
    p.add_argument(
        "--stream",
        action="store_true",
        help="stream every TIFF/.npy/.zarr image from disk to a mask file band by band (automatic from 100 MP)",
    )
    p.add_argument(
        "--stream-format",
        choices=["tif", "png"],
        default="tif",
        help="mask format of streamed images: an uncompressed TIFF (1 byte per pixel), or a compressed PNG, "
        "~100x smaller for a smear field, made from a temporary label file in --out",
    )
    p.add_argument("images", nargs="+", help="image files or folders")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..evaluation import images_in
    from ..io import ImageReadError, MaskError, read_image, write_mask
    from ..io.masks import predicted_by

    images = images_in(args.images)
    if not images:
        raise UsageError("no images found in " + " ".join(args.images))
    outputs = _plan_outputs(images, args)  # every refusal about --out before the model loads
    model, card = load_model_or_fail(args.model)
    predictor = make_predictor(args, model, card)
    scale = scale_from_args(args, predictor)
    if scale is None:
        scale = auto_scale(predictor, images, lambda p: _open(p, args.stream))
    print(f"bloodseg: {card.name} ({card.schema}) on {predictor.device_name}", file=sys.stderr)
    failures = 0
    bar = tqdm(images, desc="predict", unit="img", disable=len(images) < 2 or not sys.stderr.isatty())
    for path, out in zip(bar, outputs, strict=True):
        try:
            stream = _streamed(path, args.stream)
            if out.exists() and not args.overwrite:
                raise FileExistsError(f"{out} exists (use --overwrite to replace it)")
            if out.exists() and predicted_by(out) is None:
                raise FileExistsError(
                    f"{out} exists and is not a prediction of bloodseg (an expert mask, an exported correction, a "
                    "mask predicted before predictions recorded their model?): --overwrite replaces only "
                    "predictions; remove it first"
                )
            if stream:
                _stream(predictor, path, out, scale, card, args.overwrite)
                continue
            image = read_image(path, as_float=False)
            pred = predictor.predict(image, scale=scale)
            write_mask(out, pred.labels, card.schema, overwrite=args.overwrite, predicted_by=card.name)
        except (ImageReadError, MaskError, OSError, ValueError) as exc:  # OSError: exists, disk full, no access
            error(_about(path, out, exc))
            failures += 1
    done = len(images) - failures
    wrote = f"wrote {done} mask{'' if done == 1 else 's'} to {args.out}" if done else "no mask written"
    print(f"bloodseg: {wrote}", file=sys.stderr)
    return 2 if failures else 0


def _about(image: Path, out: Path, exc: BaseException) -> str:
    """The error, naming the image it stopped (a bare "[Errno 28] No space left on device" named nothing)."""
    if isinstance(exc, OSError) and not isinstance(exc, FileExistsError) and exc.strerror:
        return f"{Path(image).name} -> {out}: {exc.strerror}"
    text = str(exc)
    return text if str(Path(image).name) in text or str(out) in text else f"{Path(image).name}: {text}"


def _plan_outputs(images: list[Path], args: argparse.Namespace) -> list[Path]:
    """The mask file of every image, refused as a whole when two images would write the same file, when one would
    land on an input image or an expert mask beside the inputs (even with ``--overwrite``), when ``--out`` would
    make its masks ambiguous (:func:`_check_out_folder`), or when ``--out`` is not a folder this user can write
    to; folders' masks that are skipped as such are said once."""
    from ..io import IMAGE_SUFFIXES
    from ..io.atomic import check_can_write_in
    from ..io.pairs import _key, dataset_folders, dataset_protected, glob_advice, mask_named_with_its_image, real_path

    outputs = [
        args.out / f"{Path(p).stem}.{args.stream_format if _streamed(p, args.stream) else 'png'}" for p in images
    ]
    if found := mask_named_with_its_image(images):  # `predict d1/*`: each expert mask named beside its image
        raise UsageError(glob_advice(*found))
    first: dict[str, tuple[Path, Path]] = {}
    for image, out in zip(images, outputs, strict=True):  # one image name, one mask (001.png + 001_mask.png too)
        other, taken = first.setdefault(_key(out.stem), (image, out))
        if other != image:
            what = "would both be written to" if taken == out else "are one image name, one mask folder:"
            names = out if taken == out else f"{taken.name}, {out.name}"
            raise UsageError(f"{other} and {image} {what} {names}; predict them into separate --out folders")
    searched = {Path(p).parent for p in images} | {Path(a) for a in args.images if Path(a).is_dir()}
    protected = dataset_protected(dataset_folders(searched))
    protected.update({Path(p).resolve(): "an input image" for p in images})
    for out in outputs:
        what = protected.get(real_path(out))
        if what:
            raise UsageError(f"{out} is {what}: write the predictions to another --out folder")
    _check_out_folder(args.out, outputs, {Path(p).parent.resolve() for p in images})
    if not args.out.is_dir() and args.out.suffix.lower() in IMAGE_SUFFIXES:
        # it would become a folder named result.png holding the mask: --out names the folder, the mask is named
        # after its image
        raise UsageError(
            f"--out {args.out}: --out is a folder (each mask is named after its image: <stem>.png); "
            f"e.g. --out {args.out.parent / args.out.stem}"
        )
    try:
        check_can_write_in(args.out)
    except OSError as exc:
        raise UsageError(f"--out {args.out}: {exc}") from None
    skipped = sorted({m for a in args.images if Path(a).is_dir() for m in _masks_in(Path(a))})
    if skipped:
        print(
            f"bloodseg: {len(skipped)} file(s) taken as the expert masks of the images and not segmented (e.g. "
            f"{skipped[0].name}); name a file to segment it anyway",
            file=sys.stderr,
        )
    return outputs


def _masks_in(folder: Path) -> list[Path]:
    """The expert masks that a folder given as input holds (none when it cannot be read or paired)."""
    from ..io.pairs import find_pairs

    try:
        return [m for _, m in find_pairs(folder) if m is not None]
    except (OSError, ValueError):
        return []


def _check_out_folder(out_dir: Path, outputs: list[Path], input_folders: set[Path]) -> None:
    """Refuse an ``--out`` whose masks would later be misread:

    * ``ds/labels`` beside ``ds/masks``: two mask folders, and evaluate or train might take the predictions
      for the expert masks;
    * ``ds/masks`` (new or not) beside ``ds/images``, or beside the inputs: the predictions would be read as the
      dataset's expert masks;
    * a mask beside a file of the same image name (``a.png`` beside ``a.jpg`` in the images' own folder,
      ``001.png`` beside an expert's ``001-mask.png``), or two outputs of one image name: it would be read as, or
      beside, the expert mask.

    (An existing file that ``predict`` did not write is refused in the main loop, file by file: ``--overwrite``
    replaces only files that record a model, ``bloodseg:predicted-by``.)"""
    from ..io.images import hidden
    from ..io.masks import predicted_by
    from ..io.pairs import _IMAGE_DIRS, _MASK_DIRS, _key, _subdirs, mask_dirs

    advice = "write the predictions to another --out folder"
    parent = out_dir.parent
    if out_dir.name.lower() in _MASK_DIRS and parent.is_dir():
        others = [d for d in mask_dirs(parent) if d.name != out_dir.name]
        if others:
            raise UsageError(
                f"--out {out_dir}: {parent} already has {others[0].name}/; a second masks folder beside it would "
                f"leave which holds the expert masks unclear; {advice}"
            )
        beside = _subdirs(parent, _IMAGE_DIRS) or ([parent] if parent.resolve() in input_folders else [])
        if beside:
            raise UsageError(
                f"--out {out_dir}: predictions there would be read as the expert masks of {beside[0]} (a dataset's "
                f"masks folder); {advice}, e.g. --out {parent / 'predictions'}"
            )
    if not out_dir.is_dir():
        return
    present: dict[str, list[Path]] = {}
    for f in out_dir.iterdir():
        if not hidden(f):
            present.setdefault(_key(f.stem), []).append(f)
    for out in outputs:
        for f in present.get(_key(out.stem), []):
            if f.name == out.name or (out.exists() and f.exists() and f.samefile(out)):
                continue
            if predicted_by(f):
                why = f"{f.name} is an earlier prediction of that image; two would leave which is its mask unclear"
            elif out.suffix.lower() == ".png" and f.suffix.lower() != ".png":
                why = f"it would be taken as the expert mask of {f.name}"
            else:
                why = "two files of one image name would leave which is its mask unclear"
            raise UsageError(f"{out} would sit beside {f.name}: {why}; {advice}")


def _open(path: str | Path, forced_stream: bool):
    """An image to measure: read lazily when it would stream (only the part measured is read)."""
    from ..io import read_image
    from ..io.lazy import open_lazy

    return open_lazy(path) if _streamed(path, forced_stream) else read_image(path, as_float=False)


def _streamed(path: str | Path, forced: bool) -> bool:
    """Whether ``path`` streams: a lazily readable format, and ``--stream`` or big enough to need it."""
    from ..io import ImageReadError
    from ..io.lazy import LAZY_SUFFIXES, image_size

    if Path(path).suffix.lower() not in LAZY_SUFFIXES:
        return False
    if forced:
        return True
    try:
        height, width = image_size(path)  # from the file's header: no pixel is read twice
    except ImageReadError:
        return False  # the ordinary reader then says what is wrong with the file
    return height * width >= STREAM_MIN_PIXELS


def _stream(predictor, path: str | Path, out: Path, scale: float, card, overwrite: bool) -> None:
    """One big image, disk to disk, with a progress bar over its tiles (it may take minutes)."""
    import tempfile

    from tqdm import tqdm

    from ..io.lazy import predict_file, write_mask_banded

    marks = {"predicted_by": card.name}
    with tqdm(desc=Path(path).name, unit="tile", disable=not sys.stderr.isatty()) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        if out.suffix.lower() != ".png":
            predict_file(
                predictor, path, out, scale=scale, overwrite=overwrite, progress=progress, **marks, schema=card.schema
            )
            return
        # a PNG is written once, top to bottom, but the edge-cell rule rewrites strips of finished labels: label
        # values go to a temporary file beside the mask first (same disk, removed whatever happens)
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{out.stem}.", dir=out.parent) as tmp:
            pred = predict_file(predictor, path, Path(tmp) / "labels.npy", scale=scale, progress=progress)
            write_mask_banded(out, pred.labels, card.schema, overwrite=overwrite, **marks)
            del pred

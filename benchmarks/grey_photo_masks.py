"""Grey photographs vs expert masks: does ``read_mask`` refuse every grey photograph and read every mask?

    .venv/bin/python benchmarks/grey_photo_masks.py [--data ../shared/data] [--every 3]

Reads, through ``read_mask`` itself (files written to a temporary folder), every expert mask in ``--data`` (WBC
Dataset 1, Dataset 2 dev, RBC) as stored, then for every ``--every``-th one a JPEG copy (quality 75), bilinear
copies at 0.5x and 2x, a 0.5x copy saved as JPEG, and a few odd encodings (16-bit TIFF x257, grey palette, grey +
alpha with a transparent corner, label values 0/1/2 as JPEG); and every image there converted to grey
(``convert("L")``), as stored and at half size.
Prints per kind of file the :func:`~napari_bloodseg.io.masks.grey_photo_share` range and how many were refused,
then the margin: the most photo-like mask against the least photo-like photograph (full size), and the threshold
(``GREY_PHOTO_SHARE``) between them. Skipped, with a note, when ``--data`` is not there.

Why: ``read_mask`` refused colour photographs but snapped a grey one's shades to the mask levels and scored it
(audit D5). The share of grey values off the levels could not separate them (a resized mask 3-6 %, a grey red-cell
field 1 %); see ``grey_photo_share`` for the measure used.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def mask_files(data: Path) -> list[Path]:
    return [
        *sorted((data / "wbc/dataset1").glob("*.png")),
        *sorted((data / "wbc/dataset2-dev").glob("*.png")),
        *sorted((data / "rbc").glob("*.png")),
    ]


def image_of(mask: Path) -> Path | None:
    return next((p for p in (mask.with_suffix(".bmp"), mask.with_suffix(".jpg")) if p.exists()), None)


def resized(grey: np.ndarray, factor: float) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(grey)
    size = (max(1, round(im.width * factor)), max(1, round(im.height * factor)))
    return np.asarray(im.resize(size, Image.BILINEAR))


def mask_copies(grey: np.ndarray) -> Iterator[tuple[str, str, Callable[[Path], None]]]:
    """(kind, suffix, writer) for each copy of one mask's grey plane a user might have."""
    import tifffile
    from PIL import Image

    def save(a: np.ndarray, **kw) -> Callable[[Path], None]:
        return lambda p: Image.fromarray(a).save(p, **kw)

    yield "mask, JPEG q75", ".jpg", save(grey, quality=75)
    yield "mask, bilinear 0.5x", ".png", save(resized(grey, 0.5))
    yield "mask, bilinear 2x", ".png", save(resized(grey, 2.0))
    yield "mask, 0.5x then JPEG q75", ".jpg", save(resized(grey, 0.5), quality=75)
    yield "mask, 16-bit TIFF x257", ".tif", lambda p: tifffile.imwrite(p, grey.astype(np.uint16) * 257)
    yield "mask, grey palette", ".png", lambda p: Image.fromarray(grey).convert("P").save(p)
    alpha = np.full(grey.shape, 255, np.uint8)
    alpha[: grey.shape[0] // 3, : grey.shape[1] // 3] = 0
    yield "mask, grey + alpha", ".png", save(np.dstack([grey, alpha]))
    labels = np.abs(grey[..., None].astype(int) - [0, 128, 255]).argmin(-1).astype(np.uint8)
    yield "mask, labels 0/1/2 JPEG", ".jpg", save(labels, quality=75)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--every", type=int, default=3, help="copies (JPEG, resized, odd encodings) of every N-th mask")
    args = ap.parse_args()
    masks = mask_files(args.data) if args.data.is_dir() else []
    if not masks:
        print(f"skipped: no expert masks under {args.data} (pass --data)")
        return 0
    from PIL import Image

    from napari_bloodseg.io import MaskError, read_mask
    from napari_bloodseg.io.images import _read_raw
    from napari_bloodseg.io.masks import GREY_PHOTO_SHARE, grey_from_array, grey_photo_share

    rows: dict[str, list[tuple[float, bool, str]]] = {}
    with tempfile.TemporaryDirectory() as tmp:

        def check(kind: str, name: str, path: Path) -> None:
            raw = _read_raw(path, values=True)
            unlabelled = raw[..., -1] == 0 if raw.ndim == 3 and raw.shape[-1] == 2 else None
            grey = grey_from_array(raw)
            share = grey_photo_share(grey, unlabelled)[0] if grey.max(initial=0) >= 16 else 0.0
            try:
                read_mask(path)
                refused = False
            except MaskError as exc:
                refused = "grey picture" in str(exc)
                if not refused:
                    raise
            rows.setdefault(kind, []).append((share, refused, name))

        for i, mask in enumerate(masks):
            name = f"{mask.parent.name}/{mask.name}"
            check("mask as stored", name, mask)
            if i % args.every == 0:
                grey = grey_from_array(_read_raw(mask, values=True))
                for kind, suffix, write in mask_copies(grey):
                    path = Path(tmp) / f"copy{suffix}"
                    write(path)
                    check(kind, name, path)
            image = image_of(mask)
            if image is not None:
                grey = np.asarray(Image.open(image).convert("L"))
                name = f"{image.parent.name}/{image.name}"
                for kind, a in (("grey photo", grey), ("grey photo, 0.5x", resized(grey, 0.5))):
                    path = Path(tmp) / "photo.png"
                    Image.fromarray(a).save(path)
                    check(kind, name, path)
            if i % 50 == 0:
                print(f"... {i + 1}/{len(masks)}", file=sys.stderr, flush=True)

    print("| file | n | refused | share min | share max |")
    print("|---|---|---|---|---|")
    for kind, found in rows.items():
        shares = [s for s, _, _ in found]
        refused = sum(r for _, r, _ in found)
        print(f"| {kind} | {len(found)} | {refused} | {min(shares):.2%} | {max(shares):.2%} |")
    masks_rows = [r for k, v in rows.items() if k.startswith("mask") for r in ((k, *x) for x in v)]
    photo_rows = [r for k, v in rows.items() if k == "grey photo" for r in ((k, *x) for x in v)]
    worst = max(masks_rows, key=lambda r: r[1])
    least = min(photo_rows, key=lambda r: r[1])
    print(
        f"\nmost photo-like mask: {worst[3]} ({worst[0]}) {worst[1]:.2%}; least photo-like grey photo: {least[3]} "
        f"{least[1]:.2%}; threshold {GREY_PHOTO_SHARE:.0%}: {GREY_PHOTO_SHARE / max(worst[1], 1e-9):.1f}x the worst "
        f"mask's share, {least[1] / GREY_PHOTO_SHARE:.1f}x below the least photo's"
    )
    bad_masks = [f"{k}: {n}" for k, _, r, n in masks_rows if r]
    missed = [f"{k}: {n}" for k, v in rows.items() if k.startswith("grey photo") for _, r, n in v if not r]
    print(f"masks refused: {len(bad_masks)} {bad_masks[:10]}; grey photos read as masks: {len(missed)} {missed[:10]}")
    return 1 if bad_masks or any(not r for _, _, r, _ in photo_rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())

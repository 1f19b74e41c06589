"""Write the small synthetic sample files in ``sample_data/`` (demos, docs, a first look at the CLI).

    python scripts/make_sample_data.py [--out sample_data]

Three 120 px WBC crops and one 1600x1200 RBC field (the napari sample's), each with its mask in the schema's
on-disk grey convention (WBC 0/128/255, RBC 0/255) written by ``napari_bloodseg.io.write_mask``, named ``<stem>.png`` /
``<stem>.jpg`` + ``<stem>_mask.png`` so ``bloodseg evaluate`` and the napari reader pair them by stem.
Deterministic: the same seeds give the same files. Existing files are replaced.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from napari_bloodseg.data import synthetic_rbc, synthetic_wbc
from napari_bloodseg.io import write_mask
from napari_bloodseg.io.atomic import atomic_write

ROOT = Path(__file__).resolve().parents[1]

README = """\
# Sample data (synthetic)

Every file here is **synthetic**: drawn by `napari_bloodseg.data.synthetic_wbc` / `synthetic_rbc` and written
by `scripts/make_sample_data.py` (run it again to regenerate them; the seeds are fixed). No real patient or
dataset image is stored in this repository.

| files | what |
|---|---|
| `synthetic_wbc_00N.png`, `..._mask.png` | 120x120 white-cell crops; mask 0/128/255 = background/cytoplasm/nucleus |
| `synthetic_rbc_000.jpg`, `..._mask.png` | a 1600x1200 smear field (~100 px cells); mask 0/255 = background/cell |

They pair by file stem, so with the shipped models

    bloodseg evaluate --masks sample_data --model wbc-unet --images sample_data/synthetic_wbc_00?.png
    bloodseg evaluate --masks sample_data --model rbc-deconvnet --images sample_data/synthetic_rbc_000.jpg
    bloodseg predict --model rbc-deconvnet --out predictions sample_data/synthetic_rbc_000.jpg

run end to end. They show how the tools work; they are not training data. The WBC crops copy Dataset 2's stain
colours and grain, measured (`benchmarks/synthetic_realism.py`), and score about as real cells do; the RBC field
copies the measured look of the project's red-cell fields (colours, dark ring and pale centre, soft edge, oval
shape, size and density) but draws only plain discs, no crenated or infected cells, so it is easier than a real
field (docs/benchmarks.md has the measured accuracy).

## Real public data

The white-cell datasets of Zheng X., Wang Y., Wang G., Liu J., *Fast and robust segmentation of white blood
cell images by self-supervised learning*, Micron 107:55–71 (2018), can be fetched into a local cache:

```python
from napari_bloodseg.data import fetch_zheng_wbc

folder = fetch_zheng_wbc("wbc-dataset1")  # or "wbc-dataset2"; returns a folder of NNN.bmp + NNN.png pairs
```

Dataset 1 images are from Jiangxi Tecom Science Corporation, China; Dataset 2 images are from the CellaVision
blog. The authors publish both in the `zxaoyou/segmentation_WBC` repository (GPL-3.0); please cite the paper and
acknowledge both sources when you use them. See `docs/data.md` for the other data the project uses.
"""


def _save_image(path: Path, image, **kwargs) -> None:
    atomic_write(
        path,
        lambda tmp: Image.fromarray(image).save(tmp, format=path.suffix[1:].upper().replace("JPG", "JPEG"), **kwargs),
        overwrite=True,
    )


def make(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(3):
        image, labels = synthetic_wbc(120, seed=100 + i)
        stem = out / f"synthetic_wbc_{i:03d}"
        _save_image(stem.with_suffix(".png"), image, optimize=True)
        written += [stem.with_suffix(".png"), write_mask(f"{stem}_mask.png", labels, "wbc", overwrite=True)]
    image, labels = synthetic_rbc((1200, 1600), seed=1)  # the napari RBC sample: cells ~100 px like real fields
    stem = out / "synthetic_rbc_000"
    _save_image(stem.with_suffix(".jpg"), image, quality=90)
    written += [stem.with_suffix(".jpg"), write_mask(f"{stem}_mask.png", labels, "rbc", overwrite=True)]
    readme = out / "README.md"
    atomic_write(readme, lambda tmp: tmp.write_text(README), overwrite=True)
    return [*written, readme]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "sample_data")
    args = ap.parse_args()
    files = make(args.out)
    total = sum(p.stat().st_size for p in files)
    for p in files:
        print(f"{p.stat().st_size / 1024:7.1f} KB  {p}")
    print(f"{total / 1024:7.1f} KB  in {len(files)} files")


if __name__ == "__main__":
    main()

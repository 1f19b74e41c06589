"""Fetching the public Zheng et al. (2018) WBC datasets into a local cache.

Zheng X., Wang Y., Wang G., Liu J., "Fast and robust segmentation of white blood cell images by self-supervised
learning", Micron 107:55-71 (2018). Dataset 1 is from Jiangxi Tecom Science Corporation, Dataset 2 from the
CellaVision blog; the authors publish both in the zxaoyou/segmentation_WBC repository (GPL-3.0).

The download is a zip archive of that repository; its ``Dataset 1``/``Dataset 2`` folders hold ``NNN.bmp`` images
and ``NNN.png`` masks (0/128/255). The archive is checked, unpacked into a temporary folder and renamed into
place, so an interrupted download never leaves a half dataset in the cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

ZHENG_WBC_URL = "https://github.com/zxaoyou/segmentation_WBC/archive/refs/heads/master.zip"
DATASETS = {"wbc-dataset1": "Dataset 1", "wbc-dataset2": "Dataset 2"}


def cache_dir() -> Path:
    env = os.environ.get("BLOODSEG_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("napari-bloodseg", appauthor=False)) / "datasets"


def _download(url: str, dest: Path, progress: Callable[[int, int], None] | None) -> None:
    with urllib.request.urlopen(url, timeout=60) as resp, open(dest, "wb") as out:  # noqa: S310 - user-chosen URL
        total = int(resp.headers.get("Content-Length") or 0)
        done = 0
        while chunk := resp.read(1 << 20):
            out.write(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)


def fetch_zheng_wbc(
    name: str = "wbc-dataset1",
    *,
    url: str = ZHENG_WBC_URL,
    sha256: str | None = None,
    cache: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Return a folder of ``NNN.bmp`` + ``NNN.png`` pairs, downloading it on first use.

    ``url`` may be a ``file://`` URL (tests, mirrors). Raises ``ConnectionError`` with a clear message offline.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    root = Path(cache or cache_dir())
    target = root / name
    if target.is_dir() and any(target.glob("*.png")):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        archive = Path(tmp) / "archive.zip"
        try:
            _download(url, archive, progress)
        except OSError as exc:
            raise ConnectionError(f"could not download {url}: {exc}") from None
        if sha256 and hashlib.sha256(archive.read_bytes()).hexdigest() != sha256:
            raise ValueError(f"{url}: checksum mismatch, refusing the download")
        try:
            with zipfile.ZipFile(archive) as zf:
                folder = DATASETS[name]
                members = [m for m in zf.namelist() if f"/{folder}/" in f"/{m}" and not m.endswith("/")]
                if not members:
                    raise ValueError(f"{url}: archive has no '{folder}' folder")
                staging = Path(tmp) / name
                staging.mkdir()
                for m in members:
                    fname = Path(m).name
                    if fname.lower().endswith((".bmp", ".png", ".jpg")):
                        with zf.open(m) as src, open(staging / fname, "wb") as dst:
                            shutil.copyfileobj(src, dst)
        except zipfile.BadZipFile:
            raise ValueError(f"{url}: not a zip archive") from None
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    return target

"""fetch_zheng_wbc, offline: the "download" is a zip built here and served from a file:// URL."""

import hashlib
import zipfile

import numpy as np
import pytest
from PIL import Image

from napari_bloodseg.data import fetch_zheng_wbc
from napari_bloodseg.data.public import cache_dir
from napari_bloodseg.io import find_pairs, read_image, read_mask


@pytest.fixture
def archive(tmp_path, wbc_sample):
    """A zip laid out like GitHub's archive of zxaoyou/segmentation_WBC."""
    image, labels = wbc_sample
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(image).save(src / "001.bmp")
    Image.fromarray(np.array([0, 128, 255], np.uint8)[labels], mode="L").save(src / "001.png")
    path = tmp_path / "master.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("segmentation_WBC-master/", "")
        zf.writestr("segmentation_WBC-master/README.md", "# segmentation_WBC")
        zf.writestr("segmentation_WBC-master/Dataset 1/", "")
        zf.write(src / "001.bmp", "segmentation_WBC-master/Dataset 1/001.bmp")
        zf.write(src / "001.png", "segmentation_WBC-master/Dataset 1/001.png")
        zf.writestr("segmentation_WBC-master/Dataset 1/Thumbs.db", "junk")
        zf.write(src / "001.bmp", "segmentation_WBC-master/Dataset 2/101.bmp")
        zf.write(src / "001.png", "segmentation_WBC-master/Dataset 2/101.png")
    return path


def _leftovers(cache):
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_fetch_dataset1(archive, tmp_path, wbc_sample):
    cache = tmp_path / "cache"
    calls = []
    target = fetch_zheng_wbc(url=archive.as_uri(), cache=cache, progress=lambda d, t: calls.append((d, t)))
    assert target == cache / "wbc-dataset1"
    assert sorted(p.name for p in target.iterdir()) == ["001.bmp", "001.png"]  # images and masks only
    assert [(i.name, m.name) for i, m in find_pairs(target)] == [("001.bmp", "001.png")]
    image, labels = wbc_sample
    np.testing.assert_array_equal(read_image(target / "001.bmp", as_float=False), image)
    np.testing.assert_array_equal(read_mask(target / "001.png", "wbc")[0], labels)
    assert calls and calls[-1][0] == archive.stat().st_size
    assert _leftovers(cache) == ["wbc-dataset1"]  # no temporary download folder left behind


def test_fetch_dataset2(archive, tmp_path):
    target = fetch_zheng_wbc("wbc-dataset2", url=archive.as_uri(), cache=tmp_path / "cache")
    assert sorted(p.name for p in target.iterdir()) == ["101.bmp", "101.png"]


def test_cache_is_reused(archive, tmp_path):
    cache = tmp_path / "cache"
    first = fetch_zheng_wbc(url=archive.as_uri(), cache=cache)
    archive.unlink()  # a second download would now fail
    assert fetch_zheng_wbc(url=archive.as_uri(), cache=cache) == first
    assert fetch_zheng_wbc(url="http://127.0.0.1:9/never.zip", cache=cache) == first


def test_cache_dir_from_environment(archive, tmp_path, monkeypatch):
    monkeypatch.setenv("BLOODSEG_CACHE_DIR", str(tmp_path / "envcache"))
    assert cache_dir() == tmp_path / "envcache"
    assert fetch_zheng_wbc(url=archive.as_uri()) == tmp_path / "envcache" / "wbc-dataset1"


def test_checksum(archive, tmp_path):
    good = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert fetch_zheng_wbc(url=archive.as_uri(), cache=tmp_path / "ok", sha256=good).is_dir()
    with pytest.raises(ValueError, match="checksum mismatch"):
        fetch_zheng_wbc(url=archive.as_uri(), cache=tmp_path / "bad", sha256="0" * 64)
    assert _leftovers(tmp_path / "bad") == []


@pytest.mark.parametrize("url", ["file:///nonexistent/dir/master.zip", "http://127.0.0.1:9/master.zip"])
def test_bad_url_is_a_connection_error(tmp_path, url):
    with pytest.raises(ConnectionError, match="could not download"):
        fetch_zheng_wbc(url=url, cache=tmp_path / "cache")
    assert _leftovers(tmp_path / "cache") == []


def test_not_a_zip(tmp_path):
    page = tmp_path / "index.html"
    page.write_text("<html>rate limited</html>")
    with pytest.raises(ValueError, match="not a zip archive"):
        fetch_zheng_wbc(url=page.as_uri(), cache=tmp_path / "cache")
    assert _leftovers(tmp_path / "cache") == []


def test_zip_without_the_dataset(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("repo-main/README.md", "nothing here")
    with pytest.raises(ValueError, match="archive has no 'Dataset 1' folder"):
        fetch_zheng_wbc(url=path.as_uri(), cache=tmp_path / "cache")
    assert _leftovers(tmp_path / "cache") == []


def test_unknown_dataset(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'wbc-dataset3'"):
        fetch_zheng_wbc("wbc-dataset3", cache=tmp_path)

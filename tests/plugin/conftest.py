"""Fixtures for the napari plugin tests: viewer, widgets docked through the manifest, notification capture, data."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PLUGIN = "napari-bloodseg"


@pytest.fixture(autouse=True)
def _quiet_untrained():
    """The tests run untrained networks on purpose; their warning is noise here."""
    from napari_bloodseg.models import UntrainedModelWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedModelWarning)
        yield


class Notes(list):
    """Notifications seen during a test, as ``(severity, message)``."""

    def of(self, severity: str) -> list[str]:
        return [msg for sev, msg in self if sev.lower() == severity]

    @property
    def errors(self) -> list[str]:
        return self.of("error")

    @property
    def warnings(self) -> list[str]:
        return self.of("warning")


@pytest.fixture
def notes():
    """Every napari notification shown during the test (what the user would see pop up)."""
    from napari.utils.notifications import notification_manager

    seen = Notes()

    def _record(n) -> None:
        seen.append((str(n.severity), str(n.message)))

    notification_manager.notification_ready.connect(_record)
    yield seen
    notification_manager.notification_ready.disconnect(_record)


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def dock(viewer) -> Callable:
    """Open one of the plugin's widgets the way the Plugins menu does (through the npe2 manifest)."""

    def _dock(name: str):
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
        return widget

    return _dock


@pytest.fixture
def wait_idle(qtbot) -> Callable:
    """Wait until a widget's worker thread has finished and its GUI-thread handlers have run."""

    def _wait(widget, timeout: int = 60_000) -> None:
        qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)

    return _wait


@pytest.fixture
def device_probe(monkeypatch) -> Callable:
    """``device_probe(available, auto, native_bf16)``: what every Device choice made afterwards is told this machine
    has, at once and without the probe thread (which would overwrite it)."""
    import threading

    from napari_bloodseg.inference.device import DeviceProbe
    from napari_bloodseg.plugin import devices

    def _set(available: tuple[str, ...] = ("cpu",), auto: str = "cpu", native_bf16: bool = False) -> DeviceProbe:
        probe = DeviceProbe(tuple(available), auto, native_bf16)
        monkeypatch.setattr(devices, "_known", probe)
        monkeypatch.setattr(devices, "_thread", threading.Thread())  # never started: counts as a probe that ended
        return probe

    return _set


@pytest.fixture
def probe_running(monkeypatch):
    """A device probe that has found nothing yet (torch still importing, in a fresh napari); ``set()`` ends it
    without a result."""
    import threading

    from napari_bloodseg.plugin import devices

    stop = threading.Event()
    looking = threading.Thread(target=stop.wait, daemon=True)
    looking.start()
    monkeypatch.setattr(devices, "_known", None)
    monkeypatch.setattr(devices, "_thread", looking)
    yield stop
    stop.set()


@pytest.fixture
def real_data() -> Path:
    """``../shared/data`` when present (the development machine); skipped elsewhere."""
    if not (REAL_DATA / "wbc" / "dataset1").is_dir():
        pytest.skip(f"real data not available at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture
def wbc_pair() -> tuple[np.ndarray, np.ndarray]:
    """A small synthetic WBC crop and its exact mask (96 px: one network tile, fast on CPU)."""
    from napari_bloodseg.data import synthetic_wbc

    return synthetic_wbc(size=96, seed=5)


@pytest.fixture
def write_png() -> Callable[[Path, np.ndarray], Path]:
    def _write(path: Path, array: np.ndarray) -> Path:
        from PIL import Image

        Image.fromarray(array).save(path)
        return path

    return _write


#: Pixels from which the tests' TIFFs count as "big" (the reader's real threshold is ~100 MP)
TEST_LAZY_MIN_PIXELS = 1_000_000


@pytest.fixture
def lazy_threshold(monkeypatch) -> int:
    """Make a 1.8 MP TIFF count as big, so it opens lazily and segments to disk."""
    from napari_bloodseg.plugin import reader

    monkeypatch.setattr(reader, "LAZY_MIN_PIXELS", TEST_LAZY_MIN_PIXELS)
    return TEST_LAZY_MIN_PIXELS


@pytest.fixture(scope="session")
def smear_field() -> np.ndarray:
    """A 1200 x 1500 synthetic smear field (RGB uint8), made once per session."""
    from napari_bloodseg.data import synthetic_rbc

    return synthetic_rbc((1200, 1500), seed=3)[0]


@pytest.fixture
def big_tiff(tmp_path, smear_field) -> Path:
    """``smear_field`` as an uncompressed, single-resolution TIFF."""
    import tifffile

    path = tmp_path / "slide.tif"
    tifffile.imwrite(path, smear_field)
    return path


#: Put first in a script run by ``torch_imports_in``: ``importers`` collects the thread that imports torch
_WHO_IMPORTS_TORCH = """
import importlib.abc, json, sys, threading, time

importers = []


class WhoImportsTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" and "torch" not in sys.modules:
            importers.append(threading.current_thread().name)
        return None


sys.meta_path.insert(0, WhoImportsTorch())
"""


@pytest.fixture
def torch_imports_in() -> Callable:
    """Run ``script`` in a fresh interpreter (this one has torch already) under a finder that records which
    thread imports torch (``importers``); returns (the JSON lines it printed, the finished process)."""
    import json
    import os
    import subprocess
    import sys
    import textwrap

    def run(script: str, **env: str) -> tuple[list[dict], subprocess.CompletedProcess]:
        code = _WHO_IMPORTS_TORCH + textwrap.dedent(script)
        full_env = dict(os.environ, QT_QPA_PLATFORM="offscreen", **env)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=full_env)
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        assert lines, done.stderr
        return lines, done

    return run

"""scripts/launch_napari.py (``make napari``): without a display it explains and fails instead of crashing in Qt."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "launch_napari.py"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the display check is for Linux (X11/Wayland)")
def test_no_display_exits_nonzero_with_a_hint():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    proc = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "DISPLAY" in proc.stderr
    assert "xvfb-run" in proc.stderr and "--screenshot" in proc.stderr

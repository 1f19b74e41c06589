"""The console script itself: quick --help and model listing, quiet in a pipe."""

import os
import subprocess
import sys


def test_help_does_not_import_torch():
    code = (
        "import sys; from napari_bloodseg.cli.main import build_parser; build_parser(); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_listing_models_does_not_import_torch():
    # `bloodseg models` and the widgets' model lists read JSON cards only: no 1-2 s torch import
    code = (
        "import io, sys, contextlib; from napari_bloodseg.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out: main(['models'])\n"
        "print('wbc-unet' in out.getvalue(), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_a_closed_pipe_ends_quietly():
    # `bloodseg models | head -1`: the reader is gone before the listing is written; no message, no traceback
    code = "import sys; from napari_bloodseg.cli.main import main; sys.exit(main(['models']))"
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-c", code], stdout=write_end, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(write_end)
    err = proc.stderr.decode()
    assert proc.returncode == 141, err
    assert err == ""

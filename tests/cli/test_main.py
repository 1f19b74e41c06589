"""The console script itself: quick --help and model listing, quiet in a pipe."""

import os
import subprocess
import sys


def test_help_does_not_import_torch():
    # every sub-command's --help, through main() as the console script runs it (not only the parser)
    code = (
        "import io, sys, contextlib; from napari_bloodseg.cli.main import main\n"
        "for args in (['--help'], *([c, '--help'] for c in ('predict', 'evaluate', 'train', 'finetune', 'models'))):\n"
        "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "        try:\n"
        "            main(args)\n"
        "        except SystemExit as exc:\n"
        "            assert exc.code == 0, (args, exc.code)\n"
        "    assert 'usage' in out.getvalue(), args\n"
        "print('torch' in sys.modules)"
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


def test_sigterm_stops_a_run_as_ctrl_c_does(monkeypatch, capsys):
    """kill / timeout / a scheduler: the run ends through the same clean-up as Ctrl-C (temporary files removed by
    their context managers; exit 143), and the test process gets its own SIGTERM handler back."""
    import os
    import signal

    from napari_bloodseg.cli import main as cli_main
    from napari_bloodseg.cli import models

    reached = []

    def run(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            reached.append("after the signal")
        finally:
            reached.append("clean-up")

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(models, "run", run)
    assert cli_main.main(["models"]) == 143  # 128 + SIGTERM, as a shell reports it
    assert reached == ["clean-up"] and "terminated" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == before


def test_an_ignored_sigterm_stays_ignored(monkeypatch):
    """A parent that starts us with SIGTERM ignored (nohup-like launchers) keeps that choice."""
    import signal

    from napari_bloodseg.cli import main as cli_main
    from napari_bloodseg.cli import models

    seen = []
    monkeypatch.setattr(models, "run", lambda args: seen.append(signal.getsignal(signal.SIGTERM)))
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        assert cli_main.main(["models"]) == 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [signal.SIG_IGN]


def test_a_dataset_whose_masks_cannot_be_told_apart_is_one_clean_error(wbc_dir, tmp_path, capsys, clean_error):
    """Two mask folders: every command that reads the dataset says so in one line (no traceback, exit 2)."""
    import shutil

    from napari_bloodseg.cli.main import main

    ds = tmp_path / "ds"
    shutil.copytree(wbc_dir, ds / "images")
    (ds / "masks").mkdir()
    (ds / "labels").mkdir()
    for mask in (ds / "images").glob("*.png"):
        shutil.copy(mask, ds / "labels")
        mask.rename(ds / "masks" / mask.name)
    for argv in (
        ["evaluate", "--masks", str(ds), "--pred", str(ds / "labels")],
        ["train", "--model", "unet", "--data", str(ds), "--epochs", "1", "--out", str(tmp_path / "m")],
    ):
        assert main(argv) == 2
        clean_error(capsys.readouterr().err, "has labels/ and masks/: which holds the expert masks is not clear")

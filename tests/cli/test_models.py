import pytest

from napari_bloodseg.cli.main import main
from napari_bloodseg.models import list_models


def _lines(capsys):
    return capsys.readouterr().out.splitlines()


def test_models_lines_start_with_the_name(constant_models, capsys):
    assert main(["models"]) == 0
    lines = _lines(capsys)
    rows = [ln.split("\t") for ln in lines if not ln.startswith("#")]
    names = [r[0] for r in rows]
    # installed models (shipped first, then the user's), then the bare architectures
    expected_installed = [m.name for m in list_models()]
    assert names == [*expected_installed, "unet", "segnet", "deconvnet"]
    assert {"all-cyto", "all-cell"} <= set(expected_installed)
    by_name = {r[0]: r for r in rows}
    assert by_name["all-cyto"][1:5] == ["wbc", "unet", "user", "v1"]
    assert by_name["all-cell"][1] == "rbc"
    assert by_name["all-cyto"][5] == str(constant_models / "all-cyto")
    assert by_name["segnet"][3] == "untrained"
    assert all(len(r) == 6 for r in rows)
    assert lines[-1] == f"# user models: {constant_models}"


def test_models_list_action_is_the_default(constant_models, capsys):
    main(["models"])
    default = _lines(capsys)
    assert main(["models", "list"]) == 0
    assert _lines(capsys) == default


def test_models_with_an_empty_user_folder(tmp_model_dir, capsys):
    assert main(["models"]) == 0
    names = [ln.split("\t")[0] for ln in _lines(capsys) if not ln.startswith("#")]
    assert names[-3:] == ["unet", "segnet", "deconvnet"]
    assert all(m.source == "shipped" for m in list_models())


def test_rename_and_delete_user_model(constant_models, capsys):
    assert main(["models", "rename", "all-cyto", "cyto-v2"]) == 0
    assert (constant_models / "cyto-v2.safetensors").exists() and not (constant_models / "all-cyto.json").exists()
    capsys.readouterr()
    main(["models"])
    names = [ln.split("\t")[0] for ln in _lines(capsys)]
    assert "cyto-v2" in names and "all-cyto" not in names
    assert main(["models", "delete", "cyto-v2"]) == 0
    assert not any(p.name.startswith("cyto-v2") for p in constant_models.iterdir())


def test_export_and_import(constant_models, tmp_path, capsys):
    assert main(["models", "export", "all-cell", str(tmp_path / "exported")]) == 0
    assert sorted(p.name for p in (tmp_path / "exported").iterdir()) == ["all-cell.json", "all-cell.safetensors"]
    assert main(["models", "import", str(tmp_path / "exported" / "all-cell"), "cells-copy"]) == 0
    assert "cells-copy" in [m.name for m in list_models()]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["rename", "only-one"], "wrong number of arguments"),
        (["delete", "no-such-model"], "unknown model 'no-such-model'"),
        (["delete", "unet"], "not a model in the user model folder"),
    ],
)
def test_models_errors(constant_models, capsys, clean_error, argv, needle):
    assert main(["models", *argv]) == 2
    clean_error(capsys.readouterr().err, needle)


def test_import_broken_model_is_refused(constant_models, tmp_path, capsys, clean_error):
    (tmp_path / "bad.json").write_text('{"name": "bad", "config": {"architecture": "unet"}, "schema": "wbc"}')
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    assert main(["models", "import", str(tmp_path / "bad")]) == 2
    clean_error(capsys.readouterr().err, "corrupt safetensors file")
    assert "bad" not in [m.name for m in list_models()]


def test_export_into_a_file_or_an_unwritable_place_is_one_plain_line(constant_models, tmp_path, capsys, monkeypatch):
    afile = tmp_path / "001.bmp"
    afile.write_bytes(b"an image")
    assert main(["models", "export", "all-cell", str(afile)]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "Errno" not in err
    assert afile.read_bytes() == b"an image"

    def read_only(*_args, **_kwargs):
        raise OSError(30, "Read-only file system", str(tmp_path / "ro"))

    monkeypatch.setattr("napari_bloodseg.models.manage.atomic_write_group", read_only)
    assert main(["models", "export", "all-cell", str(tmp_path / "ro")]) == 2
    err = capsys.readouterr().err
    assert "ro: read-only file system" in err and "Errno" not in err


def test_a_full_disk_is_blamed_on_the_action_not_on_the_source_file(constant_models, tmp_path, capsys, monkeypatch):
    import errno

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/the/shipped/source.json")

    monkeypatch.setattr("napari_bloodseg.models.manage.atomic_write_group", full)
    assert main(["models", "export", "all-cell", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "models export: no space left on device" in err and "source.json" not in err


def test_models_list_notes_cards_that_are_not_usable_models(constant_models, capsys):
    """`bloodseg models` listed a card without weights as usable and left out a broken card without a word."""
    (constant_models / "orphan.json").write_text((constant_models / "all-cyto.json").read_text())
    (constant_models / "broken.json").write_text("{bad")
    assert main(["models"]) == 0
    out, err = capsys.readouterr()
    names = [ln.split("\t")[0] for ln in out.splitlines() if not ln.startswith("#")]
    assert "orphan" not in names and "broken" not in names and "all-cyto" in names
    assert f"bloodseg: warning: skipped {constant_models / 'orphan.json'}: no weights file beside it" in err
    assert f"bloodseg: warning: skipped {constant_models / 'broken.json'}: not a usable model card" in err
    assert len(err.strip().splitlines()) == 2
    (constant_models / "lost.safetensors").write_bytes((constant_models / "all-cyto.safetensors").read_bytes())
    assert main(["models"]) == 0  # weights whose card is gone were not named at all
    err = capsys.readouterr().err
    assert f"bloodseg: warning: skipped {constant_models / 'lost.safetensors'}: weights without their card" in err
    assert "bloodseg models delete lost" in err and len(err.strip().splitlines()) == 3


@pytest.mark.parametrize("spec", ["", "."])
def test_an_empty_model_name_is_one_plain_line(constant_models, tmp_path, capsys, clean_error, spec):
    assert main(["models", "export", spec, str(tmp_path / "out")]) == 2
    clean_error(capsys.readouterr().err, "empty model name" if not spec else "'.' is a folder, not a model")

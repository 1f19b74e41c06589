"""`bloodseg train`, `bloodseg finetune` and `bloodseg models` management, in-process."""

import json
import re

import pytest
from PIL import Image

from napari_bloodseg.cli.main import main
from napari_bloodseg.data import synthetic_wbc
from napari_bloodseg.io import write_mask
from napari_bloodseg.models import list_models


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    for i in range(5):
        img, lab = synthetic_wbc(48, seed=i)
        Image.fromarray(img).save(d / f"{i:03d}.bmp")
        write_mask(d / f"{i:03d}.png", lab, "wbc")
    return d


def test_train_then_finetune_then_manage(folder, tmp_path, tmp_model_dir, capsys):
    out = tmp_path / "m"
    rc = main(
        [
            "train",
            "--model",
            "unet",
            "--data",
            str(folder),
            "--width",
            "4",
            "--depth",
            "3",
            "--epochs",
            "2",
            "--steps-per-epoch",
            "2",
            "--batch-size",
            "2",
            "--patch-size",
            "48",
            "--val-fraction",
            "0.2",
            "--device",
            "cpu",
            "--version",
            "7",
            "--edge-cell-min-fraction",
            "0.3",
            "--tta-max-pixels",
            "50000",
            "--red-cells",
            "0.5",
            "--ema",
            "0.9",
            "--precision",
            "bf16",
            "--channels-last",
            "--split-seed",
            "3",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["training"]["epochs_run"] == 2 and card["architecture"] == "unet" and card["version"] == "7"
    assert card["edge_cell_min_fraction"] == 0.3  # the masks' edge-cell convention travels with the model
    assert card["tta_max_pixels"] == 50000
    assert card["training"]["settings"]["red_cells"] == 0.5
    assert card["training"]["settings"]["ema"] == 0.9
    assert card["training"]["settings"]["precision"] == "bf16" and card["training"]["settings"]["channels_last"]
    assert card["training"]["split_seed"] == 3 and card["training"]["settings"]["seed"] == 0
    assert main(["models", "import", str(out), "base"]) == 0
    rc = main(
        [
            "finetune",
            "--model",
            "base",
            "--data",
            str(folder),
            "--epochs",
            "2",
            "--batch-size",
            "2",
            "--scale",
            "1",
            "--device",
            "cpu",
            "--keep",
            "last",
            "--replay-fraction",
            "0.25",
            "--precision",
            "fp32",
            "--name",
            "base-v2",
        ]
    )
    assert rc == 0
    captured = capsys.readouterr()
    text = captured.out
    assert "before:" in text and "after:" in text and "base-v2" in text
    assert "rest on 1 validation image: a weak guide" in captured.err  # 5 images, 0.2 held out
    assert {"base", "base-v2"} <= {m.name for m in list_models()}
    tuned = next(m for m in list_models() if m.name == "base-v2")
    tuned_card = json.loads(tuned.path.with_suffix(".json").read_text())
    assert tuned_card["edge_cell_min_fraction"] == 0.3 and tuned_card["tta_max_pixels"] == 50000
    assert tuned_card["training"]["settings"]["keep"] == "last"
    assert tuned_card["training"]["settings"]["replay_fraction"] == 0.25
    assert tuned_card["training"]["settings"]["precision"] == "fp32"
    assert not tuned_card["training"]["settings"]["channels_last"]
    assert tuned_card["training"]["settings"]["red_cells"] == 0.5  # augmented like its base
    assert main(["models", "rename", "base-v2", "base-lab"]) == 0
    assert main(["models", "delete", "base-lab"]) == 0
    assert "base-lab" not in {m.name for m in list_models()}


@pytest.mark.parametrize("share", ["1", "-0.1", "half"])
@pytest.mark.parametrize(
    "command",
    [
        "finetune --model wbc-unet --replay-fraction",
        "finetune --model wbc-unet --val-fraction",
        "train --model unet --ema",
    ],
)
def test_shares_and_decays_outside_0_to_1_are_refused_before_any_work(folder, tmp_path, command, share, capsys):
    *args, flag = command.split()
    out = ["--out", str(tmp_path / "m")] if args[0] == "train" else []
    with pytest.raises(SystemExit) as exc:  # argparse: usage and one error line
        main([*args, "--data", str(folder), *out, flag, share])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and flag in err and "up to (not including) 1" in err


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    assert main(["train", "--model", "unet", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a folder" in err[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["finetune", "--model", "unet", "--data", str(empty), "--name", "x"]) == 2
    assert main(["models", "delete", "no-such-model"]) == 2
    assert main(["models", "rename", "only-one-arg"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_finetune_bad_scale_exits_2_with_one_line(folder, tmp_model_dir, capsys):
    for bad, message in (
        ("abc", "--scale must be"),
        ("0", "a factor above 0"),
        ("-1", "a factor above 0"),
        ("inf", "a factor above 0 and at most 100"),  # a traceback (OverflowError) before
        ("1e9", "at most 100"),  # a traceback from torch ("Storage size calculation overflowed")
    ):
        args = ["finetune", "--model", "wbc-unet", "--data", str(folder), "--name", "x", "--scale", bad]
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]
    assert not any(tmp_model_dir.iterdir())  # nothing saved


@pytest.mark.parametrize("bad", ["1.5", "0", "half"])
def test_train_refuses_a_bad_edge_cell_fraction_before_any_work(folder, tmp_path, bad):
    out = tmp_path / "m"
    with pytest.raises(SystemExit) as exc:  # argparse: exit 2 with its usage line, before data are read
        main(["train", "--model", "unet", "--data", str(folder), "--edge-cell-min-fraction", bad, "--out", str(out)])
    assert exc.value.code == 2
    assert not out.with_suffix(".json").exists()


def test_train_refuses_red_cells_for_red_cell_masks(folder, tmp_path, capsys):
    out = tmp_path / "m"
    args = ["train", "--model", "unet", "--data", str(folder), "--schema", "rbc", "--red-cells", "0.5"]
    assert main([*args, "--out", str(out)]) == 2
    assert "--schema wbc only" in capsys.readouterr().err
    assert not out.with_suffix(".json").exists()


def _interrupt_at_step(monkeypatch, n, signal=KeyboardInterrupt):
    """Ctrl-C during the ``n``-th training step (KeyboardInterrupt from inside the loop, as SIGINT raises it; the
    CLI's ``Terminated`` for SIGTERM)."""
    from napari_bloodseg.training import trainer

    calls = []
    real_batch = trainer._batch

    def batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise signal
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(trainer, "_batch", batch)


@pytest.mark.parametrize(("stop", "status"), [("ctrl-c", 130), ("sigterm", 143)])
def test_train_interrupted_exits_130_and_keeps_the_best_model(folder, tmp_path, monkeypatch, capsys, stop, status):
    from napari_bloodseg.cli.common import Terminated

    # epoch 2 of 3, two steps each: epoch 1's best is saved
    _interrupt_at_step(monkeypatch, 3, KeyboardInterrupt if stop == "ctrl-c" else Terminated)
    out = tmp_path / "m"
    argv = ["train", "--model", "unet", "--data", str(folder), "--width", "4", "--depth", "3", "--epochs", "3"]
    argv += ["--steps-per-epoch", "2", "--batch-size", "2", "--patch-size", "48", "--val-fraction", "0.2"]
    assert main([*argv, "--device", "cpu", "--out", str(out)]) == status
    err = capsys.readouterr().err
    said = "interrupted" if stop == "ctrl-c" else "terminated"  # as predict and the other commands say it
    assert f"{said}; the best model of this run so far is saved at {out}" in err and "Traceback" not in err
    assert json.loads(out.with_suffix(".json").read_text())["training"]["best_epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "m.json", "m.safetensors"]


def test_a_run_stopped_before_any_save_says_so_and_an_earlier_model_stays(folder, tmp_path, monkeypatch, capsys):
    """It said "the best model so far (if any) is intact at m.safetensors" when there was none, or when the file
    was the earlier run's."""
    out = tmp_path / "m"
    argv = ["train", "--model", "unet", "--data", str(folder), "--width", "4", "--depth", "3", "--epochs", "1"]
    argv += ["--steps-per-epoch", "2", "--batch-size", "2", "--patch-size", "48", "--device", "cpu"]
    argv += ["--out", str(out)]
    with monkeypatch.context() as m:
        _interrupt_at_step(m, 1)
        assert main(argv) == 130
    assert "interrupted; no model was saved" in capsys.readouterr().err and not out.with_suffix(".json").exists()
    assert main(argv) == 0
    before = out.with_suffix(".safetensors").read_bytes()
    _interrupt_at_step(monkeypatch, 1)
    assert main([*argv, "--overwrite"]) == 130
    assert f"nothing of this run was saved; the earlier model at {out}" in capsys.readouterr().err
    assert out.with_suffix(".safetensors").read_bytes() == before


def test_a_diverged_run_stops_with_a_clear_error_and_saves_no_nan_weights(folder, tmp_path, monkeypatch, capsys):
    """A NaN loss trained on and saved NaN weights (they predict all background) with exit status 0."""
    from napari_bloodseg.models import load_model
    from napari_bloodseg.training import trainer

    real_loss, calls = trainer._loss, []

    def loss(*args, **kwargs):
        calls.append(1)
        value = real_loss(*args, **kwargs)
        return value * float("nan") if len(calls) >= 3 else value  # epoch 2 of 2 steps each

    monkeypatch.setattr(trainer, "_loss", loss)
    out = tmp_path / "m"
    argv = ["train", "--model", "unet", "--data", str(folder), "--width", "4", "--depth", "3", "--epochs", "3"]
    argv += ["--steps-per-epoch", "2", "--batch-size", "2", "--patch-size", "48", "--device", "cpu"]
    assert main([*argv, "--val-fraction", "0.2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "the loss became nan at step 3 of 6 (epoch 2): training diverged; try a lower learning rate" in err
    assert f"the best model of this run so far is saved at {out}" in err and "Traceback" not in err
    model, card = load_model(out)
    assert card.training["best_epoch"] == 1
    assert all(bool(t.isfinite().all()) for t in model.state_dict().values() if t.is_floating_point())


@pytest.mark.parametrize("lr", ["0", "-1", "inf", "nan"])
def test_a_learning_rate_that_cannot_train_is_refused_before_any_work(folder, tmp_path, capsys, lr):
    out = tmp_path / "m"
    for command in (["train", "--model", "unet", "--out", str(out)], ["finetune", "--model", "wbc-unet"]):
        with pytest.raises(SystemExit) as exc:  # argparse: usage and one error line, before data are read
            main([*command, "--data", str(folder), "--lr", lr])
        assert exc.value.code == 2 and "expected a learning rate above 0" in capsys.readouterr().err


def test_finetune_interrupted_exits_130_and_saves_nothing(folder, tmp_model_dir, constant_model, monkeypatch, capsys):
    import hashlib

    base = constant_model(tmp_model_dir, "base", "wbc", 1)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_model_dir.iterdir()}
    _interrupt_at_step(monkeypatch, 2)
    argv = ["finetune", "--model", "base", "--data", str(folder), "--epochs", "2", "--batch-size", "2"]
    assert main([*argv, "--scale", "1", "--device", "cpu", "--name", "base-v2"]) == 130
    err = capsys.readouterr().err
    assert "interrupted; nothing saved, the base model is unchanged" in err and "Traceback" not in err
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_model_dir.iterdir()} == before
    assert base.with_suffix(".json").exists()


def test_a_signal_held_back_during_the_save_says_the_model_was_saved(
    folder, tmp_model_dir, constant_model, monkeypatch, capsys
):
    """Ctrl-C during the renames is held back and arrives once the model is whole: "nothing saved" was false."""
    from napari_bloodseg.training import finetune as ft

    constant_model(tmp_model_dir, "base", "wbc", 1)
    real_save = ft.save_model

    def save_then_signal(*args, **kwargs):
        out = real_save(*args, **kwargs)
        raise KeyboardInterrupt  # as signals_held re-raises it after the last rename
        return out

    monkeypatch.setattr(ft, "save_model", save_then_signal)
    argv = ["finetune", "--model", "base", "--data", str(folder), "--steps", "2", "--batch-size", "2"]
    assert main([*argv, "--scale", "1", "--device", "cpu", "--name", "kept", "--no-guard"]) == 130
    assert "interrupted; kept was saved whole just before, the base model is unchanged" in capsys.readouterr().err
    assert (tmp_model_dir / "kept.json").exists()


@pytest.mark.parametrize(
    ("native", "extra", "expected"),
    [
        (True, [], "trains ~1.7x faster"),
        (False, ["--precision", "bf16"], "runs emulated, slower"),
        (True, ["--precision", "bf16", "--channels-last"], None),
        (False, [], None),
    ],
)
def test_train_notes_the_arithmetic_that_suits_this_cpu(folder, tmp_path, monkeypatch, capsys, native, extra, expected):
    from napari_bloodseg.inference import device

    monkeypatch.setattr(device, "native_bf16_cpu", lambda: native)
    args = ["train", "--model", "unet", "--data", str(folder), "--width", "4", "--depth", "3", "--epochs", "1"]
    args += ["--steps-per-epoch", "1", "--batch-size", "2", "--patch-size", "48", "--device", "cpu"]
    assert main([*args, *extra, "--out", str(tmp_path / "m")]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "bfloat16" in line]
    if expected is None:
        assert notes == []
    else:
        assert len(notes) == 1 and expected in notes[0] and notes[0].startswith("bloodseg: note:")


TINY = ["--width", "4", "--depth", "3", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2"]
TINY += ["--patch-size", "48", "--device", "cpu"]


def test_train_never_replaces_a_model_unasked_and_checks_out_before_training(folder, tmp_path, capsys, clean_error):
    out = tmp_path / "m"
    assert main(["train", "--model", "unet", "--data", str(folder), *TINY, "--out", str(out) + ".safetensors"]) == 0
    err = capsys.readouterr().err
    assert f"saved {out}.safetensors + m.json" in err
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["name"] == "m" and card["training"]["data"] == str(folder.absolute())
    before = out.with_suffix(".safetensors").read_bytes()
    assert main(["train", "--model", "unet", "--data", str(folder), *TINY, "--seed", "3", "--out", str(out)]) == 2
    clean_error(capsys.readouterr().err, "m.safetensors exists: choose another --out, or --overwrite")
    assert out.with_suffix(".safetensors").read_bytes() == before
    assert (
        main(
            ["train", "--model", "unet", "--data", str(folder), *TINY, "--seed", "3", "--overwrite", "--out", str(out)]
        )
        == 0
    )
    assert out.with_suffix(".safetensors").read_bytes() != before
    capsys.readouterr()
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["train", "--model", "unet", "--data", str(folder), *TINY, "--out", str(afile / "m")]) == 2
    clean_error(capsys.readouterr().err, "is a file, not a folder")


def test_train_refuses_the_shipped_models_folder(folder, capsys, clean_error):
    from napari_bloodseg.models.zoo import SHIPPED_DIR

    assert main(["train", "--model", "unet", "--data", str(folder), *TINY, "--out", str(SHIPPED_DIR / "new")]) == 2
    clean_error(capsys.readouterr().err, "the shipped models' folder is not for new models")
    assert not (SHIPPED_DIR / "new.json").exists()


def test_finetune_refuses_an_unusable_model_folder_before_training(folder, tmp_path, monkeypatch, capsys, clean_error):
    afile = tmp_path / "afile"
    afile.write_text("x")
    monkeypatch.setenv("BLOODSEG_MODEL_DIR", str(afile / "models"))
    argv = ["finetune", "--model", "wbc-unet", "--data", str(folder), "--steps", "1", "--name", "x", "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    clean_error(err, "cannot save models in")
    assert "epoch 1" not in err, "refused only after training"


def test_finetune_steps_runs_exactly_that_many_steps(folder, tmp_model_dir, constant_model, monkeypatch, capsys):
    from napari_bloodseg.models import read_card
    from napari_bloodseg.training import trainer

    constant_model(tmp_model_dir, "base", "wbc", 1)
    calls = []
    real_batch = trainer._batch
    monkeypatch.setattr(trainer, "_batch", lambda *a, **k: calls.append(1) or real_batch(*a, **k))
    monkeypatch.chdir(folder.parent)  # a relative --data, recorded as an absolute path (as train's cards)
    argv = ["finetune", "--model", "base", "--data", folder.name, "--steps", "11", "--batch-size", "2"]
    assert main([*argv, "--scale", "1", "--device", "cpu", "--name", "base-v2", "--max-seconds", "0"]) == 0
    assert len(calls) == 11  # was 20: two whole epochs of 10
    err = capsys.readouterr().err
    assert [ln.split(":")[0] for ln in err.splitlines() if ln.startswith("epoch")] == ["epoch 1", "epoch 2"]
    assert read_card(tmp_model_dir / "base-v2").training["settings"]["max_steps"] == 11
    assert read_card(tmp_model_dir / "base-v2").training["data"] == str(folder)
    assert read_card(tmp_model_dir / "base-v2").training["val_data"] == str(folder)  # a part of --data
    val = folder.parent / "val"
    val.mkdir()
    for i in (20, 21):  # two pairs of other images (copies of training images are refused as validation)
        img, lab = synthetic_wbc(48, seed=i)
        Image.fromarray(img).save(val / f"{i:03d}.bmp")
        write_mask(val / f"{i:03d}.png", lab, "wbc")
    assert "bloodseg: warning: the before/after scores rest on 1 validation image" in err  # 5 images x 0.2
    assert main([*argv, "--scale", "1", "--device", "cpu", "--name", "base-val", "--val", "val"]) == 0
    assert read_card(tmp_model_dir / "base-val").training["val_data"] == str(val)  # the card says which images

    argv = ["finetune", "--model", "base", "--data", str(folder), "--steps", "2", "--val-fraction", "0"]
    assert main([*argv, "--scale", "1", "--device", "cpu", "--name", "base-v3"]) == 0
    out, err = capsys.readouterr()
    assert "before: -" in out and "bloodseg: warning: no image was held out for validation" in err


@pytest.mark.parametrize("flag", ["--steps", "--epochs", "--batch-size"])
def test_finetune_counts_below_one_are_refused_before_any_work(folder, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["finetune", "--model", "wbc-unet", "--data", str(folder), "--name", "x", flag, "0"])
    assert exc.value.code == 2 and "at least 1" in capsys.readouterr().err


def test_train_refuses_rbc_masks_read_as_wbc(tmp_path, capsys, clean_error):
    from napari_bloodseg.data import synthetic_rbc

    data = tmp_path / "rbc"
    data.mkdir()
    for i in range(4):
        img, lab = synthetic_rbc((64, 64), seed=i)
        Image.fromarray(img).save(data / f"{i:03d}.jpg")
        write_mask(data / f"{i:03d}.png", lab, "rbc")  # 0/255: read as WBC, every cell a nucleus
    out = tmp_path / "m"
    assert main(["train", "--model", "unet", "--data", str(data), *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    clean_error(err, "look like RBC masks")
    assert "--schema rbc" in err
    assert not out.with_suffix(".json").exists()


@pytest.mark.parametrize(("command", "flag"), [("train", "--max-minutes"), ("finetune", "--max-seconds")])
def test_negative_time_budgets_are_refused(folder, tmp_path, command, flag, capsys):
    args = ["train", "--model", "unet", "--out", str(tmp_path / "m")] if command == "train" else ["finetune"]
    if command == "finetune":
        args += ["--model", "wbc-unet", "--name", "x"]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--data", str(folder), flag, "-5"])
    assert exc.value.code == 2 and "0 or more" in capsys.readouterr().err


def test_help_says_the_defaults(capsys):
    for command in ("train", "finetune", "predict", "evaluate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in (
        "--max-seconds MAX_SECONDS time budget of the training loop (0: none) (default: 45.0)",
        "(default: 1088)",
        "--epochs EPOCHS passes over the training images (default: 60)",
        "seeds the split, sampling and augmentation (default: 0)",
    ):
        assert shown in text, shown


def test_finetune_scale_means_what_predict_scale_means(folder, tmp_model_dir, capsys):
    """--scale is on top of the base's own input scale, in finetune as in predict: 1 runs the data as the base runs
    its own (a base at input scale 0.5 gave a fine-tune at twice its resolution)."""
    import torch

    from napari_bloodseg.models import ModelCard, build_model, read_card, save_model

    torch.manual_seed(0)
    model = build_model("unet", num_classes=3, width=4, depth=3)
    save_model(
        model, ModelCard(name="half", config=model.config, schema="wbc", input_scale=0.5), tmp_model_dir / "half"
    )
    argv = [
        "finetune",
        "--model",
        "half",
        "--data",
        str(folder),
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--device",
        "cpu",
    ]
    assert main([*argv, "--scale", "1", "--name", "half-ft"]) == 0
    assert read_card(tmp_model_dir / "half-ft").input_scale == 0.5
    assert main([*argv, "--scale", "0.4", "--name", "half-ft2"]) == 0
    assert read_card(tmp_model_dir / "half-ft2").input_scale == pytest.approx(0.2)
    capsys.readouterr()
    assert main([*argv, "--scale", "300", "--name", "half-ft3"]) == 2  # audit #16: the limit in --scale's terms
    err = capsys.readouterr().err
    assert "at most 200 for this model, not '300'" in err and "150" not in err


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("--input-scale", "0", "a number above 0"),
        ("--input-scale", "-1", "a number above 0"),
        ("--val-fraction", "-0.2", "up to (not including) 1"),
        ("--test-fraction", "-0.2", "up to (not including) 1"),
    ],
)
def test_train_refuses_scales_and_fractions_out_of_range_before_any_work(folder, tmp_path, flag, value, needle, capsys):
    """--input-scale 0 crashed with ZeroDivisionError, -1 wrote a card with a negative cell size; a negative
    fraction quietly moved most images out of training."""
    out = tmp_path / "m"
    with pytest.raises(SystemExit) as exc:
        main(["train", "--model", "unet", "--data", str(folder), flag, value, "--out", str(out)])
    assert exc.value.code == 2 and needle in capsys.readouterr().err
    assert not out.with_suffix(".json").exists()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--val-fraction", "0.6", "--test-fraction", "0.4"], "leave no image"),
        (["--scale-jitter", "2", "1"], "the smaller first"),
        (["--val", "DATA"], "--val names the --data folder"),
        (["--depth", "12"], "--depth 12 halves a 128 px crop to under 4 px: use --depth 5 or less"),
    ],
)
def test_train_refuses_contradictory_settings_with_one_line(folder, tmp_path, extra, needle, capsys, clean_error):
    out = tmp_path / "m"
    extra = [str(folder) if e == "DATA" else e for e in extra]
    assert main(["train", "--model", "unet", "--data", str(folder), *extra, "--out", str(out)]) == 2
    clean_error(capsys.readouterr().err, needle)


def test_finetune_refuses_its_training_folder_as_validation(folder, tmp_model_dir, capsys, clean_error):
    argv = ["finetune", "--model", "wbc-unet", "--data", str(folder), "--val", str(folder), "--name", "x"]
    assert main(argv) == 2
    clean_error(capsys.readouterr().err, "--val names the --data folder")
    assert not any(tmp_model_dir.iterdir())


def test_train_without_validation_says_so_instead_of_a_score(folder, tmp_path, capsys):
    out = tmp_path / "m"
    assert (
        main(["train", "--model", "unet", "--data", str(folder), *TINY, "--val-fraction", "0", "--out", str(out)]) == 0
    )
    err = capsys.readouterr().err
    assert "no validation images: kept the last of" in err and "-1.0000" not in err


def test_train_refuses_wbc_masks_as_rbc(folder, tmp_path, capsys, clean_error):
    out = tmp_path / "m"
    assert main(["train", "--model", "unet", "--data", str(folder), "--schema", "rbc", *TINY, "--out", str(out)]) == 2
    clean_error(
        capsys.readouterr().err,
        "these are WBC masks, which an RBC model would learn as one 'cell' class; use a WBC model (--schema wbc)",
    )
    assert not out.with_suffix(".json").exists()


def test_finetune_refuses_wbc_masks_for_an_rbc_model_without_naming_an_option_it_lacks(
    folder, tmp_model_dir, capsys, clean_error
):
    assert main(["finetune", "--model", "rbc-deconvnet", "--data", str(folder), "--name", "x"]) == 2
    err = capsys.readouterr().err
    clean_error(err, "these are WBC masks, which an RBC model would learn as one 'cell' class; use a WBC model")
    assert "--schema" not in err  # finetune has none: its schema is the base model's
    assert not any(tmp_model_dir.iterdir())


@pytest.mark.parametrize(
    ("name", "message"),
    [("wbc-unet", "shipped model's name"), ("UNet", "untrained unet architecture"), ("my model", "not a usable")],
)
def test_train_into_the_user_model_folder_keeps_to_the_model_name_rules(folder, tmp_model_dir, capsys, name, message):
    """Saved there as wbc-unet, the model was hidden by the shipped one (and could not be deleted: "shipped")."""
    out = tmp_model_dir / name
    assert main(["train", "--model", "unet", "--data", str(folder), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not tmp_model_dir.exists() or not any(tmp_model_dir.iterdir())


def test_finetune_says_when_the_guard_could_not_check_the_base_domain(folder, tmp_model_dir, constant_model, capsys):
    """It said nothing, and the card's "guard": true read as if the base domain had been checked."""
    constant_model(tmp_model_dir, "base", "wbc", 1)  # a card that records no training data
    argv = ["finetune", "--model", "base", "--data", str(folder), "--steps", "1", "--batch-size", "2"]
    assert main([*argv, "--scale", "1", "--device", "cpu", "--name", "g"]) == 0
    err = capsys.readouterr().err
    # why, as it is: no folder is missing here, so no advice to set BLOODSEG_DATA
    assert "bloodseg: warning: the base model's card records no training data, so there is no base domain" in err
    assert "BLOODSEG_DATA" not in err
    assert re.search(r"epoch 1: loss \d\.\d{4}, validation mean Dice \d\.\d{4}", err)  # not the loss alone
    assert main([*argv, "--scale", "1", "--device", "cpu", "--name", "h", "--no-guard"]) == 0
    assert "base domain" not in capsys.readouterr().err


def test_overwrite_does_not_make_a_second_model_differing_only_in_case(folder, tmp_model_dir, constant_model, capsys):
    constant_model(tmp_model_dir, "mynet", "wbc", 1)
    argv = ["train", "--model", "unet", "--data", str(folder), "--out", str(tmp_model_dir / "MyNet"), "--overwrite"]
    assert main(argv) == 2
    assert "'mynet' exists already and 'MyNet' differs from it only in case" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "finetune"])
def test_an_absent_device_is_one_line_naming_the_device_option(
    folder, tmp_path, tmp_model_dir, constant_model, monkeypatch, capsys, clean_error, command
):
    """The core's message names no front end; the command line's advice names --device (the widgets' names their
    Device choice)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if command == "train":
        argv = ["train", "--model", "unet", "--data", str(folder), *TINY, "--out", str(tmp_path / "m")]
    else:
        constant_model(tmp_model_dir, "base", "wbc", 1)
        argv = ["finetune", "--model", "base", "--data", str(folder), "--steps", "1", "--batch-size", "2"]
        argv += ["--scale", "1", "--name", "x", "--device", "cpu"]
    assert main([*argv, "--device", "cuda"]) == 2  # the last --device wins
    clean_error(capsys.readouterr().err, "'cuda' asked for, but PyTorch sees no CUDA GPU (use --device auto or cpu)")
    assert not (tmp_path / "m.safetensors").exists() and not (tmp_model_dir / "x.safetensors").exists()


@pytest.mark.parametrize("command", ["train", "finetune"])
def test_absent_device_refused_before_any_image_is_read(folder, tmp_path, tmp_model_dir, monkeypatch, capsys, command):
    import torch

    from napari_bloodseg.training import data

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def no_reading(*args, **kwargs):
        raise AssertionError("images were read before the device was checked")

    monkeypatch.setattr(data, "read_image", no_reading)
    if command == "train":
        argv = ["train", "--model", "unet", "--data", str(folder), "--out", str(tmp_path / "m")]
    else:
        argv = ["finetune", "--model", "wbc-unet", "--data", str(folder), "--name", "never"]
    assert main([*argv, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "bloodseg: error: device 'cuda' asked for, but PyTorch sees no CUDA GPU (use --device auto or cpu)"
    assert not (tmp_path / "m.json").exists() and not [m for m in list_models() if m.source == "user"]


def _train(folder, out, *extra):
    """``bloodseg train`` with the tiny settings (a refusal under test costs nothing; the old code's run ~1 s)."""
    return main(["train", "--model", "unet", "--data", str(folder), *TINY, *extra, "--out", str(out)])


@pytest.mark.parametrize("value", ["120", "100.5", "1e9", "inf", "nan"])
def test_train_refuses_an_input_scale_no_model_card_can_hold(folder, tmp_path, capsys, value):
    """Audit #3: --input-scale 120 trained, said "saved", and left a model every loader refused (a card's
    input_scale is at most 100)."""
    with pytest.raises(SystemExit) as exc:
        _train(folder, tmp_path / "m", "--input-scale", value)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "argument --input-scale: expected a number above 0 and at most 100" in err
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--deform", "nan", "a number of 0 or more"),  # turned every label into IGNORE: a model that learnt nothing
        ("--deform", "inf", "a number of 0 or more"),
        ("--deform", "-1", "a number of 0 or more"),
        ("--colour-jitter", "nan", "a number from 0 to 2"),  # was blamed on the learning rate
        ("--colour-jitter", "-3", "a number from 0 to 2"),  # silently off, -3.0 in the card
        ("--colour-jitter", "2.5", "a number from 0 to 2"),
        ("--red-cells", "5", "a number from 0 to 1"),  # 5.0 in the card
        ("--red-cells", "nan", "a number from 0 to 1"),  # null in the card
        ("--red-cells", "-0.1", "a number from 0 to 1"),
    ],
)
def test_train_refuses_augmentation_strengths_outside_their_range(folder, tmp_path, capsys, flag, value, expected):
    """Audit #7."""
    with pytest.raises(SystemExit) as exc:
        _train(folder, tmp_path / "m", flag, value)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"argument {flag}: expected {expected}, not '{value}'" in err
    assert not (tmp_path / "m.json").exists()


def test_train_refuses_a_deform_that_folds_the_crops(folder, tmp_path, capsys, clean_error):
    """Audit #7: the warp's displacement is in pixels on a 5 x 5 grid over the crop, so --deform 1 (~4 px) folds
    48 px crops over themselves (patch / 64 = 0.75 is the top there)."""
    assert _train(folder, tmp_path / "m", "--deform", "1") == 2
    clean_error(capsys.readouterr().err, "--deform 1 folds 48 px crops over themselves: use 0 to 0.75 (--patch-size")
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("factors", [["0.9", "inf"], ["nan", "1"], ["0.5", "1e4"], ["0.01", "1"]])
def test_train_refuses_scale_jitter_factors_that_are_not_augmentation(folder, tmp_path, capsys, clean_error, factors):
    """Audit #8: --scale-jitter 0.9 inf was an OverflowError traceback; 1e4 asked for a 1.3 M px wide window."""
    assert _train(folder, tmp_path / "m", "--scale-jitter", *factors) == 2
    clean_error(capsys.readouterr().err, "two factors from 0.1 to 10, the smaller first")
    assert not (tmp_path / "m.json").exists()


def test_train_takes_the_limits_of_its_ranges(folder, tmp_path, capsys):
    """The tops of the new ranges are allowed, a --name equal to the --out file name too (a no-op)."""
    out = tmp_path / "m"
    extra = ["--red-cells", "1", "--colour-jitter", "2", "--deform", "0.75", "--scale-jitter", "0.5", "2"]
    assert _train(folder, out, *extra, "--seed", "4294967295", "--name", "m") == 0
    card = json.loads(out.with_suffix(".json").read_text())
    settings = card["training"]["settings"]
    assert (settings["red_cells"], settings["colour_strength"], settings["deform"]) == (1.0, 2.0, 0.75)
    assert settings["seed"] == 4294967295 and card["name"] == "m"


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--seed", "-1"),  # "expected non-negative integer", after the data were read
        ("--seed", "99999999999999999999999"),  # "Overflow when unpacking long long"
        ("--seed", "4294967296"),
        ("--split-seed", "-1"),
    ],
)
def test_train_refuses_seeds_out_of_range_naming_the_option(folder, tmp_path, capsys, flag, value):
    """Audit #14."""
    with pytest.raises(SystemExit) as exc:
        _train(folder, tmp_path / "m", flag, value)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"argument {flag}: expected a whole number from 0 to 4294967295" in err


@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_train_tta_max_pixels_errors_name_the_option(folder, tmp_path, capsys, value):
    """Audit #14: it said "tta_max_pixels must be positive", the library's spelling."""
    with pytest.raises(SystemExit) as exc:
        _train(folder, tmp_path / "m", "--tta-max-pixels", value)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "argument --tta-max-pixels: expected a whole number of at least 1" in err
    assert "tta_max_pixels" not in err


def test_a_full_disk_at_a_later_save_says_the_earlier_best_model_is_kept(folder, tmp_path, monkeypatch, capsys):
    """Audit #10: the Ctrl-C, SIGTERM and divergence paths said what was kept; a full disk at a later save read as
    a total failure although epoch 1's model was saved whole."""
    from napari_bloodseg.models import load_model
    from napari_bloodseg.training import train as train_module

    real_save, calls = train_module.save_model, []

    def save(model, card, path, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            return real_save(model, card, path, **kwargs)
        raise OSError(f"{path}.safetensors: Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(train_module, "save_model", save)
    out = tmp_path / "m"
    assert _train(folder, out, "--epochs", "2", "--val-fraction", "0.2") == 2
    err = capsys.readouterr().err
    line = [ln for ln in err.splitlines() if ln.startswith("bloodseg: error:")]
    assert len(line) == 1 and "No space left on device" in line[0] and "Traceback" not in err
    assert f"; the best model of this run so far is saved at {out}.safetensors (epoch 1)" in line[0]
    assert load_model(out)[1].training["best_epoch"] == 1


def test_a_full_disk_at_the_first_save_claims_no_model(folder, tmp_path, monkeypatch, capsys, clean_error):
    from napari_bloodseg.training import train as train_module

    def save(model, card, path, **kwargs):
        raise OSError(f"{path}.safetensors: No space left on device")

    monkeypatch.setattr(train_module, "save_model", save)
    assert _train(folder, tmp_path / "m", "--val-fraction", "0.2") == 2
    err = capsys.readouterr().err
    clean_error(err, "No space left on device")
    assert "saved at" not in err


@pytest.mark.parametrize(
    ("name", "hint"),
    [("bar baz/../../x", None), ("bar", "; to call it bar, give --out {tmp}/bar"), ("", None), ("M", "/M")],
)
def test_train_name_must_be_the_out_file_name(folder, tmp_path, capsys, clean_error, name, hint):
    """Audit #13: every loader knows a model by its file name (models lists it, --model finds it, import and
    rename write it into the card), but predictions record the card's name as predicted-by and fine-tunes name
    themselves after it: --name "bar baz/../../x" made masks 'predicted by' a model nothing resolves."""
    assert _train(folder, tmp_path / "foo", "--name", name) == 2
    err = capsys.readouterr().err
    clean_error(err, f"--name {name!r} differs from the --out file name 'foo': a model is known by its file name")
    if hint is None:
        assert "to call it" not in err
    else:
        assert hint.format(tmp=tmp_path) in err
    assert not (tmp_path / "foo.json").exists()


@pytest.mark.parametrize(("exists", "trailing"), [(True, ""), (True, "/"), (False, "/")])
def test_train_out_naming_a_folder_is_refused(folder, tmp_path, capsys, clean_error, exists, trailing):
    """Audit #15: --out outdir/ wrote outdir.safetensors + outdir.json beside the folder."""
    outdir = tmp_path / "outdir"
    if exists:
        outdir.mkdir()
    assert _train(folder, str(outdir) + trailing) == 2
    clean_error(capsys.readouterr().err, f"a folder; give the model a name inside it, e.g. --out {outdir / 'NAME'}")
    assert not (tmp_path / "outdir.safetensors").exists() and not (tmp_path / "outdir.json").exists()
    assert not outdir.exists() or not any(outdir.iterdir())


def test_train_prints_data_warnings_before_training(folder, tmp_path, capsys):
    """The library's TrainingDataWarning came out in Python's file:line format (once per place)."""
    from napari_bloodseg.io import read_mask, write_mask

    labels, _ = read_mask(folder / "001.png")
    write_mask(folder / "001.png", labels, "wbc", overwrite=True, predicted_by="wbc-unet")
    assert main(["train", "--model", "unet", "--data", str(folder), *TINY, "--out", str(tmp_path / "m")]) == 0
    err = capsys.readouterr().err
    assert (
        "bloodseg: warning: 1 of 5 masks record being predictions of bloodseg, not corrections: 001 (wbc-unet)" in err
    )
    assert "TrainingDataWarning" not in err


def test_finetune_keeps_a_blank_image_out_of_the_validation_part(folder, tmp_model_dir, constant_model, capsys):
    """Split before the blank images were left out, a blank took the only validation place: no validation."""
    import numpy as np

    from napari_bloodseg.io import read_mask, write_mask
    from napari_bloodseg.schemas import IGNORE_INDEX

    constant_model(tmp_model_dir, "base", "wbc", 1)
    for name in ("000", "001", "002", "003", "004"):  # whichever the split holds out
        labels, _ = read_mask(folder / f"{name}.png")
        blank = np.full_like(labels, IGNORE_INDEX)
        write_mask(folder / f"{name}.png", blank if name == "002" else labels, "wbc", overwrite=True)
    argv = ["finetune", "--model", "base", "--data", str(folder), "--steps", "1", "--batch-size", "2"]
    for seed in ("0", "1", "2", "3"):
        assert main([*argv, "--scale", "1", "--device", "cpu", "--name", f"b{seed}", "--seed", seed]) == 0
        err = capsys.readouterr().err
        assert "left out, no pixel labelled: 002" in err and "no image was held out for validation" not in err


@pytest.mark.parametrize("command", ["train", "finetune"])
def test_a_run_its_time_budget_ended_says_so(
    folder, tmp_path, tmp_model_dir, constant_model, training_clock, capsys, command
):
    """Audit #11: ``finetune --steps 200`` stopped at the 45 s budget after 70 steps, and ``train --max-minutes``
    after 3 of 60 epochs, each saying only "saved"."""
    constant_model(tmp_model_dir, "base", "wbc", 1)

    def run(name: str) -> str:
        if command == "finetune":
            argv = ["finetune", "--model", "base", "--data", str(folder), "--steps", "30", "--max-seconds", "6"]
            argv += ["--batch-size", "2", "--scale", "1", "--device", "cpu", "--name", name]
        else:
            argv = ["train", "--model", "unet", "--data", str(folder), "--epochs", "15", "--steps-per-epoch", "2"]
            argv += ["--batch-size", "2", "--patch-size", "32", "--width", "4", "--depth", "2"]
            argv += ["--max-minutes", "0.1", "--out", str(tmp_path / name)]
        assert main(argv) == 0
        return capsys.readouterr().err

    training_clock(lambda i: 1.0)  # 1 s a step against a 6 s budget: 30 steps do not fit
    notes = [ln for ln in run("cut").splitlines() if "time budget" in ln]
    budget, option = ("6 s", "--max-seconds") if command == "finetune" else ("0.1 min", "--max-minutes")
    assert len(notes) == 1 and notes[0].startswith(f"bloodseg: note: the time budget of {budget} ended training")
    assert " of 30 steps" in notes[0] and f"give a larger {option} (0: no limit)" in notes[0]
    training_clock(lambda i: 0.01)  # the same run within its budget: not a word about it
    assert "time budget" not in run("uncut")


@pytest.mark.parametrize(
    ("native", "extra", "expected"),
    [
        (True, [], ("bf16", True, 170, 2e-3)),  # the fast CPU recipe (session 22, docs/finetuning.md)
        (True, ["--precision", "fp32"], ("fp32", False, 100, 1e-3)),
        (True, ["--epochs", "30", "--lr", "5e-4"], ("bf16", True, 30, 5e-4)),  # options given win
        (True, ["--precision", "bf16"], ("bf16", True, 170, 2e-3)),  # bf16 asked for: its recipe (audit22 M3)
        (False, ["--precision", "bf16"], ("bf16", False, 100, 1e-3)),  # emulated: the note says it is slower
        (False, [], ("auto", False, 100, 1e-3)),  # bf16 would be emulated: the plain recipe
    ],
)
def test_finetune_defaults_follow_the_cpus_arithmetic(
    folder, tmp_model_dir, constant_model, monkeypatch, capsys, native, extra, expected
):
    from napari_bloodseg.inference import device
    from napari_bloodseg.training import finetune as library

    constant_model(tmp_model_dir, "base", "wbc", 1)
    monkeypatch.setattr(device, "native_bf16_cpu", lambda: native)
    seen = []

    def stop(base, train, val, *, cfg, **kwargs):
        seen.append((cfg.precision, cfg.channels_last, cfg.epochs, pytest.approx(cfg.lr)))
        raise library.FinetuneError("stopped here by the test")

    monkeypatch.setattr(library, "finetune", stop)
    argv = ["finetune", "--model", "base", "--data", str(folder), "--scale", "1", "--device", "cpu", "--name", "x"]
    assert main(argv + extra) == 2
    assert seen == [expected]
    err = capsys.readouterr().err
    assert "stopped here by the test" in err
    said = "bloodseg: note: this CPU computes bfloat16 natively: fine-tuning in bf16 + channels-last"
    assert (said in err) is (native and "--precision" not in extra), err  # what auto chose is said (audit22 L5)
    if said in err:
        assert f"{expected[2]} epochs at lr {expected[3]:g}" in err

import json
import re
from pathlib import Path

import pytest
import torch

import napari_bloodseg
from napari_bloodseg.models import ModelCard, ModelFileError, build_model, load_model, read_card, save_model
from napari_bloodseg.models.files import model_paths

PACKAGE_DIR = Path(napari_bloodseg.__file__).resolve().parent


@pytest.fixture
def trained_like(tmp_path):
    """A width-4 U-Net whose BN statistics are not the defaults (so a lost buffer would show), saved to disk."""
    torch.manual_seed(0)
    model = build_model("unet", num_classes=3, width=4)
    model.train()
    with torch.no_grad():
        model(torch.rand(2, 3, 32, 32) * 3)  # updates BN running stats
    model.eval()
    card = ModelCard(
        name="tiny",
        config={},
        schema="wbc",
        cell_size_px=80.0,
        training={"epochs": 1, "data": "synthetic"},
        metrics={"cell": {"jaccard": 0.5}},
        description="test model",
    )
    weights, card_path = save_model(model, card, tmp_path / "tiny")
    return model, weights, card_path


def test_paths():
    assert model_paths("a/b") == (Path("a/b.safetensors"), Path("a/b.json"))
    assert model_paths("a/b.json") == model_paths("a/b.safetensors") == model_paths("a/b")
    assert model_paths("a/v1.2") == (Path("a/v1.2.safetensors"), Path("a/v1.2.json"))


def test_round_trip_gives_identical_outputs(trained_like):
    model, weights, card_path = trained_like
    assert weights.name == "tiny.safetensors" and card_path.name == "tiny.json"
    loaded, card = load_model(weights.with_suffix(""))
    assert not loaded.training  # eval mode
    x = torch.rand(1, 3, 45, 61)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    assert card.cell_size_px == 80.0 and card.label_schema.name == "wbc"


@pytest.mark.parametrize("arch", ["segnet", "deconvnet"])
def test_round_trip_other_architectures(tmp_path, arch):
    torch.manual_seed(1)
    model = build_model(arch, num_classes=2, width=4).eval()
    save_model(model, ModelCard(name=arch, config={}, schema="rbc"), tmp_path / arch)
    loaded, card = load_model(tmp_path / f"{arch}.json")
    assert type(loaded) is type(model) and card.architecture == arch
    x = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_card_fields(trained_like):
    _, weights, card_path = trained_like
    data = json.loads(card_path.read_text())
    for key in ("name", "architecture", "config", "schema", "normalisation", "training", "metrics", "version"):
        assert key in data, key
    assert data["architecture"] == "unet"
    assert data["config"] == {"architecture": "unet", "in_channels": 3, "num_classes": 3, "width": 4, "depth": 4}
    assert set(data["normalisation"]) == {"mean", "std"} and len(data["normalisation"]["mean"]) == 3
    assert data["training"] == {"epochs": 1, "data": "synthetic"}
    assert data["metrics"] == {"cell": {"jaccard": 0.5}}
    assert data["bloodseg_version"] == napari_bloodseg.__version__
    assert re.fullmatch(r"[0-9a-f]{64}", data["weights_sha256"])
    card = read_card(weights)
    assert card.architecture == "unet" and card.config["width"] == 4


def test_a_card_is_strict_json_even_with_undefined_metrics(tmp_path, trained_like):
    """A fine-tune validated on one image has an undefined SEM: the card says null, not NaN (which jq refuses)."""
    model, _, _ = trained_like
    card = ModelCard(name="one-val", config={}, schema="wbc", metrics={"val": {"cell": {"dice_sem": float("nan")}}})
    _, card_path = save_model(model, card, tmp_path / "one-val")
    text = card_path.read_text()
    assert "NaN" not in text
    assert json.loads(text)["metrics"] == {"val": {"cell": {"dice_sem": None}}}
    assert read_card(card_path).metrics == {"val": {"cell": {"dice_sem": None}}}


def test_save_refuses_to_overwrite(trained_like):
    model, weights, card_path = trained_like
    before = weights.read_bytes(), card_path.read_text()
    with pytest.raises(FileExistsError, match="exists"):
        save_model(model, ModelCard(name="x", config={}, schema="wbc"), weights)
    assert (weights.read_bytes(), card_path.read_text()) == before
    save_model(model, ModelCard(name="x", config={}, schema="wbc"), weights, overwrite=True)
    assert json.loads(card_path.read_text())["name"] == "x"


def test_missing_weights(trained_like):
    _, weights, _ = trained_like
    weights.unlink()
    with pytest.raises(ModelFileError, match=r"tiny\.safetensors: weights file not found"):
        load_model(weights)


def test_missing_card(tmp_path):
    with pytest.raises(ModelFileError, match=r"nothing\.json: model card not found"):
        load_model(tmp_path / "nothing")


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not a valid JSON model card"),
        ("[1, 2]", "not a valid JSON model card"),
        ('{"name": "x", "schema": "wbc"}', "model card lacks config"),
        ('{"name": "x", "config": {"architecture": "unet"}, "schema": "plt"}', "unknown label schema"),
        ('{"name": "x", "config": {"architecture": "unet"}, "schema": "wbc", "format_version": 99}', "newer"),
        ('{"name": "x", "config": {"width": 4}, "schema": "wbc"}', "architecture"),
        ('{"name": "x", "config": "unet", "schema": "wbc"}', "architecture"),
    ],
)
def test_bad_cards(trained_like, text, message):
    _, weights, card_path = trained_like
    card_path.write_text(text)
    with pytest.raises(ModelFileError, match=message):
        load_model(weights)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format_version": "1.0"}, "format_version must be a whole number"),
        ({"schema": 5}, "schema must be a string"),
        ({"input_scale": None}, "input_scale must be a number above 0"),
        ({"input_scale": 0}, "input_scale must be a number above 0"),
        ({"input_scale": -1}, "input_scale must be a number above 0"),
        ({"input_scale": "0.5"}, "input_scale must be a number above 0"),
        ({"normalisation": {"mean": [0.5], "std": [0.25]}}, "a number per input channel"),
        ({"normalisation": {"mean": [0.5] * 3, "std": [0.25, 0.0, 0.25]}}, "std must be above 0"),
        ({"cell_size_px": -80}, "cell_size_px must be a number of 0"),
        ({"edge_cell_min_fraction": 7}, "edge_cell_min_fraction must be between 0 and 1"),
        ({"tta_max_pixels": 1.5}, "tta_max_pixels must be a whole number"),
        ({"training": []}, "training must be a mapping"),
    ],
)
def test_a_card_a_run_could_not_use_is_refused_naming_its_field(trained_like, change, message):
    """Such cards imported without a word and then ran at another scale, gave garbage or a traceback."""
    _, weights, card_path = trained_like
    card_path.write_text(json.dumps(json.loads(card_path.read_text()) | change))
    with pytest.raises(ModelFileError, match=message):
        load_model(weights)


@pytest.mark.parametrize(
    "text",
    ['{"a": ' * 100_000 + "1" + "}" * 100_000, "[" + "9" * 5000 + "]", b"\xff\xfe{\x00}\x00\xd8"],
    ids=["deeply-nested", "5000-digit-number", "not-utf8-json"],
)
def test_json_that_python_cannot_read_is_a_bad_card_not_a_traceback(trained_like, text):
    _, weights, card_path = trained_like
    card_path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ModelFileError, match="not a valid JSON model card"):
        load_model(weights)


def test_truncated_weights_caught_by_checksum(trained_like):
    _, weights, _ = trained_like
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match="weights do not match their card"):
        load_model(weights)


def _drop_checksum(card_path: Path) -> None:
    data = json.loads(card_path.read_text())
    data["weights_sha256"] = ""
    card_path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b"\x00garbage bytes, not a safetensors header" * 10,
        lambda b: b[:8] + b"[" + b[9:],  # header length kept, header JSON broken
        lambda b: b"",
    ],
    ids=["truncated", "garbage", "bad-header", "empty"],
)
def test_corrupt_safetensors_without_checksum(trained_like, damage):
    # cards written by hand or by older tools may carry no checksum: the safetensors parser must still refuse
    _, weights, card_path = trained_like
    _drop_checksum(card_path)
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(ModelFileError, match=r"tiny\.safetensors: corrupt safetensors file"):
        load_model(weights)


def test_weights_of_another_width(tmp_path, trained_like):
    _, weights, card_path = trained_like
    data = json.loads(card_path.read_text())
    data["config"]["width"] = 8  # card says width 8, weights are width 4
    card_path.write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match=r"weights do not fit a unet with .*'width': 8"):
        load_model(weights)


def test_a_card_whose_schema_is_not_the_weights_is_refused(trained_like):
    """An edited schema imported fine and then failed image by image ('labels hold values [2] outside rbc')."""
    _, weights, card_path = trained_like
    data = json.loads(card_path.read_text())
    data["schema"] = "rbc"
    card_path.write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match=r"the card says rbc \(2 classes\) but the weights have 3 outputs"):
        load_model(weights)


def test_a_mismatch_names_the_first_layer_that_does_not_fit(tmp_path, trained_like):
    _, weights, card_path = trained_like
    data = json.loads(card_path.read_text())
    data["config"]["width"] = 8
    card_path.write_text(json.dumps(data))
    with pytest.raises(ModelFileError) as exc:
        load_model(weights)
    assert "size mismatch for" in str(exc.value) and "Error(s) in loading" not in str(exc.value)


def test_weights_of_another_architecture(trained_like):
    _, weights, card_path = trained_like
    data = json.loads(card_path.read_text())
    data["config"]["architecture"] = "segnet"
    card_path.write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match="weights do not fit a segnet") as exc:
        load_model(weights)
    assert len(str(exc.value)) < 400  # one line, not every missing key


def test_unknown_architecture_or_config_key_in_card(trained_like):
    _, weights, card_path = trained_like
    data = json.loads(card_path.read_text())
    card_path.write_text(json.dumps(data | {"config": data["config"] | {"architecture": "fcn8"}}))
    with pytest.raises(ModelFileError, match="unknown architecture 'fcn8'"):
        load_model(weights)
    card_path.write_text(json.dumps(data | {"config": data["config"] | {"dropout": 0.5}}))
    with pytest.raises(ModelFileError, match="bad config"):
        load_model(weights)


class _Unpickled(Exception):
    pass


def _booby_trap():
    raise _Unpickled("a pickle was executed")


class _Trap:
    def __reduce__(self):
        return (_booby_trap, ())


def test_pickle_disguised_as_safetensors_is_never_unpickled(tmp_path, trained_like, monkeypatch):
    model, weights, card_path = trained_like
    # a torch.save pickle (with a payload that runs code when unpickled) under the .safetensors name
    torch.save({"state": model.state_dict(), "trap": _Trap()}, weights)

    def no_torch_load(*args, **kwargs):
        raise AssertionError("torch.load must never be called on a model file")

    monkeypatch.setattr(torch, "load", no_torch_load)
    with pytest.raises(ModelFileError, match="weights do not match their card"):
        load_model(weights)
    _drop_checksum(card_path)  # even with no checksum to catch it, the file is parsed as safetensors only
    with pytest.raises(ModelFileError, match="corrupt safetensors file"):
        load_model(weights)


def test_package_source_never_unpickles():
    offenders = []
    pattern = re.compile(
        r"torch\.load\b|\bpickle\.loads?\b|\bimport pickle\b|\bUnpickler\b|\bjoblib\.load\b"
        r"|weights_only\s*=\s*False|allow_pickle\s*=\s*True"
    )
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(PACKAGE_DIR)}:{i}: {line.strip()}")
    assert offenders == []

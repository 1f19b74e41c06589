import os
import warnings
from pathlib import Path

import pytest
import torch

from napari_bloodseg.models import (
    ModelCard,
    ModelFileError,
    UntrainedModelWarning,
    build_model,
    find_model,
    get_model,
    list_models,
    load_model,
    save_model,
    user_model_dir,
    zoo,
)


def _save(folder: Path, name: str, arch: str = "unet", schema: str = "wbc", seed: int = 0) -> Path:
    torch.manual_seed(seed)
    n = 3 if schema == "wbc" else 2
    model = build_model(arch, num_classes=n, width=4).eval()
    save_model(model, ModelCard(name=name, config={}, schema=schema, version="2"), folder / name)
    return folder / name


@pytest.fixture
def shipped_dir(tmp_path, monkeypatch):
    d = tmp_path / "shipped"
    d.mkdir()
    monkeypatch.setattr(zoo, "SHIPPED_DIR", d)
    return d


def test_user_model_dir_from_env(tmp_model_dir):
    assert user_model_dir() == tmp_model_dir


def test_user_model_dir_default(monkeypatch):
    monkeypatch.delenv("BLOODSEG_MODEL_DIR")
    d = user_model_dir()
    assert d.name == "models" and "napari-bloodseg" in d.parts


def test_list_models_shipped_then_user(shipped_dir, tmp_model_dir):
    _save(shipped_dir, "wbc-ship")
    _save(tmp_model_dir, "my-rbc", arch="segnet", schema="rbc")
    _save(tmp_model_dir, "wbc-ship", arch="deconvnet")  # same name as a shipped one: does not hide it
    (tmp_model_dir / "notes.json").write_text('{"not": "a card"}')  # stray JSON is not a model
    (tmp_model_dir / "broken.json").write_text("{")
    models = list_models()
    assert [(m.name, m.source, m.architecture, m.schema) for m in models] == [
        ("wbc-ship", "shipped", "unet", "wbc"),
        ("my-rbc", "user", "segnet", "rbc"),
    ]
    assert models[1].path == tmp_model_dir / "my-rbc"
    assert models[1].version == "2"
    fields = models[1].line().split("\t")
    assert fields == ["my-rbc", "rbc", "segnet", "user", "v2", str(tmp_model_dir / "my-rbc")]


def test_list_models_empty(shipped_dir, tmp_model_dir):
    assert list_models() == []


def test_find_model_by_name_and_path(shipped_dir, tmp_model_dir, tmp_path):
    _save(tmp_model_dir, "mine")
    assert find_model("mine").source == "user"
    other = tmp_path / "elsewhere"
    other.mkdir()
    stem = _save(other, "loose", arch="segnet", schema="rbc")
    for spec in (str(stem), f"{stem}.json", f"{stem}.safetensors"):
        info = find_model(spec)
        assert (info.name, info.source, info.architecture, info.schema) == ("loose", "file", "segnet", "rbc")
        assert info.path == stem


@pytest.mark.parametrize(
    ("spec", "arch", "schema"),
    [("unet", "unet", "wbc"), ("SegNet", "segnet", "wbc"), ("deconvnet:rbc", "deconvnet", "rbc")],
)
def test_find_bare_architecture(shipped_dir, tmp_model_dir, spec, arch, schema):
    info = find_model(spec)
    assert (info.architecture, info.schema, info.source, info.path) == (arch, schema, "untrained", None)


def test_unknown_model(shipped_dir, tmp_model_dir):
    _save(tmp_model_dir, "mine")
    with pytest.raises(ModelFileError, match=r"unknown model 'resnet'.*\(mine\).*unet, segnet, deconvnet"):
        find_model("resnet")
    with pytest.raises(ValueError, match="unknown label schema"):
        find_model("unet:platelets")


def test_untrained_model_warns_and_is_seeded(shipped_dir, tmp_model_dir):
    with pytest.warns(UntrainedModelWarning, match="untrained"):
        m1, card = get_model("unet:rbc", width=4, seed=3)
    with pytest.warns(UntrainedModelWarning):
        m2, _ = get_model("unet:rbc", width=4, seed=3)
    with pytest.warns(UntrainedModelWarning):
        m3, _ = get_model("unet:rbc", width=4, seed=4)
    assert card.schema == "rbc" and card.version == "0" and m1.num_classes == 2 and m1.width == 4
    assert not m1.training
    sd1, sd2, sd3 = m1.state_dict(), m2.state_dict(), m3.state_dict()
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    assert not all(torch.equal(sd1[k], sd3[k]) for k in sd1)


def test_trained_model_loads_without_warning_and_is_cached(shipped_dir, tmp_model_dir):
    stem = _save(tmp_model_dir, "mine", seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model, card = get_model("mine")
    assert card.name == "mine" and card.version == "2"
    ref, _ = load_model(stem)
    x = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
    assert get_model("mine")[0] is model  # loaded once, shared
    # a re-saved model (new modification time) is reloaded, not served stale from the cache
    _save(tmp_model_dir, "new", seed=6)
    for suffix in (".safetensors", ".json"):
        os.replace(tmp_model_dir / f"new{suffix}", tmp_model_dir / f"mine{suffix}")
    st = (tmp_model_dir / "mine.safetensors").stat()
    os.utime(tmp_model_dir / "mine.safetensors", (st.st_atime, st.st_mtime + 10))
    reloaded, _ = get_model("mine")
    assert reloaded is not model
    with torch.no_grad():
        assert not torch.equal(reloaded(x), model(x))


def test_shipped_models_load():
    """The four shipped models are part of the package: each must be found, load and match its card."""
    models = [m for m in list_models() if m.source == "shipped"]
    assert {m.name for m in models} >= {"wbc-unet", "wbc-segnet", "wbc-deconvnet", "rbc-deconvnet"}
    for info in models:
        model, card = load_model(info.path)
        assert card.schema == info.schema and model.num_classes == card.label_schema.num_classes


def test_default_index_prefers_the_default_then_wbc_then_first():
    from napari_bloodseg.models.zoo import DEFAULT_MODEL, default_index

    assert default_index([("rbc-deconvnet", "rbc"), ("wbc-segnet", "wbc"), (DEFAULT_MODEL, "wbc")]) == 2
    assert default_index([("rbc-deconvnet", "rbc"), ("lab-net", "wbc"), ("lab-net-2", "wbc")]) == 1
    assert default_index([("rbc-deconvnet", "rbc"), ("rbc-unet", "rbc")]) == 0
    assert default_index([]) is None


def test_default_index_for_a_schema_prefers_its_default_then_its_models():
    from napari_bloodseg.models.zoo import default_index

    shipped = [("rbc-deconvnet", "rbc"), ("rbc-unet", "rbc"), ("wbc-segnet", "wbc"), ("wbc-unet", "wbc")]
    assert default_index(shipped, "rbc") == 0 and default_index(shipped, "wbc") == 3
    assert default_index([("lab-rbc", "rbc"), ("rbc-unet", "rbc")], "rbc") == 0
    assert default_index([("wbc-segnet", "wbc"), ("my-rbc", "rbc")], "rbc") == 1
    assert default_index([("wbc-segnet", "wbc"), ("wbc-unet", "wbc")], "rbc") == 1  # none for the schema: as before


def test_schema_for_image_tells_fields_from_crops():
    from napari_bloodseg.models.zoo import schema_for_image

    assert schema_for_image(120, 100) == "wbc" and schema_for_image(300, 300) == "wbc"  # Dataset 1 and 2 crops
    assert schema_for_image(1200, 1600) == "rbc" and schema_for_image(1383, 1944) == "rbc"  # the RBC fields


def test_one_unreadable_card_in_the_user_folder_does_not_break_the_list(shipped_dir, tmp_model_dir):
    """A card of format_version "1.0" made every command fail, `predict --model wbc-unet` included."""
    _save(tmp_model_dir, "good")
    (tmp_model_dir / "bad.json").write_text(
        '{"name": "bad", "config": {"architecture": "unet"}, "schema": "wbc", "format_version": "1.0"}'
    )
    (tmp_model_dir / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    assert [m.name for m in list_models()] == ["good"]
    assert find_model("good").name == "good"


@pytest.mark.parametrize(
    ("spec", "needle"), [("", "empty model name"), ("  ", "empty model name"), (".", "'.' is a folder, not a model")]
)
def test_an_empty_model_name_or_a_folder_says_so(shipped_dir, tmp_model_dir, tmp_path, spec, needle):
    """``--model "$MODEL"`` with MODEL unset said ``PosixPath('.') has an empty name``."""
    _save(tmp_model_dir, "mine")
    with pytest.raises(ModelFileError, match=rf"{needle}: give a model name \(mine; `bloodseg models` lists them\)"):
        find_model(spec)
    with pytest.raises(ModelFileError, match="is a folder, not a model"):
        find_model(str(tmp_path))


def test_a_card_without_weights_or_a_broken_card_is_skipped_with_a_reason(shipped_dir, tmp_model_dir):
    """A card without weights was listed as usable; a broken card vanished from the list without a word."""
    _save(tmp_model_dir, "good")
    _save(tmp_model_dir, "orphan")
    (tmp_model_dir / "orphan.safetensors").unlink()
    (tmp_model_dir / "broken.json").write_text("{bad")
    assert [m.name for m in list_models()] == ["good"]
    notes = [c.note() for c in zoo.skipped_cards()]
    assert notes == [
        f"skipped {tmp_model_dir / 'broken.json'}: not a usable model card (not a valid JSON model card "
        "(JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)))",
        f"skipped {tmp_model_dir / 'orphan.json'}: no weights file beside it (orphan.safetensors): put it there or "
        "delete the card",
    ]
    with pytest.raises(ModelFileError, match=r"model 'orphan' cannot be used: .*orphan\.json: no weights file"):
        find_model("orphan")
    with pytest.raises(ModelFileError, match=r"model 'Broken' cannot be used: .*broken\.json: not a usable model card"):
        find_model("Broken")

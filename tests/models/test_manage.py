import pytest
import torch

from napari_bloodseg.models import ModelCard, ModelFileError, build_model, list_models, save_model
from napari_bloodseg.models.files import model_paths
from napari_bloodseg.models.manage import check_model_name, delete_model, export_model, import_model, rename_model


@pytest.fixture
def user_model(tmp_model_dir):
    torch.manual_seed(0)
    m = build_model("segnet", num_classes=2, width=4)
    save_model(m, ModelCard(name="mine", config=m.config, schema="rbc"), tmp_model_dir / "mine")
    return tmp_model_dir / "mine"


def names():
    return {m.name for m in list_models()}


def test_rename_export_import_delete_round_trip(user_model, tmp_path):
    rename_model("mine", "ours")
    assert "ours" in names() and "mine" not in names()
    exported = export_model("ours", tmp_path / "out")
    assert all(p.exists() for p in model_paths(exported))
    with pytest.raises(ModelFileError, match="exists"):
        import_model(exported)  # "ours" is installed already
    import_model(exported, "theirs")
    assert {"ours", "theirs"} <= names()
    delete_model("ours")
    assert "ours" not in names() and not any(p.exists() for p in model_paths(user_model.with_name("ours")))


def test_import_refuses_a_broken_model(user_model, tmp_path):
    exported = export_model("mine", tmp_path / "out")
    weights = model_paths(exported)[0]
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelFileError):
        import_model(exported, "broken")
    assert "broken" not in names()


def test_untrained_architectures_cannot_be_changed():
    with pytest.raises(ModelFileError):
        delete_model("unet")
    with pytest.raises(ModelFileError, match="nothing to export"):
        export_model("segnet", "/tmp/never")


def test_a_shipped_models_name_is_refused(user_model, tmp_path, monkeypatch):
    """A user model named like a shipped one would be hidden by it (shipped models list first): refused."""
    from napari_bloodseg.models import manage, zoo

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    m = build_model("unet", num_classes=3, width=4)
    save_model(m, ModelCard(name="ship", config=m.config, schema="wbc"), shipped / "ship")
    monkeypatch.setattr(zoo, "SHIPPED_DIR", shipped)
    monkeypatch.setattr(manage, "SHIPPED_DIR", shipped)
    exported = export_model("mine", tmp_path / "out")
    with pytest.raises(ModelFileError, match="'ship' is a shipped model's name"):
        import_model(exported, "ship")
    with pytest.raises(ModelFileError, match="'SHIP' is a shipped model's name"):
        rename_model("mine", "SHIP")  # one file on a case-insensitive disk
    assert not any(p.exists() for p in model_paths(user_model.with_name("ship")))
    assert "mine" in names()


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("a/b", "not a usable model name"),
        ("../escaped", "not a usable model name"),
        ("my model", "not a usable model name"),
        ("", "not a usable model name"),
        ("x.safetensors", "not a usable model name"),
        ("unet", "untrained unet architecture"),
        ("SegNet", "untrained segnet architecture"),
        ("wbc-unet", "shipped model's name"),
        ("a" * 101, "at most 100 characters"),  # the file name would be too long for the file system
    ],
)
def test_names_that_would_be_unreachable_are_refused(name, why):
    with pytest.raises(ModelFileError, match=why):
        check_model_name(name)


def test_usable_names_pass():
    for name in ("lab-net_v2.1", "wbc-unet-ft1", "Rbc+stain", "a" * 100):
        assert check_model_name(name) == name


def test_rename_and_import_refuse_names_outside_the_model_folder(user_model, tmp_path, tmp_model_dir):
    with pytest.raises(ModelFileError, match="not a usable model name"):
        rename_model("mine", "a/b")
    exported = export_model("mine", tmp_path / "out")
    with pytest.raises(ModelFileError, match="not a usable model name"):
        import_model(exported, "x/y")
    assert sorted(p.name for p in tmp_model_dir.rglob("*")) == ["mine.json", "mine.safetensors"]


def test_import_names_the_model_after_its_file_and_says_so_in_the_card(user_model, tmp_path):
    import json

    exported = export_model("mine", tmp_path / "out")
    for src, dst in zip(model_paths(exported), model_paths(tmp_path / "out" / "renamed"), strict=True):
        src.rename(dst)
    target = import_model(tmp_path / "out" / "renamed.safetensors")
    assert target.name == "renamed" and "renamed" in names()
    assert json.loads(model_paths(target)[1].read_text())["name"] == "renamed"
    for src, dst in zip(
        model_paths(exported.with_name("renamed")), model_paths(exported.with_name("lab.v2")), strict=True
    ):
        src.rename(dst)
    assert import_model(tmp_path / "out" / "lab.v2").name == "lab.v2"  # a dotted name given as its stem


def test_import_of_an_image_says_it_is_not_a_model_file(tmp_path, tmp_model_dir):
    png = tmp_path / "001.png"
    png.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="not a model file"):
        import_model(png)


def _disk_full_at_the_card(monkeypatch):
    """The weights fit, the card does not: the second file of the group fails as a full disk would."""
    import errno
    from pathlib import Path

    real = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name.startswith(".") and self.suffix == ".json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_full_disk_leaves_every_model_whole_and_no_orphan_file(user_model, tmp_model_dir, tmp_path, monkeypatch):
    """Rename moved the weights and then failed on the card (neither name loaded); import and save left weights
    without a card, which blocked every retry ('a model named ... exists already')."""
    from napari_bloodseg.models import load_model

    exported = export_model("mine", tmp_path / "out")
    before = _files(tmp_model_dir)
    with monkeypatch.context() as full:
        _disk_full_at_the_card(full)
        _attempts_fail_cleanly(user_model, exported, tmp_model_dir, before)
    load_model(user_model)  # the old model, whole
    assert rename_model("mine", "mine2").name == "mine2" and import_model(exported, "copy").name == "copy"
    assert {"mine2", "copy"} <= names() and "mine" not in names()


def _attempts_fail_cleanly(user_model, exported, tmp_model_dir, before):
    for attempt in (
        lambda: rename_model("mine", "mine2"),
        lambda: import_model(exported, "copy"),
        lambda: save_model(
            build_model("segnet", num_classes=2, width=4),
            ModelCard(name="mine", config={}, schema="rbc"),
            user_model,
            overwrite=True,
        ),
    ):
        with pytest.raises(OSError, match="No space"):
            attempt()
        assert _files(tmp_model_dir) == before


def test_a_temporary_card_left_by_a_killed_save_is_not_a_model(user_model, tmp_model_dir):
    (tmp_model_dir / ".mine.x1y2z3.tmp.json").write_text((tmp_model_dir / "mine.json").read_text())
    assert not any(n.startswith(".") for n in names())


def test_names_differing_only_in_case_are_one_model(user_model, tmp_model_dir, tmp_path):
    """MyNet and mynet are one file on macOS and Windows and one model to a user typing them: a second model of the
    same letters is refused, and the one there is found in any case."""
    from napari_bloodseg.models.zoo import find_model

    assert find_model("MINE").name == "mine"
    exported = export_model("mine", tmp_path / "out")
    with pytest.raises(ModelFileError, match="'mine' exists already and 'Mine' differs from it only in case"):
        import_model(exported, "Mine")
    import_model(exported, "other")
    with pytest.raises(ModelFileError, match="only in case"):
        rename_model("other", "MINE")
    rename_model("mine", "Mine")  # a change of case is the same model's rename
    assert "Mine" in names() and "mine" not in names()
    files = {p.name for p in tmp_model_dir.iterdir()}
    assert files == {"Mine.safetensors", "Mine.json", "other.safetensors", "other.json"}


def test_a_case_only_rename_on_a_case_insensitive_disk_keeps_the_model(user_model, tmp_model_dir, monkeypatch):
    """On such a disk the new card is the old card's file: written, then removed as the old card, the model was
    lost. Such a rename goes through a temporary name; simulated here by saying the files are one."""
    import json

    from napari_bloodseg.models import manage

    seen = []
    monkeypatch.setattr(manage, "_same_file", lambda a, b: seen.append((a.name, b.name)) or len(seen) == 1)
    rename_model("mine", "Mine")
    assert seen[0] == ("mine.safetensors", "Mine.safetensors") and len(seen) == 3  # mine -> .renaming -> Mine
    assert {p.name for p in tmp_model_dir.iterdir()} == {"Mine.safetensors", "Mine.json"}
    assert json.loads((tmp_model_dir / "Mine.json").read_text())["name"] == "Mine"
    assert "Mine" in names()


def test_finding_a_name_typed_in_another_case_refuses_to_guess_between_two(user_model, tmp_model_dir):
    from napari_bloodseg.models.zoo import find_model

    for suffix in (".safetensors", ".json"):  # as a case-sensitive disk allowed before such names were refused
        (tmp_model_dir / f"MINE{suffix}").write_bytes((tmp_model_dir / f"mine{suffix}").read_bytes())
    assert find_model("mine").name == "mine" and find_model("MINE").name == "MINE"
    with pytest.raises(ModelFileError, match="could be any of"):
        find_model("Mine")


def test_weights_left_without_their_card_are_named_as_such(user_model, tmp_model_dir, tmp_path):
    """A save killed between its two renames leaves weights and no card: no model is listed under that name, so
    "a model named ... exists already" sent the user looking for one."""
    exported = export_model("mine", tmp_path / "out")
    (tmp_model_dir / "orphan.safetensors").write_bytes(b"x")
    with pytest.raises(ModelFileError, match=r"orphan\.safetensors exists without its card"):
        import_model(exported, "orphan")


def test_a_user_model_named_by_its_path_can_be_deleted(user_model, tmp_model_dir):
    """It said "not a model in the user model folder" of a model in that folder."""
    delete_model(str(user_model) + ".safetensors")
    assert not any(tmp_model_dir.iterdir())


def test_a_card_that_is_no_usable_model_can_be_deleted_by_its_name(user_model, tmp_model_dir):
    """The list names a card without weights (or an unreadable one) as skipped; deleting it by name said only
    what was wrong with it, leaving the file manager as the way out."""
    (tmp_model_dir / "mine.safetensors").unlink()
    (tmp_model_dir / "Broken.json").write_text("{not json")
    (tmp_model_dir / "Broken.safetensors").write_bytes(b"x")
    delete_model("mine")
    delete_model("broken")  # any case, as model names are
    assert not any(tmp_model_dir.iterdir())
    with pytest.raises(ModelFileError):
        delete_model("mine")  # gone: the ordinary error


def test_weights_without_their_card_are_named_by_model_and_deleted_by_name(user_model, tmp_model_dir):
    """--model and delete said "unknown model" of weights whose save was interrupted before the card: the docs
    promise they are named as such, and the error of a new model taking the name says "delete it"."""
    from napari_bloodseg.models.zoo import find_model

    (tmp_model_dir / "mine.json").unlink()
    with pytest.raises(ModelFileError, match=r"model 'Mine' cannot be used: .*mine\.safetensors has no card beside"):
        find_model("Mine")
    delete_model("MINE")
    assert not any(tmp_model_dir.iterdir())
    with pytest.raises(ModelFileError, match="unknown model 'mine'"):
        find_model("mine")


def test_an_architecture_name_is_the_architecture_even_beside_an_older_model_named_like_it(tmp_model_dir):
    """A user model "Unet" made before such names were refused must not take over --model unet."""
    from napari_bloodseg.models.zoo import find_model

    m = build_model("unet", num_classes=3, width=4)
    save_model(m, ModelCard(name="Unet", config=m.config, schema="wbc"), tmp_model_dir / "Unet")
    assert find_model("unet").source == "untrained" and find_model("Unet").source == "user"


def test_delete_takes_a_damaged_files_exact_case_before_a_usable_model_in_another_case(user_model, tmp_model_dir):
    """``delete MINE`` with a usable ``mine`` and card-less ``MINE.safetensors`` beside it deleted ``mine``, the
    model, and left the damaged file (GUI helper's finding)."""
    from napari_bloodseg.models.zoo import all_cardless_weights, find_model

    (tmp_model_dir / "MINE.safetensors").write_bytes(b"x")
    (tmp_model_dir / ".tmp-save.safetensors").write_bytes(b"x")  # a save in progress: not listed
    assert all_cardless_weights() == [tmp_model_dir / "MINE.safetensors"]
    delete_model("MINE")
    assert not (tmp_model_dir / "MINE.safetensors").exists()
    assert find_model("mine").source == "user"  # the usable model is untouched
    (tmp_model_dir / "MINE.safetensors").write_bytes(b"x")
    delete_model("mine")  # its exact case: the usable model, not the damaged file
    assert sorted(p.name for p in tmp_model_dir.iterdir()) == [".tmp-save.safetensors", "MINE.safetensors"]

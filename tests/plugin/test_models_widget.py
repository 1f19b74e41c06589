"""Models widget: rename / delete / export / import user models through its buttons; shipped models are read-only."""

from __future__ import annotations

import pytest


def save_tiny(folder, name: str, seed: int = 0):
    import torch

    from napari_bloodseg.models import ModelCard, build_model, save_model

    torch.manual_seed(seed)
    model = build_model("unet", num_classes=3, width=4)
    save_model(model, ModelCard(name=name, config=model.config, schema="wbc", version="2"), folder / name)
    return folder / f"{name}.safetensors"


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A temporary shipped-model folder with one model, instead of the package's own."""
    import napari_bloodseg.models.manage as manage
    import napari_bloodseg.models.zoo as zoo

    folder = tmp_path / "shipped"
    folder.mkdir()
    save_tiny(folder, "ship-wbc")
    monkeypatch.setattr(zoo, "SHIPPED_DIR", folder)
    monkeypatch.setattr(manage, "SHIPPED_DIR", folder)
    return folder


def rows(widget) -> list[list[str]]:
    return [
        [widget.table.item(r, c).text() for c in range(widget.table.columnCount())]
        for r in range(widget.table.rowCount())
    ]


def model_files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def segment_specs(seg) -> list[str]:
    return [seg.model_combo.itemData(i) for i in range(seg.model_combo.count())]


def test_rename_export_delete_import_user_model(viewer, dock, tmp_model_dir, shipped, tmp_path, monkeypatch, notes):
    from qtpy.QtWidgets import QFileDialog, QInputDialog, QMessageBox

    weights = save_tiny(tmp_model_dir, "mine")
    original = weights.read_bytes()
    seg = dock("Segment")
    widget = dock("Models")
    assert rows(widget) == [
        ["ship-wbc", "wbc", "unet", "shipped", "2"],
        ["mine", "wbc", "unet", "user", "2"],
    ]
    assert str(tmp_model_dir) in widget.folder_label.text()
    assert "mine" in segment_specs(seg)

    # rename (the dialog answers "renamed"): files move, the card follows, every list updates
    widget.select("mine")
    assert widget.rename_btn.isEnabled() and widget.delete_btn.isEnabled()
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("renamed", True))
    widget.rename_btn.click()
    assert sorted(p.name for p in tmp_model_dir.iterdir()) == ["renamed.json", "renamed.safetensors"]
    assert (tmp_model_dir / "renamed.safetensors").read_bytes() == original
    from napari_bloodseg.models import read_card

    assert read_card(tmp_model_dir / "renamed").name == "renamed"
    assert [r[0] for r in rows(widget)] == ["ship-wbc", "renamed"]
    assert widget.selected_name() == "renamed"
    assert "renamed" in segment_specs(seg) and "mine" not in segment_specs(seg)

    # export to a folder
    out = tmp_path / "exported"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(out))
    widget.export_btn.click()
    assert (out / "renamed.safetensors").read_bytes() == original
    assert (out / "renamed.json").is_file()
    # exporting again into the same folder is refused, not overwritten
    widget.export_btn.click()
    assert "exists" in notes.errors[-1]

    # delete (after the confirmation dialog)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    widget.delete_btn.click()
    assert list(tmp_model_dir.iterdir()) == []
    assert [r[0] for r in rows(widget)] == ["ship-wbc"]
    assert "renamed" not in segment_specs(seg)

    # import the exported copy back
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(out / "renamed.safetensors"), ""))
    widget.import_btn.click()
    assert (tmp_model_dir / "renamed.safetensors").read_bytes() == original
    assert [r[0] for r in rows(widget)] == ["ship-wbc", "renamed"]
    assert "renamed" in segment_specs(seg)
    # importing it a second time asks for another name (the dialog here is cancelled): nothing is imported
    asked = []
    monkeypatch.setattr(widget, "ask_name", lambda message, suggestion: asked.append((message, suggestion)))
    widget.import_btn.click()
    assert "exists already" in asked[0][0] and asked[0][1] == "renamed-copy"
    assert "cancelled" in widget.status.text() and [r[0] for r in rows(widget)] == ["ship-wbc", "renamed"]

    # renaming onto a taken or unusable name is refused with a notification
    widget.select("renamed")
    assert widget.rename("renamed", "ship-wbc") is None
    assert "is a shipped model's name" in notes.errors[-1]
    assert widget.rename("renamed", "../escape") is None
    assert "not a usable model name" in notes.errors[-1]
    assert sorted(p.name for p in tmp_model_dir.iterdir()) == ["renamed.json", "renamed.safetensors"]


def test_shipped_models_are_read_only(viewer, dock, tmp_model_dir, shipped, notes, tmp_path):
    widget = dock("Models")
    widget.select("ship-wbc")
    assert widget.selected_name() == "ship-wbc"
    assert not widget.rename_btn.isEnabled() and not widget.delete_btn.isEnabled()
    assert widget.export_btn.isEnabled()
    assert "read-only" in widget.delete_btn.toolTip()
    before = sorted(p.name for p in shipped.iterdir())

    # even called directly, the core refuses and the user sees why (a notification, not a traceback)
    assert widget.delete("ship-wbc") is False
    assert "shipped model" in notes.errors[-1]
    assert widget.rename("ship-wbc", "other") is None
    assert "shipped model" in notes.errors[-1]
    assert sorted(p.name for p in shipped.iterdir()) == before
    assert [r[0] for r in rows(widget)] == ["ship-wbc"]

    # a shipped model can be exported (to import a copy that can be changed)
    assert widget.export("ship-wbc", tmp_path / "out") == tmp_path / "out" / "ship-wbc"
    assert widget.import_(tmp_path / "out" / "ship-wbc.safetensors", name="my-copy") is not None
    assert [r[:4] for r in rows(widget)] == [["ship-wbc", "wbc", "unet", "shipped"], ["my-copy", "wbc", "unet", "user"]]
    assert widget.delete("my-copy") is True
    assert list(tmp_model_dir.iterdir()) == []


def test_widgets_follow_a_rename_and_say_when_their_model_is_deleted(viewer, dock, tmp_model_dir, shipped, notes):
    save_tiny(tmp_model_dir, "mine")
    seg = dock("Segment")
    tune = dock("Fine-tune")
    widget = dock("Models")
    seg.set_model("mine")
    tune.set_base("mine")

    # renamed in the Models panel: both widgets now show the new name, not the default model
    assert widget.rename("mine", "mine-v2") is not None
    assert seg.model_spec() == "mine-v2"
    assert tune.base_name() == "mine-v2"

    # deleted: they fall back to the default and the status line says why
    assert widget.delete("mine-v2") is True
    assert seg.model_spec() == "ship-wbc" and tune.base_name() == "ship-wbc"
    assert "mine-v2 is no longer installed" in seg.status.text()
    assert "mine-v2 is no longer installed" in tune.status.text()


def test_a_rename_elsewhere_leaves_other_choices_alone(viewer, dock, tmp_model_dir, shipped):
    save_tiny(tmp_model_dir, "mine")
    save_tiny(tmp_model_dir, "other", seed=1)
    seg = dock("Segment")
    widget = dock("Models")
    seg.set_model("other")
    before = seg.status.text()
    assert widget.rename("mine", "mine-v2") is not None
    assert seg.model_spec() == "other"
    assert seg.status.text() == before


def test_import_asks_for_a_free_name_when_the_files_name_is_taken(
    viewer, dock, tmp_model_dir, shipped, tmp_path, monkeypatch, notes
):
    """'Export one and import the copy to change it': the copy of a shipped model, or a model imported before,
    has a name that cannot be taken; the Import button asks for another one (prefilled with a free suggestion),
    asks again while the answer is taken or unusable, and imports under the name given."""
    from qtpy.QtWidgets import QFileDialog

    widget = dock("Models")
    exported = tmp_path / "out" / "ship-wbc.safetensors"
    assert widget.export("ship-wbc", tmp_path / "out") is not None
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(exported), ""))
    asked: list[tuple[str, str]] = []
    answers = iter(["ship-wbc-copy"])

    def ask(message: str, suggestion: str) -> str | None:
        asked.append((message, suggestion))
        return next(answers, None)

    monkeypatch.setattr(widget, "ask_name", ask)
    widget.import_btn.click()
    assert "is a shipped model's name" in asked[0][0] and asked[0][1] == "ship-wbc-copy"
    assert [r[:4] for r in rows(widget)][1] == ["ship-wbc-copy", "wbc", "unet", "user"]
    assert (tmp_model_dir / "ship-wbc-copy.json").is_file() and not notes.errors

    # again: the suggestion skips the taken copy; a taken, then an unusable answer is asked about again
    asked.clear()
    answers = iter(["ship-wbc-copy", "a/b", "mine"])
    widget.import_btn.click()
    assert [suggestion for _, suggestion in asked] == ["ship-wbc-copy-2", "ship-wbc-copy", "a/b"]
    assert "exists already" in asked[1][0] and "not a usable model name" in asked[2][0]
    assert sorted(widget.names()) == ["mine", "ship-wbc", "ship-wbc-copy"]
    assert sorted(p.name for p in tmp_model_dir.iterdir()) == [
        "mine.json",
        "mine.safetensors",
        "ship-wbc-copy.json",
        "ship-wbc-copy.safetensors",
    ]

    # a broken file is said as such, without asking for a name first
    asked.clear()
    (tmp_path / "out" / "ship-wbc.safetensors").write_bytes(b"not weights")
    widget.import_btn.click()
    assert asked == [] and "Importing ship-wbc.safetensors failed" in notes.errors[-1]


def test_a_damaged_user_model_is_named_not_silently_left_out(viewer, dock, tmp_model_dir, shipped):
    save_tiny(tmp_model_dir, "orphan")
    (tmp_model_dir / "orphan.safetensors").unlink()
    widget = dock("Models")
    assert "orphan" not in [row[0] for row in rows(widget)]
    assert "Not listed: skipped" in widget.status.text() and "orphan.json: no weights file" in widget.status.text()


def test_weights_without_their_card_are_named_and_can_be_deleted(
    viewer, dock, tmp_model_dir, shipped, monkeypatch, notes
):
    """An interrupted save or a copy by hand leaves weights without a card: they were neither listed nor named, and
    could only be removed in a file manager. Named now, they go with a broken card at 'Delete unusable'; a save in
    progress (a hidden temporary file) and a usable model are left alone."""
    from qtpy.QtWidgets import QMessageBox

    save_tiny(tmp_model_dir, "mine")
    (tmp_model_dir / "orphan-weights.safetensors").write_bytes(b"x" * 10)
    (tmp_model_dir / "broken.json").write_text("{not json")
    (tmp_model_dir / ".saving.abc.tmp.safetensors").write_bytes(b"x")
    widget = dock("Models")
    assert [row[0] for row in rows(widget)] == ["ship-wbc", "mine"]
    status = widget.status.text()
    assert "Not listed: " in status and "broken.json" in status
    assert "orphan-weights.safetensors: weights without their card" in status and ".saving" not in status
    assert [u.name for u in widget.unusable_files()] == ["broken", "orphan-weights"]
    assert widget.clean_btn.isEnabled() and "orphan-weights.safetensors" in widget.clean_btn.toolTip()

    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question", lambda _, title, text, *a: asked.append(text) or QMessageBox.Yes)
    widget.clean_btn.click()
    assert "orphan-weights.safetensors: weights without their card" in asked[0]
    assert model_files(tmp_model_dir) == [".saving.abc.tmp.safetensors", "mine.json", "mine.safetensors"]
    assert "Deleted unusable files: broken, orphan-weights" in notes.of("info") and not notes.errors
    assert not widget.clean_btn.isEnabled() and "Not listed" not in widget.status.text()
    assert [row[0] for row in rows(widget)] == ["ship-wbc", "mine"]


def test_an_unusable_file_named_like_a_model_but_for_case_is_named_not_deleted(viewer, dock, tmp_model_dir, shipped):
    """Deleting by its name would find the usable model ('MINE' finds 'mine'): the model must not go instead."""
    save_tiny(tmp_model_dir, "mine")
    (tmp_model_dir / "MINE.safetensors").write_bytes(b"x" * 10)
    widget = dock("Models")
    assert "MINE.safetensors: weights without their card" in widget.status.text()
    assert widget.unusable_files() == [] and not widget.clean_btn.isEnabled()
    assert widget.delete_unusable() == []
    assert model_files(tmp_model_dir) == ["MINE.safetensors", "mine.json", "mine.safetensors"]


def test_delete_unusable_leaves_a_file_that_became_usable_since_the_list(
    viewer, dock, tmp_model_dir, shipped, monkeypatch, notes
):
    """Weights listed without their card, then the card put back by hand (no Refresh): deleting by name found the
    usable model and removed card and weights (audit22 M2). The folder is checked again at the click and after Yes;
    only what is still unusable goes, and what was left alone is said."""
    from qtpy.QtWidgets import QMessageBox

    save_tiny(tmp_model_dir, "keepme")
    save_tiny(tmp_model_dir, "later")
    card = (tmp_model_dir / "keepme.json").read_bytes()
    later_card = (tmp_model_dir / "later.json").read_bytes()
    (tmp_model_dir / "keepme.json").unlink()
    (tmp_model_dir / "later.json").unlink()
    (tmp_model_dir / "junk.safetensors").write_bytes(b"x" * 10)
    widget = dock("Models")
    assert [u.name for u in widget.unusable_files()] == ["junk", "keepme", "later"]

    (tmp_model_dir / "keepme.json").write_bytes(card)  # put back before the click: not in the question at all
    asked: list[str] = []

    def question(_, title, text, *a):
        asked.append(text)
        (tmp_model_dir / "later.json").write_bytes(later_card)  # put back while the question is open
        return QMessageBox.Yes

    monkeypatch.setattr(QMessageBox, "question", question)
    widget.clean_btn.click()
    assert "keepme" not in asked[0] and "later.safetensors: weights without their card" in asked[0]
    assert model_files(tmp_model_dir) == ["keepme.json", "keepme.safetensors", "later.json", "later.safetensors"]
    message = notes.of("info")[-1]
    assert message.startswith("Deleted unusable files: junk") and "later.safetensors (now a usable model)" in message
    assert [row[0] for row in rows(widget)] == ["ship-wbc", "keepme", "later"] and not widget.clean_btn.isEnabled()

    # called directly from a list made before the card came back: nothing is deleted, and that is said
    (tmp_model_dir / "later.json").unlink()
    widget.refresh()
    (tmp_model_dir / "later.json").write_bytes(later_card)
    assert widget.delete_unusable() == []
    assert model_files(tmp_model_dir)[-2:] == ["later.json", "later.safetensors"]
    assert widget.status.text() == "Left alone: later.safetensors (now a usable model)" and not notes.errors

"""Files in the model folders that are no usable model: every one named, only the user folder's offered for deletion."""

from __future__ import annotations


def test_a_shipped_broken_card_is_named_but_only_user_files_are_offered(tmp_path, tmp_model_dir, monkeypatch):
    import napari_bloodseg.models.zoo as zoo
    from napari_bloodseg.plugin.models_unusable import not_listed

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "ship-broken.json").write_text("{not json")
    monkeypatch.setattr(zoo, "SHIPPED_DIR", shipped)
    (tmp_model_dir / "lost-card.safetensors").write_bytes(b"x")
    (tmp_model_dir / "lost-weights.json").write_text("{}")

    notes, files = not_listed(["other"])
    assert len(notes) == 3 and "ship-broken.json" in notes[0]
    assert [(f.name, f.path.name, f.deletable) for f in files] == [
        ("lost-weights", "lost-weights.json", True),
        ("lost-card", "lost-card.safetensors", True),
    ]
    assert "weights without their card (lost-card.json" in files[1].note()
    assert [f.deletable for f in not_listed(["LOST-CARD"])[1]] == [True, False]

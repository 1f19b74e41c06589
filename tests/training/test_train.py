import json

from napari_bloodseg.models import load_model
from napari_bloodseg.training import TrainConfig, train_model


def test_train_model_saves_best_checkpoint_with_a_full_card(wbc_folder, tmp_path):
    cfg = TrainConfig(epochs=3, steps_per_epoch=2, batch_size=2, patch_size=48, seed=0, device="cpu")
    seen = []
    card, res = train_model(
        wbc_folder,
        tmp_path / "m",
        architecture="segnet",
        width=4,
        depth=3,
        cfg=cfg,
        val_fraction=1 / 6,
        test_fraction=1 / 6,
        on_epoch=seen.append,
    )
    assert len(seen) == 3
    model, loaded = load_model(tmp_path / "m")
    assert loaded.architecture == "segnet" and loaded.schema == "wbc"
    data = json.loads((tmp_path / "m.json").read_text())
    t = data["training"]
    assert t["n_train"] == 4 and len(t["val_ids"]) == 1 and len(t["test_ids"]) == 1
    assert not set(t["val_ids"]) & set(t["test_ids"])
    assert t["settings"]["seed"] == 0 and t["device"] == "cpu" and t["seconds"] > 0
    assert set(data["metrics"]["val"]["per_class"]) == {"cytoplasm", "nucleus", "cell"}
    assert data["cell_size_px"] > 10

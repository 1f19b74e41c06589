import copy
import json

import pytest
import torch

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


def test_cells_painted_on_a_clear_layer_train_a_model_that_loads(wbc_folder, tmp_path):
    """Every cell touches unlabelled pixels, so no cell size is measured: the card said 0.0, which the card check
    then refused (the model saved and never loaded)."""
    import numpy as np

    from napari_bloodseg.io import read_mask, write_mask
    from napari_bloodseg.schemas import IGNORE_INDEX

    for mask in sorted(wbc_folder.glob("*.png")):
        labels, _ = read_mask(mask)
        write_mask(mask, np.where(labels == 0, IGNORE_INDEX, labels), "wbc", overwrite=True)
    cfg = TrainConfig(epochs=1, steps_per_epoch=1, batch_size=2, patch_size=48, seed=0, device="cpu")
    card, _ = train_model(wbc_folder, tmp_path / "m", architecture="unet", width=4, depth=3, cfg=cfg)
    assert card.cell_size_px is None
    assert load_model(tmp_path / "m")[1].cell_size_px is None


def test_interrupt_keeps_the_last_best_model_file_intact(wbc_folder, tmp_path, monkeypatch):
    """Ctrl-C in epoch 2: the best model so far (epoch 1), saved as training went, is on disk whole and loads."""
    from napari_bloodseg.training import train as train_mod
    from napari_bloodseg.training import trainer

    calls, trained, epoch_states = [], [], []
    real_batch, real_fit = trainer._batch, train_mod.fit

    def interrupted_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the first step of epoch 2 (two steps per epoch)
            raise KeyboardInterrupt
        return real_batch(*args, **kwargs)

    def spy_fit(model, *args, **kwargs):
        trained.append(model)
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(trainer, "_batch", interrupted_batch)
    monkeypatch.setattr(train_mod, "fit", spy_fit)
    cfg = TrainConfig(epochs=3, steps_per_epoch=2, batch_size=2, patch_size=48, seed=0, device="cpu")
    out = tmp_path / "out" / "m"
    with pytest.raises(KeyboardInterrupt):
        train_model(
            wbc_folder,
            out,
            width=4,
            depth=3,
            cfg=cfg,
            val_fraction=1 / 6,
            on_epoch=lambda log: epoch_states.append(copy.deepcopy(trained[0].state_dict())),
        )
    assert len(epoch_states) == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.json", "m.safetensors"]  # no temp files
    model, card = load_model(out)  # whole: the checksum in its card matches
    assert card.training["best_epoch"] == 1 and card.metrics["val"]["n_images"] == 1
    saved = model.state_dict()
    assert all(torch.equal(saved[k], epoch_states[0][k]) for k in saved)


def test_train_model_is_reproducible_with_a_seed(wbc_folder, tmp_path):
    """Same data, settings and seed: the same weights, whatever ran in the process before (initialisation too)."""
    cfg = TrainConfig(epochs=1, steps_per_epoch=1, batch_size=2, patch_size=48, seed=5, device="cpu")
    states = []
    for run in ("a", "b"):
        torch.rand(3)  # the global generator is somewhere else before each run
        train_model(wbc_folder, tmp_path / run, width=4, depth=3, cfg=cfg, val_fraction=0.0)
        states.append(load_model(tmp_path / run)[0].state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_split_seed_keeps_the_split_while_the_training_seed_changes(wbc_folder, tmp_path):
    """A second training seed on the same validation/test ids: the split follows split_seed, the weights the seed."""
    runs = {}
    for label, seed, split_seed in (("a", 0, None), ("b", 1, 0), ("c", 1, None)):
        cfg = TrainConfig(epochs=1, steps_per_epoch=1, batch_size=2, patch_size=48, seed=seed, device="cpu")
        card, _ = train_model(
            wbc_folder, tmp_path / label, width=4, depth=3, cfg=cfg, val_fraction=1 / 3, split_seed=split_seed
        )
        runs[label] = card.training["val_ids"], load_model(tmp_path / label)[0].state_dict()
    (ids_a, w_a), (ids_b, w_b), (ids_c, _) = runs["a"], runs["b"], runs["c"]
    assert ids_b == ids_a and ids_c != ids_a  # with 6 images, seeds 0 and 1 split differently
    assert not all(torch.equal(w_a[k], w_b[k]) for k in w_a)


TINY = TrainConfig(epochs=1, steps_per_epoch=1, batch_size=2, patch_size=48, seed=0, device="cpu")


def _train(folder, out, **kwargs):
    return train_model(folder, out, architecture="unet", width=4, depth=3, cfg=copy.deepcopy(TINY), **kwargs)


def test_all_background_masks_are_refused_before_training(wbc_folder, tmp_path):
    """They trained, scored "val mean Dice 1.0000" (no class in prediction or mask) and saved a model that had
    never seen a cell."""
    import numpy as np

    from napari_bloodseg.io import read_mask, write_mask

    for mask in sorted(wbc_folder.glob("*.png")):
        labels, _ = read_mask(mask)
        write_mask(mask, np.zeros_like(labels), "wbc", overwrite=True)
    with pytest.raises(ValueError, match=r"the masks mark no cell anywhere \(all background\)"):
        _train(wbc_folder, tmp_path / "m", val_fraction=0.2)
    assert not (tmp_path / "m.json").exists()


def test_a_wholly_unlabelled_mask_is_left_out_and_named_whatever_the_split(wbc_folder, tmp_path):
    """In the validation part it stopped the run after an epoch with "nothing to score", for some seeds only."""
    import numpy as np

    from napari_bloodseg.io import read_mask, write_mask
    from napari_bloodseg.schemas import IGNORE_INDEX
    from napari_bloodseg.training.data import TrainingDataWarning

    labels, _ = read_mask(wbc_folder / "002.png")
    write_mask(wbc_folder / "002.png", np.full_like(labels, IGNORE_INDEX), "wbc", overwrite=True)
    for seed in range(4):  # the blank lands in the training part for some seeds, in validation for others
        with pytest.warns(TrainingDataWarning, match=r"left out, no pixel labelled: 002"):
            card, _ = train_model(
                wbc_folder,
                tmp_path / f"m{seed}",
                architecture="unet",
                width=4,
                depth=3,
                cfg=TrainConfig(**{**TINY.to_dict(), "seed": seed}),
                val_fraction=0.34,
            )
        assert "002" not in card.training["val_ids"] and card.training["n_train"] + card.training["n_val"] == 5


def test_a_validation_folder_holding_training_images_is_refused(wbc_folder, tmp_path):
    """Only the same path was refused: a copy (or the other folder layout) validated on training images, and
    checkpoint choice and the card's scores were those of training images."""
    import shutil

    copy_dir = tmp_path / "val"
    copy_dir.mkdir()
    for name in ("001", "004"):
        shutil.copy(wbc_folder / f"{name}.bmp", copy_dir / f"v{name}.bmp")
        shutil.copy(wbc_folder / f"{name}.png", copy_dir / f"v{name}.png")
    with pytest.raises(ValueError, match=r"2 validation images are training images \(v001 = 001, v004 = 004\)"):
        _train(wbc_folder, tmp_path / "m", val_data=copy_dir)
    assert not (tmp_path / "m.json").exists()


def test_one_image_twice_split_apart_is_named(wbc_folder, tmp_path):
    """Dataset 1 holds one image twice (112 = 139): split apart, a copy validates on a training image."""
    import shutil

    from napari_bloodseg.training.data import TrainingDataWarning

    for name in ("001", "002", "003", "004", "005"):
        shutil.copy(wbc_folder / "000.bmp", wbc_folder / f"{name}.bmp")
    with pytest.warns(TrainingDataWarning, match=r"validation images are copies of training images \(\d{3} = \d{3}"):
        _train(wbc_folder, tmp_path / "m", val_fraction=0.34)


def test_masks_predicted_by_bloodseg_are_named_before_training(wbc_folder, tmp_path):
    """Unedited predictions (their files say so) were trained on without a word: the network learns the model's
    own output, and validation measures agreement with it."""
    from napari_bloodseg.io import read_mask, write_mask
    from napari_bloodseg.training.data import TrainingDataWarning

    labels, _ = read_mask(wbc_folder / "003.png")
    write_mask(wbc_folder / "003.png", labels, "wbc", overwrite=True, predicted_by="wbc-unet")
    with pytest.warns(
        TrainingDataWarning, match=r"1 of 6 masks record being predictions of bloodseg.*003 \(wbc-unet\)"
    ):
        _train(wbc_folder, tmp_path / "m", val_fraction=0.2)


def test_cards_saved_on_the_way_name_the_device_and_say_the_run_had_not_ended(wbc_folder, tmp_path, monkeypatch):
    """They recorded device "auto" (as asked) and looked like the card of a finished run."""
    from napari_bloodseg.models import files

    cards = []
    real_save = files.save_model

    def spy(model, card, path, **kw):
        cards.append(copy.deepcopy(card.training))
        return real_save(model, card, path, **kw)

    from napari_bloodseg.training import train as train_mod

    monkeypatch.setattr(train_mod, "save_model", spy)
    cfg = TrainConfig(**{**TINY.to_dict(), "device": "auto"})
    train_model(wbc_folder, tmp_path / "m", architecture="unet", width=4, depth=3, cfg=cfg, val_fraction=0.2)
    assert len(cards) >= 2
    assert [(c["device"], c["finished"]) for c in cards] == [("cpu", False)] * (len(cards) - 1) + [("cpu", True)]

import dataclasses
import hashlib

import numpy as np
import pytest
import torch

from napari_bloodseg.inference import Cancelled, Predictor
from napari_bloodseg.models import ModelCard, build_model, get_model, list_models, save_model
from napari_bloodseg.models.files import model_paths
from napari_bloodseg.training import Sample, TrainConfig
from napari_bloodseg.training.finetune import FinetuneError, FinetuneResult, auto_scale, finetune
from napari_bloodseg.training.trainer import selection_score


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def base_model(tmp_model_dir):
    torch.manual_seed(0)
    model = build_model("unet", num_classes=3, width=4, depth=3)
    card = ModelCard(name="base", config=model.config, schema="wbc", cell_size_px=30.0)
    save_model(model, card, tmp_model_dir / "base")
    return tmp_model_dir / "base"


CFG = TrainConfig(epochs=4, steps_per_epoch=3, batch_size=4, patch_size=48, lr=1e-2, seed=0, device="cpu")


def test_finetune_saves_a_new_version_and_leaves_the_base_alone(base_model, wbc_samples, tmp_model_dir):
    weights, card_path = model_paths(base_model)
    before_hash = (_sha(weights), _sha(card_path))
    res = finetune("base", wbc_samples[:4], wbc_samples[4:], name="base-ft", cfg=CFG, scale=1.0)
    assert (_sha(weights), _sha(card_path)) == before_hash
    assert res.path == tmp_model_dir / "base-ft" and model_paths(res.path)[0].exists()
    assert res.card.base_model == "base" and res.card.version == "2"
    assert res.card.training["n_train"] == 4 and res.before and res.after
    assert "base-ft" in {m.name for m in list_models()}  # usable at once by name
    losses = [h.loss for h in res.history]
    assert losses[-1] < losses[0]
    base, base_card = get_model("base")
    new, new_card = get_model("base-ft")
    img = wbc_samples[0].image
    p_base = Predictor(base, base_card, device="cpu").predict(img, return_probs=True).probs
    p_new = Predictor(new, new_card, device="cpu").predict(img, return_probs=True).probs
    assert np.abs(p_base.astype(np.float32) - p_new.astype(np.float32)).max() > 0.05


def test_cancel_leaves_no_partial_model(base_model, wbc_samples, tmp_model_dir):
    state = {"n": 0}

    def cancel():
        state["n"] += 1
        return state["n"] > 3

    with pytest.raises(Cancelled):
        finetune("base", wbc_samples[:4], [], name="never", cfg=CFG, scale=1.0, cancel=cancel)
    assert not any(p.name.startswith("never") for p in tmp_model_dir.iterdir())
    assert not any(p.name.startswith(".") for p in tmp_model_dir.iterdir())  # no temp file left


def test_cancel_after_the_training_loop_still_saves_nothing(base_model, wbc_samples, tmp_model_dir, monkeypatch):
    """Cancel pressed while the last scores were computed (after the loop) said "Cancelling ..." and saved."""
    from napari_bloodseg.training import finetune as ft

    pressed = {"now": False}
    real_fit = ft.fit

    def fit_then_cancel(*args, **kwargs):
        result = real_fit(*args, **kwargs)
        pressed["now"] = True  # the user presses Cancel as the loop ends
        return result

    monkeypatch.setattr(ft, "fit", fit_then_cancel)
    with pytest.raises(Cancelled, match="nothing saved"):
        finetune(
            "base", wbc_samples[:4], wbc_samples[4:], name="late", cfg=CFG, scale=1.0, cancel=lambda: pressed["now"]
        )
    assert not any(p.name.startswith(("late", ".")) for p in tmp_model_dir.iterdir())


def test_a_wholly_unlabelled_image_is_left_out_and_named(base_model, wbc_samples, tmp_model_dir):
    """In the validation part it stopped the run with "nothing to score", or not, depending on the split's seed."""
    blank = Sample("blank", wbc_samples[5].image, np.full_like(wbc_samples[5].labels, 255))
    res = finetune("base", wbc_samples[:4], [wbc_samples[4], blank], name="b", cfg=CFG, scale=1.0)
    assert res.after["n_images"] == 1 and res.card.training["val_ids"] == [wbc_samples[4].name]
    assert any("left out, no pixel labelled: blank" in c for c in res.caveats)
    assert res.card.training["base_version"] == "1" and len(res.card.training["base_weights_sha256"]) == 64


def test_a_training_part_with_no_labelled_pixel_is_refused_before_any_work(base_model, wbc_samples):
    """It failed late (after the base's scores) with a bare "no training images"."""
    blank = [Sample(s.name, s.image, np.full_like(s.labels, 255)) for s in wbc_samples[:3]]
    with pytest.raises(FinetuneError, match="every training image is wholly unlabelled"):
        finetune("base", blank, wbc_samples[3:5], name="none", cfg=CFG, scale=1.0)


def test_partial_labels_train_only_where_annotated(base_model, wbc_samples, monkeypatch):
    # the unlabelled half must reach the loss as IGNORE_INDEX (which the loss skips: test_losses.py), not be
    # clamped, resized or cast into a class on the way through scaling, cropping and rotation
    from napari_bloodseg.training import trainer

    seen = []

    def spy(logits, target, *args, **kwargs):
        seen.append(target.detach().clone())
        return loss_fn(logits, target, *args, **kwargs)

    loss_fn = trainer.ce_dice_loss
    monkeypatch.setattr(trainer, "ce_dice_loss", spy)

    def ignored_share(samples, name):
        seen.clear()
        res = finetune("base", samples, [], name=name, cfg=CFG, scale=1.0)
        assert res.path is not None and np.isfinite(res.history[-1].loss)
        y = torch.cat([t.flatten() for t in seen])
        assert set(torch.unique(y).tolist()) <= {0, 1, 2, 255}
        return float((y == 255).float().mean()), set(torch.unique(y[y != 255]).tolist())

    partial = []
    for s in wbc_samples[:4]:
        lab = s.labels.copy()
        lab[: lab.shape[0] // 2] = 255  # only the lower half was corrected
        partial.append(Sample(s.name, s.image, lab))
    full_share, _ = ignored_share(wbc_samples[:4], "full")
    part_share, classes = ignored_share(partial, "partial")
    assert full_share < 0.1  # only padding of down-scaled crops
    assert 0.35 < part_share < 0.75  # the unlabelled half, whatever the rotation
    assert classes == {0, 1, 2}  # the corrected half still teaches every class


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty", "no labelled pixels"),
        ("size", "labels are"),
        ("classes", "do not exist"),
        ("none", "no corrected"),
        ("background", "mark no cell anywhere"),
        ("rbc-masks", "look like RBC masks"),
    ],
)
def test_guard_rails_refuse_with_a_clear_message(base_model, wbc_samples, tmp_model_dir, case, message):
    s = wbc_samples[0]
    bad = {
        "empty": [Sample("a", s.image, np.full_like(s.labels, 255))],
        "size": [Sample("a", s.image, s.labels[:-2])],
        "classes": [Sample("a", s.image, np.where(s.labels > 0, 7, 0).astype(np.uint8))],
        "none": [],
        "background": [Sample("a", s.image, np.zeros_like(s.labels))],
        "rbc-masks": [Sample("a", s.image, np.where(s.labels > 0, 2, 0).astype(np.uint8))],  # 0/255 read as WBC
    }[case]
    with pytest.raises(FinetuneError, match=message):
        finetune("base", bad, [], name="x", cfg=CFG, scale=1.0)
    assert not model_paths(tmp_model_dir / "x")[1].exists()


def test_existing_name_untrained_base_and_bad_scale_are_refused(base_model, wbc_samples, tmp_model_dir):
    steps: list[int] = []
    refusals = [("base", "exists"), ("BASE", "only in case"), ("WBC-UNet", "shipped model's name"), ("../up", "usable")]
    for taken, message in refusals:
        with pytest.raises(FinetuneError, match=message):
            finetune("base", wbc_samples[:2], [], name=taken, cfg=CFG, scale=1.0, on_step=lambda *a: steps.append(1))
    assert not steps, "a name that cannot be saved must be refused before any training"
    with pytest.raises(FinetuneError, match="untrained"):
        finetune("unet", wbc_samples[:2], [], name="y", cfg=CFG, scale=1.0)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(FinetuneError, match="a factor above 0"):
            finetune("base", wbc_samples[:2], [], name="z", cfg=CFG, scale=bad)
    assert not any(p.exists() for p in model_paths(tmp_model_dir / "z"))


def test_auto_scale_matches_cell_sizes(wbc_samples):
    card = ModelCard(name="b", config={"architecture": "unet"}, schema="wbc", cell_size_px=None)
    assert auto_scale(card, wbc_samples) == 1.0  # unknown training size: leave the data alone
    from napari_bloodseg.training.data import typical_cell_size

    mine = typical_cell_size(wbc_samples)
    card.cell_size_px = mine / 2.5
    assert auto_scale(card, wbc_samples) == pytest.approx(0.4, rel=1e-6)
    # a base that runs at half resolution (like rbc-deconvnet): its input scale is part of the factor
    card.input_scale = 0.5
    assert auto_scale(card, wbc_samples) == pytest.approx(0.2, rel=1e-6)
    card.cell_size_px = mine * 1.05  # within 10 %: the base's own scale, exactly
    assert auto_scale(card, wbc_samples) == 0.5


def test_auto_scale_asks_the_base_model_when_partial_labels_show_no_whole_cell(wbc_samples, monkeypatch):
    from napari_bloodseg.inference import cell_size
    from napari_bloodseg.models import build_model
    from napari_bloodseg.schemas import IGNORE_INDEX

    card = ModelCard(name="b", config={"architecture": "unet"}, schema="wbc", cell_size_px=40.0, input_scale=0.5)
    model = build_model("unet", num_classes=3, width=4)
    asked = []

    def estimate(predictor, images, **kwargs):
        asked.append(len(images))
        return cell_size.CellSizeEstimate(100.0, 0.4, 5, n_images=len(images))

    monkeypatch.setattr(cell_size, "estimate_batch_cell_size", estimate)
    whole = auto_scale(card, wbc_samples, model)  # whole cells in the labels: measured there, no model run
    assert not asked and whole == pytest.approx(0.5 * 40.0 / typical_cell_size_of(wbc_samples), rel=1e-6)
    partial = [
        dataclasses.replace(s, labels=np.where(np.arange(s.labels.shape[1]) < 8, s.labels, IGNORE_INDEX))
        for s in wbc_samples
    ]  # a strip down the left edge: every cell cut
    assert auto_scale(card, partial, model) == pytest.approx(0.5 * 0.4) and asked == [len(wbc_samples)]


def typical_cell_size_of(samples):
    from napari_bloodseg.training.data import typical_cell_size

    return typical_cell_size(samples)


def test_finetuned_card_runs_the_data_at_the_scale_it_was_trained_at(tmp_model_dir, wbc_samples):
    from napari_bloodseg.training.data import typical_cell_size

    torch.manual_seed(0)
    model = build_model("unet", num_classes=3, width=4, depth=3)
    mine = typical_cell_size(wbc_samples[:3])
    card = ModelCard(name="half", config=model.config, schema="wbc", input_scale=0.5, cell_size_px=mine / 1.6)
    save_model(model, card, tmp_model_dir / "half")
    res = finetune(str(tmp_model_dir / "half"), wbc_samples[:2], wbc_samples[2:3], cfg=CFG, name="half-ft")
    # trained on the data resized by 0.5 / 1.6; the new card must apply exactly that to the user's images
    assert res.card.training["scale"] == pytest.approx(0.5 / 1.6, rel=1e-6)
    assert res.card.input_scale == pytest.approx(0.5 / 1.6, rel=1e-6)
    assert res.card.cell_size_px == pytest.approx(mine, abs=0.1)  # the user's cells, in the user's pixels


def _base_with_data(tmp_model_dir, wbc_folder, steps: int = 0) -> str:
    """A trained-looking base whose card names its (synthetic) training folder and validation ids (trained for
    ``steps`` on that folder first, when a test needs base-domain scores that respond smoothly to the weights)."""
    torch.manual_seed(0)
    model = build_model("unet", num_classes=3, width=4, depth=3)
    if steps:
        from napari_bloodseg.training import load_samples
        from napari_bloodseg.training.trainer import fit

        card = ModelCard(name="based", config=model.config, schema="wbc")
        pre = TrainConfig(epochs=1, steps_per_epoch=steps, batch_size=4, patch_size=48, lr=1e-2, device="cpu")
        fit(model, card, load_samples(wbc_folder, "wbc"), [], pre)
    card = ModelCard(
        name="based",
        config=model.config,
        schema="wbc",
        training={"data": str(wbc_folder), "val_ids": ["000", "001"], "test_ids": ["005"]},
    )
    save_model(model, card, tmp_model_dir / "based")
    return str(tmp_model_dir / "based")


def test_base_domain_guard_replays_the_base_training_part_and_refuses_a_drop(tmp_model_dir, wbc_folder, wbc_samples):
    base = _base_with_data(tmp_model_dir, wbc_folder)
    wreck = [Sample(s.name, s.image, np.full_like(s.labels, 2)) for s in wbc_samples]  # "everything is nucleus"
    cfg = TrainConfig(epochs=6, steps_per_epoch=3, batch_size=4, patch_size=48, lr=5e-2, device="cpu")
    # a guard nothing can pass (it asks for a gain): refused, even the weakest mix with the base
    with pytest.raises(FinetuneError, match="lower the base model's own validation Dice.*mixed 0.25"):
        finetune(base, wreck[:4], wreck[4:], cfg=cfg, name="wrecked", replay=0, max_base_drop=-1.0)
    assert not any(p.exists() for p in model_paths(tmp_model_dir / "wrecked"))
    res = finetune(base, wreck[:4], wreck[4:], cfg=cfg, name="allowed", max_base_drop=1.0)
    assert res.card.training["replayed_base_images"] == 3  # 6 images minus 2 validation and 1 test id
    assert res.base_before is not None and res.base_after is not None
    assert res.weight_mix == 1.0 and res.card.training["weight_mix"] == 1.0


def test_a_fine_tune_beyond_the_guard_is_mixed_with_the_base_until_it_passes(tmp_model_dir, wbc_folder, wbc_samples):
    import copy

    from napari_bloodseg.training.finetune import WEIGHT_MIXES, base_domain_samples, mix_weights
    from napari_bloodseg.training.trainer import validate

    base = _base_with_data(tmp_model_dir, wbc_folder, steps=40)
    wreck = [Sample(s.name, s.image, np.full_like(s.labels, 2)) for s in wbc_samples]
    cfg = TrainConfig(epochs=6, steps_per_epoch=3, batch_size=4, patch_size=48, lr=1e-2, device="cpu", seed=3)
    full = finetune(base, wreck[:4], wreck[4:], cfg=cfg, name="full", replay=0, max_base_drop=1.0)
    full_drop = selection_score(full.base_before) - selection_score(full.base_after)
    assert full_drop > 0.02  # the wreck really hurts the base domain
    # the base-domain drop of every mix the guard may try, measured as the guard measures it
    start, base_card = get_model(base)
    tuned, _ = get_model(str(full.path))
    _, guard_images = base_domain_samples(base_card, 0)
    work = copy.deepcopy(base_card)
    work.input_scale = 1.0
    probe = copy.deepcopy(start)
    drops = {}
    for share in WEIGHT_MIXES:
        probe.load_state_dict(mix_weights(start.state_dict(), tuned.state_dict(), share))
        drops[share] = selection_score(full.base_before) - selection_score(validate(probe, work, guard_images, "cpu"))
    # a limit that the 0.75 mix fails and the 0.5 mix passes: the guard must keep 0.5, the largest that passes
    assert drops[0.5] < drops[0.75] < full_drop
    limit = (drops[0.5] + drops[0.75]) / 2
    res = finetune(base, wreck[:4], wreck[4:], cfg=cfg, name="mixed", replay=0, max_base_drop=limit)
    assert res.weight_mix == 0.5 and res.card.training["weight_mix"] == 0.5
    assert selection_score(res.base_before) - selection_score(res.base_after) <= limit
    assert "mixed" in res.card.description
    # what was saved is the mix: its weights lie between the base's and the full fine-tune's
    mixed, _ = get_model(str(res.path))
    key = next(k for k, v in start.state_dict().items() if v.is_floating_point() and v.numel() > 8)
    a, b, m = start.state_dict()[key], tuned.state_dict()[key], mixed.state_dict()[key]
    torch.testing.assert_close(m, a + res.weight_mix * (b - a), rtol=1e-4, atol=1e-5)


def test_a_second_fine_tune_guards_the_original_domain(tmp_model_dir, wbc_folder, wbc_samples):
    """Fine-tuning a fine-tuned model guarded (and replayed) the first fine-tune's corrected images: Dataset 1 was
    never checked again."""
    base = _base_with_data(tmp_model_dir, wbc_folder)
    cfg = TrainConfig(epochs=1, steps_per_epoch=2, batch_size=4, patch_size=48, lr=1e-3, device="cpu", seed=0)
    first = finetune(base, wbc_samples[:3], wbc_samples[3:5], cfg=cfg, name="gen1", max_base_drop=1.0)
    assert first.card.training["base_domain"]["data"] == str(wbc_folder)
    second = finetune("gen1", wbc_samples[:3], wbc_samples[3:5], cfg=cfg, name="gen2", max_base_drop=1.0)
    assert second.base_before is not None and second.base_before["n_images"] == 2  # the base's own ids 000, 001
    assert second.card.training["replayed_base_images"] == 3  # its training part, not gen1's corrected images
    assert second.card.training["base_domain"] == first.card.training["base_domain"]


def test_the_base_data_are_found_where_an_installed_package_can_have_them(tmp_path, monkeypatch):
    """The shipped cards say ../shared/data/...: relative to a checkout, which an installed package is not."""
    from napari_bloodseg.training.finetune import _base_data_folder

    recorded = "../shared/data/wbc/dataset1"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BLOODSEG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("napari_bloodseg.training.finetune.__file__", str(tmp_path / "site" / "pkg" / "x" / "f.py"))
    monkeypatch.delenv("BLOODSEG_DATA", raising=False)
    assert _base_data_folder(recorded) is None
    (tmp_path / "cache" / "wbc-dataset1").mkdir(parents=True)  # the Zheng sample's download
    assert _base_data_folder(recorded) == tmp_path / "cache" / "wbc-dataset1"
    (tmp_path / "mine" / "wbc" / "dataset1").mkdir(parents=True)
    monkeypatch.setenv("BLOODSEG_DATA", str(tmp_path / "mine"))
    assert _base_data_folder(recorded) == tmp_path / "mine" / "wbc" / "dataset1"
    assert _base_data_folder("../shared/data/rbc") is None  # no download for that one


def test_finetune_augments_like_the_base_was_trained(tmp_model_dir, wbc_samples):
    torch.manual_seed(0)
    model = build_model("unet", num_classes=3, width=4, depth=3)
    settings = {"patch_size": 40, "colour_strength": 0.9, "scale_range": [0.8, 1.25], "red_cells": 0.3, "lr": 0.5}
    card = ModelCard(name="aug", config=model.config, schema="wbc", training={"settings": settings})
    save_model(model, card, tmp_model_dir / "aug")
    res = finetune(str(tmp_model_dir / "aug"), wbc_samples[:2], [], cfg=CFG, name="aug-ft", scale=1.0)
    got = res.card.training["settings"]
    assert (got["patch_size"], got["colour_strength"], tuple(got["scale_range"])) == (40, 0.9, (0.8, 1.25))
    assert got["red_cells"] == 0.3
    assert got["lr"] == CFG.lr  # only the augmentation is the base's: the schedule stays the fine-tune's
    res = finetune(str(tmp_model_dir / "aug"), wbc_samples[:2], [], cfg=CFG, name="aug-ft2", scale=1.0, like_base=False)
    assert res.card.training["settings"]["patch_size"] == CFG.patch_size


def test_mix_weights_moves_the_base_to_the_tuned_device_and_keeps_counters():
    from napari_bloodseg.training.finetune import mix_weights

    base = {"w": torch.zeros(3), "n": torch.tensor(1)}
    mixed = mix_weights(base, {"w": torch.full((3,), 4.0), "n": torch.tensor(5)}, 0.25)
    torch.testing.assert_close(mixed["w"], torch.full((3,), 1.0))
    assert int(mixed["n"]) == 5  # integer buffers (BatchNorm's batch counter) are not averaged
    on_meta = mix_weights(base, {"w": torch.ones(3, device="meta"), "n": torch.tensor(5)}, 0.5)
    assert on_meta["w"].device.type == "meta"  # a tuned model on a GPU: the CPU base follows it there


def _report(n: int, dice: float = 0.9) -> dict | None:
    return {"n_images": n, "per_class": {"cell": {"dice": dice}}} if n else None


@pytest.mark.parametrize(
    "n_val, expected", [(0, "no image was held out"), (1, "1 validation image"), (2, "2 validation images"), (3, None)]
)
def test_few_or_no_validation_images_come_with_a_caveat(n_val, expected):
    card = ModelCard(name="m", config={"architecture": "unet"}, schema="wbc")
    caveats = FinetuneResult(card, None, _report(n_val), _report(n_val)).caveats
    assert caveats == [] if expected is None else len(caveats) == 1 and expected in caveats[0]


def test_a_fine_tune_that_scores_below_its_base_says_so():
    card = ModelCard(name="m", config={"architecture": "unet"}, schema="wbc", base_model="wbc-unet")
    worse = FinetuneResult(card, None, _report(5, 0.95), _report(5, 0.93)).caveats
    assert len(worse) == 1 and "lower than its base wbc-unet" in worse[0] and "0.9500 -> 0.9300" in worse[0]
    assert FinetuneResult(card, None, _report(5, 0.95), _report(5, 0.9498)).caveats == []  # noise: no warning
    assert FinetuneResult(card, None, _report(5, 0.93), _report(5, 0.95)).caveats == []


def test_switching_the_guard_off_saves_what_the_guard_would_refuse(tmp_model_dir, wbc_folder, wbc_samples):
    base = _base_with_data(tmp_model_dir, wbc_folder)
    wreck = [Sample(s.name, s.image, np.full_like(s.labels, 2)) for s in wbc_samples]
    cfg = TrainConfig(epochs=2, steps_per_epoch=2, batch_size=4, patch_size=48, lr=5e-2, device="cpu")
    # the same impossible guard as above refuses; with the guard off the base domain is not even measured
    res = finetune(base, wreck[:4], wreck[4:], cfg=cfg, name="unguarded", replay=0, guard=False, max_base_drop=-1.0)
    assert res.path == tmp_model_dir / "unguarded" and model_paths(res.path)[0].exists()
    assert res.base_before is None and res.base_after is None and res.weight_mix == 1.0
    assert res.card.training["guard"] is False


def test_default_finetune_keeps_the_base_batchnorm_statistics(base_model, wbc_samples):
    """FINETUNE_DEFAULTS freezes BatchNorm: a few new-domain batches must not overwrite the base's statistics."""
    from napari_bloodseg.training.finetune import finetune_config

    cfg = finetune_config(epochs=2, steps_per_epoch=2, batch_size=2, patch_size=48, device="cpu", max_minutes=None)
    res = finetune("base", wbc_samples[:4], [], name="bn", cfg=cfg, scale=1.0)
    base, _ = get_model("base")
    new, _ = get_model(str(res.path))
    b, n = base.state_dict(), new.state_dict()
    stats = [k for k in b if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(b[k], n[k]) for k in stats)
    assert any(not torch.equal(b[k], n[k]) for k in b if k.endswith("weight"))  # it did train


def test_a_base_named_with_spaces_gives_its_fine_tune_a_portable_name(wbc_samples, tmp_model_dir):
    """Names once could hold spaces; the default 'BASE-ftN' of such a base must still pass the name rules."""
    import dataclasses

    torch.manual_seed(0)
    model = build_model("unet", num_classes=3, width=4, depth=3)
    save_model(
        model, ModelCard(name="my base", config=model.config, schema="wbc", cell_size_px=30.0), tmp_model_dir / "old"
    )
    cfg = dataclasses.replace(CFG, epochs=1, steps_per_epoch=1)
    res = finetune(str(tmp_model_dir / "old"), wbc_samples[:2], [], cfg=cfg, scale=1.0, guard=False)
    assert res.card.name == "my-base-ft1" and res.path == tmp_model_dir / "my-base-ft1"


def test_a_separate_validation_folder_of_training_images_is_refused(base_model, wbc_samples, tmp_model_dir):
    """A copy of the training folder given as --val passed (only the same path was refused): the before/after
    table then scored training images."""
    copies = [Sample(f"v{s.name}", s.image.copy(), s.labels.copy()) for s in wbc_samples[:2]]
    with pytest.raises(FinetuneError, match=r"2 validation images are training images \(v000 = 000, v001 = 001\)"):
        finetune("base", wbc_samples[:4], copies, name="x", cfg=CFG, scale=1.0, val_source="/elsewhere/val")
    assert not (tmp_model_dir / "x.json").exists()
    # split from one set (one image twice in the user's folder): saved, with a caveat
    cfg = dataclasses.replace(CFG, epochs=1, steps_per_epoch=1)
    res = finetune("base", wbc_samples[:4], copies[:1], name="y", cfg=cfg, scale=1.0)
    assert any("1 validation images are copies of training images (v000 = 000)" in c for c in res.caveats)


def test_masks_that_record_being_predictions_come_with_a_caveat(base_model, wbc_samples, tmp_model_dir):
    """Unedited predictions were fine-tuned on without a word: the before score measured the base's agreement
    with its own output."""
    marked = [dataclasses.replace(s, predicted_by="base") for s in wbc_samples[:2]]
    cfg = dataclasses.replace(CFG, epochs=1, steps_per_epoch=1)
    res = finetune("base", marked + wbc_samples[2:4], wbc_samples[4:], name="p", cfg=cfg, scale=1.0)
    assert res.caveats[0].startswith("2 of 6 masks record being predictions of bloodseg, not corrections: 000 (base)")


def test_all_images_held_out_is_said_as_it_is(base_model, wbc_samples):
    """It said "every training image is wholly unlabelled ()" when no training image was there at all."""
    with pytest.raises(FinetuneError, match=r"^no training image: all 6 corrected images are held out for validat"):
        finetune("base", [], wbc_samples, name="z", cfg=CFG, scale=1.0)


def test_a_base_trained_with_a_validation_folder_is_guarded_on_that_folder(tmp_model_dir, wbc_folder, tmp_path):
    """`train --val DIR` records val_ids "(separate folder)": the replay and the guard were silently dropped, and
    the warning said the data were not on this machine."""
    import shutil

    from napari_bloodseg.training.finetune import base_domain_samples, guard_unavailable

    val_dir = tmp_path / "val"
    val_dir.mkdir()
    for name in ("004", "005"):
        for suffix in (".bmp", ".png"):
            shutil.move(wbc_folder / f"{name}{suffix}", val_dir / f"{name}{suffix}")
    model = build_model("unet", num_classes=3, width=4, depth=3)
    info = {"data": str(wbc_folder), "val_data": str(val_dir), "val_ids": "(separate folder)", "test_ids": ["003"]}
    card = ModelCard(name="sep", config=model.config, schema="wbc", training=info)
    replay, guard = base_domain_samples(card, -1)
    assert sorted(s.name for s in guard) == ["004", "005"]
    assert sorted(s.name for s in replay) == ["000", "001", "002"]  # the test id stays untouched
    shutil.rmtree(val_dir)
    assert base_domain_samples(card, -1) == ([], [])
    assert guard_unavailable(card).startswith(f"the base model's own validation images ({val_dir}) are not on this")


def test_why_the_guard_did_not_check_is_said_as_it_is(base_model, wbc_samples, tmp_model_dir, wbc_folder):
    from napari_bloodseg.training.finetune import guard_unavailable

    model = build_model("unet", num_classes=3, width=4, depth=3)
    no_val = ModelCard(name="nv", config=model.config, schema="wbc", training={"data": str(wbc_folder), "val_ids": []})
    assert guard_unavailable(no_val).startswith("the base model was trained with no validation images")
    assert "records no training data" in guard_unavailable(ModelCard(name="b", config=model.config, schema="wbc"))
    cfg = dataclasses.replace(CFG, epochs=1, steps_per_epoch=1)
    res = finetune("base", wbc_samples[:4], [], name="nv-ft", cfg=cfg, scale=1.0)
    assert res.guard_skipped.endswith("records no training data, so there is no base domain to check")
    training = res.card.training
    assert training["guard"] is True and training["guard_checked"] is False
    assert training["val_data"] is None  # nothing was held out: no validation data to name

"""Fine-tune widget end to end on synthetic crops and a tiny user base model in a temporary model folder."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest

from napari_bloodseg.plugin.layers import schema_layer_kwargs
from napari_bloodseg.training.finetune_defaults import FINETUNE_DEFAULTS

BASE = "tiny-wbc"
SIZE = 96


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def base_model(tmp_model_dir):
    """An untrained width-4 U-Net saved as a *trained* user model (so fine-tuning accepts it)."""
    import torch

    from napari_bloodseg.models import ModelCard, build_model, save_model

    torch.manual_seed(0)
    model = build_model("unet", num_classes=3, width=4)
    save_model(model, ModelCard(name=BASE, config=model.config, schema="wbc"), tmp_model_dir / BASE)
    return tmp_model_dir / f"{BASE}.safetensors"


def model_files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def add_corrected(viewer, n: int, *, seed: int = 10, corrected: bool = True) -> list[str]:
    """n synthetic crops, each with a prediction layer holding the exact mask, marked corrected."""
    from napari_bloodseg.data import synthetic_wbc

    names = []
    for i in range(n):
        name = f"c{i}"
        image, mask = synthetic_wbc(size=SIZE, seed=seed + i)
        viewer.add_image(image, name=name, rgb=True)
        kwargs = schema_layer_kwargs("wbc", f"{name} [{BASE}]", role="prediction", source=name, model=BASE)
        kwargs["metadata"]["bloodseg"]["corrected"] = corrected
        viewer.add_labels(mask, **kwargs)
        names.append(name)
    return names


def configure(widget, *, epochs: int, lr: float = 1e-2, batch: int = 4, budget: int = 0) -> None:
    widget.set_base(BASE)
    widget.epochs_spin.setValue(epochs)
    widget.lr_spin.setValue(lr)
    widget.batch_spin.setValue(batch)
    widget.budget_spin.setValue(budget)


def predict(name: str, image: np.ndarray) -> np.ndarray:
    from napari_bloodseg.inference import Predictor
    from napari_bloodseg.models import get_model

    model, card = get_model(name)
    return Predictor(model, card, device="cpu", tile_size=0).predict(image).labels


def test_finetune_from_layers_saves_new_model_and_updates_segment_list(
    viewer, dock, wait_idle, base_model, tmp_model_dir, notes
):
    import shutil

    from napari_bloodseg.data import synthetic_wbc

    for suffix in (".safetensors", ".json"):  # a second trained model, listed before the base
        shutil.copy(tmp_model_dir / f"{BASE}{suffix}", tmp_model_dir / f"a-first{suffix}")
    names = add_corrected(viewer, 4)
    other, _ = synthetic_wbc(size=SIZE, seed=99)
    viewer.add_image(other, name="other", rgb=True)
    viewer.add_image(np.zeros((800, 800, 3), np.uint8), name="field", rgb=True)  # a smear field: not for a WBC model
    seg = dock("Segment")
    widget = dock("Fine-tune")

    # pairs found by name, corrected ones ticked; the unpaired image is not a pair
    assert [p.image.name for p in widget.ticked_pairs()] == names
    assert all("✓ corrected" in widget.pair_list.item(i).text() for i in range(widget.pair_list.count()))
    assert widget.val_spin.value() == pytest.approx(0.2)
    assert widget.budget_spin.value() == round(FINETUNE_DEFAULTS["max_minutes"] * 60)
    # the base follows the model that made the ticked segmentations, not the first one listed
    assert widget.base_combo.itemData(0) != BASE and widget.base_name() == BASE
    # trained models only: the bare architectures are not offered as a base
    assert "unet" not in [widget.base_combo.itemData(i) for i in range(widget.base_combo.count())]
    configure(widget, epochs=12)
    widget.val_spin.setValue(0.25)  # 3 training images, 1 for before/after
    assert widget.name_edit.text() == f"{BASE}-ft1"
    base_hash = sha256(base_model)

    assert widget.run() is not None
    assert widget.running and widget.cancel_btn.isEnabled() and not widget.run_btn.isEnabled()
    wait_idle(widget)

    assert widget.last_status == "done", widget.status.text()
    res = widget.last_result
    new = tmp_model_dir / f"{BASE}-ft1.safetensors"
    assert new.is_file() and (tmp_model_dir / f"{BASE}-ft1.json").is_file()
    assert res.card.name == f"{BASE}-ft1" and res.card.base_model == BASE
    assert sha256(base_model) == base_hash, "the base model file must never change"
    assert not notes.errors
    assert "rest on 1 validation image: a weak guide" in widget.status.text()  # said, not hidden in a log

    # the live curve got every step and every epoch mean, and the loss went down
    total = 12  # 3 training images, batch 4: one step per epoch
    assert len(widget.losses) == total and [s for s, _ in widget.curve.steps] == list(range(1, total + 1))
    assert [v for _, v in widget.curve.epochs] == pytest.approx([h.loss for h in res.history])
    assert np.mean(widget.losses[-4:]) < np.mean(widget.losses[:4])
    assert widget.progress.value() == widget.progress.maximum()

    # before/after Dice per class on the validation image, as in the table
    assert res.card.training["val_ids"] == [n for n in names if n not in res.card.training["train_ids"]]
    table = {
        widget.metrics_table.item(r, 0).text(): (
            widget.metrics_table.item(r, 1).text(),
            widget.metrics_table.item(r, 2).text(),
        )
        for r in range(widget.metrics_table.rowCount())
    }
    assert set(table) == set(res.after["per_class"])
    for cls, (before, after) in table.items():
        assert before == f"{res.before['per_class'][cls]['dice']:.3f}"
        assert after == f"{res.after['per_class'][cls]['dice']:.3f}"
    assert res.after["per_class"]["cell"]["dice"] > res.before["per_class"]["cell"]["dice"] + 0.2
    assert "records no training data" in widget.guard_label.text()  # the tiny base: said as it is

    # the new model predicts something else than the base on the held-out crop
    val_image = viewer.layers[res.card.training["val_ids"][0]].data
    assert not np.array_equal(predict(f"{BASE}-ft1", val_image), predict(BASE, val_image))

    # it shows up at once in the Segment widget, and the next default name moves on
    specs = [seg.model_combo.itemData(i) for i in range(seg.model_combo.count())]
    assert f"{BASE}-ft1" in specs
    assert widget.base_combo.findData(f"{BASE}-ft1") >= 0
    assert widget.name_edit.text() == f"{BASE}-ft2"

    # "Apply to remaining images" segments only the crop that was not used for training, and names the smear
    # field it leaves out (a WBC model applied to it gave a layer of nonsense without a word)
    assert widget.apply_btn.isEnabled()
    assert widget.remaining_images() == ["other"]
    assert widget.apply_to_remaining() is not None
    assert f"{BASE}-ft1 segments single-cell crops: left out field (a smear field)" in notes.of("info")
    wait_idle(seg)
    assert seg.last_status == "done"
    assert [layer.name for layer in seg.last_layers] == [f"other [{BASE}-ft1]"]
    assert seg.model_spec() == f"{BASE}-ft1"
    np.testing.assert_array_equal(viewer.layers[f"other [{BASE}-ft1]"].data, predict(f"{BASE}-ft1", other))


def endless_run_widget(viewer, dock):
    """The Fine-tune widget set for a run that only ends when stopped: two corrected crops, 5000 epochs."""
    add_corrected(viewer, 2)
    widget = dock("Fine-tune")
    configure(widget, epochs=5000, batch=2)
    widget.all_train_check.setChecked(True)
    return widget


def test_cancel_mid_run_saves_nothing_and_napari_stays_responsive(
    viewer, dock, wait_idle, base_model, tmp_model_dir, qtbot
):
    from qtpy.QtCore import QTimer

    widget = endless_run_widget(viewer, dock)
    before = model_files(tmp_model_dir)

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    try:
        widget.run()
        qtbot.waitUntil(lambda: len(widget.losses) >= 3, timeout=30_000)  # really mid-run
        t0 = time.perf_counter()
        qtbot.waitUntil(lambda: time.perf_counter() - t0 > 0.6, timeout=5_000)
        assert widget.running
        widget.cancel()
        wait_idle(widget, timeout=30_000)
    finally:
        timer.stop()

    assert widget.last_status == "cancelled"
    assert widget.status.text() == "Cancelled, nothing saved"
    assert model_files(tmp_model_dir) == before
    assert widget.last_result is None and not widget.apply_btn.isEnabled()
    assert len(widget.curve.steps) >= 3
    assert widget.run_btn.isEnabled() and not widget.cancel_btn.isEnabled()
    gaps = np.diff(ticks)
    # a worker-thread run keeps the GUI turning; training in the GUI thread would stall it for the whole run
    assert len(ticks) > 20 and gaps.max() < 1.0, f"event loop stalled for {gaps.max():.2f} s"


def test_closing_the_panel_mid_run_cancels_it_and_saves_nothing(
    viewer, dock, wait_idle, base_model, tmp_model_dir, qtbot
):
    widget = endless_run_widget(viewer, dock)
    before = model_files(tmp_model_dir)
    widget.run()
    qtbot.waitUntil(lambda: len(widget.losses) >= 3, timeout=30_000)
    viewer.window.remove_dock_widget(widget)  # the dock's X: nobody could see or cancel the run any more
    wait_idle(widget, timeout=30_000)
    assert widget.last_status == "cancelled"
    assert model_files(tmp_model_dir) == before


def test_guard_rails_refuse_with_a_notification_and_save_nothing(
    viewer, dock, wait_idle, base_model, tmp_model_dir, notes, tmp_path
):
    from napari_bloodseg.data import synthetic_rbc, synthetic_wbc

    image, _ = synthetic_wbc(size=SIZE, seed=1)
    viewer.add_image(image, name="cell", rgb=True)
    widget = dock("Fine-tune")
    configure(widget, epochs=2)
    before = model_files(tmp_model_dir)

    def refused(fragment: str) -> None:
        n = len(notes.errors)
        assert widget.run() is None
        assert widget.worker is None and widget.last_status == "refused"
        assert len(notes.errors) == n + 1 and fragment in notes.errors[-1], notes.errors[-1:]
        assert model_files(tmp_model_dir) == before

    # nothing ticked (no pairs at all)
    refused("no pair ticked")

    # no labelled pixels: everything painted "unlabelled" (255)
    kw = schema_layer_kwargs("wbc", "cell [x]", role="prediction", source="cell")
    kw["metadata"]["bloodseg"]["corrected"] = True
    labels = viewer.add_labels(np.full((SIZE, SIZE), 255, np.uint8), **kw)
    assert [p.labels.name for p in widget.ticked_pairs()] == ["cell [x]"]
    refused("no labelled pixels")

    # a segmentation that does not cover its image pixel for pixel
    viewer.layers.remove(labels)
    viewer.add_labels(np.ones((64, 64), np.uint8), **kw)
    refused("is 64x64 but its image 'cell' is 96x96")

    # an RBC segmentation (2 classes) against a WBC base
    viewer.layers.remove("cell [x]")
    rbc_image, rbc_mask = synthetic_rbc((SIZE, SIZE), seed=2)
    viewer.layers["cell"].data = rbc_image
    kw_rbc = schema_layer_kwargs("rbc", "cell mask", role="mask", source="cell")
    viewer.add_labels(rbc_mask, **kw_rbc)
    assert [p.labels.name for p in widget.ticked_pairs()] == ["cell mask"]  # expert masks are ticked too
    refused("is a rbc segmentation")

    # label values that are no class of the base model's schema (no schema recorded on the layer)
    viewer.layers.remove("cell mask")
    viewer.add_labels(np.full((SIZE, SIZE), 7, np.uint8), name="cell mask")
    assert not widget.ticked_pairs()  # neither marked corrected nor known to be an expert mask
    widget.select_pairs(["cell mask"])
    refused("not classes of the wbc schema")

    # a name that exists already (checked before any training time is spent)
    viewer.layers["cell mask"].data = synthetic_wbc(size=SIZE, seed=1)[1]
    widget.name_edit.setText(BASE)
    refused("exists already")
    widget.name_edit.setText(BASE.upper())  # one file on macOS and Windows
    refused("only in case")
    widget.name_edit.setText("bad/name")
    refused("not a usable model name")

    # a folder without image+mask pairs: refused in the worker, still a notification and no file
    widget.name_edit.setText("from-folder")
    (tmp_path / "empty").mkdir()
    widget.set_folder(tmp_path / "empty")
    assert widget.run() is not None
    wait_idle(widget)
    assert widget.last_status == "refused"
    assert "no image+mask pairs" in notes.errors[-1]
    assert model_files(tmp_model_dir) == before


def test_finetune_from_a_folder_and_partial_labels(viewer, dock, wait_idle, base_model, tmp_model_dir, tmp_path):
    """Folder mode trains on image+mask files; 255 ('unlabelled' in the Correct widget) does not count."""
    from PIL import Image as PILImage

    from napari_bloodseg.data import synthetic_wbc
    from napari_bloodseg.schemas import WBC
    from napari_bloodseg.training.finetune import FinetuneResult

    # the Correct widget offers "unlabelled" (value 255) next to the schema's classes
    image, mask = synthetic_wbc(size=SIZE, seed=4)
    viewer.add_image(image, name="cell", rgb=True)
    layer = viewer.add_labels(mask, **schema_layer_kwargs("wbc", "cell [x]", role="prediction", source="cell"))
    widget = dock("Fine-tune")
    correct = dock("Correct")
    # not marked corrected yet: listed, not ticked; marking it corrected ticks it
    assert widget.pair_list.count() == 1 and not widget.ticked_pairs()
    assert "not marked corrected" in widget.pair_list.item(0).text()
    correct.corrected_check.setChecked(True)
    assert [p.labels.name for p in widget.ticked_pairs()] == ["cell [x]"]
    assert "✓ corrected" in widget.pair_list.item(0).text()
    assert "1 marked corrected" in widget.pairs_label.text()

    correct.unlabelled_btn.click()
    assert layer.selected_label == 255 and layer.mode == "paint"
    layer.data[:, : SIZE // 2] = 255  # only the right half was checked

    from napari_bloodseg.plugin.finetune_pairs import find_layer_pairs, pair_samples

    (sample,) = pair_samples(find_layer_pairs(viewer), "wbc", BASE)
    assert (sample.labels[:, : SIZE // 2] == 255).all() and (
        sample.labels[:, SIZE // 2 :] == mask[:, SIZE // 2 :]
    ).all()

    data = tmp_path / "corrected"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
    for i in range(2):
        img, msk = synthetic_wbc(size=SIZE, seed=20 + i)
        PILImage.fromarray(img).save(data / "images" / f"s{i}.png")
        PILImage.fromarray(WBC.to_disk(msk)).save(data / "masks" / f"s{i}.png")
    configure(widget, epochs=2)
    widget.all_train_check.setChecked(True)
    widget.set_folder(data)
    widget.name_edit.setText("folder-ft")
    assert widget.run() is not None
    wait_idle(widget)
    assert widget.last_status == "done", widget.status.text()
    assert isinstance(widget.last_result, FinetuneResult)
    assert (tmp_model_dir / "folder-ft.safetensors").is_file()
    assert widget.last_result.card.training["data"] == str(data)
    assert widget.last_result.card.training["train_ids"] == ["s0", "s1"]
    assert widget.metrics_table.rowCount() == 0 and "no validation part" in widget.status.text()
    assert "weak guide" not in widget.status.text()  # no scores, nothing to caveat
    assert widget.remaining_images() == ["cell"]  # from a folder: every image layer is "remaining"


def test_base_starts_on_the_shipped_wbc_unet(viewer, dock):
    widget = dock("Fine-tune")
    assert widget.base_name() == "wbc-unet"  # not the alphabetically first model (rbc-deconvnet)


def test_a_folder_of_rbc_pairs_moves_the_base_to_the_rbc_model(viewer, dock, tmp_path):
    from PIL import Image

    from napari_bloodseg.data import synthetic_rbc, synthetic_wbc
    from napari_bloodseg.io import write_mask

    rbc, wbc = tmp_path / "rbc", tmp_path / "wbc"
    rbc.mkdir(), wbc.mkdir()
    for i in range(2):
        img, lab = synthetic_rbc((120, 160), seed=i)
        Image.fromarray(img).save(rbc / f"f{i}.png")
        write_mask(rbc / f"f{i}_mask.png", lab, "rbc")
        img, lab = synthetic_wbc(48, seed=i)
        Image.fromarray(img).save(wbc / f"{i:03d}.bmp")
        write_mask(wbc / f"{i:03d}.png", lab, "wbc")
    widget = dock("Fine-tune")
    widget.set_folder(rbc)
    assert widget.base_name() == "rbc-deconvnet"
    widget.folder_edit.setText(str(wbc))
    widget.folder_edit.editingFinished.emit()  # typed, not browsed
    assert widget.base_name() == "wbc-unet"
    widget.set_base("wbc-segnet")  # the user's pick stays whatever the folder holds
    widget.set_folder(rbc)
    assert widget.base_name() == "wbc-segnet"


def test_rbc_expert_masks_move_the_base_to_the_rbc_model(viewer, dock, tmp_path, tmp_model_dir):
    """Expert masks opened by the reader record no model: the base follows their schema as a folder's masks do (it
    stayed on wbc-unet and Run was refused: "choose a rbc base model"). Each source moves the base only while it is
    the one chosen, and a base picked by hand stays, in both."""
    from PIL import Image

    from napari_bloodseg.data import synthetic_rbc, synthetic_wbc
    from napari_bloodseg.io import write_mask

    fields, crops = tmp_path / "fields", tmp_path / "crops"
    fields.mkdir(), crops.mkdir()
    img, lab = synthetic_rbc((120, 160), seed=0)
    Image.fromarray(img).save(fields / "f0.png")
    write_mask(fields / "f0_mask.png", lab, "rbc")
    img, lab = synthetic_wbc(48, seed=0)
    Image.fromarray(img).save(crops / "000.bmp")
    write_mask(crops / "000.png", lab, "wbc")
    widget = dock("Fine-tune")
    assert widget.base_name() == "wbc-unet"
    viewer.open([str(fields / "f0.png"), str(fields / "f0_mask.png")], plugin="napari-bloodseg")
    (pair,) = widget.ticked_pairs()
    assert pair.is_mask and widget.base_name() == "rbc-deconvnet"
    started = []
    widget._start_worker = lambda work, job, **kw: started.append(job) or "worker"
    assert widget.run() == "worker" and started[0].base == "rbc-deconvnet"

    # the folder source moves the base to its schema; the layers' pairs do not move it back while it is chosen
    widget.set_folder(crops)
    assert widget.base_name() == "wbc-unet"
    viewer.layers[pair.labels.name].name = "f0 mask (checked)"  # a layer event re-lists the pairs
    assert widget.ticked_pairs() and widget.base_name() == "wbc-unet"
    widget.layers_radio.setChecked(True)
    assert widget.base_name() == "rbc-deconvnet"

    # a base picked by hand stays, whatever the ticked pairs hold
    widget.set_base("wbc-segnet")
    widget.select_pairs([])
    widget.select_pairs(["f0 mask (checked)"])
    assert widget.base_name() == "wbc-segnet"


def test_keep_last_epoch_saves_the_final_state(viewer, dock, wait_idle, base_model, tmp_model_dir):
    """'Keep: last epoch' saves the final state even with a validation part (1-2 validation images choose the
    'best' epoch noisily); without a validation part there is nothing to choose by, so the control is off."""
    from napari_bloodseg.training.trainer import selection_score

    add_corrected(viewer, 3)
    widget = dock("Fine-tune")
    assert widget.keep_combo.currentData() == "best"
    widget.all_train_check.setChecked(True)
    assert not widget.keep_combo.isEnabled()
    widget.all_train_check.setChecked(False)
    assert widget.keep_combo.isEnabled()
    configure(widget, epochs=4, lr=0.1)
    widget.val_spin.setValue(0.34)  # 2 training images, 1 validation image
    widget.keep_combo.setCurrentIndex(widget.keep_combo.findData("last"))
    assert widget.run() is not None
    wait_idle(widget)
    assert widget.last_status == "done", widget.status.text()
    res = widget.last_result
    assert res.card.training["settings"]["keep"] == "last"
    scores = [h.score for h in res.history]
    assert len(scores) == 4 and None not in scores
    assert max(scores) > scores[-1]  # the premise: here "best" would have saved another epoch
    assert selection_score(res.after) == pytest.approx(scores[-1])  # the saved model is the last epoch's


def test_a_run_the_time_budget_ended_says_so(viewer, dock, wait_idle, base_model, training_clock):
    """Audit #11, in the widget: 20 epochs asked, the budget ended the run after 6 steps, and the status said only
    "Saved"."""
    training_clock(lambda i: 1.0)  # 1 s a step against a 6 s budget
    add_corrected(viewer, 3)
    widget = dock("Fine-tune")
    configure(widget, epochs=20, budget=6)
    widget.all_train_check.setChecked(True)
    assert widget.run() is not None
    wait_idle(widget)
    assert widget.last_status == "done", widget.status.text()
    assert "the time budget of 6 s ended training after" in widget.status.text()
    assert "raise Time budget" in widget.status.text()


@pytest.mark.parametrize("native", [True, False])
def test_faster_arithmetic_is_offered_only_where_it_is_faster(
    viewer, dock, wait_idle, base_model, tmp_model_dir, device_probe, native
):
    """Where the CPU computes bfloat16 natively it is ticked by default, with the fast recipe's epochs and rate (the
    CLI's default there too); elsewhere it is hidden and the plain recipe runs. Unticked where offered, the card
    says fp32, what ran: "auto" there means bf16 to ``bloodseg finetune`` (audit22 L5)."""
    from napari_bloodseg.plugin import finetune_widget

    def settings():
        cfg = widget._config()
        return cfg.precision, cfg.channels_last, cfg.epochs, cfg.lr

    device_probe(("cuda", "cpu"), auto="cpu", native_bf16=native)  # a GPU auto does not pick: the CPU trains
    widget = finetune_widget.FinetuneWidget(viewer)
    assert widget.fast_check.isVisibleTo(widget) is native and widget.fast_check.isChecked() is native
    fast, plain = ("bf16", True, 170, pytest.approx(2e-3)), ("auto", False, 100, pytest.approx(1e-3))
    assert settings() == (fast if native else plain)
    assert widget._config().device == "auto"
    if native:
        widget.device_combo.set_device("cuda")  # mixed precision there anyway: not offered, not used
        assert not widget.fast_check.isVisibleTo(widget) and settings() == plain
        widget.device_combo.set_device("cpu")
        assert settings() == fast
        widget.fast_check.click()  # the person unticks it: the plain recipe in fp32, kept across a device change
        unticked = ("fp32", *plain[1:])
        assert settings() == unticked
        widget.device_combo.set_device("cuda")
        assert settings() == plain
        widget.device_combo.set_device("cpu")
        assert not widget.fast_check.isChecked() and settings() == unticked
        widget.epochs_spin.setValue(120)  # a typed value stays when the tick changes
        widget.fast_check.click()
        assert settings() == ("bf16", True, 120, pytest.approx(2e-3))
        add_corrected(viewer, 3)
        configure(widget, epochs=2)
        assert widget.run() is not None  # the whole fine-tune (guard, save) in bf16 + channels-last
        wait_idle(widget)
        assert widget.last_status == "done", widget.status.text()
        saved = widget.last_result.card.training["settings"]
        assert saved["precision"] == "bf16" and saved["channels_last"]


def test_a_value_the_person_set_stays_whatever_the_tick(viewer, device_probe):
    """Only what the widget set follows the recipe. A typed value equal to the other recipe's default was taken for
    the widget's own and overwritten: 100 epochs typed with the box ticked became 170 after a device change and back
    (audit22 L3)."""
    from napari_bloodseg.plugin import finetune_widget

    device_probe(("cuda", "cpu"), auto="cpu", native_bf16=True)
    widget = finetune_widget.FinetuneWidget(viewer)
    assert widget.fast_check.isChecked() and widget.epochs_spin.value() == 170
    widget.epochs_spin.setValue(100)  # typed on purpose: the plain recipe's epochs, with the fast arithmetic
    widget.device_combo.set_device("cuda")  # not offered there: unticked, the rate follows
    assert not widget.fast_check.isChecked() and widget.lr_spin.value() == pytest.approx(1e-3)
    widget.device_combo.set_device("cpu")  # ticked again: the rate follows, the typed epochs stay
    assert widget.fast_check.isChecked() and widget.lr_spin.value() == pytest.approx(2e-3)
    assert widget.epochs_spin.value() == 100
    widget.lr_spin.setValue(1e-3)  # the plain rate typed with the box ticked stays when it is unticked and ticked
    widget.fast_check.click()
    widget.fast_check.click()
    assert (widget.epochs_spin.value(), widget.lr_spin.value()) == (100, pytest.approx(1e-3))


def test_faster_arithmetic_waits_for_the_device_probe(viewer, qtbot, monkeypatch, probe_running):
    """Opening the widget imports no torch: until a thread has looked at the CPU, the choice is not offered."""
    from napari_bloodseg.inference.device import DeviceProbe
    from napari_bloodseg.plugin import devices, finetune_widget

    widget = finetune_widget.FinetuneWidget(viewer)
    assert widget.device_combo.probe is None and not widget.fast_check.isVisibleTo(widget)
    with qtbot.waitSignal(widget.device_combo.probed, timeout=5000):
        monkeypatch.setattr(devices, "_known", DeviceProbe(("cpu",), "cpu", True))
    assert widget.fast_check.isVisibleTo(widget)


def test_a_device_this_machine_lacks_is_refused_naming_the_device_choice(
    viewer, dock, wait_idle, base_model, tmp_model_dir, notes, monkeypatch
):
    """The core's message names no front end; the widget's advice names its Device choice, not the CLI's --device."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    add_corrected(viewer, 3)
    widget = dock("Fine-tune")
    configure(widget, epochs=1)
    widget.device_combo.set_device("cuda")
    assert widget._config().device == "cuda"
    assert widget.run() is not None
    wait_idle(widget)
    assert widget.last_status == "refused", widget.status.text()
    message = notes.errors[-1]
    assert "no CUDA GPU: choose auto or cpu in Device" in message and "--device" not in message, message
    assert "choose auto or cpu in Device" in widget.status.text()
    assert model_files(tmp_model_dir) == [f"{BASE}.json", f"{BASE}.safetensors"]  # nothing saved


def test_the_progress_bar_counts_the_budget_from_the_first_training_step(viewer, dock):
    """Loading and the first scores (8-20 s on RBC fields) counted against the 45 s training budget: the bar
    jumped to 100 % at the first step, and stood there while the guard's checks ran."""
    import time

    widget = dock("Fine-tune")
    widget._run = {"status": "running", "t0": time.perf_counter() - 30, "step": 0, "budget": 0.75}
    widget._on_step(1, 200, 0.5)
    assert 0 < widget.progress.value() < 50 and widget.status.text() == "Training …"
    widget._on_step(200, 200, 0.1)
    assert widget.progress.value() == 900 and "Checking the new model" in widget.status.text()


#: Runs in a fresh interpreter: does pressing Run import torch on the GUI thread? (No event loop runs, so the
#: device probe thread never starts; the worker is replaced by a stub.)
_PRESS_RUN = """
from napari.components import ViewerModel
from qtpy.QtWidgets import QApplication

from napari_bloodseg.data import synthetic_wbc
from napari_bloodseg.plugin.finetune_widget import FinetuneWidget
from napari_bloodseg.plugin.layers import schema_layer_kwargs

app = QApplication([])
viewer = ViewerModel()
image, mask = synthetic_wbc(size=96, seed=1)
viewer.add_image(image, name="c0", rgb=True)
kwargs = schema_layer_kwargs("wbc", "c0 [wbc-unet]", role="prediction", source="c0", model="wbc-unet")
kwargs["metadata"]["bloodseg"]["corrected"] = True
viewer.add_labels(mask, **kwargs)
widget = FinetuneWidget(viewer)
widget.select_pairs(["c0 [wbc-unet]"])
widget.name_edit.setText("probe-never-saved")
started = []
widget._start_worker = lambda work, job, **kw: started.append(job.name) or "worker"
returned = widget.run()
print(json.dumps({"returned": returned, "started": started, "importers": importers}))
"""


def test_pressing_run_leaves_torch_to_the_worker(tmp_model_dir, torch_imports_in):
    """Run checked the layers and built the settings with modules that import torch: pressed within ~2 s of
    opening the panel, napari froze until the device probe's torch import was done (or imported it itself)."""
    lines, _ = torch_imports_in(_PRESS_RUN, BLOODSEG_MODEL_DIR=str(tmp_model_dir))
    assert lines[-1] == {"returned": "worker", "started": ["probe-never-saved"], "importers": []}

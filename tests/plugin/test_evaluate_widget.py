"""Evaluate widget: pairing by name, values equal to the core metrics, sorting, CSV, error layers; and the whole
segment → correct → evaluate → export → re-open round trip through every widget."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_bloodseg.evaluation import build_report
from napari_bloodseg.metrics import score_image
from napari_bloodseg.plugin.layers import pair_key
from napari_bloodseg.schemas import RBC, WBC


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("001 [wbc-unet]", "001 mask"),
        ("001 [wbc-unet] [1]", "001_mask"),
        ("Cell A [unet:rbc]", "cell a (mask)"),
        ("field 3 [segnet]", "field 3 expert mask"),
    ],
)
def test_prediction_and_mask_names_pair(a, b):
    assert pair_key(a) == pair_key(b)


def test_different_images_do_not_pair():
    assert pair_key("001 [unet]") != pair_key("002 mask")
    assert pair_key("001 [unet]") != pair_key("0011 mask")


def _add_pairs(viewer, n=3, size=72):
    """n synthetic masks with degraded copies as predictions, named the way the plugin names them."""
    from napari_bloodseg.data import synthetic_wbc
    from napari_bloodseg.plugin.layers import schema_layer_kwargs

    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        _, truth = synthetic_wbc(size=size, seed=10 + i)
        pred = truth.copy()
        flip = rng.random(truth.shape) < 0.05 * (i + 1)
        pred[flip] = rng.integers(0, 3, flip.sum())
        viewer.add_labels(truth, **schema_layer_kwargs("wbc", f"img{i} mask", role="mask", source=f"img{i}"))
        viewer.add_labels(
            pred, **schema_layer_kwargs("wbc", f"img{i} [net]", role="prediction", source=f"img{i}", model="net")
        )
        out.append((f"img{i} [net]", pred, truth))
    return out


def test_scores_equal_core_metrics_sort_and_csv(viewer, dock, wait_idle, tmp_path):
    pairs = _add_pairs(viewer)
    widget = dock("Evaluate")
    assert widget.pairs_label.text().startswith("3 pair(s)")
    assert widget.evaluate() is not None
    wait_idle(widget)
    assert widget.progress.value() == 1000

    expected = {name: score_image(pred, truth, WBC) for name, pred, truth in pairs}
    table = widget.table_scores()
    assert set(table) == set(expected)
    for name, scores in expected.items():
        for cls, values in scores["per_class"].items():
            assert table[name][cls]["jaccard"] == values["jaccard"]
            assert table[name][cls]["dice"] == values["dice"]
    report = build_report(list(expected), list(expected.values()), WBC)
    assert widget.report["per_class"] == report["per_class"]
    summary = {
        widget.summary_table.item(r, 0).text(): widget.summary_table.item(r, 1).data(Qt.ItemDataRole.UserRole)
        for r in range(widget.summary_table.rowCount())
    }
    assert summary == {cls: s["jaccard"] for cls, s in report["per_class"].items()}
    assert widget.plot.classes == list(WBC.foreground)

    # clicking a header sorts by the number, not the text
    col = [widget.image_table.horizontalHeaderItem(c).text() for c in range(widget.image_table.columnCount())].index(
        "cell Jaccard"
    )
    widget.image_table.sortItems(col, Qt.SortOrder.AscendingOrder)
    shown = [widget.image_table.item(r, col).data(Qt.ItemDataRole.UserRole) for r in range(3)]
    assert shown == sorted(s["per_class"]["cell"]["jaccard"] for s in expected.values())
    assert widget.image_table.item(0, 0).text() == "img2 [net]"  # the most degraded prediction

    out = widget.export_csv(tmp_path / "scores.csv")
    rows = list(csv.DictReader(out.open()))
    got = {(r["image"], r["class"]): float(r["dice"]) for r in rows}
    for name, scores in expected.items():
        for cls, values in scores["per_class"].items():
            assert got[(name, cls)] == values["dice"]
    for cls, s in report["per_class"].items():
        assert got[("mean", cls)] == s["dice"] and got[("sem", cls)] == s["dice_sem"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]  # atomic: no temporary left behind


def test_cancel_stops_scoring_and_keeps_the_last_report(viewer, dock, wait_idle, qtbot, monkeypatch):
    import time

    from napari_bloodseg import metrics

    _add_pairs(viewer, n=3)
    widget = dock("Evaluate")
    widget.evaluate()
    wait_idle(widget)
    first = widget.report
    scored = []

    def slow(pred, truth, schema, rows=None):
        scored.append(1)
        time.sleep(0.3)
        return score_image(pred, truth, schema, rows=rows)

    monkeypatch.setattr(metrics, "score_image", slow)
    assert widget.evaluate() is not None and widget.cancel_btn.isEnabled()
    qtbot.waitUntil(lambda: bool(scored), timeout=5000)
    widget.cancel_btn.click()
    wait_idle(widget)
    assert len(scored) < 3 and widget.report is first  # stopped early; the tables still show the last report
    assert widget.status.text().startswith("Cancelled") and widget.run_btn.isEnabled()
    assert not widget.cancel_btn.isEnabled()


def test_error_layer_counts_false_positives_and_negatives(viewer, dock, wait_idle):
    from napari_bloodseg.plugin.layers import schema_layer_kwargs

    truth = np.zeros((40, 40), np.uint8)
    truth[5:25, 5:25] = 1
    pred = np.zeros_like(truth)
    pred[10:30, 10:30] = 1
    viewer.add_labels(truth, **schema_layer_kwargs("rbc", "f mask", role="mask", source="f"))
    viewer.add_labels(pred, **schema_layer_kwargs("rbc", "f [net]", role="prediction", source="f", model="net"))
    widget = dock("Evaluate")
    widget.error_check.setChecked(True)
    widget.evaluate()
    wait_idle(widget)

    errors = viewer.layers["f [net] errors"]
    names = list(errors.features["class"])
    fp, fn = names.index("false positive cell"), names.index("false negative cell")
    assert (errors.data == fp).sum() == ((pred == 1) & (truth == 0)).sum()
    assert (errors.data == fn).sum() == ((pred == 0) & (truth == 1)).sum()
    assert (errors.data[pred == truth] == 0).all()
    assert errors.metadata["bloodseg"]["role"] == "errors"
    # error maps are not offered as predictions or masks
    assert "f [net] errors" not in [widget.pred_list.item(i).text() for i in range(widget.pred_list.count())]
    assert widget.report["schema"] == RBC.name


def test_bad_pair_is_skipped_with_a_notification(viewer, dock, wait_idle, notes, tmp_path):
    from napari_bloodseg.plugin.layers import schema_layer_kwargs

    pairs = _add_pairs(viewer, n=1)
    viewer.add_labels(np.zeros((30, 30), np.uint8), **schema_layer_kwargs("wbc", "odd mask", role="mask"))
    viewer.add_labels(
        np.zeros((31, 30), np.uint8), **schema_layer_kwargs("wbc", "odd [net]", role="prediction", model="net")
    )
    # an RBC prediction paired with a WBC mask: a schema mismatch, not a score
    viewer.add_labels(np.zeros((30, 30), np.uint8), **schema_layer_kwargs("wbc", "cross mask", role="mask"))
    viewer.add_labels(
        np.zeros((30, 30), np.uint8), **schema_layer_kwargs("rbc", "cross [m:rbc]", role="prediction", model="m")
    )
    widget = dock("Evaluate")
    widget.evaluate()
    wait_idle(widget)
    assert widget.report["n_images"] == 1
    assert [img["name"] for img in widget.report["images"]] == [pairs[0][0]]
    # one image has no spread: a dash and an empty CSV cell, never a perfect "0.0000"
    assert widget.summary_table.item(0, 2).text() == "–" and widget.summary_table.item(0, 1).text() != "–"
    sem_rows = [r for r in csv.DictReader(widget.export_csv(tmp_path / "one.csv").open()) if r["image"] == "sem"]
    assert sem_rows and all(r["dice"] == "" for r in sem_rows)
    assert any("odd [net]" in e and "(31, 30)" in e for e in widget.report["errors"])
    assert any("cross [m:rbc]" in e and "rbc" in e for e in widget.report["errors"])
    assert any("odd [net]" in msg for msg in notes.warnings)


def test_unlabelled_pixels_are_left_out_grey_levels_read_and_bad_values_named(viewer, dock, wait_idle):
    """The Correct widget says evaluation skips 'unlabelled' pixels: it refused the whole pair instead."""
    from napari_bloodseg.plugin.layers import schema_layer_kwargs
    from napari_bloodseg.schemas import IGNORE_INDEX

    ((name, pred, truth),) = _add_pairs(viewer, n=1)
    layer = viewer.layers[name]
    layer.data[:10] = IGNORE_INDEX  # a part painted 'unlabelled' while correcting
    viewer.layers[name.replace(" [net]", " mask")].data = np.array([0, 128, 255], np.uint8)[truth]  # raw grey
    viewer.add_labels(np.zeros((30, 30), np.uint8), **schema_layer_kwargs("wbc", "odd mask", role="mask"))
    odd = np.zeros((30, 30), np.uint8)
    odd[0, 0] = 5  # a value outside the schema, typed with napari's label spin box
    viewer.add_labels(odd, **schema_layer_kwargs("wbc", "odd [net]", role="prediction", model="net"))
    widget = dock("Evaluate")
    widget.evaluate()
    wait_idle(widget)
    assert [img["name"] for img in widget.report["images"]] == [name]
    expected_pred = pred.copy()
    expected_pred[:10] = IGNORE_INDEX
    assert widget.report["images"][0]["per_class"] == score_image(expected_pred, truth, WBC)["per_class"]
    assert any(
        "odd [net]" in e and "the prediction: label values [5] are not classes of the wbc schema" in e
        for e in widget.report["errors"]
    )


def test_a_mostly_unlabelled_mask_is_scored_with_a_warning(viewer, dock, wait_idle, notes):
    """A mask painted on a clear layer (background left unlabelled) scores only what was painted: as with
    `bloodseg evaluate`, the widget says so instead of showing a perfect score without a word."""
    from napari_bloodseg.plugin.layers import schema_layer_kwargs
    from napari_bloodseg.schemas import IGNORE_INDEX

    ((name, pred, truth),) = _add_pairs(viewer, n=1)
    mask = viewer.layers[name.replace(" [net]", " mask")]
    mask.data = np.where(truth == 0, IGNORE_INDEX, truth).astype(mask.data.dtype)
    other = schema_layer_kwargs("wbc", "img0 [other]", role="prediction", source="img0", model="other")
    viewer.add_labels(pred.copy(), **other)  # a second model on the same mask: one mask to warn about, not two
    share = float((truth == 0).mean())
    assert share >= 0.5  # the fixture's cell leaves most of the crop background
    widget = dock("Evaluate")
    widget.evaluate()
    wait_idle(widget)
    assert [r["n_images"] for r in widget.reports] == [1, 1]  # still scored, on the labelled pixels
    assert "mostly unlabelled" in widget.status.text()
    assert any(
        "1 expert mask(s) mostly unlabelled" in msg and f"{mask.name} ({share:.0%})" in msg for msg in notes.warnings
    )


def test_segment_correct_evaluate_export_round_trip(viewer, dock, wait_idle, tmp_path):
    from napari_bloodseg.plugin.reader import read_paths

    viewer.open_sample("napari-bloodseg", "synthetic-wbc")
    image, truth = viewer.layers["synthetic WBC"], viewer.layers["synthetic WBC mask"]
    segment, edit, evaluate, export = dock("Segment"), dock("Correct"), dock("Evaluate"), dock("Export masks")

    segment.set_model("unet")
    segment.set_device("cpu")
    segment.tile_spin.setValue(256)
    segment.run()
    wait_idle(segment)
    pred = viewer.layers["synthetic WBC [unet]"]
    assert pred.data.shape == image.data.shape[:2]
    before = score_image(pred.data, truth.data, WBC)["per_class"]["cell"]["jaccard"]

    # correct the top half by hand (painting the expert's answer) and mark the layer corrected
    viewer.layers.selection.active = pred
    corrected = pred.data.copy()
    corrected[:120] = truth.data[:120]
    pred.data = corrected
    edit.corrected_check.setChecked(True)
    assert pred.metadata["bloodseg"]["corrected"] is True

    evaluate.refresh_layers()
    evaluate.evaluate()
    wait_idle(evaluate)
    want = score_image(corrected, truth.data, WBC)
    got = evaluate.table_scores()["synthetic WBC [unet]"]
    assert got == {cls: {k: v[k] for k in ("jaccard", "dice")} for cls, v in want["per_class"].items()}
    assert got["cell"]["jaccard"] >= before

    export.folder_edit.setText(str(tmp_path))
    export.export()
    wait_idle(export)
    result = export.last_result
    assert [p.name for p in result.written] == ["synthetic WBC.png"]  # only the corrected layer, named after its image
    ((labels, kwargs, kind),) = read_paths(str(result.written[0]))
    assert kind == "labels"
    assert kwargs["metadata"]["bloodseg"]["schema"] == "wbc"
    np.testing.assert_array_equal(labels, corrected)


def test_big_disk_layers_are_scored_in_bands_without_an_error_layer(
    viewer, dock, wait_idle, notes, tmp_path, lazy_threshold, monkeypatch
):
    """A slide-sized prediction read from disk is scored band by band from the layer itself (no copy, no error
    map of several bytes a pixel), to the same figures as in memory; the pairs that fit get their error layers."""
    from napari_bloodseg.io.lazy import open_label_output
    from napari_bloodseg.plugin import evaluate_widget
    from napari_bloodseg.plugin.layers import schema_layer_kwargs

    monkeypatch.setattr(evaluate_widget, "SLIDE_BAND_PIXELS", 128_000)  # bands of 128 rows on a 1000 x 1000 slide
    ((small, _, _),) = _add_pairs(viewer, n=1)
    truth = _synthetic_slide_labels()
    mm = open_label_output(tmp_path / "slide.labels.tif", truth.shape)
    pred = truth.copy()
    pred[:, :400][pred[:, :400] == 2] = 1  # the left part's nucleus painted as cytoplasm
    mm[:] = pred
    viewer.add_labels(mm, **schema_layer_kwargs("wbc", "slide [net]", role="prediction", source="slide", model="net"))
    viewer.add_labels(truth, **schema_layer_kwargs("wbc", "slide mask", role="mask", source="slide"))
    widget = dock("Evaluate")
    assert len(widget.pairs()[0]) == 2
    widget.error_check.setChecked(True)
    from napari_bloodseg import metrics

    calls, real_score = [], metrics.score_image

    def spy(pred, truth, schema, rows=None):
        calls.append((type(pred), rows))
        return real_score(pred, truth, schema, rows=rows)

    monkeypatch.setattr(metrics, "score_image", spy)

    assert widget.evaluate() is not None
    wait_idle(widget)
    scores = widget.table_scores()
    assert set(scores) == {small, "slide [net]"} and not notes.errors
    want = score_image(pred, truth, "wbc")["per_class"]
    assert scores["slide [net]"]["nucleus"]["jaccard"] == pytest.approx(want["nucleus"]["jaccard"], abs=1e-4)
    assert want["nucleus"]["jaccard"] < 0.9  # the damage shows
    assert (type(mm), 128) in calls and (np.ndarray, None) in calls  # the slide read in bands, not copied
    assert "no error layer for slide-sized slide [net]" in widget.status.text()
    errors = [layer.name for layer in viewer.layers if "error" in layer.name.lower()]
    assert len(errors) == 1 and small.split(" [")[0] in errors[0]


def _synthetic_slide_labels():
    """The labels of a 1000 x 1000 WBC 'slide': a synthetic crop's, tiled."""
    from napari_bloodseg.data import synthetic_wbc

    return np.tile(synthetic_wbc(size=200, seed=5)[1], (5, 5))


def test_same_names_from_two_folders_pair_with_their_own_masks(
    viewer, dock, wait_idle, tmp_path, write_png, monkeypatch
):
    """Two folders each holding 001.bmp + 001.png: napari names the second's layers '001 [1]' and '001 mask [1]'.
    Predictions, masks and images pair by the file they came from, not by the names napari made clash."""
    from napari_bloodseg.data import synthetic_wbc
    from napari_bloodseg.plugin.finetune_pairs import find_layer_pairs

    truths = {}
    for folder, seed in (("dayA", 1), ("dayB", 2)):
        (tmp_path / folder).mkdir()
        image, mask = synthetic_wbc(size=64, seed=seed)
        write_png(tmp_path / folder / "001.png", np.choose(mask, [0, 128, 255]).astype(np.uint8))
        from PIL import Image as PILImage

        PILImage.fromarray(image).save(tmp_path / folder / "001.bmp")
        truths[folder] = mask
        monkeypatch.chdir(tmp_path)
        viewer.open(folder, plugin="napari-bloodseg")  # relative, as typed: pairing must not depend on the cwd
    monkeypatch.chdir(tmp_path / "dayA")
    assert {"001", "001 [1]", "001 mask", "001 mask [1]"} <= {lyr.name for lyr in viewer.layers}
    assert not np.array_equal(truths["dayA"], truths["dayB"])

    segment = dock("Segment")
    segment.set_model("unet")
    segment.set_device("cpu")
    segment.run()
    wait_idle(segment)
    evaluate = dock("Evaluate")
    evaluate.refresh_layers()
    pairs = {p.name: t.name for p, t in evaluate.pairs()[0]}
    assert pairs == {"001 [unet]": "001 mask", "001 [1] [unet]": "001 mask [1]"}

    images = {(pair.labels.name, pair.image.name) for pair in find_layer_pairs(viewer)}
    assert images == {
        ("001 mask", "001"),
        ("001 [unet]", "001"),
        ("001 mask [1]", "001 [1]"),
        ("001 [1] [unet]", "001 [1]"),
    }


def test_one_wrong_schema_mask_leaves_out_only_its_own_pair(viewer, dock, wait_idle, notes):
    """The schema was taken from the first pair: one RBC mask among WBC ones left every pair unscored."""
    from napari_bloodseg.plugin.layers import schema_layer_kwargs

    pairs = _add_pairs(viewer, n=3)
    wrong = viewer.layers["img0 mask"]
    viewer.layers.remove(wrong)
    rbc = (np.asarray(wrong.data) > 0).astype(np.uint8)
    viewer.add_labels(rbc, **schema_layer_kwargs("rbc", "img0 mask", role="mask", source="img0"))
    widget = dock("Evaluate")
    widget.refresh_layers()
    widget.evaluate()
    wait_idle(widget)
    assert widget.report["schema"] == WBC.name
    assert sorted(img["name"] for img in widget.report["images"]) == ["img1 [net]", "img2 [net]"]
    assert (
        widget.report["per_class"]
        == build_report(["img1 [net]", "img2 [net]"], [score_image(p, t, WBC) for _, p, t in pairs[1:]], WBC)[
            "per_class"
        ]
    )
    (error,) = widget.report["errors"]
    assert error.startswith("img0 [net]:") and "rbc" in error


def test_two_models_get_a_table_each_and_a_double_prediction_counts_once(viewer, dock, wait_idle, tmp_path):
    """Re-running Segment with another model, or beside a corrected layer, must not pool those predictions into
    one mean over 'twice as many' images."""
    from napari_bloodseg.plugin.layers import schema_layer_kwargs

    pairs = _add_pairs(viewer, n=2)
    other = {}
    for i, (_, pred, truth) in enumerate(pairs):
        worse = np.where(np.arange(pred.size).reshape(pred.shape) % 7 == 0, 0, pred).astype(np.uint8)
        viewer.add_labels(
            worse, **schema_layer_kwargs("wbc", f"img{i} [net2]", role="prediction", source=f"img{i}", model="net2")
        )
        other[f"img{i} [net2]"] = (worse, truth)
    viewer.add_labels(  # a second 'net' prediction of img0 (napari's name for a re-run beside a corrected layer)
        pairs[0][1], **schema_layer_kwargs("wbc", "img0 [net] [1]", role="prediction", source="img0", model="net")
    )
    widget = dock("Evaluate")
    widget.refresh_layers()
    widget.evaluate()
    wait_idle(widget)
    assert [r["model"] for r in widget.reports] == ["net", "net2"]
    assert [r["n_images"] for r in widget.reports] == [2, 2]
    want = build_report(list(other), [score_image(p, t, WBC) for p, t in other.values()], WBC)
    assert widget.reports[1]["per_class"] == want["per_class"]
    assert any("img0 [net] [1]" in e and "untick one" in e for e in widget.report["errors"])
    labels = [widget.summary_table.item(r, 0).text() for r in range(widget.summary_table.rowCount())]
    assert "cell · net" in labels and "cell · net2" in labels
    assert {widget.summary_table.item(r, 5).text() for r in range(widget.summary_table.rowCount())} == {"2"}
    rows = list(csv.DictReader(widget.export_csv(tmp_path / "s.csv").open()))
    means = {(r["model"], r["class"]): float(r["dice"]) for r in rows if r["image"] == "mean"}
    assert means[("net2", "cell")] == want["per_class"]["cell"]["dice"]


@pytest.mark.parametrize(
    ("name", "model"), [("001 [unet]", "unet"), ("001 [segnet] [1]", "segnet"), ("001 [1]", ""), ("001", "")]
)
def test_a_prediction_without_metadata_is_of_the_model_its_name_says(viewer, name, model):
    from napari_bloodseg.plugin.evaluate_pairs import model_of

    assert model_of(viewer.add_labels(np.zeros((4, 4), np.uint8), name=name)) == model


def test_predictions_named_by_hand_are_grouped_by_their_model_tags(viewer):
    from napari_bloodseg.plugin.evaluate_pairs import pair_layers, plan_scoring

    _, truth = _add_pairs(viewer, n=1)[0][1:]
    mask = viewer.layers["img0 mask"]
    plain = [viewer.add_labels(truth.copy(), name=f"img0 [{m}]") for m in ("unet", "segnet")]
    pairs, _ = pair_layers(plain, [mask])
    plan = plan_scoring(pairs)
    assert sorted(plan.groups) == ["segnet", "unet"] and plan.skipped == []


def test_per_image_table_keeps_its_class_columns_when_the_first_model_scored_nothing(viewer, dock, wait_idle):
    """The first model's only pair is skipped (a prediction of another size): the other model's per-image rows
    still show their class columns, not just the pixel accuracy."""
    from napari_bloodseg.plugin.layers import schema_layer_kwargs

    viewer.add_labels(  # listed first, so its model's report comes first
        np.zeros((31, 30), np.uint8),
        **schema_layer_kwargs("wbc", "img0 [aaa]", role="prediction", source="img0", model="aaa"),
    )
    ((_, pred, truth),) = _add_pairs(viewer, n=1)
    widget = dock("Evaluate")
    widget.refresh_layers()
    widget.evaluate()
    wait_idle(widget)
    assert [(r["model"], r["n_images"]) for r in widget.reports] == [("aaa", 0), ("net", 1)]
    want = score_image(pred, truth, WBC)
    scores = widget.table_scores()
    assert list(scores) == ["img0 [net]"]
    assert set(scores["img0 [net]"]) == set(want["per_class"]) == {"cell", "cytoplasm", "nucleus"}
    assert scores["img0 [net]"]["nucleus"]["dice"] == pytest.approx(want["per_class"]["nucleus"]["dice"])

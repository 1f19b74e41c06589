"""Metrics against values computed by hand on tiny arrays."""

import math

import numpy as np
import pytest

from napari_bloodseg.metrics import aggregate, confusion_matrix, mean_sem, score_image, scores_from_confusion
from napari_bloodseg.schemas import IGNORE_INDEX

# WBC labels: 0 background, 1 cytoplasm, 2 nucleus
TARGET = np.array(
    [
        [0, 0, 1, 1],
        [0, 1, 1, 2],
        [0, 1, 2, 2],
    ]
)
PRED = np.array(
    [
        [0, 1, 1, 1],
        [0, 0, 1, 2],
        [1, 1, 2, 1],
    ]
)
# (target, pred) per pixel:
#   row 0: (0,0) (0,1) (1,1) (1,1)
#   row 1: (0,0) (1,0) (1,1) (2,2)
#   row 2: (0,1) (1,1) (2,2) (2,1)
# cm[t, p]:          p=0 p=1 p=2
#            t=0      2   2   0     (4 background pixels)
#            t=1      1   4   0     (5 cytoplasm pixels)
#            t=2      0   1   2     (3 nucleus pixels)        N = 12
CM = np.array([[2, 2, 0], [1, 4, 0], [0, 1, 2]])
# cytoplasm: TP 4, FP 2+1=3, FN 1, TN 12-8=4  -> J 4/8, Dice 8/12, acc (4+4)/12
# nucleus:   TP 2, FP 0,     FN 1, TN 9       -> J 2/3, Dice 4/5,  acc 11/12
# cell={1,2}: TP 4+0+1+2=7, pred cell 9 -> FP 2, true cell 8 -> FN 1, TN 2 -> J 7/10, Dice 14/17, acc 9/12
# overall pixel accuracy: trace 8 / 12
EXPECTED = {
    "cytoplasm": {"jaccard": 0.5, "dice": 2 / 3, "pixel_accuracy": 8 / 12},
    "nucleus": {"jaccard": 2 / 3, "dice": 0.8, "pixel_accuracy": 11 / 12},
    "cell": {"jaccard": 0.7, "dice": 14 / 17, "pixel_accuracy": 9 / 12},
}


def _assert_scores(got, expected):
    assert set(got) == set(expected)
    for name, scores in expected.items():
        for key, value in scores.items():
            assert got[name][key] == pytest.approx(value, abs=1e-12), (name, key)


def test_confusion_matrix_by_hand():
    np.testing.assert_array_equal(confusion_matrix(PRED, TARGET, 3), CM)


def test_wbc_scores_by_hand():
    s = score_image(PRED, TARGET, "wbc")
    _assert_scores(s["per_class"], EXPECTED)
    assert s["pixel_accuracy"] == pytest.approx(8 / 12)
    assert list(s["per_class"]) == ["cytoplasm", "nucleus", "cell"]


def test_scores_from_confusion_matches_score_image():
    _assert_scores(scores_from_confusion(CM, "wbc")["per_class"], EXPECTED)


def test_cell_composite_counts_cytoplasm_nucleus_confusion_as_correct():
    # every cell pixel predicted as the other cell class: both classes score 0, the cell scores 1
    target = np.array([[0, 1, 2]])
    pred = np.array([[0, 2, 1]])
    pc = score_image(pred, target, "wbc")["per_class"]
    assert pc["cytoplasm"]["jaccard"] == 0.0 and pc["nucleus"]["jaccard"] == 0.0
    assert pc["cell"]["jaccard"] == 1.0 and pc["cell"]["dice"] == 1.0


def test_rbc_scores_by_hand():
    target = np.array([[0, 1, 1], [0, 1, 0]])
    pred = np.array([[1, 1, 0], [0, 1, 0]])
    # cell: TP 2, FP 1 (0,0), FN 1 (0,2), TN 2 -> J 2/4, Dice 4/6, acc 4/6; overall acc also 4/6
    s = score_image(pred, target, "rbc")
    _assert_scores(s["per_class"], {"cell": {"jaccard": 0.5, "dice": 2 / 3, "pixel_accuracy": 4 / 6}})
    assert s["pixel_accuracy"] == pytest.approx(4 / 6)


def test_class_vs_rest_accuracy_differs_from_jaccard():
    # small nucleus, all missed: Jaccard 0 but class-vs-rest accuracy high (the published "0.95-0.99" trap)
    target = np.zeros((10, 10), int)
    target[0, 0] = 2
    pred = np.zeros((10, 10), int)
    pc = score_image(pred, target, "wbc")["per_class"]["nucleus"]
    assert pc["jaccard"] == 0.0 and pc["dice"] == 0.0
    assert pc["pixel_accuracy"] == pytest.approx(99 / 100)


def test_empty_class_conventions():
    bg = np.zeros((2, 2), int)
    cyto = np.array([[0, 1], [1, 0]])
    # no nucleus in either: nothing to find, nothing wrongly found -> 1.0
    pc = score_image(cyto, cyto, "wbc")["per_class"]
    assert pc["nucleus"] == {"jaccard": 1.0, "dice": 1.0, "pixel_accuracy": 1.0}
    assert pc["cytoplasm"]["jaccard"] == 1.0
    # cytoplasm in the truth only -> 0.0; in the prediction only -> 0.0
    assert score_image(bg, cyto, "wbc")["per_class"]["cytoplasm"]["jaccard"] == 0.0
    assert score_image(bg, cyto, "wbc")["per_class"]["cytoplasm"]["dice"] == 0.0
    assert score_image(cyto, bg, "wbc")["per_class"]["cytoplasm"]["jaccard"] == 0.0
    assert score_image(cyto, bg, "wbc")["per_class"]["cytoplasm"]["dice"] == 0.0
    # an all-background image scored against itself: every class absent in both
    pc = score_image(bg, bg, "wbc")["per_class"]
    assert all(v["jaccard"] == 1.0 and v["dice"] == 1.0 for v in pc.values())


def test_ignore_index_pixels_are_left_out():
    target = TARGET.copy()
    pred = PRED.copy()
    target[2, 3] = IGNORE_INDEX  # was (t=2, p=1): the only nucleus miss
    pred[2, 3] = IGNORE_INDEX  # whatever is predicted there does not matter
    # cm: [[2,2,0],[1,4,0],[0,0,2]], N = 11
    np.testing.assert_array_equal(confusion_matrix(pred, target, 3), [[2, 2, 0], [1, 4, 0], [0, 0, 2]])
    s = score_image(pred, target, "wbc")
    # cytoplasm: TP 4, FP 2, FN 1, TN 4 -> J 4/7, Dice 8/11, acc 8/11
    # nucleus:   TP 2, FP 0, FN 0, TN 9 -> 1, 1, 1
    # cell:      TP cm[1:,1:] = 4+0+0+2 = 6, pred cell 8 -> FP 2, true cell 7 -> FN 1, TN 2 -> J 6/9
    _assert_scores(
        s["per_class"],
        {
            "cytoplasm": {"jaccard": 4 / 7, "dice": 8 / 11, "pixel_accuracy": 8 / 11},
            "nucleus": {"jaccard": 1.0, "dice": 1.0, "pixel_accuracy": 1.0},
            "cell": {"jaccard": 6 / 9, "dice": 12 / 15, "pixel_accuracy": 8 / 11},
        },
    )
    assert s["pixel_accuracy"] == pytest.approx(8 / 11)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"prediction shape \(2, 2\) differs from mask shape \(2, 3\)"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 3)
    with pytest.raises(
        ValueError, match=r"the prediction has label values \[3\]: classes are 0..2 \(255: unlabelled\)"
    ):
        confusion_matrix(np.array([3, 0]), np.array([0, 0]), 3)
    with pytest.raises(ValueError, match=r"the mask has label values \[2, 7\]: classes are 0..1"):
        score_image(np.array([0, 1, 0]), np.array([2, 7, 0]), "rbc")


def test_pixels_unlabelled_in_the_prediction_are_left_out_too():
    """A prediction partly painted "unlabelled" while being corrected: that part is not judged yet."""
    target = TARGET.copy()
    pred = PRED.copy()
    pred[2, 3] = IGNORE_INDEX  # was (t=2, p=1), the only nucleus miss
    target_ignored = TARGET.copy()
    target_ignored[2, 3] = IGNORE_INDEX
    np.testing.assert_array_equal(confusion_matrix(pred, target, 3), confusion_matrix(PRED, target_ignored, 3))


def test_mean_sem_uses_sample_sd():
    # mean 0.7; deviations -0.2, 0, 0.2 -> sample variance 0.08 / 2 = 0.04, sd 0.2, SEM 0.2 / sqrt(3)
    mean, sem = mean_sem([0.5, 0.7, 0.9])
    assert mean == pytest.approx(0.7)
    assert sem == pytest.approx(0.2 / math.sqrt(3))
    mean, sem = mean_sem([0.3])
    assert mean == 0.3 and math.isnan(sem)  # one image: its spread is unknown, not zero
    assert all(math.isnan(v) for v in mean_sem([]))


def test_aggregate_is_mean_over_images_with_sem():
    perfect = score_image(TARGET, TARGET, "wbc")
    partial = score_image(PRED, TARGET, "wbc")
    agg = aggregate([partial, perfect])
    assert agg["n_images"] == 2
    # two images: mean (a + b) / 2, sd |a - b| / sqrt(2), SEM = sd / sqrt(2) = |a - b| / 2
    cyto = agg["per_class"]["cytoplasm"]
    assert cyto["jaccard"] == pytest.approx(0.75) and cyto["jaccard_sem"] == pytest.approx(0.25)
    assert cyto["dice"] == pytest.approx(5 / 6) and cyto["dice_sem"] == pytest.approx(1 / 6)
    cell = agg["per_class"]["cell"]
    assert cell["jaccard"] == pytest.approx(0.85) and cell["jaccard_sem"] == pytest.approx(0.15)
    assert agg["pixel_accuracy"] == pytest.approx((8 / 12 + 1) / 2)
    assert agg["pixel_accuracy_sem"] == pytest.approx((1 - 8 / 12) / 2)


def test_aggregate_is_not_pooled():
    # a 1-pixel image scored 0 and a big perfect image: per-image mean is 0.5, pooled pixels would be ~1
    a = score_image(np.array([[0]]), np.array([[1]]), "rbc")
    big = np.ones((50, 50), int)
    b = score_image(big, big, "rbc")
    assert aggregate([a, b])["per_class"]["cell"]["jaccard"] == pytest.approx(0.5)


def test_aggregate_empty():
    with pytest.raises(ValueError, match="no images"):
        aggregate([])


def test_scoring_in_bands_counts_the_same_as_whole():
    # slide-sized layers are scored a band of rows at a time (the Evaluate widget); the counts must not change
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, (301, 170)).astype(np.uint8)
    truth[:20, :20] = IGNORE_INDEX
    pred = np.where(rng.random(truth.shape) < 0.2, rng.integers(0, 3, truth.shape), truth % 3).astype(np.uint8)
    whole = score_image(pred, truth, "wbc")
    for rows in (1, 64, 300, 1000):
        assert score_image(pred, truth, "wbc", rows=rows) == whole
    with pytest.raises(ValueError, match="differs"):
        score_image(pred[:-1], truth, "wbc", rows=64)


def test_an_image_with_no_labelled_pixel_is_not_scored_perfect():
    target = np.full((4, 4), IGNORE_INDEX, np.uint8)
    with pytest.raises(ValueError, match="nothing to score"):
        score_image(np.zeros((4, 4), np.uint8), target, "wbc")
    with pytest.raises(ValueError, match="nothing to score"):
        score_image(np.zeros((4, 4), np.uint8), target, "wbc", rows=2)


def test_confusion_matrix_counts_a_big_pair_in_bounded_memory(monkeypatch):
    """``evaluate`` on a 120 MP pair peaked at 3.2 GB: whole-image int64 copies and codes, ~27 bytes a pixel."""
    import tracemalloc

    from napari_bloodseg import metrics

    rng = np.random.default_rng(0)
    target = rng.integers(0, 3, (2000, 4000), dtype=np.uint8)
    pred = np.where(rng.random(target.shape) < 0.9, target, (target + 1) % 3).astype(np.uint8)
    target[:50] = IGNORE_INDEX  # unlabelled rows: dropped, as before
    small = {"t": target[::37, ::41], "p": pred[::37, ::41]}
    codes = small["t"].astype(np.int64)[small["t"] != IGNORE_INDEX] * 3 + small["p"][small["t"] != IGNORE_INDEX]
    want = np.bincount(codes, minlength=9).reshape(3, 3)
    monkeypatch.setattr(metrics, "COUNT_CHUNK", 1000)  # many chunks, cut mid-row: the same counts
    np.testing.assert_array_equal(confusion_matrix(small["p"], small["t"], 3), want)
    monkeypatch.undo()
    tracemalloc.start()
    try:
        cm = confusion_matrix(pred, target, 3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < target.size  # under 1 byte a pixel of the 8 MP pair, whatever its size (was ~27)
    labelled = target != IGNORE_INDEX
    assert cm.sum() == labelled.sum() and np.trace(cm) == (pred == target)[labelled].sum()


def test_bad_label_values_are_named_in_any_chunk(monkeypatch):
    from napari_bloodseg import metrics

    monkeypatch.setattr(metrics, "COUNT_CHUNK", 4)
    target = np.zeros(20, np.uint8)
    target[17] = 7
    with pytest.raises(ValueError, match=r"the mask has label values \[7\]"):
        confusion_matrix(np.zeros(20, np.uint8), target, 3)


def test_label_counts_of_a_mask():
    from napari_bloodseg.metrics import label_counts

    labels = np.array([[0, 0, 2], [IGNORE_INDEX, 2, 2]], np.uint8)
    counts = label_counts(labels)
    assert counts.shape == (256,) and counts[[0, 2, IGNORE_INDEX]].tolist() == [2, 3, 1] and counts.sum() == 6


def test_confusion_matrix_takes_any_integer_or_whole_float_labels():
    """Chunked counting added the prediction into int64 in place, which NumPy refuses for uint64 and floats."""
    from napari_bloodseg.metrics import confusion_matrix

    t = np.arange(60).reshape(6, 10) % 3
    want = confusion_matrix(t.astype(np.uint8), t.astype(np.uint8), 3)
    for dtype in (np.uint64, np.float32, np.int32, np.uint32):
        np.testing.assert_array_equal(confusion_matrix(t.astype(dtype), t.astype(dtype), 3), want)

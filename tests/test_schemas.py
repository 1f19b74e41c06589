import numpy as np
import pytest

from napari_bloodseg.schemas import IGNORE_INDEX, RBC, SCHEMAS, WBC, get_schema, guess_schema


def test_wbc_and_rbc_conventions():
    # the Zheng et al. masks: background 0, cytoplasm 128, nucleus 255; RBC fields: 0 / 255
    assert WBC.class_names == ("background", "cytoplasm", "nucleus")
    assert WBC.grey_levels == (0, 128, 255)
    assert RBC.class_names == ("background", "cell")
    assert RBC.grey_levels == (0, 255)
    assert WBC.num_classes == 3 and RBC.num_classes == 2
    assert set(SCHEMAS) == {"wbc", "rbc"}


def test_foreground_lists_classes_then_composites():
    assert WBC.foreground == {"cytoplasm": (1,), "nucleus": (2,), "cell": (1, 2)}
    assert RBC.foreground == {"cell": (1,)}


def test_to_disk_and_back():
    labels = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    grey = WBC.to_disk(labels)
    assert grey.dtype == np.uint8
    np.testing.assert_array_equal(grey, [[0, 128, 255], [255, 128, 0]])
    np.testing.assert_array_equal(WBC.from_disk(grey), labels)
    np.testing.assert_array_equal(RBC.to_disk(np.array([0, 1])), [0, 255])


def test_ignore_index_written_as_background():
    assert WBC.to_disk(np.array([IGNORE_INDEX, 2], np.uint8)).tolist() == [0, 255]


@pytest.mark.parametrize(
    ("grey", "label"),
    [(0, 0), (2, 0), (50, 0), (63, 0), (65, 1), (100, 1), (128, 1), (190, 1), (192, 2), (200, 2), (255, 2)],
)
def test_from_disk_snaps_stray_values_to_nearest_level(grey, label):
    # nearest of 0/128/255: the midpoints are 64 and 191.5
    assert WBC.from_disk(np.array([grey], np.uint8))[0] == label


def test_rbc_from_disk_threshold_at_midpoint():
    out = RBC.from_disk(np.array([0, 3, 127, 128, 200, 255], np.uint8))
    assert out.tolist() == [0, 0, 0, 1, 1, 1]


def test_get_schema():
    assert get_schema("WBC") is WBC
    assert get_schema(RBC) is RBC
    with pytest.raises(ValueError, match="unknown label schema 'plt'.*wbc, rbc"):
        get_schema("plt")


def test_guess_schema():
    assert guess_schema(np.array([0, 128, 255], np.uint8)) is WBC
    assert guess_schema(np.array([0, 100, 255], np.uint8)) is WBC  # mid-grey, even if stray
    assert guess_schema(np.array([0, 255], np.uint8)) is RBC
    assert guess_schema(np.array([0, 1, 2], np.uint8)) is WBC  # label-space WBC mask
    assert guess_schema(np.array([0, 1], np.uint8)) is RBC


def test_napari_colors_cover_labels_ignore_and_default():
    colors = WBC.napari_colors()
    assert set(colors) == {0, 1, 2, IGNORE_INDEX, None}
    assert colors[0][3] == 0.0  # background transparent
    assert colors[IGNORE_INDEX] == (0.0, 0.0, 0.0, 0.0)
    assert all(0.0 <= c <= 1.0 for rgba in colors.values() for c in rgba)


def test_guess_schema_tells_a_cytoplasm_region_from_jpeg_edges():
    yy, xx = np.mgrid[:100, :100]
    r = np.hypot(yy - 50, xx - 50)
    rbc = np.where(r < 30, 255, 0).astype(np.uint8)
    rbc[(r >= 30) & (r < 31.5)] = 128  # a 1-2 px band of mid-grey along the edge: JPEG, or a resized mask
    assert guess_schema(rbc) is RBC
    wbc = np.where(r < 15, 255, np.where(r < 30, 128, 0)).astype(np.uint8)
    assert guess_schema(wbc) is WBC
    bent = np.where(r < 30, 1, 0).astype(np.uint8)
    bent[(r >= 29) & (r < 30)] = 2  # label space: an RBC 0/1 mask with a few JPEG-bent 2s
    assert guess_schema(bent) is RBC

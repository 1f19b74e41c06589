import numpy as np
import pytest

from napari_bloodseg.inference.edge_cells import drop_partial_edge_cells

R = 20  # disc radius: a typical cell is pi * 20² ≈ 1257 px


def _disc(labels: np.ndarray, cy: float, cx: float, value: int = 1, r: float = R) -> None:
    yy, xx = np.mgrid[: labels.shape[0], : labels.shape[1]]
    labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = value


def _field() -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    """A 300x400 field: whole cells inside the edge strips, and cells the edge cuts to various fractions."""
    labels = np.zeros((300, 400), np.uint8)
    for cy, cx in [(60, 70), (60, 200), (60, 330), (240, 70), (240, 200), (240, 330), (150, 60), (150, 340)]:
        _disc(labels, cy, cx)
    cut = {
        "top_sliver": (-14, 130),  # ~10 % of a cell shows
        "left_quarter": (150, -10),  # ~20 % shows (10 of its 40 px width)
        "bottom_most": (290, 130),  # ~85 % shows
        "right_half": (100, 400),  # ~50 % shows
        "corner": (-5, -5),  # ~20 % in the top-left corner
    }
    for cy, cx in cut.values():
        _disc(labels, cy, cx, value=2)  # any label > 0 is cell (WBC nucleus, RBC cell)
    return labels, cut


def test_drops_slivers_and_keeps_cells_that_mostly_show():
    labels, cut = _field()
    before = labels.copy()
    dropped = drop_partial_edge_cells(labels, 2 * R, 0.45)
    assert dropped == 3
    for name in ("top_sliver", "left_quarter", "corner"):
        cy, cx = cut[name]
        y, x = min(max(int(cy), 0), 299), min(max(int(cx), 0), 399)
        assert before[y, x] > 0 and labels[y, x] == 0, name
    for name in ("bottom_most", "right_half"):
        cy, cx = cut[name]
        y, x = min(int(cy), 299), min(int(cx), 399)
        assert labels[y, x] == before[y, x] > 0, name  # kept with its label value
    assert (labels[before == 1] == 1).all()  # whole cells untouched


def test_fraction_moves_the_line():
    labels, cut = _field()
    drop_partial_edge_cells(labels, 2 * R, 0.6)
    cy, cx = cut["right_half"]
    assert labels[int(cy), 399] == 0  # half a cell is below 0.6 of one
    cy, cx = cut["bottom_most"]
    assert labels[299, int(cx)] > 0


def test_typical_cell_comes_from_the_image_not_the_guess():
    """Cells half as wide as the caller expected: half a cell is still half of the cells seen, not 1/8 of a guess."""
    labels, cut = _field()
    cy, cx = cut["right_half"]
    assert drop_partial_edge_cells(labels, 4 * R, 0.45) == 3  # the same three slivers
    assert labels[int(cy), 399] > 0


def test_few_cells_fall_back_to_the_expected_disc():
    labels = np.zeros((120, 120), np.uint8)
    _disc(labels, 60, -12)  # ~20 % of an expected 40 px cell
    _disc(labels, 60, 124)  # ~37 %
    _disc(labels, 0, 60, r=R)  # 50 % on the top edge: kept
    assert drop_partial_edge_cells(labels, 2 * R, 0.45) == 2
    assert labels[0, 60] == 1 and labels[60, 0] == 0 and labels[60, 119] == 0


def test_a_component_that_runs_past_its_strip_is_kept():
    """Its size is unknown from the strip; a cell cut by the edge that reaches 2.5 diameters in is no sliver."""
    labels = np.zeros((400, 400), np.uint8)
    labels[:150, 200] = 1  # 150 px, a tenth of a cell, but it reaches past the 100 px top strip
    for cy, cx in [(350, 60), (350, 200), (350, 330), (60, 60), (200, 60), (60, 340), (200, 340)]:
        _disc(labels, cy, cx)
    assert drop_partial_edge_cells(labels, 2 * R, 0.45) == 0


def test_reads_and_writes_only_the_edge_strips():
    class Spy:
        def __init__(self, a: np.ndarray) -> None:
            self.a, self.shape, self.read = a, a.shape, 0

        def __getitem__(self, key):
            out = self.a[key]
            self.read += out.size
            return out

        def __setitem__(self, key, value) -> None:
            self.a[key] = value

    big = np.zeros((2000, 3000), np.uint8)
    _disc(big, -12, 1500)
    spy = Spy(big)
    assert drop_partial_edge_cells(spy, 2 * R, 0.45) == 1 and not big.any()
    strip = int(np.ceil(2.5 * 2 * R))
    assert spy.read <= 2 * strip * (2000 + 3000) + 10 * (2 * R) ** 2  # 4 strips + the cell's box


@pytest.mark.parametrize("fraction, diameter", [(0, 40), (1, 40), (-0.5, 40), (0.4, 0), (0.4, -3)])
def test_bad_arguments(fraction, diameter):
    with pytest.raises(ValueError):
        drop_partial_edge_cells(np.zeros((10, 10), np.uint8), diameter, fraction)


def test_small_cells_near_but_not_on_the_edge_are_kept():
    """Only cells the image edge cuts are judged: a small whole cell inside an edge strip is no sliver."""
    labels, _ = _field()
    _disc(labels, 20, 130, value=2, r=6)  # ~9 % of a typical cell, 14 px from the top edge: inside the strip
    _disc(labels, 150, 385, value=2, r=6)  # the same 9 px from the right edge
    before = labels.copy()
    assert drop_partial_edge_cells(labels, 2 * R, 0.45) == 3  # the three slivers only
    assert labels[20, 130] == 2 and labels[150, 385] == 2
    np.testing.assert_array_equal(labels[10:31, 120:141], before[10:31, 120:141])

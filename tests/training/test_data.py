import numpy as np
import pytest

from napari_bloodseg.training import Sample, load_samples, split_names, split_samples
from napari_bloodseg.training.data import resize_labels, typical_cell_size


def test_split_is_reproducible_disjoint_and_independent_of_order():
    names = [f"{i:03d}" for i in range(100)]
    a = split_names(names, (0.15, 0.1), seed=0)
    b = split_names(list(reversed(names)), (0.15, 0.1), seed=0)
    assert a == b
    assert [len(p) for p in a] == [15, 10, 75]
    assert not set(a[0]) & set(a[1]) and not set(a[0]) & set(a[2])
    assert split_names(names, (0.15, 0.1), seed=1)[0] != a[0]


def test_split_samples_keeps_test_ids_out_of_training(wbc_samples):
    train, val, test = split_samples(wbc_samples, 1 / 6, 2 / 6, seed=0)
    assert len(test) == 2 and len(val) == 1 and len(train) == 3
    assert not {s.name for s in test} & {s.name for s in train + val}


def test_load_samples_reads_pairs_and_rescales(wbc_folder):
    samples = load_samples(wbc_folder, "wbc")
    assert len(samples) == 6 and samples[0].image.shape == (48, 48, 3)
    assert set(np.unique(samples[0].labels)) <= {0, 1, 2}
    half = load_samples(wbc_folder, "wbc", scale=0.5)
    assert half[0].image.shape == (24, 24, 3) and half[0].labels.shape == (24, 24)


def test_resize_labels_keeps_values_and_cell_size_scales():
    lab = np.zeros((40, 40), np.uint8)
    lab[10:30, 10:30] = 2
    assert set(np.unique(resize_labels(lab, (80, 80)))) == {0, 2}
    from napari_bloodseg.training import Sample

    small = typical_cell_size([Sample("a", np.zeros((40, 40, 3), np.uint8), lab)])
    big = typical_cell_size([Sample("a", np.zeros((80, 80, 3), np.uint8), resize_labels(lab, (80, 80)))])
    assert abs(big / small - 2) < 0.05
    assert abs(small - 2 * np.sqrt(400 / np.pi)) < 0.01


def test_typical_cell_size_of_a_field_is_one_cell_not_the_whole_foreground():
    # a smear field: many separate cells (and a speck of noise), as in the RBC masks
    yy, xx = np.mgrid[:200, :200]
    lab = np.zeros((200, 200), np.uint8)
    for cy, cx in [(30, 30), (30, 100), (100, 60), (150, 150), (160, 40)]:
        lab[(yy - cy) ** 2 + (xx - cx) ** 2 <= 15**2] = 1
    lab[190:192, 190:192] = 1
    size = typical_cell_size([Sample("field", np.zeros((200, 200, 3), np.uint8), lab)])
    assert abs(size - 30) < 1.5  # one cell's diameter, not the 67 px of all five together


def test_rescale_sample_keeps_labels_under_their_pixels():
    # an asymmetric layout whose image *is* its labels (channel 0 = 100 x label): a flipped or shifted label
    # resize would put most labels under the wrong pixels
    from napari_bloodseg.training.data import rescale_sample

    lab = np.zeros((60, 90), np.uint8)
    lab[5:25, 10:40] = 1
    lab[30:55, 60:85] = 2
    lab[40:50, 5:20] = 1
    img = np.stack([lab * 100, np.zeros_like(lab), np.zeros_like(lab)], -1).astype(np.uint8)
    for scale in (0.5, 0.4, 1.7):
        out = rescale_sample(Sample("s", img, lab), scale)
        assert out.image.shape[:2] == out.labels.shape == (round(60 * scale), round(90 * scale))
        agree = np.round(out.image[..., 0] / 100) == out.labels
        assert agree.mean() > 0.95, scale  # only the blurred class borders may differ


def test_typical_cell_size_leaves_unlabelled_pixels_out():
    # a partial correction: one cell labelled, the rest of the crop "not annotated" (255)
    yy, xx = np.mgrid[:120, :120]
    lab = np.full((120, 120), 255, np.uint8)
    lab[60:, :] = 0
    lab[(yy - 90) ** 2 + (xx - 60) ** 2 <= 15**2] = 1
    size = typical_cell_size([Sample("partial", np.zeros((120, 120, 3), np.uint8), lab)])
    assert abs(size - 30) < 1.5


def test_a_cell_cut_by_unlabelled_pixels_is_not_measured():
    """A correction of part of the image leaves cells cut at its border: measured, they read 3x too small."""
    yy, xx = np.mgrid[:120, :200]
    lab = np.zeros((120, 200), np.uint8)
    lab[(yy - 60) ** 2 + (xx - 40) ** 2 <= 15**2] = 1  # whole: 30 px
    lab[(yy - 60) ** 2 + (xx - 140) ** 2 <= 30**2] = 1  # 60 px, of which only the left edge was corrected
    lab[:, 125:] = 255
    assert abs(typical_cell_size([Sample("p", np.zeros((120, 200, 3), np.uint8), lab)]) - 30) < 1.5
    lab[:, 50:] = 255  # no whole cell left
    assert typical_cell_size([Sample("p", np.zeros((120, 200, 3), np.uint8), lab)]) == 0.0


def test_wbc_masks_are_refused_as_rbc_training_data(wbc_folder):
    """Read as RBC, cytoplasm and nucleus both became 'cell': a model trained on them learns white cells."""
    with pytest.raises(ValueError, match=r"6 of 6 masks \(000.png, .* and 1 more\): the masks mark cytoplasm .* WBC"):
        load_samples(wbc_folder, "rbc")


def test_a_few_masks_of_the_other_schema_are_refused_by_name(wbc_folder):
    """Only a folder of mostly other-schema masks was refused: two RBC masks among WBC ones trained and scored
    every red cell as a nucleus, and one WBC mask among RBC ones its cytoplasm as a red cell."""
    from napari_bloodseg.io import write_mask

    lab = np.zeros((48, 48), np.uint8)
    lab[10:30, 10:30] = 1
    write_mask(wbc_folder / "003.png", lab, "rbc", overwrite=True)  # 0/255: a red-cell mask
    with pytest.raises(ValueError, match=r"1 of 6 masks \(003.png\): the masks mark nucleus .* no cytoplasm"):
        load_samples(wbc_folder, "wbc")
    write_mask(wbc_folder / "003.png", np.zeros((48, 48), np.uint8), "rbc", overwrite=True)  # no cell: either
    assert len(load_samples(wbc_folder, "wbc")) == 6
    rbc = wbc_folder.parent / "rbc"
    rbc.mkdir()
    for name in ("000", "001", "002"):
        (rbc / f"{name}.bmp").write_bytes((wbc_folder / f"{name}.bmp").read_bytes())
        write_mask(rbc / f"{name}.png", lab, "rbc")
    (rbc / "002.png").write_bytes((wbc_folder / "002.png").read_bytes())  # one WBC mask among RBC ones
    with pytest.raises(ValueError, match=r"1 of 3 masks \(002.png\): the masks mark cytoplasm"):
        load_samples(rbc, "rbc")

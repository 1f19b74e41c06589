"""Training pairs from layers: the checks a user meets before any training, without building the widget."""

from __future__ import annotations

import numpy as np
import pytest

from napari_bloodseg.data import synthetic_wbc
from napari_bloodseg.plugin.finetune_pairs import LayerPair, pair_samples, split_for_finetune
from napari_bloodseg.plugin.layers import schema_layer_kwargs


def pair(name: str, image: np.ndarray, labels: np.ndarray, suffix: str = " [wbc-unet]") -> LayerPair:
    from napari.layers import Image, Labels

    kw = schema_layer_kwargs("wbc", f"{name}{suffix}", role="prediction", source=name)
    return LayerPair(Image(image, name=name, rgb=True), Labels(labels, **kw))


def test_samples_are_copies_in_label_space():
    image, mask = synthetic_wbc(size=64, seed=0)
    grey = np.choose(mask, [0, 128, 255]).astype(np.uint8)  # an expert mask in its on-disk grey levels
    p = pair("cell", image, grey, suffix=" mask")
    (sample,) = pair_samples([p], "wbc", "wbc-unet")
    np.testing.assert_array_equal(sample.labels, mask)
    np.testing.assert_array_equal(sample.image, image)
    p.labels.data[:] = 0  # the user goes on painting after the run started
    p.image.data[:] = 0
    assert sample.labels.any() and sample.image.any()


def test_one_segmentation_per_image():
    image, mask = synthetic_wbc(size=64, seed=0)
    first = pair("cell", image, mask)
    second = pair("cell", image, mask, suffix=" mask")
    second.image = first.image
    with pytest.raises(ValueError, match=r"tick one segmentation per image \(cell \[wbc-unet\], cell mask\)"):
        pair_samples([first, second], "wbc", "wbc-unet")


def test_a_stack_of_labels_is_refused_by_shape():
    image, mask = synthetic_wbc(size=64, seed=0)
    p = pair("cell", image, np.stack([mask, mask]))
    with pytest.raises(ValueError, match=r"only 2-D segmentations .* shape \(2, 64, 64\)"):
        pair_samples([p], "wbc", "wbc-unet")


def test_split_keeps_everything_for_training_or_refuses_an_empty_training_part():
    image, mask = synthetic_wbc(size=64, seed=0)
    samples = pair_samples([pair(f"c{i}", image, mask) for i in range(5)], "wbc", "wbc-unet")
    train, val = split_for_finetune(samples, None)
    assert [s.name for s in train] == [f"c{i}" for i in range(5)] and val == []
    train, val = split_for_finetune(samples, 0.4)
    assert len(train) == 3 and len(val) == 2
    assert not {s.name for s in train} & {s.name for s in val}
    with pytest.raises(ValueError, match="leaves no image to train on"):
        split_for_finetune(samples[:2], 0.75)


def test_a_wholly_unlabelled_pair_never_takes_a_validation_place():
    """The widget split before blank images were left out: a blank took the only validation place, so the run had
    no validation at all (as the CLI did)."""
    from napari_bloodseg.schemas import IGNORE_INDEX
    from napari_bloodseg.training import Sample

    samples = []
    for i in range(5):
        image, mask = synthetic_wbc(48, seed=i)
        samples.append(Sample(f"{i:03d}", image, np.full_like(mask, IGNORE_INDEX) if i == 2 else mask))
    for fraction in (0.2, 0.25, 0.4):
        train, val = split_for_finetune(samples, fraction)
        assert val and "002" not in [s.name for s in val] and "002" in [s.name for s in train]

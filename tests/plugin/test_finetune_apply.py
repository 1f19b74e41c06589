"""Which open images "Apply to remaining images" gives a fine-tuned model: those not used to train it, of its kind."""

from __future__ import annotations

import numpy as np

from napari_bloodseg.plugin.finetune_apply import left_out_note, model_kinds, remaining_of_kind
from napari_bloodseg.plugin.layers import META_KEY


def image(name: str, height: int, width: int, **info):
    from napari.layers import Image

    return Image(np.zeros((height, width, 3), np.uint8), rgb=True, name=name, metadata={META_KEY: info})


def test_only_unused_images_of_the_models_kind_are_segmented_and_the_rest_named():
    from napari.layers import Labels

    layers = [
        image("c0", 96, 96),
        image("c1", 96, 96),
        image("field", 800, 800),
        image("c1 uncertainty", 96, 96, role="uncertainty"),
        Labels(np.zeros((96, 96), np.uint8), name="c0 mask"),
    ]
    assert remaining_of_kind(layers, ["c0"], {"wbc"}) == (["c1"], ["field"])
    assert remaining_of_kind(layers, [], {"rbc"}) == (["field"], ["c0", "c1"])
    assert remaining_of_kind(layers, [], {"wbc", "rbc"}) == (["c0", "c1", "field"], [])
    assert (
        left_out_note("wbc-ft1", {"wbc"}, ["field"])
        == "wbc-ft1 segments single-cell crops: left out field (a smear field)"
    )
    assert (
        left_out_note("rbc-ft1", {"rbc"}, ["c0", "c1"])
        == "rbc-ft1 segments smear fields: left out c0, c1 (single-cell crops)"
    )


def test_a_model_segments_its_schemas_kind_and_the_kind_it_was_trained_on():
    """An RBC model taught on small field crops is for such crops too: its schema alone would leave them out."""
    assert model_kinds("wbc", []) == {"wbc"}
    assert model_kinds("rbc", [image("patch", 120, 160)]) == {"rbc", "wbc"}
    assert model_kinds("wbc", [image("c0", 96, 96)]) == {"wbc"}

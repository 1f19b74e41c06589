"""The Segment widget's model list: which entries it offers and which one it starts on for the images at hand."""

from __future__ import annotations

import numpy as np

from napari_bloodseg.plugin.model_choices import ModelChoice, default_choice, image_kind, model_choices


def test_default_choice_prefers_the_shipped_unet_then_wbc_then_trained():
    def c(spec, schema, source="shipped"):
        return ModelChoice(spec, schema, "unet", source, "1")

    assert default_choice([c("rbc-deconvnet", "rbc"), c("wbc-segnet", "wbc"), c("wbc-unet", "wbc")]) == 2
    assert default_choice([c("rbc-deconvnet", "rbc"), c("lab-net", "wbc", "user")]) == 1
    assert default_choice([c("unet", "wbc", "untrained"), c("rbc-deconvnet", "rbc")]) == 1
    assert default_choice([c("unet", "wbc", "untrained")]) == 0
    assert default_choice([c("rbc-deconvnet", "rbc"), c("wbc-unet", "wbc")], "rbc") == 0


def test_image_kind_reads_rgb_grey_and_multiscale_shapes():
    from napari.layers import Image

    crop = Image(np.zeros((120, 120, 3), np.uint8), rgb=True)
    field = Image(np.zeros((1200, 1600, 3), np.uint8), rgb=True)
    grey_field = Image(np.zeros((1200, 1600), np.uint16))  # 1200 x 1600 is a field, not a 1600 x 3 crop
    pyramid = Image([np.zeros((1200, 1600, 3), np.uint8), np.zeros((600, 800, 3), np.uint8)], rgb=True)
    assert image_kind([crop]) == "wbc"
    assert image_kind([field, grey_field, pyramid]) == "rbc"
    assert image_kind([crop, field]) is None
    assert image_kind([]) is None


def test_every_architecture_is_offered_untrained_for_each_schema_after_the_trained_models(tmp_model_dir):
    choices = model_choices()
    trained = [c.spec for c in choices if c.source != "untrained"]
    untrained = [c.spec for c in choices if c.source == "untrained"]
    assert {"wbc-unet", "wbc-segnet", "wbc-deconvnet", "rbc-deconvnet"} <= set(trained)
    assert {"unet", "segnet", "deconvnet", "unet:rbc", "segnet:rbc", "deconvnet:rbc"} == set(untrained)
    assert [c.source for c in choices].index("untrained") == len(trained)
    assert choices[default_choice(choices)].spec == "wbc-unet"
    assert choices[default_choice(choices, "rbc")].spec == "rbc-deconvnet"

"""Inference rewrites (BatchNorm folding, transposed convolutions, 2x2 max-pool) keep the network's outputs."""

import numpy as np
import pytest
import torch
from torch import nn

from napari_bloodseg.inference import Predictor
from napari_bloodseg.inference.optimize import cpu_kernels_available, fuse_for_inference


@pytest.mark.parametrize("arch", ["unet", "segnet", "deconvnet"])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("device", [None, "cpu"])  # "cpu": oneDNN fused kernels and the split U-Net merge too
def test_fused_network_gives_the_same_logits(live_model, wbc_sample, arch, channels_last, device):
    image = wbc_sample[0][:96, :112]
    model = live_model(arch, 3, image)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused, n = fuse_for_inference(model, device)
    assert n > 0
    if device == "cpu" and cpu_kernels_available():
        kinds = {type(m).__name__ for m in fused.modules()}
        assert "_OneDnnConv" in kinds
        assert ("_SplitSkipMerge" in kinds) == (arch == "unet")
        assert not any(isinstance(m, nn.ReLU) for m in fused.modules())  # every ReLU went into a convolution
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules() if not isinstance(m, nn.Identity))
    x = (torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.25
    x64 = x.double()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        ref = model.double()(x64).float()  # float64 reference: both float32 paths are compared with it
        model.float()
        got = fused(x)
    scale = ref.abs().max().item()
    assert (got - ref).abs().max().item() < 1e-4 * max(scale, 1.0)
    # the caller's model is untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_odd_sized_maxpool_input_falls_back():
    from napari_bloodseg.inference.optimize import _MaxPool2x2

    x = torch.randn(1, 4, 7, 10)
    torch.testing.assert_close(_MaxPool2x2()(x), nn.functional.max_pool2d(x, 2))
    y = torch.randn(2, 4, 8, 10)
    torch.testing.assert_close(_MaxPool2x2()(y), nn.functional.max_pool2d(y, 2))


def test_predictor_fuse_on_and_off_agree(live_model, wbc_sample):
    image = wbc_sample[0]
    model = live_model("unet", 3, image)
    a = Predictor(model, device="cpu", tile_size=64, overlap=16).predict(image, return_probs=True)
    b = Predictor(model, device="cpu", tile_size=64, overlap=16, fuse=False).predict(image, return_probs=True)
    np.testing.assert_allclose(a.probs.astype(np.float32), b.probs.astype(np.float32), atol=2e-3)
    assert (a.labels == b.labels).mean() > 0.999

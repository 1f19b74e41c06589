import pytest
import torch
import torch.nn.functional as F
from torch import nn

from napari_bloodseg.models import ARCHITECTURES, DeconvNet, SegmentationNet, SegNet, UNet, build_model

ARCHS = ["unet", "segnet", "deconvnet"]


def _forward_backward(arch: str, n: int, h: int, w: int, width: int, num_classes: int = 3) -> None:
    torch.manual_seed(0)
    model = build_model(arch, num_classes=num_classes, width=width).train()
    x = torch.rand(n, 3, h, w)
    y = model(x)
    assert y.shape == (n, num_classes, h, w)
    assert torch.isfinite(y).all()
    loss = F.cross_entropy(y, torch.randint(0, num_classes, (n, h, w)))
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []  # every layer is on the path from input to loss


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(("n", "h", "w"), [(2, 88, 116), (2, 120, 120), (1, 300, 300)])
def test_forward_backward_dataset_sizes(arch, n, h, w):
    _forward_backward(arch, n, h, w, width=4)


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_backward_full_field(arch):
    # an RBC field at full size, batch 1 and a narrow network to keep it quick on CPU
    _forward_backward(arch, 1, 1000, 1400, width=4, num_classes=2)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(("h", "w"), [(1, 1), (5, 7), (17, 33)])
def test_tiny_and_odd_inputs(arch, h, w):
    model = build_model(arch, num_classes=2, width=4).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, h, w)).shape == (1, 2, h, w)


@pytest.mark.parametrize("arch", ARCHS)
def test_config_rebuilds_the_same_network(arch):
    model = build_model(arch, num_classes=2, width=4, depth=3)
    assert model.config == {"architecture": arch, "in_channels": 3, "num_classes": 2, "width": 4, "depth": 3}
    assert model.stride == 8
    clone = build_model(model.config["architecture"], **model.config)  # a card's config, as stored
    assert type(clone) is type(model)
    assert {k: v.shape for k, v in clone.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_registry():
    assert set(ARCHITECTURES) == {"unet", "segnet", "deconvnet"}
    assert isinstance(build_model("UNet", width=4), UNet)  # case-insensitive
    assert isinstance(build_model("segnet", width=4), SegNet)
    assert isinstance(build_model("deconvnet", width=4), DeconvNet)
    assert all(issubclass(cls, SegmentationNet) for cls in ARCHITECTURES.values())


def test_registry_errors():
    with pytest.raises(ValueError, match=r"unknown architecture 'fcn'; choose one of unet, segnet, deconvnet"):
        build_model("fcn")
    with pytest.raises(ValueError, match="bad config for unet"):
        build_model("unet", kernel=5)
    with pytest.raises(ValueError, match="num_classes must be at least 2"):
        build_model("segnet", num_classes=1)
    with pytest.raises(ValueError, match="width and depth must be positive"):
        build_model("deconvnet", width=0)


def test_structure_matches_the_papers():
    unet, segnet, deconv = (build_model(a, width=4) for a in ARCHS)

    def count(model, kind):
        return sum(isinstance(m, kind) for m in model.modules())

    assert count(unet, nn.ConvTranspose2d) == unet.depth  # learned upsampling, one per level
    assert count(segnet, nn.ConvTranspose2d) == 0  # SegNet: no learned upsampling, only unpooling
    assert count(deconv, nn.ConvTranspose2d) > deconv.depth  # DeconvNet: deconvolution layers densify
    assert count(segnet, nn.BatchNorm2d) == count(segnet, nn.Conv2d) - 1  # BN after every conv but the head


class _PoolSpy:
    """Wraps F.max_pool2d / F.max_unpool2d to record the pooling indices and what the decoder unpools with."""

    def __init__(self, monkeypatch, tamper: bool = False):
        self.pooled: list[torch.Tensor] = []
        self.unpooled: list[torch.Tensor] = []
        real_pool, real_unpool = F.max_pool2d, F.max_unpool2d

        def pool(*args, **kwargs):
            out = real_pool(*args, **kwargs)
            if kwargs.get("return_indices"):
                y, idx = out
                if tamper:  # move every switch to the top-left corner of its 2x2 window
                    w = args[0].shape[-1]
                    idx = (idx // w // 2 * 2) * w + (idx % w) // 2 * 2
                self.pooled.append(idx)
                return y, idx
            return out

        def unpool(x, indices, *args, **kwargs):
            self.unpooled.append(indices)
            return real_unpool(x, indices, *args, **kwargs)

        monkeypatch.setattr(F, "max_pool2d", pool)
        monkeypatch.setattr(F, "max_unpool2d", unpool)


@pytest.mark.parametrize("arch", ["segnet", "deconvnet"])
def test_decoder_unpools_with_the_encoder_switches(arch, monkeypatch):
    torch.manual_seed(0)
    model = build_model(arch, num_classes=3, width=4).eval()
    x = torch.rand(1, 3, 64, 48)
    spy = _PoolSpy(monkeypatch)
    with torch.no_grad():
        model(x)
    assert len(spy.pooled) == model.depth and len(spy.unpooled) == model.depth
    # the deepest switches are used first: the decoder mirrors the encoder
    assert all(u is p for u, p in zip(spy.unpooled, reversed(spy.pooled), strict=True))


@pytest.mark.parametrize("arch", ["segnet", "deconvnet"])
def test_output_depends_on_pooling_indices(arch, monkeypatch):
    torch.manual_seed(0)
    # train mode: batch-statistics BN keeps the signal alive through an untrained net (eval output is ~constant)
    model = build_model(arch, num_classes=3, width=4).train()
    x = torch.rand(2, 3, 64, 48)
    with torch.no_grad():
        ref = model(x)
        _PoolSpy(monkeypatch)
        assert torch.equal(model(x), ref)  # spying alone changes nothing
        _PoolSpy(monkeypatch, tamper=True)
        tampered = model(x)
    assert ref.shape == tampered.shape
    assert not torch.allclose(ref, tampered, atol=1e-4)  # the switches really place the unpooled values


def test_unet_has_no_unpooling(monkeypatch):
    spy = _PoolSpy(monkeypatch)
    with torch.no_grad():
        build_model("unet", width=4).eval()(torch.rand(1, 3, 32, 32))
    assert spy.unpooled == []

import numpy as np
import pytest
import torch

from napari_bloodseg.data import synthetic_rbc
from napari_bloodseg.inference import Cancelled, Predictor, resize_image, segment, tile_starts
from napari_bloodseg.inference import predict as predict_mod
from napari_bloodseg.inference.defaults import DEFAULT_TILE_SIZE
from napari_bloodseg.inference.tiling import tile_spans
from napari_bloodseg.models import ModelCard


def _far_from_seams(n: int, tile: int, overlap: int, margin: int) -> np.ndarray:
    """(n, n) mask of pixels at least ``margin`` px from every interior tile boundary (image edges are no seams)."""
    spans = tile_spans(n, tile, overlap, align=16)
    edges = sorted(({s for s, _ in spans} | {s + size for s, size in spans}) - {0, n})
    far = np.ones(n, bool)
    for e in edges:
        far[max(e - margin, 0) : e + margin] = False
    return far[:, None] & far[None, :]


def test_tiled_equals_untiled_away_from_seams(live_model):
    # 1024 px, tile 384: a multiple of the network stride (16) like the 4000 px fields of the issue; the
    # 4000 x 4000 run itself is in benchmarks/tiled_memory.py (too slow for a unit test on 2 cores)
    n, tile, overlap = 1024, 384, 64
    image, _ = synthetic_rbc((n, n), seed=1)
    model = live_model("unet", 2, image[:384, :384])
    whole = Predictor(model, device="cpu", tile_size=0).predict(image, return_probs=True)
    tiled = Predictor(model, device="cpu", tile_size=tile, overlap=overlap).predict(image, return_probs=True)
    assert 0.2 < whole.labels.mean() < 0.8  # both classes well represented: the comparison is not trivially true
    # beyond the blending ramp plus a little receptive field, a pixel sees exactly what the untiled pass sees
    far = _far_from_seams(n, tile, overlap, margin=overlap + 32)
    assert far.mean() > 0.2
    np.testing.assert_array_equal(tiled.labels[far], whole.labels[far])
    assert np.abs(tiled.probs.astype(np.float32) - whole.probs.astype(np.float32))[:, far].max() < 2e-3
    # in the seam bands the blend of two views differs a little (much less for a trained net than this random one)
    assert (tiled.labels == whole.labels).mean() > 0.95


def test_tiled_equals_untiled_away_from_seams_unaligned_size(live_model):
    n, tile, overlap = 1000, 400, 48  # 1000 is no multiple of the stride (16)
    image, _ = synthetic_rbc((n, n), seed=2)
    model = live_model("unet", 2, image[:256, :256])
    whole = Predictor(model, device="cpu", tile_size=0).predict(image).labels
    tiled = Predictor(model, device="cpu", tile_size=tile, overlap=overlap).predict(image).labels
    far = _far_from_seams(n, tile, overlap, margin=overlap + 32)
    assert far.mean() > 0.1 and 0.2 < whole.mean() < 0.8
    np.testing.assert_array_equal(tiled[far], whole[far])


@pytest.mark.parametrize(("h", "w"), [(1, 1), (5, 7), (88, 116), (300, 300), (530, 700)])
def test_any_size(tiny_unet, rng, h, w):
    image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    pred = Predictor(tiny_unet, device="cpu", tile_size=256, overlap=32).predict(image)
    assert pred.labels.shape == (h, w) and pred.labels.dtype == np.uint8
    assert pred.labels.max() < 3
    assert pred.probs is None
    assert pred.device.startswith("cpu") and pred.seconds >= 0


def test_uint8_and_float_inputs_agree(tiny_unet, wbc_sample):
    image, _ = wbc_sample
    p = Predictor(tiny_unet, device="cpu")
    a = p.predict(image, return_probs=True).probs.astype(np.float32)
    b = p.predict(image.astype(np.float32) / 255.0, return_probs=True).probs.astype(np.float32)
    np.testing.assert_allclose(a, b, atol=1e-3)


def test_return_probs(tiny_unet, wbc_sample):
    image, _ = wbc_sample
    pred = Predictor(tiny_unet, device="cpu", tile_size=64, overlap=16).predict(image, return_probs=True)
    assert pred.probs.shape == (3, 120, 120) and pred.probs.dtype == np.float16
    np.testing.assert_allclose(pred.probs.astype(np.float32).sum(0), 1.0, atol=5e-3)
    top = np.sort(pred.probs.astype(np.float32), axis=0)
    clear = top[-1] - top[-2] > 1e-2  # argmax of float16-rounded probs is only defined off ties
    np.testing.assert_array_equal(pred.probs.argmax(0)[clear], pred.labels[clear])


def test_bad_input(tiny_unet):
    p = Predictor(tiny_unet, device="cpu")
    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) RGB image"):
        p.predict(np.zeros((10, 10), np.uint8))
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale must be a positive number"):
            p.predict(np.zeros((10, 10, 3), np.uint8), scale=bad)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tile_size": 8}, "tile size must be 0 .* at least 64 px, not 8"),
        ({"tile_size": -1}, "tile size must be 0"),
        ({"overlap": -3}, "overlap must be 0 or more"),
        ({"batch_size": 0}, "batch size must be at least 1"),
    ],
)
def test_tilings_that_cannot_work_are_refused_up_front(tiny_unet, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Predictor(tiny_unet, device="cpu", **kwargs)


def _spy_forward(monkeypatch, predictor):
    shapes = []
    real = predictor._forward

    def spy(tiles, tta=False):
        shapes.append(tiles.shape)
        return real(tiles, tta)

    monkeypatch.setattr(predictor, "_forward", spy)
    return shapes


def test_scale_runs_smaller_and_returns_original_size(tiny_unet, monkeypatch, rng):
    image = rng.integers(0, 256, size=(200, 300, 3), dtype=np.uint8)
    p = Predictor(tiny_unet, device="cpu", tile_size=0)
    shapes = _spy_forward(monkeypatch, p)
    pred = p.predict(image, scale=0.5, return_probs=True)
    assert shapes == [(1, 100, 150, 3)]  # the network saw the half-size image
    assert pred.labels.shape == (200, 300) and pred.probs.shape == (3, 200, 300)


def test_card_input_scale_applies_on_top(tiny_unet, monkeypatch, rng):
    card = ModelCard(name="m", config=tiny_unet.config, schema="wbc", input_scale=0.5)
    p = Predictor(tiny_unet, card, device="cpu", tile_size=0)
    shapes = _spy_forward(monkeypatch, p)
    assert p.predict(rng.integers(0, 256, size=(80, 120, 3), dtype=np.uint8), scale=0.5).labels.shape == (80, 120)
    assert shapes == [(1, 20, 30, 3)]


def test_scale_for_cell_size(tiny_unet):
    card = ModelCard(name="m", config=tiny_unet.config, schema="wbc", cell_size_px=80.0)
    p = Predictor(tiny_unet, card, device="cpu")
    assert p.scale_for_cell_size(160) == pytest.approx(0.5)  # cells twice as big as in training: halve
    assert p.scale_for_cell_size(None) == 1.0
    assert Predictor(tiny_unet, device="cpu").scale_for_cell_size(160) == 1.0  # no card: no basis
    assert p.scale_for_cell_size(84) == pytest.approx(80 / 84)  # no scale jitter recorded: any ratio rescales


def test_cell_sizes_within_the_training_scale_jitter_run_unscaled(tiny_unet):
    card = ModelCard(
        name="m",
        config=tiny_unet.config,
        schema="wbc",
        cell_size_px=80.0,
        training={"settings": {"scale_range": [0.9, 1.12]}},
    )
    p = Predictor(tiny_unet, card, device="cpu")
    assert p.scale_for_cell_size(84) == 1.0 and p.scale_for_cell_size(72) == 1.0  # 0.95 and 1.11: seen in training
    assert p.scale_for_cell_size(70) == pytest.approx(80 / 70) and p.scale_for_cell_size(90) == pytest.approx(80 / 90)


def test_progress_counts_increase_to_total(tiny_unet, rng):
    image = rng.integers(0, 256, size=(150, 230, 3), dtype=np.uint8)
    calls = []
    Predictor(tiny_unet, device="cpu", tile_size=64, overlap=16, batch_size=2).predict(
        image, progress=lambda done, total: calls.append((done, total))
    )
    n_tiles = len(tile_starts(150, 64, 16, 16)) * len(tile_starts(230, 64, 16, 16))  # 3 x 5 = 15
    assert n_tiles == 15
    assert {t for _, t in calls} == {15}
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(set(done)) == len(done) and done[-1] == 15


def test_cancel_raises(tiny_unet, rng):
    image = rng.integers(0, 256, size=(150, 230, 3), dtype=np.uint8)
    p = Predictor(tiny_unet, device="cpu", tile_size=64, overlap=16, batch_size=1)
    asked = []

    def cancel():
        asked.append(1)
        return len(asked) >= 3  # the user presses cancel during the third tile

    calls = []
    with pytest.raises(Cancelled):
        p.predict(image, cancel=cancel, progress=lambda d, t: calls.append(d))
    assert calls == [1, 2]  # stopped at once, not after the image
    assert p.predict(image, cancel=lambda: False).labels.shape == (150, 230)


def test_one_tile_of_eight_views_reports_progress_and_stops_view_by_view(tiny_unet, rng, monkeypatch):
    """A whole smear field is one tile of 8 test-time views (seconds on a CPU): the bar sat at 0 until the end,
    and Cancel (or closing napari) waited for all 8 views."""
    monkeypatch.setattr(predict_mod, "TTA_BATCH_MAX_VALUES", 0)  # one view per network call, as on big fields
    image = rng.integers(0, 256, size=(96, 128, 3), dtype=np.uint8)
    p = Predictor(tiny_unet, device="cpu", tile_size=0, tta=True)
    calls = []
    p.predict(image, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(k / 8, 1) for k in range(1, 8)] + [(1, 1)]

    runs = []
    real_net = p._net
    monkeypatch.setattr(p, "_net", lambda x: runs.append(1) or real_net(x))
    asked = []
    with pytest.raises(Cancelled):
        p.predict(image, cancel=lambda: asked.append(1) or len(asked) > 3)  # pressed during the third view
    assert len(runs) == 3


def test_segment_convenience(tiny_unet, wbc_sample):
    image, _ = wbc_sample
    pred = segment(tiny_unet, image, device="cpu", tile_size=64, return_probs=True)
    ref = Predictor(tiny_unet, device="cpu", tile_size=64).predict(image, return_probs=True)
    np.testing.assert_array_equal(pred.labels, ref.labels)
    assert pred.probs.shape == (3, 120, 120)


def test_tta_is_rotation_equivariant(live_model, wbc_sample):
    image = wbc_sample[0][:64, :64]  # square and a multiple of the stride: no padding to break the symmetry
    model = live_model("unet", 3, image)
    rotated = np.ascontiguousarray(np.rot90(image))
    plain = Predictor(model, device="cpu", tile_size=0, tta=False)
    a, b = (plain.predict(im, return_probs=True).probs.astype(np.float32) for im in (image, rotated))
    assert np.abs(np.rot90(a, axes=(1, 2)) - b).max() > 0.05  # without TTA the net is not rotation-invariant
    tta = Predictor(model, device="cpu", tile_size=0, tta=True)
    a, b = (tta.predict(im, return_probs=True).probs.astype(np.float32) for im in (image, rotated))
    np.testing.assert_allclose(np.rot90(a, axes=(1, 2)), b, atol=2e-3)


@pytest.mark.parametrize("batched", [True, False])
def test_tta_is_the_mean_of_the_eight_views(live_model, wbc_sample, monkeypatch, batched):
    image = wbc_sample[0][:64, :80]  # not square: rotated views have another shape and batch apart
    model = live_model("unet", 3, image)
    if not batched:
        monkeypatch.setattr(predict_mod, "TTA_BATCH_MAX_VALUES", 0)  # one view per forward pass
    got = Predictor(model, device="cpu", tile_size=0, tta=True).predict(image, return_probs=True).probs
    plain = Predictor(model, device="cpu", tile_size=0, tta=False)
    views = []
    for k in range(8):
        im = np.ascontiguousarray(np.rot90(image[:, ::-1] if k >= 4 else image, k % 4))
        p = np.rot90(plain.predict(im, return_probs=True).probs.astype(np.float32), -(k % 4), axes=(1, 2))
        views.append(p[:, :, ::-1] if k >= 4 else p)
    np.testing.assert_allclose(got.astype(np.float32), np.mean(views, axis=0), atol=2e-3)


def test_auto_tta_runs_on_single_cell_crops_only(live_model, wbc_sample, rng):
    crop = wbc_sample[0][:64, :64]
    model = live_model("unet", 3, crop)
    auto, on, off = (Predictor(model, device="cpu", tile_size=0, tta=t) for t in ("auto", True, False))
    assert auto.uses_tta(64, 64) and auto.uses_tta(300, 300) and not auto.uses_tta(400, 300)
    small = auto.predict(crop, return_probs=True).probs
    np.testing.assert_array_equal(small, on.predict(crop, return_probs=True).probs)
    assert not np.array_equal(small, off.predict(crop, return_probs=True).probs)
    field = rng.integers(0, 256, size=(400, 300, 3), dtype=np.uint8)  # 0.12 MP: a field, not a crop
    np.testing.assert_array_equal(auto.predict(field).labels, off.predict(field).labels)
    with pytest.raises(ValueError, match="tta must be"):
        Predictor(model, device="cpu", tta="sometimes")


def test_card_reaches_auto_tta_further(live_model, rng):
    """rbc-deconvnet's card extends auto TTA to whole fields (measured +0.009 IoU there); WBC cards do not."""
    field = rng.integers(0, 256, size=(400, 300, 3), dtype=np.uint8)  # 0.12 MP: past the crop limit
    model = live_model("unet", 2, field)
    card = ModelCard(name="m", config=model.config, schema="rbc", tta_max_pixels=200_000)
    auto, on, off = (Predictor(model, card, device="cpu", tile_size=0, tta=t) for t in ("auto", True, False))
    assert auto.uses_tta(400, 300) and not auto.uses_tta(500, 500)
    probs = auto.predict(field, return_probs=True).probs
    np.testing.assert_array_equal(probs, on.predict(field, return_probs=True).probs)
    assert not np.array_equal(probs, off.predict(field, return_probs=True).probs)  # TTA changes something
    plain = ModelCard(name="m", config=model.config, schema="rbc")
    assert not Predictor(model, plain, device="cpu", tta="auto").uses_tta(400, 300)
    assert Predictor(model, card, device="cpu", tta=False).uses_tta(64, 64) is False


def test_resize_image_accepts_read_only_arrays(monkeypatch, rng):
    # images read with PIL are read-only; handing one to torch.from_numpy prints a UserWarning on the CLI
    image = rng.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    image.flags.writeable = False
    real = torch.from_numpy

    def strict_from_numpy(arr):
        assert arr.flags.writeable, "read-only array passed to torch.from_numpy"
        return real(arr)

    monkeypatch.setattr(torch, "from_numpy", strict_from_numpy)
    assert resize_image(image, (20, 30)).shape == (20, 30, 3)


def test_resize_image_keeps_dtype(rng):
    u8 = rng.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    out = resize_image(u8, (20, 30))
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    flat = np.full((40, 60, 3), 0.25, np.float32)
    np.testing.assert_allclose(resize_image(flat, (13, 17)), 0.25, atol=1e-6)
    assert resize_image(flat, (13, 17)).dtype == np.float32


# --- out-of-memory fallback -------------------------------------------------------------------------------------


def _fake_gpu_predictor(model, monkeypatch, oom_while, log):
    """A Predictor that believes it is on 'cuda': ``_forward`` raises CUDA OOM while ``oom_while(tile_shape)``."""
    p = Predictor(model, device="cpu", tile_size=512, overlap=32, batch_size=4, log=log)
    real_forward = p._forward
    attempts = []

    def forward(tiles, tta=False):
        attempts.append((p.device.type, tiles.shape))
        if p.device.type == "cuda":
            if oom_while(tiles.shape):
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            p.device = torch.device("cpu")  # run the real maths on the CPU, then pretend again
            try:
                return real_forward(tiles, tta)
            finally:
                p.device = torch.device("cuda")
        return real_forward(tiles, tta)

    p.device = torch.device("cuda")
    monkeypatch.setattr(p, "_forward", forward)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    monkeypatch.setattr(predict_mod, "describe", lambda dev: str(dev))
    return p, attempts


def test_oom_halves_the_tile_then_succeeds(tiny_unet, monkeypatch, rng):
    image = rng.integers(0, 256, size=(600, 600, 3), dtype=np.uint8)
    messages = []
    p, attempts = _fake_gpu_predictor(tiny_unet, monkeypatch, lambda shape: shape[1] > 256, messages.append)
    pred = p.predict(image)
    assert pred.labels.shape == (600, 600)
    assert [m for m in messages if "out of memory" in m] == ["cuda out of memory at tile 512: retrying with tile 256"]
    assert p.tile_size == 256 and p.batch_size == 1 and p.device.type == "cuda"
    first = tile_spans(600, 512, 32, tiny_unet.stride)[0][1]  # tile 512 shares 600 px as two tiles of 320
    assert attempts[0][1][1] == first > 256 and all(s[1] <= 256 for _, s in attempts[1:])
    ref = Predictor(tiny_unet, device="cpu", tile_size=256, overlap=32, batch_size=1).predict(image)
    np.testing.assert_array_equal(pred.labels, ref.labels)


def test_oom_everywhere_falls_back_to_cpu(tiny_unet, monkeypatch, rng):
    image = rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    messages = []
    p, attempts = _fake_gpu_predictor(tiny_unet, monkeypatch, lambda shape: True, messages.append)
    pred = p.predict(image)  # never crashes
    assert messages == [
        "cuda out of memory at tile 512: retrying with tile 256",
        "cuda out of memory at tile 256: retrying with tile 128",
        "cuda out of memory even at tile 128: moving to the CPU",
    ]
    assert p.device.type == "cpu" and pred.device == "cpu"
    assert [d for d, _ in attempts[:3]] == ["cuda"] * 3 and attempts[-1][0] == "cpu"
    ref = Predictor(tiny_unet, device="cpu", tile_size=128, overlap=32, batch_size=1).predict(image)
    np.testing.assert_array_equal(pred.labels, ref.labels)


def test_oom_from_the_default_tile_stops_halving_at_128(tiny_unet, monkeypatch, rng):
    """1088 halves to 544, 272, 136; another halving would give 68 px tiles (smaller than their overlap)."""
    messages = []
    p, _ = _fake_gpu_predictor(tiny_unet, monkeypatch, lambda shape: True, messages.append)
    p.tile_size = DEFAULT_TILE_SIZE
    p.predict(rng.integers(0, 256, size=(200, 200, 3), dtype=np.uint8))
    tiles = [int(m.split("tile ")[1].split(":")[0]) for m in messages]
    assert tiles == [1088, 544, 272, 136] and "moving to the CPU" in messages[-1]


def test_oom_at_another_scale_restarts_the_streamed_output(live_model, monkeypatch):
    """At a scale, labels are upsampled into ``out`` band by band: a retry must write them all again, alike."""
    image = synthetic_rbc((600, 640), seed=2)[0]
    model = live_model("unet", 2, np.ascontiguousarray(image[::2, ::2]))  # calibrated on what it sees at 0.5
    messages, out, calls = [], np.full((600, 640), 7, np.uint8), []
    # at scale 0.5 the image is 300 x 320, two rows of tiles 256: the second row runs out of memory, after the
    # first row's labels were written
    p, _ = _fake_gpu_predictor(
        model, monkeypatch, lambda shape: calls.append(shape) or len(calls) == 2, messages.append
    )
    p.tile_size = 256
    assert p.predict(image, scale=0.5, out=out).labels is out
    assert messages == ["cuda out of memory at tile 256: retrying with tile 128"]
    assert calls[0][1] > 128 and all(shape[1] <= 128 for shape in calls[2:])
    ref = Predictor(model, device="cpu", tile_size=128, overlap=32, batch_size=1).predict(image, scale=0.5)
    np.testing.assert_array_equal(out, ref.labels)
    assert 0.05 < out.mean() < 0.95


def test_oom_untiled_retries_tiled(tiny_unet, monkeypatch, rng):
    image = rng.integers(0, 256, size=(300, 300, 3), dtype=np.uint8)
    messages = []
    p, _ = _fake_gpu_predictor(tiny_unet, monkeypatch, lambda shape: shape[1] > 256, messages.append)
    p.tile_size = 0
    assert p.predict(image).labels.shape == (300, 300)
    assert messages == ["cuda out of memory at tile full: retrying with tile 256"]


def test_other_gpu_errors_are_not_swallowed(tiny_unet, monkeypatch, rng):
    p, _ = _fake_gpu_predictor(tiny_unet, monkeypatch, lambda shape: False, lambda m: None)

    def broken(tiles, tta=False):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(p, "_forward", broken)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        p.predict(rng.integers(0, 256, size=(50, 50, 3), dtype=np.uint8))


def test_cpu_oom_is_raised_not_retried_forever(tiny_unet, monkeypatch, rng):
    p = Predictor(tiny_unet, device="cpu")
    calls = []

    def oom(tiles, tta=False):
        calls.append(1)
        raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 1 GB. out of memory")

    monkeypatch.setattr(p, "_forward", oom)
    with pytest.raises(RuntimeError, match="out of memory"):
        p.predict(rng.integers(0, 256, size=(50, 50, 3), dtype=np.uint8))
    assert calls == [1]


def _sliver_labels(h: int = 200, w: int = 300) -> np.ndarray:
    """Six whole 40 px cells and one sliver on the top edge (~10 % of a cell)."""
    labels = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[:h, :w]
    for cy, cx in [(50, 50), (50, 150), (50, 250), (150, 50), (150, 150), (150, 250), (-14, 100)]:
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= 400] = 1
    return labels


@pytest.mark.parametrize(
    "card_fraction, edge_cells, sliver_kept",
    [(0.45, "auto", False), (None, "auto", True), (0.45, "keep", True), (None, 0.3, False)],
)
def test_edge_cells_follow_the_card_unless_told(tiny_unet, monkeypatch, card_fraction, edge_cells, sliver_kept):
    card = ModelCard(
        name="m", config=tiny_unet.config, schema="rbc", cell_size_px=80.0, edge_cell_min_fraction=card_fraction
    )
    p = Predictor(tiny_unet, card, device="cpu", edge_cells=edge_cells)
    monkeypatch.setattr(p, "_run_with_fallback", lambda *a, **k: (_sliver_labels(), None))
    labels = p.predict(np.zeros((200, 300, 3), np.uint8), scale=2.0).labels  # cells of 40 px: 80 / 2
    assert bool(labels[0, 100]) is sliver_kept
    assert labels.sum() == _sliver_labels().sum() - (0 if sliver_kept else _sliver_labels()[:7].sum())


@pytest.mark.parametrize("bad", ["drop", 0, 1.5, None])
def test_edge_cells_bad_value(tiny_unet, bad):
    with pytest.raises(ValueError, match="edge_cells"):
        Predictor(tiny_unet, device="cpu", edge_cells=bad)


@pytest.mark.parametrize("input_scale, scale", [(1.0, 2.0), (0.5, 2.0)])
def test_edge_cells_judge_against_the_cell_size_seen_through_the_scale(tiny_unet, monkeypatch, input_scale, scale):
    """A sparse field (too few whole cells to measure): the typical cell is the card's, seen through the user's
    scale. The card's 80 px cells at scale 2 are 40 px here, so half a 40 px cell on the edge stays; judged
    against an 80 px cell it would be a sliver (under 0.45 of one)."""
    labels = np.zeros((200, 300), np.uint8)
    yy, xx = np.mgrid[:200, :300]
    labels[yy**2 + (xx - 150) ** 2 <= 400] = 1  # half of a 40 px cell, cut by the top edge
    card = ModelCard(
        name="m",
        config=tiny_unet.config,
        schema="rbc",
        cell_size_px=80.0,
        input_scale=input_scale,
        edge_cell_min_fraction=0.45,
    )
    p = Predictor(tiny_unet, card, device="cpu")
    monkeypatch.setattr(p, "_run_with_fallback", lambda *a, **k: (labels.copy(), None))
    out = p.predict(np.zeros((200, 300, 3), np.uint8), scale=scale).labels
    np.testing.assert_array_equal(out, labels)
    # the same half cell under a scale of 1: the card's 80 px cells, of which it is under 0.45
    assert not p.predict(np.zeros((200, 300, 3), np.uint8), scale=1.0).labels.any()

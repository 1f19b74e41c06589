import copy
import shutil
import warnings

import numpy as np
import pytest
import torch

from napari_bloodseg.inference import Cancelled
from napari_bloodseg.models import ModelCard, build_model
from napari_bloodseg.training import TrainConfig, fit
from napari_bloodseg.training.trainer import selection_score, training_dtype, validate, warmup_cosine

from .conftest import first_last_loss


def _model_and_card():
    torch.manual_seed(0)
    model = build_model("unet", num_classes=3, width=4, depth=3)
    return model, ModelCard(name="t", config=model.config, schema="wbc")


def test_fit_lowers_the_loss_and_keeps_the_best_validation_state(wbc_samples):
    model, card = _model_and_card()
    cfg = TrainConfig(epochs=6, steps_per_epoch=4, batch_size=4, patch_size=48, lr=1e-2, seed=0, device="cpu")
    res = fit(model, card, wbc_samples[:4], wbc_samples[4:], cfg)
    first, last = first_last_loss(res.history)
    assert last < first * 0.9
    scores = [h.score for h in res.history]
    assert res.best_score == max(scores) and res.history[res.best_epoch - 1].score == res.best_score
    assert not model.training


def test_keep_last_returns_the_final_state_with_validation_only_reported(wbc_samples):
    # lr 0.1 overshoots: with this seed the best validation epoch is the first (0.29, then <= 0.24), so "best" and
    # "last" differ here; the premise is asserted below, so a change of data that breaks it fails loudly
    cfg = TrainConfig(epochs=6, steps_per_epoch=2, batch_size=4, patch_size=48, lr=0.1, seed=1, device="cpu")
    runs = {}
    for keep in ("best", "last"):
        model, card = _model_and_card()
        epoch_states = []
        res = fit(
            model,
            card,
            wbc_samples[:4],
            wbc_samples[4:],
            TrainConfig(**{**cfg.to_dict(), "keep": keep}),
            on_epoch=lambda log, m=model, s=epoch_states: s.append(copy.deepcopy(m.state_dict())),
        )
        assert all(h.score is not None for h in res.history)  # validation scored every epoch either way
        runs[keep] = res, model.state_dict(), epoch_states

    def same(a, b):
        return all(torch.equal(a[k], b[k]) for k in a)

    best, state, epoch_states = runs["best"]
    assert best.best_epoch < len(best.history)
    # the model itself is left at the best epoch's weights (what train/finetune then save), not the last epoch's
    assert same(state, epoch_states[best.best_epoch - 1]) and not same(state, epoch_states[-1])
    last, state, epoch_states = runs["last"]
    assert last.best_epoch == len(last.history) and last.best_score == last.history[-1].score
    assert same(state, epoch_states[-1])
    with pytest.raises(ValueError, match="keep"):
        fit(*_model_and_card(), wbc_samples[:4], [], TrainConfig(**{**cfg.to_dict(), "keep": "median"}))


def test_fit_is_reproducible_with_a_seed(wbc_samples):
    cfg = TrainConfig(epochs=2, steps_per_epoch=2, batch_size=2, patch_size=48, seed=7, device="cpu")
    runs = []
    for _ in range(2):
        model, card = _model_and_card()
        fit(model, card, wbc_samples[:4], [], cfg)
        runs.append(copy.deepcopy(model.state_dict()))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def _train_twice(wbc_samples, **other):
    """(eager, other) runs of the same seeded fit: losses and weights. A time budget applies to both."""
    cfg = TrainConfig(epochs=2, steps_per_epoch=2, batch_size=2, patch_size=48, lr=1e-2, seed=3, device="cpu")
    budget = {"max_minutes": other["max_minutes"]} if "max_minutes" in other else {}
    out = []
    for extra in (budget, other):
        model, card = _model_and_card()
        res = fit(model, card, wbc_samples[:4], [], TrainConfig(**{**cfg.to_dict(), **extra}))
        out.append(([h.loss for h in res.history], copy.deepcopy(model.state_dict())))
    return out


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="torch.compile needs a C compiler")
def test_compiled_training_follows_the_eager_one(wbc_samples):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (eager_loss, eager_w), (comp_loss, comp_w) = _train_twice(wbc_samples, compile=True)
    assert not [w for w in caught if "torch.compile failed" in str(w.message)]  # it really compiled
    assert comp_loss == pytest.approx(eager_loss, rel=1e-4)
    assert all(torch.allclose(eager_w[k].float(), comp_w[k].float(), atol=1e-4) for k in eager_w)


def test_training_falls_back_to_eager_when_compiling_fails(wbc_samples, monkeypatch):
    def broken_compile(model, **kwargs):
        def run(x):
            raise RuntimeError("no C++ compiler")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        (eager_loss, eager_w), (loss, w) = _train_twice(wbc_samples, compile=True)
    assert loss == eager_loss and all(torch.equal(eager_w[k], w[k]) for k in eager_w)


def test_compiling_time_does_not_move_the_schedule(wbc_samples, monkeypatch):
    """A slow first (compiling) step must not count as training progress: the run stays reproducible.

    The trainer's clock is a fake that only the fake compiler moves (by 30 s against a 6 s budget), so the check
    does not depend on how busy the machine is, and without the clock restart training would stop after one step.
    """
    from napari_bloodseg.training import trainer

    now = [0.0]
    monkeypatch.setattr(trainer.time, "perf_counter", lambda: now[0])

    def slow_first_call(model, **kwargs):
        calls = []

        def run(x):
            if not calls:
                now[0] += 30.0  # ~30 s of compiling
            calls.append(1)
            return model(x)

        return run

    monkeypatch.setattr(torch, "compile", slow_first_call)
    (eager_loss, eager_w), (loss, w) = _train_twice(wbc_samples, compile=True, max_minutes=0.1)
    assert len(loss) == len(eager_loss) == 2
    assert loss == eager_loss and all(torch.equal(eager_w[k], w[k]) for k in eager_w)


def test_a_run_that_fits_its_budget_keeps_its_schedule_on_steps(wbc_samples, training_clock):
    """A slow first step puts the clock ahead of the steps for a moment; a run that fits its budget must still
    follow the step schedule exactly (before, such runs took their LR from the wall clock: not reproducible)."""
    (free_loss, free_w), _ = _train_twice(wbc_samples)  # no budget: the schedule is steps alone
    training_clock(lambda i: 2.0 if i == 0 else 0.2)  # 4 steps in 2.6 s of a 6 s budget
    (loss, w), _ = _train_twice(wbc_samples, max_minutes=0.1)
    assert loss == free_loss and all(torch.equal(free_w[k], w[k]) for k in free_w)


def test_a_slow_start_does_not_hand_the_schedule_to_the_clock(wbc_samples, training_clock):
    """The first epoch at 1.7x the pace the budget allows (a busy machine), the rest fast: the run fits, so it
    follows the step schedule exactly (deciding after the first epoch alone would have given it to the clock)."""
    cfg = TrainConfig(epochs=50, steps_per_epoch=2, batch_size=2, patch_size=32, lr=1e-2, seed=3, device="cpu")
    runs = []
    for budget in (None, 0.1):  # 0.1 min: 6 s for 100 steps, 0.06 s a step
        if budget:
            training_clock(lambda i: 0.1 if i < 2 else 0.02)  # 2.16 s in all
        model, card = _model_and_card()
        fit(model, card, wbc_samples[:4], [], TrainConfig(**{**cfg.to_dict(), "max_minutes": budget}))
        runs.append(copy.deepcopy(model.state_dict()))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_a_run_that_overruns_its_budget_anneals_by_time(wbc_samples, monkeypatch, training_clock):
    trainer = training_clock(lambda i: 1.0)  # 1 s per step against 6 s for 12 steps: half fit
    seen: list[float] = []
    real_factor = trainer.warmup_cosine()
    monkeypatch.setattr(trainer, "warmup_cosine", lambda: lambda p: seen.append(p) or real_factor(p))
    cfg = TrainConfig(epochs=6, steps_per_epoch=2, batch_size=2, patch_size=48, device="cpu", max_minutes=0.1)
    res = fit(*_model_and_card(), wbc_samples[:4], [], cfg)
    assert res.stopped_early and len(seen) <= 7  # stopped by the budget after ~6 of 12 steps
    assert (res.length.steps_done, res.length.steps_planned, res.length.budget_s) == (len(seen), 12, 6.0)
    assert res.length.budget_note().startswith(f"the time budget of 6 s ended training after {len(seen)} of 12 steps")
    assert res.length.budget_note(unit="min").startswith("the time budget of 0.1 min ended")
    assert seen[:2] == [0.0, 1 / 12]  # the first epoch runs on steps
    assert seen[-1] >= 5 / 6  # then on time: the schedule has all but annealed when the budget ends it


def test_cancel_stops_training(wbc_samples):
    model, card = _model_and_card()
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 2

    cfg = TrainConfig(epochs=5, steps_per_epoch=3, batch_size=2, patch_size=48, device="cpu")
    with pytest.raises(Cancelled):
        fit(model, card, wbc_samples[:4], [], cfg, cancel=cancel)
    assert len(calls) == 3


def test_unlabelled_training_data_is_refused(wbc_samples):
    model, card = _model_and_card()
    for s in wbc_samples:
        s.labels[:] = 255
    with pytest.raises(ValueError, match="no labelled pixels"):
        fit(model, card, wbc_samples, [], TrainConfig(epochs=1, device="cpu"))


@pytest.mark.parametrize(
    ("arch", "encoder", "decoder"),
    [("unet", "down.", "merge."), ("segnet", "encoders.", "decoders."), ("deconvnet", "encoders.", "decoders.")],
)
def test_encoder_freeze_leaves_encoder_weights_unchanged(wbc_samples, arch, encoder, decoder):
    torch.manual_seed(0)
    model = build_model(arch, num_classes=3, width=4, depth=3)
    card = ModelCard(name="t", config=model.config, schema="wbc")
    before = copy.deepcopy(model.state_dict())
    cfg = TrainConfig(epochs=1, steps_per_epoch=2, batch_size=2, patch_size=48, freeze="encoder", device="cpu")
    fit(model, card, wbc_samples[:4], [], cfg)
    after = model.state_dict()
    enc = [k for k in before if k.startswith(encoder) and k.endswith("weight")]
    dec = [k for k in before if k.startswith(decoder) and k.endswith("weight")]
    assert enc and all(torch.equal(before[k], after[k]) for k in enc)
    assert any(not torch.equal(before[k], after[k]) for k in dec)
    assert all(p.requires_grad for p in model.parameters())


def test_schedule_warms_up_then_anneals():
    f = warmup_cosine(0.1)
    values = [f(p) for p in np.linspace(0, 1, 101)]
    assert values[0] < values[10] and abs(values[10] - 1.0) < 1e-6
    assert values[-1] == pytest.approx(0.01, abs=1e-6)
    assert all(a >= b for a, b in zip(values[10:], values[11:], strict=False))


def test_frozen_batchnorm_keeps_the_running_statistics(wbc_samples):
    model, card = _model_and_card()
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    stats = [m.running_mean.clone() for m in bn]
    weights = copy.deepcopy(model.state_dict())
    # keep="last": the model returned is the final one (a best-epoch rollback would hide a late change), and the
    # statistics are checked after every step, so validation between epochs must not unfreeze them either
    cfg = TrainConfig(
        epochs=2, steps_per_epoch=2, batch_size=2, patch_size=48, device="cpu", freeze_bn=True, keep="last"
    )
    moved = []

    def check(step, total, loss):
        moved.extend(step for m, s in zip(bn, stats, strict=True) if not torch.equal(m.running_mean, s))

    res = fit(model, card, wbc_samples[:4], wbc_samples[4:], cfg, on_step=check)
    assert [h.score is not None for h in res.history] == [True, True]  # validated after epoch 1, before epoch 2
    assert moved == []
    assert all(torch.equal(m.running_mean, s) for m, s in zip(bn, stats, strict=True))
    assert any(not torch.equal(weights[k], v) for k, v in model.state_dict().items() if "weight" in k)


def test_replay_fills_half_of_every_batch_from_the_whole_pool(wbc_samples, monkeypatch):
    from napari_bloodseg.training import trainer

    drawn = []
    real_batch = trainer._batch

    def spy(samples, idx, cfg, rng, norm):
        drawn.append(("replay" if samples is pool else "own", list(idx)))
        return real_batch(samples, idx, cfg, rng, norm)

    monkeypatch.setattr(trainer, "_batch", spy)
    own, pool = wbc_samples[:2], wbc_samples[2:] * 3  # 12 replay images
    model, card = _model_and_card()
    cfg = TrainConfig(epochs=3, steps_per_epoch=2, batch_size=4, patch_size=48, device="cpu")
    fit(model, card, own, [], cfg, replay=pool)
    assert [k for k, _ in drawn] == ["own", "replay"] * 6
    assert all(len(i) == 2 for _, i in drawn)
    replayed = [i for k, idx in drawn if k == "replay" for i in idx]
    assert sorted(replayed) == list(range(12))  # every pool image once before any repeats


@pytest.mark.parametrize(("fraction", "n_replay"), [(0.25, 2), (0.0, 0), (0.9, 7)])
def test_replay_fraction_sets_the_base_domain_share_of_a_batch(wbc_samples, monkeypatch, fraction, n_replay):
    from napari_bloodseg.training import trainer

    sizes = {"own": [], "replay": []}
    real_batch = trainer._batch

    def spy(samples, idx, cfg, rng, norm):
        sizes["replay" if samples is pool else "own"].append(len(idx))
        return real_batch(samples, idx, cfg, rng, norm)

    monkeypatch.setattr(trainer, "_batch", spy)
    own, pool = wbc_samples[:2] * 4, wbc_samples[2:] * 2  # 8 each: enough for any split of a batch of 8
    cfg = TrainConfig(epochs=1, steps_per_epoch=2, batch_size=8, patch_size=48, device="cpu", replay_fraction=fraction)
    fit(*_model_and_card(), own, [], cfg, replay=pool)
    assert sizes["own"] == [8 - n_replay] * 2 and sizes["replay"] == ([n_replay] * 2 if n_replay else [])
    with pytest.raises(ValueError, match="replay_fraction"):
        fit(*_model_and_card(), own, [], TrainConfig(**{**cfg.to_dict(), "replay_fraction": 1.0}), replay=pool)


def test_training_batches_keep_labels_on_their_pixels():
    """Through crop, pad and the 8 rotations/flips of _batch, each label stays under its pixel (the image channel
    0 encodes the label: 0, 100, 200 grey)."""
    from napari_bloodseg.models.files import DEFAULT_NORMALISATION
    from napari_bloodseg.training import Sample
    from napari_bloodseg.training.trainer import _batch

    rng = np.random.default_rng(0)
    samples = []
    for i, shape in enumerate([(40, 56), (90, 70), (64, 64)]):  # smaller and bigger than the patch
        lab = rng.integers(0, 3, shape).astype(np.uint8)
        img = np.stack([lab * 100, rng.integers(0, 256, shape), rng.integers(0, 256, shape)], -1).astype(np.uint8)
        samples.append(Sample(f"{i}", img, lab))
    cfg = TrainConfig(patch_size=48, scale_range=(1.0, 1.0), colour_strength=0.0, deform=0.0)
    mean, std = DEFAULT_NORMALISATION["mean"][0], DEFAULT_NORMALISATION["std"][0]
    for _ in range(4):
        x, y = _batch(samples, [0, 1, 2], cfg, rng, DEFAULT_NORMALISATION)
        grey = ((x[:, 0] * std + mean) * 255).round()
        valid = y != 255
        assert valid.float().mean() > 0.5
        assert torch.equal(grey[valid], y[valid].float() * 100)


def test_weight_average_is_what_is_validated_and_kept(wbc_samples):
    """With ``ema`` the kept model is the moving average of the raw weights after every step (buffers too), and
    its validation score is the average's, not the raw weights'."""
    model, card = _model_and_card()
    cfg = TrainConfig(
        epochs=3, steps_per_epoch=3, batch_size=4, patch_size=48, lr=1e-2, seed=0, device="cpu", ema=0.9, keep="last"
    )
    raw_states, epoch_states = [], []
    res = fit(
        model,
        card,
        wbc_samples[:4],
        wbc_samples[4:],
        cfg,
        on_step=lambda step, total, loss: raw_states.append(copy.deepcopy(model.state_dict())),
        on_epoch=lambda log: epoch_states.append(copy.deepcopy(model.state_dict())),
    )
    expected = {k: v.clone() for k, v in _model_and_card()[0].state_dict().items()}  # the same seeded start
    for step, state in enumerate(raw_states, start=1):
        d = min(0.9, (1 + step) / (10 + step))
        for k, v in state.items():
            expected[k] = expected[k] * d + v * (1 - d) if v.is_floating_point() else v.clone()
    kept = model.state_dict()
    assert all(torch.allclose(kept[k].float(), expected[k].float(), atol=1e-6) for k in kept)
    assert not all(torch.equal(kept[k], raw_states[-1][k]) for k in kept)  # the average is not the last step
    assert all(torch.equal(kept[k], epoch_states[-1][k]) for k in kept)  # on_epoch sees what was validated
    assert res.history[-1].score == pytest.approx(selection_score(validate(model, card, wbc_samples[4:], "cpu")))
    with pytest.raises(ValueError, match="ema"):
        fit(*_model_and_card(), wbc_samples[:4], [], TrainConfig(epochs=1, ema=1.0))


def test_bf16_channels_last_training_runs_in_bf16_and_follows_fp32(wbc_samples):
    (fp32_loss, fp32_w), (bf16_loss, bf16_w) = _train_twice(wbc_samples, precision="bf16", channels_last=True)
    # same data, same seed: the losses agree to bf16's ~3 significant digits, and they are not the fp32 run's bits
    assert bf16_loss == pytest.approx(fp32_loss, rel=0.02) and bf16_loss != fp32_loss
    for k, v in bf16_w.items():
        assert v.dtype == fp32_w[k].dtype  # weights (the saved state) stay fp32
        assert v.is_contiguous()  # back in the standard layout: safetensors and inference see plain tensors


def test_bf16_precision_puts_the_convolutions_in_bf16(wbc_samples):
    seen = []
    model, card = _model_and_card()
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(
        lambda m, i, o: seen.append((o.dtype, o.is_contiguous(memory_format=torch.channels_last)))
    )
    cfg = TrainConfig(epochs=1, steps_per_epoch=1, batch_size=2, patch_size=48, precision="bf16", channels_last=True)
    fit(model, card, wbc_samples[:4], [], cfg)
    assert seen[0] == (torch.bfloat16, True)


def test_precision_names():
    cpu = torch.device("cpu")
    assert training_dtype("fp32", cpu) is None and training_dtype("bf16", cpu) is torch.bfloat16
    assert training_dtype("auto", torch.device("mps")) is torch.float16
    with pytest.raises(ValueError, match="precision"):
        training_dtype("half", cpu)


@pytest.mark.parametrize(("dtype", "scaled"), [(torch.float16, True), (torch.bfloat16, False), (None, False)])
def test_fp16_training_scales_the_loss(wbc_samples, monkeypatch, dtype, scaled):
    """fp16 autocast (GPUs without bf16, Apple MPS) trains with a GradScaler, or small gradients flush to zero;
    bf16 and fp32 need none. Run on the CPU by forcing the autocast dtype the trainer picks."""
    from napari_bloodseg.training import trainer

    made = []

    class SpyScaler(torch.amp.GradScaler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.steps = 0
            made.append(self)

        def step(self, optimizer, *args, **kwargs):
            self.steps += 1
            return super().step(optimizer, *args, **kwargs)

    monkeypatch.setattr(trainer, "training_dtype", lambda precision, device: dtype)
    monkeypatch.setattr(torch.amp, "GradScaler", SpyScaler)
    model, card = _model_and_card()
    cfg = TrainConfig(epochs=4, steps_per_epoch=3, batch_size=4, patch_size=48, lr=1e-2, device="cpu")
    res = fit(model, card, wbc_samples[:4], [], cfg)
    (scaler,) = made
    assert scaler.is_enabled() is scaled and scaler.steps == 12
    if scaled:
        assert scaler.get_scale() > 1  # the loss really was multiplied before the backward
    first, last = first_last_loss(res.history)
    assert last < first and all(torch.isfinite(v).all() for v in model.state_dict().values())


def test_max_steps_cuts_the_last_epoch_and_still_validates_it(wbc_samples):
    model, card = _model_and_card()
    steps = []
    cfg = TrainConfig(epochs=3, steps_per_epoch=4, max_steps=6, batch_size=2, patch_size=48, seed=0, device="cpu")
    res = fit(model, card, wbc_samples[:4], wbc_samples[4:], cfg, on_step=lambda i, n, loss: steps.append((i, n)))
    assert steps == [(i, 6) for i in range(1, 7)]  # the schedule anneals over 6 steps, not 12
    assert len(res.history) == 2 and res.history[-1].val is not None
    assert not res.stopped_early  # not a time-budget stop
    assert (res.length.steps_done, res.length.steps_planned) == (6, 6) and res.length.budget_note() is None
    with pytest.raises(ValueError, match="max_steps"):
        fit(model, card, wbc_samples[:4], [], TrainConfig(epochs=1, max_steps=0, batch_size=2, patch_size=48))

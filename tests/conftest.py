"""Fixtures shared by the core (Qt-free) tests. No napari imports here: tests/plugin has its own conftest."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

#: One intra-op thread by default: the suite's tensors are small, and on a small shared machine two OpenMP
#: threads competing with another busy process spin-wait (measured 7x slower). BLOODSEG_TEST_THREADS overrides.
torch.set_num_threads(int(os.environ.get("BLOODSEG_TEST_THREADS", "1")))

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Real public data, mounted beside the repository on the development machine; a fresh clone has none.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (wbc/dataset1, wbc/dataset2-dev, rbc); the test is skipped when it is absent."""
    if not (SHARED_DATA / "wbc").is_dir():
        pytest.skip(f"real data not available at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def tmp_model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty user model directory (``BLOODSEG_MODEL_DIR``), so no test sees or writes the real one."""
    d = tmp_path / "user-models"
    d.mkdir()
    monkeypatch.setenv("BLOODSEG_MODEL_DIR", str(d))
    return d


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's real model or dataset cache folders, even in tests that do not ask for them."""
    monkeypatch.setenv("BLOODSEG_MODEL_DIR", str(tmp_path_factory.mktemp("models-default")))
    monkeypatch.setenv("BLOODSEG_CACHE_DIR", str(tmp_path_factory.mktemp("cache-default")))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def wbc_sample() -> tuple[np.ndarray, np.ndarray]:
    """A synthetic 120x120 WBC crop (uint8 RGB) and its labels (0/1/2)."""
    from napari_bloodseg.data import synthetic_wbc

    return synthetic_wbc(120, seed=3)


@pytest.fixture
def rbc_sample() -> tuple[np.ndarray, np.ndarray]:
    """A small synthetic RBC field (uint8 RGB, 160x200) and its labels (0/1)."""
    from napari_bloodseg.data import synthetic_rbc

    return synthetic_rbc((160, 200), seed=5)


@pytest.fixture
def small_rgb(rng: np.random.Generator) -> np.ndarray:
    """Random 37x53 RGB uint8 image (odd sizes on purpose: nothing divides the network stride)."""
    return rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8)


def make_live_model(arch: str, num_classes: int, sample: np.ndarray, *, width: int = 4, seed: int = 0):
    """A seeded untrained network whose eval-mode output really varies across ``sample`` (uint8 RGB).

    A freshly initialised network in eval mode gives nearly the same logits everywhere (its BatchNorm running
    statistics are the defaults), so any comparison of its labels would pass trivially. Here BN statistics are
    measured on ``sample``, and for two classes the head bias is set so that about half of ``sample`` is
    foreground.
    """
    import torch

    from napari_bloodseg.models import build_model

    torch.manual_seed(seed)
    model = build_model(arch, num_classes=num_classes, width=width)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one pass sets the statistics
    x = (torch.from_numpy(np.ascontiguousarray(sample)).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        model.train()(x)
        model.eval()
        if num_classes == 2:
            logits = model(x)[0]
            model.head.bias[0] += (logits[1] - logits[0]).median()
    return model


@pytest.fixture
def live_model():
    """Factory: ``live_model(arch, num_classes, sample)`` (see :func:`make_live_model`)."""
    return make_live_model


@pytest.fixture
def tiny_unet():
    """A seeded, untrained width-4 U-Net for WBC (3 classes), in eval mode."""
    import torch

    from napari_bloodseg.models import build_model

    torch.manual_seed(0)
    return build_model("unet", num_classes=3, width=4).eval()


@pytest.fixture
def training_clock(monkeypatch: pytest.MonkeyPatch):
    """``training_clock(step_seconds)``: the trainer's clock as a fake that each training step moves by
    ``step_seconds(i)`` (i = 0, 1, ...), so time budgets are tested without waiting for them."""
    from napari_bloodseg.training import trainer

    def install(step_seconds):
        now, calls = [0.0], []
        real_loss = trainer._loss

        def timed_loss(*args, **kwargs):
            now[0] += step_seconds(len(calls))
            calls.append(1)
            return real_loss(*args, **kwargs)

        monkeypatch.setattr(trainer.time, "perf_counter", lambda: now[0])
        monkeypatch.setattr(trainer, "_loss", timed_loss)
        return trainer

    return install

"""The allocator switch takes effect where it can (Linux/glibc) and is a quiet no-op elsewhere."""

import sys

import pytest

from napari_bloodseg.inference import allocator


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_keep_freed_memory_takes_effect_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert allocator.keep_freed_memory() is True
    assert allocator.keep_freed_memory() is True  # idempotent


def test_no_op_elsewhere(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert allocator.keep_freed_memory() is False


def test_the_cli_switches_it_on_except_for_listing_models(monkeypatch, tmp_model_dir, capsys):
    from napari_bloodseg.cli.main import main

    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append(1) or True)
    main(["models"])
    assert calls == []  # `bloodseg models` stays a quick, torch-free listing
    main(["predict", "--model", "no-such-model", "--out", "x", "nothing.png"])
    assert calls == [1]

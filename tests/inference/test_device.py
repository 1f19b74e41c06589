import pytest
import torch

from napari_bloodseg.inference import DEVICE_CHOICES, available_devices, describe, resolve_device
from napari_bloodseg.inference import device as device_mod


@pytest.fixture
def no_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_mod, "mps_available", lambda: False)


def test_choices():
    assert DEVICE_CHOICES == ("auto", "cpu", "cuda", "mps")


@pytest.mark.skipif(torch.cuda.is_available() or device_mod.mps_available(), reason="machine has an accelerator")
def test_auto_is_cpu_on_this_machine():
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert available_devices() == ["cpu"]


def test_auto_without_accelerators(no_accelerators):
    assert resolve_device("auto").type == "cpu"
    assert resolve_device("AUTO").type == "cpu"


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(device_mod, "mps_available", lambda: True)
    assert resolve_device("auto").type == "cuda"
    assert available_devices() == ["mps", "cuda", "cpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "mps"


@pytest.mark.parametrize(("name", "message"), [("cuda", "no CUDA GPU"), ("cuda:1", "no CUDA GPU"), ("mps", "MPS")])
def test_explicit_accelerator_that_is_absent(no_accelerators, name, message):
    with pytest.raises(device_mod.DeviceUnavailable, match=message) as caught:
        resolve_device(name)
    assert isinstance(caught.value, ValueError)  # callers that catch bad input as ValueError still do
    assert caught.value.device == name
    # front-end neutral: the CLI adds "--device", the widgets their Device choice
    assert "--device" not in str(caught.value) and "Device" not in str(caught.value)


def test_cuda_index_beyond_the_gpus_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(device_mod.DeviceUnavailable, match=r"'cuda:1' asked for, but PyTorch sees only cuda:0$"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(device_mod.DeviceUnavailable, match=r"sees only cuda:0 to cuda:1$"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("name", ["cuda:x", "cpu:-1", "auto:1"])
def test_malformed_device_name(no_accelerators, name):
    with pytest.raises(ValueError, match=rf"device '{name}' is not a device name; use e\.g\. cuda, cuda:1"):
        resolve_device(name)


def test_device_unavailable_pickles_with_its_device():
    import pickle

    exc = pickle.loads(pickle.dumps(device_mod.DeviceUnavailable("mps", "no MPS here")))
    assert (exc.device, str(exc)) == ("mps", "no MPS here")


def test_explicit_cpu_and_device_objects(no_accelerators):
    assert resolve_device("cpu") == torch.device("cpu")
    dev = torch.device("cpu")
    assert resolve_device(dev) is dev


def test_unknown_device():
    with pytest.raises(ValueError, match=r"unknown device 'tpu'; choose one of auto, cpu, cuda, mps"):
        resolve_device("tpu")


def test_describe_and_autocast():
    assert describe(torch.device("cpu")) == f"cpu ({torch.get_num_threads()} threads)"
    assert device_mod.autocast_dtype(torch.device("cpu")) is None  # CPU stays fp32
    assert device_mod.autocast_dtype(torch.device("mps")) == torch.float16


def test_native_bf16_cpu_reads_the_cpu_and_says_no_when_torch_cannot_tell(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert device_mod.native_bf16_cpu() is True  # AMX alone (Intel Sapphire Rapids and later) is enough
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert device_mod.native_bf16_cpu() is False
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    assert device_mod.native_bf16_cpu() is False


def test_probe_devices_finds_what_resolve_device_does(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(device_mod, "mps_available", lambda: False)
    monkeypatch.setattr(device_mod, "native_bf16_cpu", lambda: True)
    assert device_mod.probe_devices() == device_mod.DeviceProbe(("cuda", "cpu"), "cuda", True)


@pytest.mark.parametrize(
    ("available", "auto", "device", "expected"),
    [
        (("cpu",), "cpu", "auto", True),  # auto trains on the CPU: its native bf16 is what counts
        (("cpu",), "cpu", "CPU", True),
        (("cuda", "cpu"), "cuda", "auto", None),  # a GPU: mixed precision anyway
        (("cuda", "cpu"), "cuda", "cpu", True),
        (("cuda", "cpu"), "cuda", "cuda:0", None),
        (("cpu",), "cpu", "mps", None),  # not there: the run says so
    ],
)
def test_probe_answers_cpu_bf16_as_the_function_does(no_accelerators, monkeypatch, available, auto, device, expected):
    probe = device_mod.DeviceProbe(available, auto, native_bf16=True)
    assert probe.cpu_bf16(device) is expected
    if set(available) == {"cpu"}:  # the function asks this machine (no accelerators here): the same answer
        monkeypatch.setattr(device_mod, "native_bf16_cpu", lambda: True)
        assert device_mod.cpu_bf16(device) is expected

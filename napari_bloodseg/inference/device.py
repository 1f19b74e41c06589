"""Device choice: auto picks cuda > mps > cpu; an explicit choice that is not there is a clear error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: no torch import at module level: the CLI builds its --device option from this without loading torch
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


class DeviceUnavailable(ValueError):
    """An explicit device that this machine does not have. The message says what is missing, not what to do about
    it: each front end adds its own advice (the CLI's ``--device``, a widget's Device choice)."""

    def __init__(self, device: str, message: str) -> None:
        super().__init__(message)
        #: the device asked for, as given (``"cuda:1"``)
        self.device = device

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return type(self), (self.device, str(self))  # pickles (a worker process's error) with both arguments


def mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def available_devices() -> list[str]:
    import torch

    out = ["cpu"]
    if torch.cuda.is_available():
        out.insert(0, "cuda")
    if mps_available():
        out.insert(0, "mps")
    return out


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    import torch

    if isinstance(device, torch.device):
        return device
    name = (device or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    kind = name.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    try:
        dev = torch.device(name)
    except RuntimeError:  # "cuda:x", "cpu:-1": torch's own message names no choices
        raise ValueError(f"device {device!r} is not a device name; use e.g. cuda, cuda:1, mps or cpu") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(name, f"device {name!r} asked for, but PyTorch sees no CUDA GPU")
    if kind == "cuda" and dev.index is not None and dev.index >= (count := torch.cuda.device_count()):
        # else the first tensor moved there fails, after a training run has loaded all its data
        seen = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise DeviceUnavailable(name, f"device {name!r} asked for, but PyTorch sees only {seen}")
    if kind == "mps" and not mps_available():
        raise DeviceUnavailable(name, f"device {name!r} asked for, but Apple MPS is not available")
    return dev


def describe(device: torch.device) -> str:
    """Human label, e.g. 'cuda:0 (NVIDIA H100)' or 'cpu (2 threads)'."""
    import torch

    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{idx} ({torch.cuda.get_device_name(idx)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed precision on GPUs only: bf16 where supported, else fp16. CPU stays fp32 (bf16 is slow on most CPUs)."""
    import torch

    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return None


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX): there, bf16 training is ~1.7x faster
    (benchmarks/train_speed.py); elsewhere bf16 is emulated and slower than fp32."""
    import torch

    cpu = getattr(torch, "cpu", None)
    try:
        return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())
    except AttributeError:  # these are private helpers: a torch without them says nothing, so assume no
        return False


def cpu_bf16(device: str | torch.device = "auto") -> bool | None:
    """For work on ``device``: None when it is not the CPU (or not there; GPUs train in mixed precision anyway),
    else whether the CPU computes bfloat16 natively. What the CLI's note and the Fine-tune widget both ask."""
    try:
        if resolve_device(device).type != "cpu":
            return None
    except ValueError:  # an unavailable device: the command using it says so
        return None
    return native_bf16_cpu()


@dataclass(frozen=True)
class DeviceProbe:
    """What this machine offers, found once with torch so that a front end can show it without importing torch
    itself (1.5-2 s that froze napari while a widget opened)."""

    #: the devices there, of ``DEVICE_CHOICES`` less auto: ``("cpu",)``, ``("cuda", "cpu")``
    available: tuple[str, ...]
    #: what auto picks: ``"cuda"``, ``"mps"`` or ``"cpu"``
    auto: str
    #: the CPU computes bfloat16 natively (:func:`native_bf16_cpu`)
    native_bf16: bool

    def cpu_bf16(self, device: str) -> bool | None:
        """:func:`cpu_bf16` for a device name, from what was found: None unless ``device`` runs on the CPU."""
        name = (device or "auto").lower()
        kind = self.auto if name == "auto" else name.split(":")[0]
        return self.native_bf16 if kind == "cpu" else None


def probe_devices() -> DeviceProbe:
    """Import torch and look: slow the first time in a process, so a GUI calls it off its event loop."""
    return DeviceProbe(tuple(available_devices()), resolve_device("auto").type, native_bf16_cpu())

"""The widgets' side of the device choice: what they advise when the chosen device is not on this machine.

The core's :class:`~napari_bloodseg.inference.device.DeviceUnavailable` says what is missing and no more; the CLI
advises ``--device``, the widgets their Device choice.
"""

from __future__ import annotations

from ..inference.device import DeviceUnavailable

#: a widget's advice for a device this machine lacks (the command line's names --device instead)
DEVICE_ADVICE = "choose auto or cpu in Device"


def failure_message(exc: BaseException) -> str:
    """One line for an expected failure of a run: a missing device gets the widgets' advice, and a MemoryError
    its name (its own message is often empty)."""
    if isinstance(exc, DeviceUnavailable):
        return f"{exc}: {DEVICE_ADVICE}"
    if isinstance(exc, MemoryError):
        return f"{type(exc).__name__}: {exc}"
    return str(exc)

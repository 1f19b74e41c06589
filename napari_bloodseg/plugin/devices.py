"""The widgets' Device choice: offered at once, filled in off the event loop, and their advice when it is not there.

Which devices a machine has is only known through torch, whose first import takes 1.5-2 s: done as a widget opened,
it froze napari for that long. :class:`DeviceCombo` lists every choice at once while a thread of its own imports
torch and looks (once per process), and fills in what it found. A run started before that needs nothing from it:
the run resolves its device in its own worker.

The probe thread touches no Qt object (the combo polls for its result): a napari worker tried first aborted the
process when a script opened a widget and ended, as its result signal fired into Qt objects already deleted. It is
not a daemon thread either, so an exit waits for it rather than ending it inside torch's import.

The core's :class:`~napari_bloodseg.inference.device.DeviceUnavailable` says what is missing and no more; the CLI
advises ``--device``, the widgets their Device choice (:func:`failure_message`).
"""

from __future__ import annotations

import threading

from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import QComboBox, QWidget

from ..inference.device import DEVICE_CHOICES, DeviceProbe, DeviceUnavailable, probe_devices

#: a widget's advice for a device this machine lacks (the command line's names --device instead)
DEVICE_ADVICE = "choose auto or cpu in Device"
#: how often a combo looks for the probe's result, in ms
POLL_MS = 50

#: what the probe of this process found (None until then): later widgets show it at once
_known: DeviceProbe | None = None
_thread: threading.Thread | None = None


def start_probe() -> None:
    """Start looking for the devices in a thread, unless that was done already (call from the GUI thread)."""
    global _thread
    if _thread is None:
        _thread = threading.Thread(target=_probe, name="bloodseg-device-probe")
        _thread.start()


def _probe() -> None:
    global _known
    _known = probe_devices()  # an error (a broken torch) is printed by threading; runs then say it themselves


def known_devices() -> DeviceProbe | None:
    """What the probe found, None while it runs (or when it failed)."""
    return _known


def failure_message(exc: BaseException) -> str:
    """One line for an expected failure of a run: a missing device gets the widgets' advice, and a MemoryError
    its name (its own message is often empty)."""
    if isinstance(exc, DeviceUnavailable):
        return f"{exc}: {DEVICE_ADVICE}"
    if isinstance(exc, MemoryError):
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return str(exc)


class DeviceCombo(QComboBox):
    """auto, cpu, cuda and mps, each item's data its name. cuda and mps read "checking …" until the probe has
    looked, then "not available" where they are not (still choosable: a run on one says why it cannot)."""

    #: the probe's findings, once known (GUI thread)
    probed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        for name in DEVICE_CHOICES:
            self.addItem(name if name in ("auto", "cpu") else f"{name} (checking …)", name)
        self.setToolTip("auto picks cuda > mps > cpu")
        #: what the probe found (None until then)
        self.probe: DeviceProbe | None = None
        self._poll = QTimer(self)  # the combo's child: it goes with the combo
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self._look)
        if _thread is None:  # first in this process: look once the widget is built and back in the event loop
            QTimer.singleShot(0, start_probe)
        self._poll.start()
        self._look()

    def device(self) -> str:
        """The chosen device's name, as ``resolve_device`` takes it."""
        return str(self.currentData())

    def set_device(self, name: str) -> None:
        self.setCurrentIndex(self.findData(name))

    def _look(self) -> None:
        looking = _thread is None or _thread.is_alive()  # before the result: a probe ending in between counts
        probe = known_devices()
        if probe is None and looking:
            return  # not started yet, or still looking
        self._poll.stop()
        for i in range(self.count()):
            name = str(self.itemData(i))
            there = probe is None or name == "auto" or name in probe.available  # no probe: say nothing
            self.setItemText(i, name if there else f"{name} (not available)")
        if probe is not None:
            self.probe = probe
            self.probed.emit(probe)

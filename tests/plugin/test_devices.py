"""The widgets' Device choice: every choice at once, what the machine has filled in by a thread, their advice."""

from __future__ import annotations

from napari_bloodseg.inference.device import DeviceProbe, DeviceUnavailable
from napari_bloodseg.plugin import devices
from napari_bloodseg.plugin.devices import DeviceCombo, failure_message


def items(combo: DeviceCombo) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def test_failure_message_advises_the_device_choice():
    assert failure_message(DeviceUnavailable("mps", "no MPS here")) == "no MPS here: choose auto or cpu in Device"
    assert failure_message(MemoryError()) == "MemoryError"  # its own message is often empty
    assert failure_message(ValueError("bad file")) == "bad file"


def test_what_the_probe_found_is_shown_at_once(qtbot, device_probe):
    device_probe(("cuda", "cpu"), auto="cuda")
    combo = DeviceCombo()
    qtbot.addWidget(combo)
    assert items(combo) == ["auto", "cpu", "cuda", "mps (not available)"]
    assert combo.probe is not None and combo.probe.auto == "cuda"
    assert combo.device() == "auto"
    combo.set_device("mps")  # still choosable: a run on it says why it cannot
    assert combo.device() == "mps"


def test_cuda_and_mps_say_checking_until_the_probe_has_looked(qtbot, monkeypatch, probe_running):
    combo = DeviceCombo()
    qtbot.addWidget(combo)
    assert items(combo) == ["auto", "cpu", "cuda (checking …)", "mps (checking …)"]
    assert combo.probe is None
    combo.set_device("cuda")  # a choice (and a run) before the probe has ended needs nothing from it
    with qtbot.waitSignal(combo.probed, timeout=5000) as signal:
        monkeypatch.setattr(devices, "_known", DeviceProbe(("mps", "cpu"), "mps", False))
    assert signal.args[0] is combo.probe
    assert items(combo) == ["auto", "cpu", "cuda (not available)", "mps"]
    assert combo.device() == "cuda"


def test_a_probe_that_failed_leaves_every_choice_plain(qtbot, probe_running):
    combo = DeviceCombo()
    qtbot.addWidget(combo)
    probe_running.set()  # the thread ended without a result (torch failed to import)
    qtbot.waitUntil(lambda: not combo._poll.isActive(), timeout=5000)
    assert items(combo) == ["auto", "cpu", "cuda", "mps"] and combo.probe is None


def test_a_probe_ending_between_two_looks_is_taken_for_what_it_found(qtbot, monkeypatch, probe_running):
    """The probe stores its result and ends right after the combo read 'nothing yet': it was taken for a failed
    probe, and Fine-tune never offered faster arithmetic."""
    read = devices.known_devices

    def then_the_probe_ends():
        value = read()
        if value is None and devices._thread.is_alive():
            monkeypatch.setattr(devices, "_known", DeviceProbe(("cpu",), "cpu", True))
            probe_running.set()
            devices._thread.join()
        return value

    monkeypatch.setattr(devices, "known_devices", then_the_probe_ends)
    combo = DeviceCombo()
    qtbot.addWidget(combo)
    qtbot.waitUntil(lambda: not combo._poll.isActive(), timeout=5000)
    assert combo.probe == DeviceProbe(("cpu",), "cpu", True)
    assert items(combo) == ["auto", "cpu", "cuda (not available)", "mps (not available)"]


#: Runs in a fresh interpreter: which thread imports torch when the Segment and Fine-tune widgets open
_OPEN_WIDGETS = """
from napari.components import ViewerModel
from qtpy.QtWidgets import QApplication

app = QApplication([])
viewer = ViewerModel()
from napari_bloodseg.plugin.finetune_widget import FinetuneWidget
from napari_bloodseg.plugin.segment_widget import SegmentWidget

widgets = [SegmentWidget(viewer), FinetuneWidget(viewer)]
print(json.dumps({"torch_after_constructors": "torch" in sys.modules, "importers": list(importers)}), flush=True)
deadline = time.monotonic() + 90
while any(w.device_combo.probe is None for w in widgets) and time.monotonic() < deadline:
    app.processEvents()
    time.sleep(0.01)
items = [[w.device_combo.itemText(i) for i in range(w.device_combo.count())] for w in widgets]
print(json.dumps({"importers": importers, "items": items}), flush=True)
"""


def test_opening_the_widgets_leaves_torch_to_a_thread_of_its_own(torch_imports_in):
    """Opening Segment or Fine-tune froze napari 1.5-2 s while torch was imported on its GUI thread. In a fresh
    interpreter (this one has torch already): the constructors import no torch, and it is the probe thread, not
    the main one, that does once the event loop runs."""
    lines, run = torch_imports_in(_OPEN_WIDGETS)
    opened = lines[0]
    assert opened["importers"] == [], f"torch was imported while the widgets were built: {opened}"
    assert not opened["torch_after_constructors"]
    assert run.returncode == 0, run.stderr
    probed = lines[1]
    assert probed["importers"] == ["bloodseg-device-probe"]
    for shown in probed["items"]:
        assert shown[:2] == ["auto", "cpu"] and not any("checking" in text for text in shown), shown

"""BackgroundRun: a run never outlives its panel (closing napari during a fine-tune crashed the process)."""

from __future__ import annotations

import threading
import time

import pytest
from qtpy.QtWidgets import QLabel, QPushButton, QWidget

from napari_bloodseg.plugin.background import BackgroundRun, _marking_idle


class Panel(BackgroundRun, QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.run_btn, self.status = QPushButton(self), QLabel(self)
        self._init_background()
        self.ended = threading.Event()

    def start(self, generator: bool = True):
        def loop():
            while not self._cancel.is_set():  # stands for tiles or training steps
                time.sleep(0.01)
            self.ended.set()

        def work():
            yield "started"
            loop()

        return self._start_worker(work if generator else loop, connect={"finished": self._worker_done}, message="")


@pytest.mark.parametrize("generator", [True, False])
def test_destroying_the_panel_cancels_the_run_and_waits_for_its_thread(qtbot, generator):
    from qtpy.QtCore import QCoreApplication, QEvent

    panel = Panel()
    panel.start(generator)
    qtbot.waitUntil(lambda: not panel._idle.is_set() or panel._cancel.is_set(), timeout=5_000)
    time.sleep(0.1)
    assert not panel.ended.is_set()
    panel.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert panel.ended.is_set(), "Qt destroyed the panel while its worker still ran"


def test_taking_the_panel_out_of_its_dock_cancels_the_run(qtbot):
    holder = QWidget()
    panel = Panel()
    panel.setParent(holder)
    panel.start()
    time.sleep(0.1)
    assert panel.running and not panel._cancel.is_set()
    panel.setParent(None)  # what napari's remove_dock_widget (the dock's X) does to the panel
    assert panel._cancel.is_set()
    qtbot.waitUntil(lambda: not panel.running, timeout=5_000)
    assert panel.ended.is_set()


def test_a_generator_paused_at_a_yield_counts_as_idle():
    idle = threading.Event()
    inside: list[bool] = []

    def work():
        inside.append(idle.is_set())
        got = yield 1
        inside.append(idle.is_set())
        yield got
        return "done"

    gen = _marking_idle(work, idle)()
    assert next(gen) == 1 and idle.is_set()  # napari may never resume it: nothing of ours is running
    assert gen.send("x") == "x" and idle.is_set()
    with pytest.raises(StopIteration) as end:
        next(gen)
    assert end.value.value == "done" and inside == [False, False] and idle.is_set()


def test_a_destroyed_panel_leaves_the_quit_signal(qtbot):
    from qtpy.QtCore import QCoreApplication, QEvent
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    before = app.receivers(app.aboutToQuit)
    panel = Panel()
    assert app.receivers(app.aboutToQuit) == before + 1
    panel.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert app.receivers(app.aboutToQuit) == before

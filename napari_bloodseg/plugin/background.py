"""What the long-running widgets share: one napari worker at a time, Run/Cancel buttons and a status line.

The work itself runs in a napari ``thread_worker`` (``create_worker``), so the event loop never blocks; the
widget asks it to stop through a ``threading.Event`` that the worker checks between tiles or training steps.

A run never outlives its panel: closing the panel (its dock's X) cancels it, and closing napari, or anything else
that destroys the widget, cancels it and waits for the worker thread to stop first. A worker still reporting to a
destroyed widget crashed the whole process (a segmentation fault when napari was closed during a fine-tune).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QEvent, QObject

#: seconds napari's closing waits for a cancelled run to reach its next check (a tile, a training step)
STOP_WAIT_S = 30.0


class _Stop:
    """Cancel and wait for the worker thread; holds no reference to the widget, so it can run while Qt destroys it."""

    def __init__(self, cancel: threading.Event, idle: threading.Event) -> None:
        self.cancel, self.idle = cancel, idle

    def __call__(self, *_: Any) -> None:
        if not self.idle.is_set():
            self.cancel.set()
            self.idle.wait(STOP_WAIT_S)

    def on_destroyed(self, *_: Any) -> None:
        """Stop, then leave the application's quit signal: a destroyed widget has nothing left to stop there."""
        self()
        from qtpy.QtWidgets import QApplication

        app = QApplication.instance()
        if app is not None:
            try:
                app.aboutToQuit.disconnect(self)
            except (TypeError, RuntimeError):  # never connected (no app at the time)
                pass


class _LeftViewer(QObject):
    """Calls ``on_leave`` when its widget loses its parent: napari's ``remove_dock_widget`` (the dock's X) orphans
    the panel rather than deleting it, so nothing else would stop a run nobody can see or cancel any more."""

    def __init__(self, widget: QObject, on_leave: Callable[[], None]) -> None:
        super().__init__(widget)
        self._on_leave = on_leave

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.ParentChange and obj.parent() is None:
            self._on_leave()
        return False


class BackgroundRun:
    """Mixin for a ``QWidget`` with ``run_btn`` and ``status`` (and optionally ``cancel_btn`` and ``progress``)."""

    worker: Any = None
    run_btn: Any
    status: Any

    def _init_background(self) -> None:
        from qtpy.QtWidgets import QApplication

        self.worker = None
        self._cancel = threading.Event()
        self._idle = threading.Event()  # cleared while a worker thread runs our function
        self._idle.set()
        stop = _Stop(self._cancel, self._idle)
        self.destroyed.connect(stop.on_destroyed)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(stop)
        self._left_viewer = _LeftViewer(self, self.cancel)
        self.installEventFilter(self._left_viewer)

    def _build_run_controls(self, run_text: str, status_text: str, *, percent: bool = True) -> None:
        """The Run and Cancel buttons, the progress bar (0-1000; ``percent``: its text shown) and the status line
        that every widget with long work has, alike in each."""
        from qtpy.QtWidgets import QLabel, QProgressBar, QPushButton

        self.run_btn = QPushButton(run_text)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        if percent:
            self.progress.setFormat("%p%")
        else:
            self.progress.setTextVisible(False)
        self.status = QLabel(status_text)
        self.status.setWordWrap(True)

    def _run_buttons(self, *more: Any) -> Any:
        """Run and Cancel (and ``more`` widgets) in a row, Run taking the room."""
        from qtpy.QtWidgets import QHBoxLayout

        row = QHBoxLayout()
        row.addWidget(self.run_btn, 1)
        row.addWidget(self.cancel_btn)
        for widget in more:
            row.addWidget(widget)
        return row

    @property
    def running(self) -> bool:
        return self.worker is not None

    def cancel(self) -> None:
        """Ask the run to stop at its next check (tile, training step); what it had not finished is dropped."""
        if self.running:
            self._cancel.set()
            self.status.setText("Cancelling …")

    def _start_worker(self, fn: Callable[..., Any], *args: Any, connect: dict[str, Callable], message: str) -> Any:
        """Run ``fn(*args)`` in a napari worker wired to ``connect`` (signal name → slot); returns the worker."""
        from napari.qt.threading import create_worker

        self._cancel.clear()
        self._idle.clear()
        worker = create_worker(_marking_idle(fn, self._idle), *args, _start_thread=False, _connect=connect)
        self.worker = worker
        self._set_running(True)
        self.status.setText(message)
        worker.start()
        return worker

    def _worker_done(self) -> None:
        """Call from the ``finished`` slot: the widget takes a new run again."""
        self.worker = None
        self._idle.set()  # also when the worker ended before our function started
        self._set_running(False)

    def _set_running(self, on: bool) -> None:
        self.run_btn.setEnabled(not on)
        cancel_btn = getattr(self, "cancel_btn", None)
        if cancel_btn is not None:
            cancel_btn.setEnabled(on)
        progress = getattr(self, "progress", None)
        if on and progress is not None:
            progress.setValue(0)


def _marking_idle(fn: Callable[..., Any], idle: threading.Event) -> Callable[..., Any]:
    """``fn`` (a function or a generator function, as napari workers take) with ``idle`` clear only while its code
    runs: a generator paused at a ``yield`` counts as idle, since napari may stop resuming it (quitting its workers
    as the window closes) and then nothing of ours runs in that thread any more."""
    if inspect.isgeneratorfunction(fn):

        def gen(*args: Any) -> Any:
            inner = fn(*args)
            try:
                idle.clear()
                value = next(inner)
                while True:
                    idle.set()
                    sent = yield value
                    idle.clear()
                    value = inner.send(sent)
            except StopIteration as end:
                return end.value
            finally:
                idle.set()

        return gen

    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        finally:
            idle.set()

    return call

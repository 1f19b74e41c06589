"""What the long-running widgets share: one napari worker at a time, Run/Cancel buttons and a status line.

The work itself runs in a napari ``thread_worker`` (``create_worker``), so the event loop never blocks; the
widget asks it to stop through a ``threading.Event`` that the worker checks between tiles or training steps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class BackgroundRun:
    """Mixin for a ``QWidget`` with ``run_btn`` and ``status`` (and optionally ``cancel_btn`` and ``progress``)."""

    worker: Any = None
    run_btn: Any
    status: Any

    def _init_background(self) -> None:
        self.worker = None
        self._cancel = threading.Event()

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
        worker = create_worker(fn, *args, _start_thread=False, _connect=connect)
        self.worker = worker
        self._set_running(True)
        self.status.setText(message)
        worker.start()
        return worker

    def _worker_done(self) -> None:
        """Call from the ``finished`` slot: the widget takes a new run again."""
        self.worker = None
        self._set_running(False)

    def _set_running(self, on: bool) -> None:
        self.run_btn.setEnabled(not on)
        cancel_btn = getattr(self, "cancel_btn", None)
        if cancel_btn is not None:
            cancel_btn.setEnabled(on)
        progress = getattr(self, "progress", None)
        if on and progress is not None:
            progress.setValue(0)

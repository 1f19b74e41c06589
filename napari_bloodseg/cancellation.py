"""How a long run is stopped: the caller passes ``cancel`` (a callable saying "stop now"), the run checks it
between tiles, training steps or bands and raises :class:`Cancelled`. Shared by inference, training and io, so a
widget's Cancel means the same everywhere and nothing partial is kept."""

from __future__ import annotations

from collections.abc import Callable


class Cancelled(RuntimeError):
    """Raised inside a run when its ``cancel`` callback says stop; nothing partial is returned."""


def stop_if_cancelled(cancel: Callable[[], bool] | None, what: str) -> None:
    """Raise :class:`Cancelled` ("``what`` cancelled") when ``cancel`` says stop."""
    if cancel is not None and cancel():
        raise Cancelled(f"{what} cancelled")

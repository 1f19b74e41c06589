"""One process-wide Qt signal: "the list of installed models changed" (fine-tuned, renamed, deleted, imported).

Widgets that list models (Segment, Fine-tune, Models) connect to it and re-scan; widgets that change models emit
it. Connections to a widget's bound method end when the widget is destroyed (Qt breaks them for QObjects).
"""

from __future__ import annotations

from qtpy.QtCore import QObject, Signal


class ModelEvents(QObject):
    #: name of the model that appeared, changed or went away ("" when unknown)
    changed = Signal(str)
    #: (old name, new name): lists showing the old name select the new one instead of falling back to a default
    renamed = Signal(str, str)


_EVENTS: ModelEvents | None = None


def model_events() -> ModelEvents:
    """The shared emitter (created on first use, in the GUI thread)."""
    global _EVENTS
    if _EVENTS is None:
        _EVENTS = ModelEvents()
    return _EVENTS


def notify_models_changed(name: str = "") -> None:
    """Tell every model list to re-scan now."""
    model_events().changed.emit(name)


def notify_model_renamed(old: str, new: str) -> None:
    """Tell model lists that ``old`` is now ``new`` (before the re-scan, so a list that had ``old`` keeps it)."""
    model_events().renamed.emit(old, new)
    model_events().changed.emit(new)


def gone_message(old: str, now: str | None) -> str:
    """Status line when the model a widget had chosen is no longer installed."""
    fallback = f"; now {now}" if now else ""
    return f"Model {old} is no longer installed (deleted, or renamed outside napari){fallback}"

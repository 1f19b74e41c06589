"""One process-wide Qt signal: "the list of installed models changed" (fine-tuned, renamed, deleted, imported).

Widgets that list models (Segment, Fine-tune, Models) connect to it and re-scan; widgets that change models emit
it. Connections to a widget's bound method end when the widget is destroyed (Qt breaks them for QObjects).
"""

from __future__ import annotations

from qtpy.QtCore import QObject, Signal


class ModelEvents(QObject):
    #: name of the model that appeared, changed or went away ("" when unknown)
    changed = Signal(str)


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

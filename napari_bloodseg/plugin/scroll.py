"""A dock panel that scrolls when the window is too short for it.

napari docks a widget as it is; a tall one (the Fine-tune widget after a run: loss curve, before/after table,
guard) was squeezed below its minimum height on a laptop-sized window and Qt drew its rows on top of each
other. Inside a scroll area the rows keep their size and a scroll bar appears instead.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QWidget


class ScrollPanel(QScrollArea):
    """Lay the panel out on ``self.content``; it scrolls vertically and follows the dock's width."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.content = QWidget()
        self.setWidget(self.content)

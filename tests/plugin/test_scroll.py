"""Tall dock panels scroll instead of drawing their rows over each other in a short window."""

from __future__ import annotations

import pytest


def test_a_short_panel_scrolls_and_keeps_its_rows_apart(qtbot):
    from qtpy.QtWidgets import QLabel, QVBoxLayout

    from napari_bloodseg.plugin.scroll import ScrollPanel

    panel = ScrollPanel()
    qtbot.addWidget(panel)
    layout = QVBoxLayout(panel.content)
    rows = [QLabel(f"row {i}") for i in range(40)]
    for row in rows:
        layout.addWidget(row)
    panel.resize(300, 200)
    panel.show()
    qtbot.waitExposed(panel)
    assert panel.verticalScrollBar().maximum() > 0
    tops = [row.geometry().top() for row in rows]
    assert all(b >= a + row.sizeHint().height() for a, b, row in zip(tops, tops[1:], rows, strict=False))


@pytest.mark.parametrize("name", ["Segment", "Correct", "Evaluate", "Fine-tune"])
def test_the_tall_widgets_are_scroll_panels(dock, name):
    from napari_bloodseg.plugin.scroll import ScrollPanel

    widget = dock(name)
    assert isinstance(widget, ScrollPanel) and widget.content.layout() is not None

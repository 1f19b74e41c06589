"""A tiny QPainter bar chart (mean ± SEM per class), so the evaluate widget needs no plotting library."""

from __future__ import annotations

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

SERIES_COLORS = ("#4fa3e0", "#e07b39", "#7fbf6a")


class ScoreBars(QWidget):
    """Grouped bars on a 0–1 axis: one group per class, one bar per metric, a whisker for ± SEM."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.classes: list[str] = []
        self.series: dict[str, tuple[list[float], list[float]]] = {}
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def set_data(self, classes: list[str], series: dict[str, tuple[list[float], list[float]]]) -> None:
        """``series``: metric name → (means, sems), one value per class."""
        self.classes = list(classes)
        self.series = dict(series)
        self.update()

    def clear(self) -> None:
        self.set_data([], {})

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        fg = self.palette().windowText().color()
        w, h = self.width(), self.height()
        left, right, top, bottom = 34, 8, 22, 22
        plot = QRectF(left, top, max(w - left - right, 10), max(h - top - bottom, 10))
        # axis and grid
        p.setPen(QPen(fg, 1))
        p.drawLine(QPointF(plot.left(), plot.top()), QPointF(plot.left(), plot.bottom()))
        p.drawLine(QPointF(plot.left(), plot.bottom()), QPointF(plot.right(), plot.bottom()))
        grid = QColor(fg)
        grid.setAlpha(60)
        for v in (0.25, 0.5, 0.75, 1.0):
            y = plot.bottom() - v * plot.height()
            p.setPen(QPen(grid, 1, Qt.PenStyle.DashLine))
            p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            p.setPen(QPen(fg, 1))
            p.drawText(
                QRectF(0, y - 8, left - 4, 16), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, f"{v:g}"
            )
        if not self.classes or not self.series:
            p.drawText(plot, Qt.AlignmentFlag.AlignCenter, "no scores yet")
            p.end()
            return
        # legend
        x = plot.left()
        for k, name in enumerate(self.series):
            p.fillRect(QRectF(x, 5, 10, 10), QColor(SERIES_COLORS[k % len(SERIES_COLORS)]))
            p.setPen(QPen(fg, 1))
            p.drawText(QPointF(x + 14, 14), name)
            x += 16 + p.fontMetrics().horizontalAdvance(name) + 12
        # bars
        group_w = plot.width() / len(self.classes)
        n_series = len(self.series)
        bar_w = group_w * 0.7 / n_series
        for i, cls in enumerate(self.classes):
            gx = plot.left() + i * group_w + group_w * 0.15
            for k, (means, sems) in enumerate(self.series.values()):
                m = min(max(float(means[i]), 0.0), 1.0) if means[i] == means[i] else 0.0
                s = float(sems[i]) if sems[i] == sems[i] else 0.0
                bx = gx + k * bar_w
                bar = QRectF(bx, plot.bottom() - m * plot.height(), bar_w * 0.9, m * plot.height())
                p.fillRect(bar, QColor(SERIES_COLORS[k % len(SERIES_COLORS)]))
                if s > 0:
                    cx = bx + bar_w * 0.45
                    y0 = plot.bottom() - min(m + s, 1.0) * plot.height()
                    y1 = plot.bottom() - max(m - s, 0.0) * plot.height()
                    p.setPen(QPen(fg, 1.5))
                    p.drawLine(QPointF(cx, y0), QPointF(cx, y1))
                    p.drawLine(QPointF(cx - 3, y0), QPointF(cx + 3, y0))
                    p.drawLine(QPointF(cx - 3, y1), QPointF(cx + 3, y1))
            p.setPen(QPen(fg, 1))
            p.drawText(
                QRectF(plot.left() + i * group_w, plot.bottom() + 2, group_w, bottom - 2),
                Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
                cls,
            )
        p.end()

"""Tiny QPainter plots, so the widgets need no plotting library: a bar chart (mean ± SEM per class, evaluate
widget) and a live loss curve (fine-tune widget)."""

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


class LossCurve(QWidget):
    """Training loss over optimiser steps: a thin line per step, dots for the epoch means (live while training)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.steps: list[tuple[int, float]] = []
        self.epochs: list[tuple[int, float]] = []
        self.total_steps = 0
        self.setMinimumHeight(120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def clear(self, total_steps: int = 0) -> None:
        self.steps, self.epochs, self.total_steps = [], [], int(total_steps)
        self.update()

    def add_step(self, step: int, loss: float) -> None:
        if loss == loss:  # NaN never reaches the plot
            self.steps.append((int(step), float(loss)))
            self.update()

    def add_epoch(self, step: int, loss: float) -> None:
        """Mean loss of an epoch, drawn at the step it ended on."""
        if loss == loss:
            self.epochs.append((int(step), float(loss)))
            self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        fg = self.palette().windowText().color()
        w, h = self.width(), self.height()
        left, right, top, bottom = 40, 8, 18, 18
        plot = QRectF(left, top, max(w - left - right, 10), max(h - top - bottom, 10))
        p.setPen(QPen(fg, 1))
        p.drawLine(QPointF(plot.left(), plot.top()), QPointF(plot.left(), plot.bottom()))
        p.drawLine(QPointF(plot.left(), plot.bottom()), QPointF(plot.right(), plot.bottom()))
        p.drawText(QPointF(plot.left() + 4, 13), "loss")
        values = [v for _, v in self.steps] + [v for _, v in self.epochs]
        if not values:
            p.drawText(plot, Qt.AlignmentFlag.AlignCenter, "loss curve appears while training")
            p.end()
            return
        lo, hi = min(values), max(values)
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        x_max = max(self.total_steps, max(s for s, _ in self.steps + self.epochs), 1)

        def pt(step: int, value: float) -> QPointF:
            return QPointF(
                plot.left() + plot.width() * step / x_max, plot.bottom() - plot.height() * (value - lo) / (hi - lo)
            )

        for v in (lo, hi):
            y = pt(0, v).y()
            p.drawText(
                QRectF(0, y - 8, left - 4, 16), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, f"{v:.3g}"
            )
        p.drawText(
            QRectF(plot.left(), plot.bottom() + 2, plot.width(), bottom - 2),
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop,
            f"step {self.steps[-1][0] if self.steps else 0} of {self.total_steps or '?'}",
        )
        step_colour = QColor(SERIES_COLORS[0])
        step_colour.setAlpha(150)
        p.setPen(QPen(step_colour, 1.2))
        for (s0, v0), (s1, v1) in zip(self.steps, self.steps[1:], strict=False):
            p.drawLine(pt(s0, v0), pt(s1, v1))
        if len(self.steps) == 1:
            p.drawEllipse(pt(*self.steps[0]), 2, 2)
        p.setPen(QPen(QColor(SERIES_COLORS[1]), 1.5))
        p.setBrush(QColor(SERIES_COLORS[1]))
        for s, v in self.epochs:
            p.drawEllipse(pt(s, v), 2.5, 2.5)
        p.end()

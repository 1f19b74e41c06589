"""Evaluate widget: score prediction Labels layers against expert-mask layers with the core metrics.

Layers pair by image file or name: ``"001 [wbc-unet]"`` and ``"001 mask"`` share the key ``"001"``
(``evaluate_pairs``). Scores are exactly :func:`napari_bloodseg.metrics.score_image` per pair and
:func:`napari_bloodseg.evaluation.build_report` per model (the ``bloodseg evaluate --json`` report), shown as a
sortable per-image table, a mean ± SEM table and a bar chart;
CSV export is atomic. Optional error layers show, per class, where the prediction is a false positive or negative.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from ..evaluation import MOSTLY_UNLABELLED, report_csv
from ..schemas import IGNORE_INDEX, LabelSchema
from .background import BackgroundRun
from .evaluate_pairs import ScoringPlan, looks_like_mask, looks_like_prediction, pair_layers, plan_scoring
from .layers import META_KEY, find_layer, labels_in_schema, level0, meta, too_big_to_load
from .plot import ScoreBars
from .scroll import ScrollPanel

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Labels

METRICS = (("jaccard", "Jaccard"), ("dice", "Dice"))
#: pixels read at a time when scoring a slide-sized pair from disk (the counting makes ~20 bytes a pixel of them)
SLIDE_BAND_PIXELS = 4_000_000


def error_map(pred: np.ndarray, truth: np.ndarray, schema: LabelSchema) -> tuple[np.ndarray, list[str], dict]:
    """Label map of disagreements: one value per (true class, predicted class) cell off the diagonal.

    Returns (codes uint8 with 0 = agree/ignored, names per code, DirectLabelColormap colour dict). With truth t
    and prediction p: t = background is a false positive of p, p = background a false negative of t.
    """
    n = schema.num_classes
    names = ["agree"]
    colors: dict[int | None, tuple[float, ...]] = {0: (0.0, 0.0, 0.0, 0.0), None: (1.0, 0.0, 1.0, 1.0)}
    lut = np.zeros((n, n), np.uint8)
    code = 0
    for t in range(n):
        for p in range(n):
            if t == p:
                continue
            code += 1
            lut[t, p] = code
            cls_t, cls_p = schema.class_names[t], schema.class_names[p]
            if t == 0:
                names.append(f"false positive {cls_p}")
                colors[code] = (1.0, 0.15 + 0.3 * (p - 1) / max(n - 2, 1), 0.1, 1.0)  # reds
            elif p == 0:
                names.append(f"false negative {cls_t}")
                colors[code] = (0.1, 0.35 + 0.4 * (t - 1) / max(n - 2, 1), 1.0, 1.0)  # blues
            else:
                names.append(f"{cls_t} predicted as {cls_p}")
                colors[code] = (1.0, 0.85, 0.1 + 0.3 * (t - 1) / max(n - 2, 1), 1.0)  # yellows
    truth, pred = np.asarray(truth), np.asarray(pred)
    valid = (truth != IGNORE_INDEX) & (pred != IGNORE_INDEX)  # unlabelled in either: not scored, not shown
    t_idx = np.where(valid, truth, 0).astype(np.intp)
    p_idx = np.where(valid, pred, 0).astype(np.intp)
    codes = lut[t_idx, p_idx]
    codes[~valid] = 0
    return codes, names, colors


class _NumberItem(QTableWidgetItem):
    """Table cell showing 4 decimals (a dash for an undefined value, such as the SEM of one image), holding the
    exact float (UserRole) and sorting by it."""

    def __init__(self, value: float) -> None:
        super().__init__(f"{value:.4f}" if math.isfinite(value) else "–")
        self.setData(Qt.ItemDataRole.UserRole, float(value))
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.data(Qt.ItemDataRole.UserRole), other.data(Qt.ItemDataRole.UserRole)
        if a is None or b is None:
            return super().__lt__(other)
        return float(a) < float(b)


class EvaluateWidget(BackgroundRun, ScrollPanel):
    """Dock widget: predictions × expert masks → per-class Jaccard/Dice table, bar chart, CSV, error layers."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.report: dict[str, Any] | None = None  # the first model's (the only one's, mostly)
        self.reports: list[dict[str, Any]] = []  # one per model scored
        self._init_background()

        self.pred_list = QListWidget()
        self.truth_list = QListWidget()
        for lst in (self.pred_list, self.truth_list):
            lst.setMaximumHeight(100)
        self.pairs_label = QLabel()
        self.pairs_label.setWordWrap(True)
        self.error_check = QCheckBox("Error layers (false positives / false negatives per class)")
        self._build_run_controls("Evaluate", "Pick predictions and expert masks, then Evaluate")
        self.export_btn = QPushButton("Export CSV …")
        self.export_btn.setEnabled(False)
        self.summary_table = QTableWidget(0, 6)
        self.summary_table.setHorizontalHeaderLabels(["class", "Jaccard", "± SEM", "Dice", "± SEM", "n"])
        self.summary_table.verticalHeader().setVisible(False)
        self.summary_table.setMinimumHeight(60)
        self.summary_table.setMaximumHeight(130)
        self.plot = ScoreBars()
        self.image_table = QTableWidget(0, 0)
        self.image_table.setSortingEnabled(True)
        self.image_table.verticalHeader().setVisible(False)

        lists = QHBoxLayout()
        for title, lst in (("Predictions", self.pred_list), ("Expert masks", self.truth_list)):
            col = QVBoxLayout()
            col.addWidget(QLabel(f"<b>{title}</b>"))
            col.addWidget(lst)
            lists.addLayout(col)
        layout = QVBoxLayout(self.content)
        layout.addLayout(lists)
        layout.addWidget(self.pairs_label)
        layout.addWidget(self.error_check)
        layout.addLayout(self._run_buttons(self.export_btn))
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(QLabel("<b>Mean ± SEM over images</b>"))
        layout.addWidget(self.summary_table)
        layout.addWidget(self.plot)
        layout.addWidget(QLabel("<b>Per image</b> (click a header to sort)"))
        layout.addWidget(self.image_table, 1)

        self.run_btn.clicked.connect(self.evaluate)
        self.cancel_btn.clicked.connect(self.cancel)
        self.export_btn.clicked.connect(self._export_dialog)
        self.pred_list.itemChanged.connect(self._update_pairs_label)
        self.truth_list.itemChanged.connect(self._update_pairs_label)
        self.viewer.layers.events.inserted.connect(self._on_layers_changed)
        self.viewer.layers.events.removed.connect(self._on_layers_changed)
        self.refresh_layers()

    # -- layer lists --------------------------------------------------------------------------------------------
    def _labels_layers(self) -> list[Labels]:
        from napari.layers import Labels

        return [
            layer for layer in self.viewer.layers if isinstance(layer, Labels) and meta(layer).get("role") != "errors"
        ]

    def _on_layers_changed(self, event: Any = None) -> None:
        value = getattr(event, "value", None)
        if value is not None and getattr(event, "type", "") == "inserted":
            value.events.name.connect(self._on_layers_changed)
        self.refresh_layers()

    def refresh_layers(self) -> None:
        """Re-list Labels layers; new ones are ticked as prediction or mask by their role or name."""
        old = {lst: self._ticks(lst) for lst in (self.pred_list, self.truth_list)}
        for lst, guess in ((self.pred_list, looks_like_prediction), (self.truth_list, looks_like_mask)):
            lst.blockSignals(True)
            lst.clear()
            for layer in self._labels_layers():
                item = QListWidgetItem(layer.name)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                ticked = old[lst].get(layer.name, guess(layer))
                item.setCheckState(Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked)
                lst.addItem(item)
            lst.blockSignals(False)
        self._update_pairs_label()

    @staticmethod
    def _ticks(lst: QListWidget) -> dict[str, bool]:
        return {lst.item(i).text(): lst.item(i).checkState() == Qt.CheckState.Checked for i in range(lst.count())}

    def _ticked_layers(self, lst: QListWidget) -> list[Labels]:
        ticks = self._ticks(lst)
        return [layer for layer in self._labels_layers() if ticks.get(layer.name)]

    def set_layers(self, predictions: list[str], truths: list[str]) -> None:
        """Tick exactly these layer names (scripts, tests)."""
        for lst, names in ((self.pred_list, predictions), (self.truth_list, truths)):
            lst.blockSignals(True)
            for i in range(lst.count()):
                item = lst.item(i)
                item.setCheckState(Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked)
            lst.blockSignals(False)
        self._update_pairs_label()

    def pairs(self) -> tuple[list[tuple[Labels, Labels]], list[Labels]]:
        return pair_layers(self._ticked_layers(self.pred_list), self._ticked_layers(self.truth_list))

    def _update_pairs_label(self, *_: Any) -> None:
        pairs, unmatched = self.pairs()
        text = f"{len(pairs)} pair(s)"
        if pairs:
            text += ": " + ", ".join(f"{p.name} ↔ {t.name}" for p, t in pairs[:4]) + (" …" if len(pairs) > 4 else "")
        if unmatched:
            text += f"<br>no mask for: {', '.join(p.name for p in unmatched[:4])}"
        self.pairs_label.setText(text)

    # -- scoring ------------------------------------------------------------------------------------------------
    def evaluate(self) -> Any:
        """Score the ticked pairs in a worker thread; returns the worker (None when there is nothing to score)."""
        from napari.utils.notifications import show_warning

        if self.running:
            return None
        pairs, _ = self.pairs()
        if not pairs:
            show_warning("No prediction/mask pairs: masks pair with predictions by image name")
            return None
        plan = plan_scoring(pairs)
        if plan.schema is None:
            show_warning("Nothing to score: " + "; ".join(plan.skipped))
            return None
        # copies: the user may keep painting while the worker scores; slide-sized layers are read in bands instead
        items = [
            (
                model,
                p.name,
                level0(p) if big else np.array(p.data, copy=True),
                level0(t) if big else np.array(t.data, copy=True),
                p,
                big,
                t.name,
            )
            for model, group in plan.groups.items()
            for p, t in group
            for big in [self._is_big(p, t)]
        ]
        return self._start_worker(
            self._score,
            items,
            plan,
            self.error_check.isChecked(),
            self._cancel,
            connect={
                "yielded": self._on_progress,
                "returned": self._on_report,
                "errored": self._on_error,
                "finished": self._on_finished,
            },
            message=f"Scoring {len(items)} pair(s) …",
        )

    @staticmethod
    def _is_big(p: Labels, t: Labels) -> bool:
        """A pair read from disk and too big to copy: scored band by band from the layers as they are, with no
        error map (several bytes a pixel: a slide's would not fit)."""
        return too_big_to_load(level0(p)) or too_big_to_load(level0(t))

    @staticmethod
    def _score(items, plan: ScoringPlan, want_errors: bool, cancel: threading.Event):
        """Worker thread: core ``score_image`` per pair, ``build_report`` per model; bad pairs become report errors
        (those the plan left out go to the first report). Yields (pairs done, total) before each pair; returns None
        when cancelled (the last report stays shown)."""
        from ..evaluation import build_report
        from ..metrics import score_image

        schema = plan.schema
        t0 = time.perf_counter()
        scored: dict[str, tuple[list[str], list[dict], list[str]]] = {m: ([], [], []) for m in plan.groups}
        error_maps, unmapped, sparse = [], [], {}  # sparse: per expert mask, however many models scored on it
        for done, (model, name, pred, truth, pred_layer, big, truth_name) in enumerate(items):
            if cancel.is_set():
                return None
            yield done, len(items)
            names, scores, errors = scored[model]
            try:
                if tuple(pred.shape) != tuple(truth.shape):
                    raise ValueError(f"prediction is {tuple(pred.shape)}, mask is {tuple(truth.shape)}")
                if not big:  # grey levels (0/128/255) as the Fine-tune and Export widgets take them; 255 unlabelled
                    pred, truth = (_in_schema(a, schema, what) for a, what in ((pred, "prediction"), (truth, "mask")))
                rows = max(1, SLIDE_BAND_PIXELS // max(1, truth.shape[1])) if big else None
                scores.append(score_image(pred, truth, schema, rows=rows))
                names.append(name)
                if not big and (unlabelled := float((truth == IGNORE_INDEX).mean())) >= MOSTLY_UNLABELLED:
                    sparse[truth_name] = f"{truth_name} ({unlabelled:.0%})"
                if want_errors and big:
                    unmapped.append(name)
                elif want_errors:
                    error_maps.append((name, *error_map(pred, truth, schema), pred_layer))
            except ValueError as exc:
                errors.append(f"{name}: {exc}")
        seconds = time.perf_counter() - t0
        reports = [
            build_report(
                names,
                scores,
                schema,
                model=model or None,
                seconds=seconds,
                device="none",
                errors=(plan.skipped if k == 0 else []) + errors,
            )
            for k, (model, (names, scores, errors)) in enumerate(scored.items())
        ]
        return reports, error_maps, unmapped, list(sparse.values())

    def _on_progress(self, step: tuple[int, int]) -> None:
        done, total = step
        self.progress.setValue(int(1000 * done / max(total, 1)))

    def _on_report(self, result: tuple[list[dict[str, Any]], list, list[str], list[str]] | None) -> None:
        from napari.utils.notifications import show_warning

        if result is None:
            self.status.setText("Cancelled: nothing scored" + ("; the last results stay below" if self.report else ""))
            return
        self.progress.setValue(1000)
        reports, error_maps, unmapped, sparse = result
        self.reports, self.report = reports, reports[0]
        self._fill_tables(reports)
        self._add_error_layers(error_maps)
        self.export_btn.setEnabled(any(r["images"] for r in reports))
        errors = [e for r in reports for e in r["errors"]]
        if len(reports) == 1:
            msg = f"{self.report['n_images']} image(s), schema {self.report['schema']}"
            if self.report["n_images"]:
                msg += f", pixel accuracy {self.report['pixel_accuracy']:.4f}"
        else:
            per_model = ", ".join(f"{r['model'] or 'no model'}: {r['n_images']}" for r in reports)
            msg = f"{len(reports)} models, a mean ± SEM each (images {per_model}), schema {self.report['schema']}"
        if errors:
            msg += f"; {len(errors)} pair(s) skipped"
            show_warning("Evaluation skipped: " + "; ".join(errors))
        if sparse:  # as `bloodseg evaluate` warns: a mask painted on a clear layer scores only what was painted
            msg += f"; {len(sparse)} mask(s) mostly unlabelled"
            show_warning(
                f"{len(sparse)} expert mask(s) mostly unlabelled, scored on the labelled pixels only: "
                f"{', '.join(sparse[:5])}{' …' if len(sparse) > 5 else ''}. Paint the background too (label 0) "
                "or flatten the mask onto black before saving"
            )
        if unmapped:
            msg += f"; no error layer for slide-sized {', '.join(unmapped[:3])}{' …' if len(unmapped) > 3 else ''}"
        self.status.setText(msg)

    def _on_error(self, exc: BaseException) -> None:
        """Unexpected failure: napari's worker shows it with its traceback; the widget stays usable."""
        self.status.setText(f"Failed: {type(exc).__name__}: {exc}")

    def _on_finished(self) -> None:
        self._worker_done()

    def _fill_tables(self, reports: list[dict[str, Any]]) -> None:
        """Mean ± SEM rows per class (``class · model`` when several models were scored), bars, per-image rows."""
        # the classes of a model that scored images: a first model whose pairs were all skipped has none
        classes = next((list(r["per_class"]) for r in reports if r["images"]), list(reports[0]["per_class"]))
        several = len(reports) > 1
        rows = [
            (f"{cls} · {r['model'] or 'no model'}" if several else cls, r["per_class"][cls], r["n_images"])
            for r in reports
            for cls in r["per_class"]
        ]
        self.summary_table.setRowCount(len(rows))
        for r, (label, s, n) in enumerate(rows):
            self.summary_table.setItem(r, 0, QTableWidgetItem(label))
            for c, key in enumerate(("jaccard", "jaccard_sem", "dice", "dice_sem"), start=1):
                self.summary_table.setItem(r, c, _NumberItem(s[key]))
            self.summary_table.setItem(r, 5, QTableWidgetItem(str(n)))
        self.summary_table.resizeColumnsToContents()
        self.plot.set_data(
            [label for label, _, _ in rows],
            {label: ([s[key] for _, s, _ in rows], [s[key + "_sem"] for _, s, _ in rows]) for key, label in METRICS},
        )
        images = [img for r in reports for img in r["images"]]
        headers = ["image", "pixel acc."] + [f"{cls} {label}" for cls in classes for _, label in METRICS]
        self.image_table.setSortingEnabled(False)
        self.image_table.clear()
        self.image_table.setColumnCount(len(headers))
        self.image_table.setHorizontalHeaderLabels(headers)
        self.image_table.setRowCount(len(images))
        for r, img in enumerate(images):
            self.image_table.setItem(r, 0, QTableWidgetItem(img["name"]))
            self.image_table.setItem(r, 1, _NumberItem(img["pixel_accuracy"]))
            c = 2
            for cls in classes:
                for key, _ in METRICS:
                    self.image_table.setItem(r, c, _NumberItem(img["per_class"][cls][key]))
                    c += 1
        self.image_table.setSortingEnabled(True)
        self.image_table.resizeColumnsToContents()

    def table_scores(self) -> dict[str, dict[str, dict[str, float]]]:
        """What the per-image table holds now: image → class → metric → value (for checks and scripts)."""
        headers = [self.image_table.horizontalHeaderItem(c).text() for c in range(self.image_table.columnCount())]
        out: dict[str, dict[str, dict[str, float]]] = {}
        for r in range(self.image_table.rowCount()):
            name = self.image_table.item(r, 0).text()
            row: dict[str, dict[str, float]] = {}
            for c, header in enumerate(headers[2:], start=2):
                cls, _, label = header.rpartition(" ")
                key = {lbl: k for k, lbl in METRICS}[label]
                row.setdefault(cls, {})[key] = float(self.image_table.item(r, c).data(Qt.ItemDataRole.UserRole))
            out[name] = row
        return out

    # -- outputs ------------------------------------------------------------------------------------------------
    def _add_error_layers(self, error_maps: list) -> None:
        from napari.layers import Labels

        from .layers import class_features, label_colormap

        for name, codes, names, colors, pred_layer in error_maps:
            layer_name = f"{name} errors"
            kwargs = {
                "colormap": label_colormap(colors),
                "features": class_features(names),
            }
            existing = find_layer(self.viewer, layer_name)
            if isinstance(existing, Labels):
                existing.data = codes
                existing.colormap = kwargs["colormap"]
                existing.features = kwargs["features"]
                continue
            self.viewer.add_labels(
                codes,
                name=layer_name,
                opacity=0.8,
                scale=pred_layer.scale,
                translate=pred_layer.translate,
                metadata={META_KEY: {"role": "errors", "source": meta(pred_layer).get("source"), "codes": names}},
                **kwargs,
            )

    def export_csv(self, path: str | Path) -> Path:
        """Write the last report as CSV, atomically (the save dialog has already asked about replacing)."""
        from ..io.atomic import atomic_write

        if self.report is None:
            raise ValueError("nothing to export: run Evaluate first")
        text = report_csv(self.reports)
        return atomic_write(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite=True)

    def _export_dialog(self) -> None:
        from napari.utils.notifications import show_error, show_info

        path, _ = QFileDialog.getSaveFileName(self, "Export scores", "bloodseg-scores.csv", "CSV (*.csv)")
        if not path:
            return
        try:
            out = self.export_csv(path)
        except (OSError, ValueError) as exc:
            show_error(f"Could not write {path}: {exc}")
        else:
            show_info(f"Scores written to {out}")


def _in_schema(data: np.ndarray, schema: LabelSchema, what: str) -> np.ndarray:
    """A layer's values as ``schema`` labels, or a ValueError that says which layer holds which values."""
    try:
        return labels_in_schema(data, schema)
    except ValueError as exc:
        raise ValueError(f"the {what}: {exc}") from None

"""What the Fine-tune widget shows after a run: Dice before/after per class (and on the base model's own domain),
the guard's verdict, and a status line with the caveats the library found."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QTableWidgetItem

if TYPE_CHECKING:  # pragma: no cover
    from ..training.finetune import FinetuneResult


def _num(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value:.3f}"


class FinetuneResults:
    """Mixin for the Fine-tune widget: fills ``metrics_table``, ``guard_label`` and ``status`` from a result."""

    def _show_result(self, res: FinetuneResult) -> None:
        rows: list[tuple[str, float | None, float | None]] = []
        for prefix, before, after in (("", res.before, res.after), ("base domain: ", res.base_before, res.base_after)):
            if before and after:
                for cls, scores in after["per_class"].items():
                    rows.append((prefix + cls, before["per_class"].get(cls, {}).get("dice"), scores["dice"]))
        self.metrics_table.setRowCount(len(rows))
        for r, (label, before, after) in enumerate(rows):
            change = after - before if before is not None and after is not None else None
            cells = [label, _num(before), _num(after), "–" if change is None else f"{change:+.3f}"]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.metrics_table.setItem(r, c, item)
        self.metrics_table.resizeColumnsToContents()
        height = self.metrics_table.horizontalHeader().height() + 4
        height += sum(self.metrics_table.rowHeight(r) for r in range(len(rows)))
        self.metrics_table.setMinimumHeight(min(max(height, 60), 240))
        self.metrics_table.setMaximumHeight(max(min(height, 240), 60))
        n_val = (res.after or {}).get("n_images", 0)
        if res.base_before and res.base_after:
            self.guard_label.setText(
                f"Guard: base-domain validation ({res.base_after.get('n_images', 0)} images) checked: "
                "the base model's own domain did not get worse beyond the limit"
                + (
                    f" once the fine-tuned weights were mixed {res.weight_mix:g} : {1 - res.weight_mix:g} with the "
                    "base (the full fine-tune went beyond it)"
                    if res.weight_mix < 1
                    else ""
                )
            )
        elif res.guard_skipped:  # why, as it is: not on this machine, or the base had no validation part
            self.guard_label.setText(f"Guard: {res.guard_skipped}")
        else:
            self.guard_label.setText("Guard: off")
        scale = float(res.card.training.get("scale", 1.0) or 1.0)
        text = f"Saved {res.card.name} (v{res.card.version}) in {res.seconds:.1f} s"
        text += f"; Dice on {n_val} validation image(s) above" if n_val else "; no validation part: no scores"
        if abs(scale - 1.0) > 1e-6:
            text += f"; images were rescaled ×{scale:.2f} to the base model's cell size"
        notes = list(res.caveats)
        if cut := res.length.budget_note():  # "100 epochs" ran 70: say so, as the CLI does
            notes.append(f"{cut}; for every epoch, raise Time budget (0: no limit)")
        for note in notes:
            text += f". <span style='color:#e0a040'>Note: {note}</span>"
        self.status.setText(text)
        self.apply_btn.setEnabled(True)

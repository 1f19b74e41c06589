"""The Fine-tune button and what a run reports back (GUI thread): the checks before any training time is spent,
the settings, the live progress and loss curve, and the end of the run. The worker thread's side is
:mod:`.finetune_work`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..schemas import get_schema
from .finetune_apply import model_kinds
from .finetune_pairs import pair_samples, split_for_finetune
from .finetune_work import CancelledRun, Failure, Job, Split, work
from .model_events import notify_models_changed

if TYPE_CHECKING:  # pragma: no cover
    from ..training import TrainConfig

#: the share of the progress bar the training loop fills; the checks after it (guard, weight mixing, the last
#: validation) fill the rest
TRAINING_SHARE = 0.9


class FinetuneRun:
    """Mixin for the Fine-tune widget (before :class:`~napari_bloodseg.plugin.background.BackgroundRun`): owns the
    run's bookkeeping ``_run``, ``losses`` and ``last_result``."""

    @property
    def last_status(self) -> str:
        """``"running"``, ``"done"``, ``"cancelled"``, ``"refused"`` or ``"error"`` for the last run."""
        return str(self._run.get("status", ""))

    def _on_all_train(self, on: bool) -> None:
        self.val_spin.setEnabled(not on)
        self.keep_combo.setEnabled(not on)  # nothing to choose by: the last state is saved

    def _offer_fast(self, *_: Any) -> None:
        """'Faster arithmetic' is offered only where it is faster: training on a CPU that computes bfloat16
        natively (elsewhere it is emulated and slower; on a GPU mixed precision is already the default). Hidden
        until the device probe has looked; ticked when offered (the CLI's default there too) unless the person
        unticked it."""
        probe = self.device_combo.probe
        offered = bool(probe and probe.cpu_bf16(self.device_combo.device()))
        self.fast_check.setVisible(offered)
        self.fast_check.setChecked(offered and not self._fast_declined)

    def _on_fast_clicked(self, on: bool) -> None:
        """The person's own tick or untick: kept when the device changes and the offer comes back."""
        self._fast_declined = not on

    def _follow_recipe(self, on: bool) -> None:
        """Epochs and learning rate follow the tick (:data:`~..training.finetune_defaults.FAST_CPU_RECIPE`) unless
        the person set them: a value typed stays, whatever it is. Telling typed values by comparing them with the
        other recipe's overwrote a typed 100 with 170 when the tick came back (audit22 L3)."""
        from ..training.finetune_defaults import finetune_recipe

        recipe = finetune_recipe(on)
        self._setting_recipe = True
        try:
            if "epochs" not in self._set_by_person:
                self.epochs_spin.setValue(recipe["epochs"])
            if "lr" not in self._set_by_person:
                self.lr_spin.setValue(recipe["lr"])
        finally:
            self._setting_recipe = False

    def _on_epochs_set(self, *_: Any) -> None:
        """A change the widget did not make is the person's: kept from now on (:meth:`_follow_recipe`)."""
        if not self._setting_recipe:
            self._set_by_person.add("epochs")

    def _on_lr_set(self, *_: Any) -> None:
        if not self._setting_recipe:
            self._set_by_person.add("lr")

    def _config(self) -> TrainConfig:
        from ..training.finetune_defaults import finetune_config

        budget = int(self.budget_spin.value())
        offered = not self.fast_check.isHidden()
        fast = self.fast_check.isChecked() and offered  # ticked, then another device chosen
        # the card says what ran: unticked where offered is fp32 (the CLI's "auto" is bf16 on that CPU); where not
        # offered "auto" (mixed precision on a GPU)
        precision = "bf16" if fast else "fp32" if offered else "auto"
        return finetune_config(
            epochs=int(self.epochs_spin.value()),
            batch_size=int(self.batch_spin.value()),
            lr=float(self.lr_spin.value()),
            freeze="encoder" if self.freeze_check.isChecked() else "none",
            keep="last" if self.all_train_check.isChecked() else str(self.keep_combo.currentData()),
            seed=0,
            device=self.device_combo.device(),
            max_minutes=budget / 60 if budget > 0 else None,
            precision=precision,
            channels_last=fast,
        )

    def _refuse(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self._run = {"status": "refused"}
        self.status.setText(f"Not started: {message}")
        show_error(f"Fine-tuning refused: {message}")

    def run(self) -> Any:
        """Check the inputs and start fine-tuning in a worker thread; returns the worker (None when refused)."""
        from napari.utils.notifications import show_warning

        from ..training.finetune_checks import FinetuneError, check_samples

        if self.running:
            show_warning("Fine-tuning is already running; cancel it first")
            return None
        info = self.base_info_of(self.base_name())
        if info is None:
            self._refuse("no trained base model: train one (bloodseg train) or import one in the Models widget")
            return None
        name = self.name_edit.text().strip()
        problem = self._check_name(name)
        if problem:
            self._refuse(problem)
            return None
        val_fraction = None if self.all_train_check.isChecked() else float(self.val_spin.value())
        job = Job(info.name, info.schema, name, self._config(), self.guard_check.isChecked(), val_fraction=val_fraction)
        if self.layers_radio.isChecked():
            pairs = self.ticked_pairs()
            if not pairs:
                self._refuse("no pair ticked: tick corrected image ↔ segmentation pairs (or use a folder)")
                return None
            try:
                samples = pair_samples(pairs, info.schema, info.name)
                check_samples(samples, get_schema(info.schema).num_classes)
                job.train, job.val = split_for_finetune(samples, val_fraction)
            except (FinetuneError, ValueError) as exc:
                self._refuse(str(exc))
                return None
            self._used_images = [p.image.name for p in pairs]
            self._apply_kinds = model_kinds(info.schema, [p.image for p in pairs])
            job.source = "napari layers: " + ", ".join(self._used_images)
        else:
            folder = self.folder_edit.text().strip()
            if not folder or not Path(folder).is_dir():
                self._refuse(f"{folder or 'no folder given'}: not a folder of image + mask pairs")
                return None
            job.folder = job.source = folder
            self._used_images = []
            self._apply_kinds = model_kinds(info.schema, [])

        self.losses = []
        self.last_result = None
        self.curve.clear()
        self.metrics_table.setRowCount(0)
        self.guard_label.setText("")
        self.apply_btn.setEnabled(False)
        self._run = {"status": "running", "t0": time.perf_counter(), "step": 0, "budget": job.cfg.max_minutes}
        return self._start_worker(
            self._work,
            job,
            connect={"yielded": self._on_yielded, "errored": self._on_error, "finished": self._on_finished},
            message=f"Fine-tuning {info.name} → {name} …",
        )

    def _work(self, job: Job) -> Iterator[Any]:
        """Worker thread: :func:`.finetune_work.work` with this widget's progress signals and Cancel."""
        yield from work(job, self._signals, self._cancel.is_set)

    def _on_step(self, step: int, total: int, loss: float) -> None:
        self.losses.append(float(loss))
        self.curve.total_steps = total
        self.curve.add_step(step, loss)
        self._run["step"] = step
        now = time.perf_counter()
        start = self._run.setdefault("t_train", now)  # the budget is the training loop's: loading and the first
        fraction = step / max(total, 1)  # scores come before it (8-20 s on RBC fields: the bar jumped to 100 %)
        budget = self._run.get("budget")
        if budget:
            fraction = max(fraction, (now - start) / (budget * 60))
        # training fills the bar to TRAINING_SHARE; the guard's checks and the last scores take the rest
        self.progress.setValue(int(round(1000 * TRAINING_SHARE * min(fraction, 1.0))))
        if step == 1 and not self._cancel.is_set():
            self.status.setText("Training …")
        if step >= total and not self._cancel.is_set():  # a budget-cut run keeps "Training …" to its last step
            self.status.setText("Checking the new model (validation, base-domain guard) …")

    def _on_epoch(self, log: Any) -> None:
        self.curve.add_epoch(int(self._run.get("step", 0)), log.loss)
        text = f"epoch {log.epoch}: loss {log.loss:.4f}"
        if log.score is not None:
            text += f", validation Dice {log.score:.3f}"
        if not self._cancel.is_set():
            self.status.setText(text)

    def _on_yielded(self, item: Any) -> None:
        from napari.utils.notifications import show_error, show_info

        if isinstance(item, Split):
            self._run["split"] = item
            val = f"{item.n_val} for validation" if item.n_val else "no validation part"
            self.status.setText(
                f"{item.n_train} image(s) to train on, {val}: scoring the base model and loading its own images "
                "for the guard …"
            )
        elif isinstance(item, CancelledRun):
            self._run["status"] = "cancelled"
        elif isinstance(item, Failure):
            self._run["status"] = "refused"
            self.status.setText(f"Nothing saved: {item.message}")
            show_error(f"Fine-tuning failed, nothing saved: {item.message}")
        else:
            self._run["status"] = "done"
            self.last_result = item
            self._show_result(item)
            notify_models_changed(item.card.name)
            show_info(f"Fine-tuned model saved as {item.card.name}")

    def _on_error(self, exc: BaseException) -> None:
        """Unexpected: napari's worker shows it with its traceback; keep the widget usable."""
        self._run["status"] = "error"
        self.status.setText(f"Failed, nothing saved: {type(exc).__name__}: {exc}")

    def _on_finished(self) -> None:
        status = self._run.get("status")
        if status == "cancelled" or (status == "running" and self._cancel.is_set()):
            self._run["status"] = "cancelled"
            self.status.setText("Cancelled, nothing saved")
        elif status == "done":
            self.progress.setValue(1000)
            if self._auto_name:
                self._set_default_name()
        self._worker_done()

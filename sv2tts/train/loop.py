"""The fine-tuning loop shared by the synthesizer and the vocoder: steps up to a target,
checkpoints every ``save_every`` steps (and at the end, and on Ctrl-C before stopping),
validation and samples every ``sample_every`` steps (the validation loss at the end too), a ``metrics.jsonl`` line per step, a
progress bar with the loss and steps/s. What one step is, and how a model is saved, validated
and sampled, comes from a `Trainer`.
"""
from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..core.runtime import progress_bar
from .checkpoint import save_checkpoint
from .interrupt import stop_on_interrupt
from .run_folder import MetricsLog
from .session import epoch_batch

log = logging.getLogger(__name__)

SPEED_WINDOW = 20  # steps the steps/s figure is averaged over


class Trainer(Protocol):
    """One model's training as the loop drives it."""

    def step(self) -> int:
        """The model's current training step."""

    def train_step(self, keep_outputs: bool) -> dict[str, float]:
        """One step; its metrics ("step" reached, "loss", loss parts ...). keep_outputs: keep
        what `sample` needs from this step."""

    def lr(self) -> float:
        """The learning rate in use."""

    def save(self) -> Path:
        """Write the checkpoint (atomically); its path."""

    def validate(self) -> float | None:
        """Validation loss (None without validation data)."""

    def sample(self, step: int) -> list[Path]:
        """Write the samples of ``step``; their paths."""


@dataclass(frozen=True)
class LoopResult:
    """How a run ended: the step reached, steps done in this call, whether Ctrl-C stopped it,
    the last checkpoint written, last training and validation losses, wall seconds."""

    step: int
    steps_done: int
    interrupted: bool
    checkpoint: Path | None
    loss: float | None
    val_loss: float | None
    seconds: float
    samples: tuple[Path, ...] = ()


def run_loop(trainer: Trainer, target_step: int, *, save_every: int, sample_every: int, metrics: MetricsLog,
             progress: bool | None = None, desc: str = "training") -> LoopResult:
    """Train until the model's step reaches ``target_step`` (or Ctrl-C). Cadences count the
    model's own step (RTVC: ``step % save_every == 0``)."""
    start_time = time.perf_counter()
    step = first = trainer.step()
    saved_at, checkpoint = step, None
    loss = val_loss = None
    samples: list[Path] = []
    durations: collections.deque[float] = collections.deque(maxlen=SPEED_WINDOW)
    bar = progress_bar(progress, max(target_step - first, 0), desc, unit="step")
    try:
        with stop_on_interrupt() as stop:
            while step < target_step and not stop.requested:
                next_step = step + 1
                sampling = next_step % sample_every == 0
                validating = sampling or next_step == target_step  # the final validation loss too
                t0 = time.perf_counter()
                result = trainer.train_step(keep_outputs=sampling)
                durations.append(time.perf_counter() - t0)
                step, loss = int(result["step"]), float(result["loss"])
                speed = len(durations) / sum(durations)
                entry: dict[str, Any] = {"step": step, **{k: v for k, v in result.items() if k != "step"},
                                         "lr": trainer.lr(), "steps_per_s": round(speed, 4)}
                if validating:
                    val_loss = trainer.validate()
                    if val_loss is not None:
                        entry["val_loss"] = val_loss
                if sampling:
                    samples = trainer.sample(step)
                metrics.append(entry)
                if step % save_every == 0 or step >= target_step:
                    checkpoint, saved_at = trainer.save(), step
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"step {step}, loss {loss:.4f}, {speed:.2f} steps/s"
                                        + (f", val {val_loss:.4f}" if val_loss is not None else ""))
                log.debug("step %d: %s", step, entry)
            interrupted = stop.requested
            if step != saved_at:  # Ctrl-C: save before stopping
                checkpoint = trainer.save()
    finally:
        if bar is not None:
            bar.close()
    if interrupted:
        log.warning("interrupted at step %d; checkpoint saved", step)
    return LoopResult(step, step - first, interrupted, checkpoint, loss, val_loss,
                      time.perf_counter() - start_time, tuple(samples))


class FinetuneRun:
    """What `SynthesizerFinetune` and `VocoderFinetune` share once opened: the model's step,
    the checkpoint and `run`. A subclass sets ``folder``, ``record``, ``model``, ``optimizer``
    and ``target_step``, names its progress bar (``_desc``) and makes its `Trainer`."""

    _desc = "fine-tuning"

    def _trainer(self) -> Trainer:
        raise NotImplementedError

    @property
    def step(self) -> int:
        """The model's training step (its ``step`` buffer)."""
        return int(self.model.step.reshape(-1)[0])

    @property
    def checkpoint(self) -> Path:
        return self.folder.checkpoint

    def run(self, progress: bool | None = None) -> LoopResult:
        """Train to the target step (Ctrl-C: save, then stop; ``interrupted`` tells)."""
        s = self.record.settings
        return run_loop(self._trainer(), self.target_step, save_every=int(s["save_every"]),
                        sample_every=int(s["sample_every"]), metrics=MetricsLog(self.folder.metrics_path),
                        progress=progress, desc=self._desc)


class RunTrainer:
    """The `Trainer` methods every `FinetuneRun` shares: its step, lr, batches and checkpoint saving."""

    def __init__(self, run: FinetuneRun) -> None:
        self.run = run

    def step(self) -> int:
        return self.run.step

    def lr(self) -> float:
        return float(self.run.optimizer.param_groups[0]["lr"])

    def batch_items(self) -> list:
        """The training items of this step: batch k = step - start step of the run's seeded
        epoch order (`session.epoch_batch`), so a resumed run goes on with the same order."""
        run = self.run
        indices = epoch_batch(len(run.train_data), run.batch_size, run.seed, run.step - run.record.start_step)
        return [run.train_data[i] for i in indices]

    def save(self) -> Path:
        run = self.run
        return save_checkpoint(run.checkpoint, run.model, run.optimizer, step=run.step)

"""Fine-tuning the synthesizer on one voice (`sv2tts finetune synthesizer`).

    from sv2tts import train
    run = train.SynthesizerFinetune.open("my_clips/", "my_voice/", config=train.FinetuneConfig(steps=2000))
    print(run.report.summary())          # kept / dropped utterances (my_voice/data/report.json)
    result = run.run()                   # my_voice/synthesizer.pt, metrics.jsonl, samples/

Each step is RTVC's (`sv2tts.train.synthesizer.train_step`: its losses, Adam, clipping, r) at
the stage of RTVC's schedule the start checkpoint is in (its r, lr and batch size, unless
given), held for the whole run. The output folder holds RTVC-format checkpoints
(``model_state``, ``optimizer_state``, ``step``), the preprocessed data (``data/``, reused on
resume), ``voice.npy`` (the mean embedding of the training utterances), ``metrics.jsonl`` and
every ``sample_every`` steps ``samples/step-NNNNNN-alignment.png`` (the training batch's first
item's attention) and ``samples/step-NNNNNN.wav`` (the fixed sentence in the voice).
"""
from __future__ import annotations

import copy
import logging
import os
from pathlib import Path

import numpy as np
import torch

from ..core.audio import write_audio
from ..core.runtime import check_seed, derive_seed, make_generator, resolve_device
from ..voices import save_voice
from . import synthesizer as S
from .config import FinetuneConfig, SynthesizerTrainConfig
from .data import SynthesizerDataset, collate_synthesizer
from ..core.files import write_atomic
from .loop import FinetuneRun, RunTrainer
from .plots import alignment_png
from .preprocess import PreprocessReport
from .run_folder import RunRecord
from .session import DATA_DIR, begin_run, open_run, prepare

log = logging.getLogger(__name__)

DEFAULT_STEPS = 2000
MODEL = "synthesizer"


class SynthesizerFinetune(FinetuneRun):
    """A synthesizer fine-tuning run, opened (data prepared, model loaded) and ready to `run`."""

    _desc = "fine-tuning synthesizer"

    def __init__(self, run_start, report: PreprocessReport, model, optimizer, record: RunRecord,
                 train_rows, val_rows, device: torch.device, vocoder) -> None:
        self.folder = run_start.folder
        self.resumed = run_start.resuming
        self.report = report
        self.model, self.optimizer, self.record = model, optimizer, record
        self.device, self.vocoder = device, vocoder
        settings = record.settings
        self.seed, self.batch_size = int(settings["seed"]), int(settings["batch_size"])
        self.target_step = int(settings["target_step"])
        self.sample_text = str(settings["sample_text"])
        data = self.folder.path / DATA_DIR
        self.train_data = SynthesizerDataset(train_rows, data / "mels", data / "embeds")
        self.val_data = SynthesizerDataset(val_rows, data / "mels", data / "embeds")
        self.voice = _mean_voice(self.train_data)
        save_voice(self.folder.path / "voice.npy", self.voice)
        self.sample_frames = min(2000, 2 * max(r.n_frames for r in train_rows))
        self._kept = None  # (batch, outputs) of the latest step that kept its outputs

    # ------------------------------------------------------------------------ opening
    @classmethod
    def open(cls, data: str | os.PathLike, out_dir: str | os.PathLike, *, start: str | os.PathLike | None = None,
             config: FinetuneConfig = FinetuneConfig(), device: str = "cpu", vocoder=None, encoder=None,
             overwrite: bool = False, resume: bool | None = None, progress: bool | None = None,
             train_config: SynthesizerTrainConfig = SynthesizerTrainConfig()) -> "SynthesizerFinetune":
        """Check the output folder, read and preprocess DATA (see `sv2tts.train.sources`), load
        the model (the run's checkpoint when resuming, else ``start``: None = the default
        synthesizer). vocoder: a loaded vocoder for the samples (None: Griffin-Lim).
        InputError / CheckpointError for bad input, before any training."""
        dev = resolve_device(device)
        run_start = open_run(out_dir, MODEL, start, overwrite=overwrite, resume=resume)
        report = prepare(data, run_start.folder, encoder=encoder, progress=progress)
        model, optimizer, _ = S.open_for_training(run_start.load_from, dev, train_config)
        step = S.model_step(model)
        old = run_start.record.settings if run_start.record is not None else {}
        stage = S.schedule_stage(step, train_config.schedule) or train_config.schedule[-1]
        seed = check_seed(config.seed if config.seed is not None else old.get("seed", 0))
        start_step = run_start.record.start_step if run_start.record is not None else step
        settings = {
            "r": int(old.get("r", stage[0])),
            "lr": float(config.lr or old.get("lr", stage[1])),
            "batch_size": int(config.batch_size or old.get("batch_size", stage[3])),
            "target_step": start_step + (config.steps or (old["target_step"] - start_step if old else DEFAULT_STEPS)),
            "seed": seed, "sample_text": config.sample_text, "clip_grad_norm": train_config.clip_grad_norm,
            "save_every": config.save_every, "sample_every": config.sample_every,
        }
        S.apply_stage(model, optimizer, (settings["r"], settings["lr"], settings["target_step"],
                                         settings["batch_size"]))
        record, train_rows, val_rows = begin_run(run_start, report.kept, config.val_fraction, seed, start_step,
                                                 step, settings)
        log.info("%s: %s from %s at step %d, to step %d (r %d, lr %g, batch %d)", run_start.folder.path,
                 "resuming" if run_start.resuming else "fine-tuning", run_start.start, step,
                 settings["target_step"], settings["r"], settings["lr"], settings["batch_size"])
        if vocoder is None:
            from ..vocoder import GriffinLim

            vocoder = GriffinLim()
        return cls(run_start, report, model, optimizer, record, train_rows, val_rows, dev, vocoder)

    # ---------------------------------------------------------------------- training
    def _trainer(self) -> "_Trainer":
        return _Trainer(self)


class _Trainer(RunTrainer):
    """`sv2tts.train.loop.Trainer` over a SynthesizerFinetune."""

    def train_step(self, keep_outputs: bool) -> dict[str, float]:
        run = self.run
        batch = collate_synthesizer(self.batch_items(), run.model.r).to(run.device)
        generator = make_generator(derive_seed(run.seed, run.step + 1), run.device)
        result = S.train_step(run.model, run.optimizer, batch, generator=generator,
                              clip_grad_norm=run.record.settings["clip_grad_norm"], keep_outputs=keep_outputs)
        if keep_outputs:
            run._kept = (batch, result.outputs)
        return {"step": result.step, "loss": result.loss, "mel_mse": result.mse_m1, "mel_l1": result.l1_m1,
                "postnet_mse": result.m2_loss, "stop_bce": result.stop_loss, "grad_norm": result.grad_norm}

    def validate(self) -> float | None:
        run = self.run
        n = len(run.val_data)
        if n == 0:
            return None
        total = 0.0
        for start in range(0, n, run.batch_size):
            indices = range(start, min(start + run.batch_size, n))
            batch = collate_synthesizer([run.val_data[i] for i in indices], run.model.r).to(run.device)
            total += S.evaluate(run.model, batch) * len(indices)
        return total / n

    def sample(self, step: int) -> list[Path]:
        run = self.run
        paths = []
        if run._kept is not None:
            batch, outputs = run._kept
            steps = -(-int(batch.mel_lengths[0]) // run.model.r)
            chars = int((batch.chars[0] != 0).sum())
            attention = outputs.attention[0, :steps, :chars].float().cpu().numpy()
            png = alignment_png(attention)
            paths.append(write_atomic(run.folder.samples / f"step-{step:06d}-alignment.png", lambda f: f.write(png)))
            run._kept = None
        paths.append(write_audio(run.folder.samples / f"step-{step:06d}.wav", self.sample_wav()))
        return paths

    def sample_wav(self) -> np.ndarray:
        """The fixed sentence in the voice, with a copy of the model in inference mode."""
        from ..synthesizer import Synthesizer

        run = self.run
        synthesizer = Synthesizer(copy.deepcopy(run.model))
        mel = synthesizer.synthesize(run.sample_text, run.voice, seed=run.seed, max_frames=run.sample_frames)
        return run.vocoder.vocode(mel, seed=run.seed)


def _mean_voice(dataset: SynthesizerDataset) -> np.ndarray:
    """The unit-norm mean of the utterance embeddings (256,) float32."""
    embeds = np.stack([np.load(dataset.embed_dir / row.embed_file) for row in dataset.rows])
    mean = embeds.mean(axis=0)
    return (mean / np.linalg.norm(mean)).astype(np.float32)

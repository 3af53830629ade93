"""Fine-tuning the vocoder on one voice (`sv2tts finetune vocoder`).

    run = train.VocoderFinetune.open("my_clips/", "my_vocoder/", synthesizer="my_voice/synthesizer.pt")
    result = run.run()                   # my_vocoder/vocoder.pt, metrics.jsonl, samples/

The data is preprocessed as for the synthesizer (cached in ``data/``), then the fine-tuned
synthesizer's ground-truth-aligned mels are written to ``gta/`` (RTVC's vocoder_preprocess.py:
`sv2tts.train.synthesizer.write_gta_mels`; redone when the synthesizer file changes). Each
step is RTVC's vocoder/train.py step (`sv2tts.train.vocoder.train_step`: RAW mode, 9-bit
mu-law labels, cross-entropy, Adam, no clipping) on one random 1000-sample crop per item.
Every ``sample_every`` steps: the validation loss (fixed crops of the held-out utterances) and
``samples/step-NNNNNN.wav``, a held-out utterance's GTA mel vocoded by the model.
"""
from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from ..core.audio import write_audio
from ..core.runtime import check_seed, derive_seed, resolve_device
from . import synthesizer as S
from . import vocoder as V
from .config import FinetuneConfig, VocoderTrainConfig
from .data import VocoderDataset, collate_vocoder
from .files import write_text
from .loop import FinetuneRun, RunTrainer
from .preprocess import PreprocessReport
from .run_folder import RunRecord, file_sha256
from .session import DATA_DIR, begin_run, open_run, prepare

log = logging.getLogger(__name__)

DEFAULT_STEPS = 5000
MODEL = "vocoder"
GTA_DIR = "gta"
SAMPLE_FRAMES = 400  # mel frames (5 s) of the held-out utterance vocoded for a sample


def ensure_gta_mels(data_dir: Path, synthesizer: Path, out_dir: Path, device: torch.device) -> str:
    """``out_dir/mels_gta`` and ``synthesized.txt`` from ``synthesizer`` over ``data_dir``,
    reused when made from the same synthesizer file and train.txt. Returns the synthesizer's sha256."""
    sha = file_sha256(synthesizer)
    made_from = {"synthesizer_sha256": sha, "train_txt": (data_dir / "train.txt").read_text(encoding="utf-8")}
    record = out_dir / "made_from.json"
    try:
        if json.loads(record.read_text(encoding="utf-8")) == made_from:
            return sha
    except (OSError, ValueError):
        pass
    model, _ = S.load_tacotron(synthesizer, device)
    n = S.write_gta_mels(data_dir, model, out_dir)
    write_text(record, json.dumps(made_from))
    log.info("%s: %d ground-truth-aligned mels from %s", out_dir, n, synthesizer)
    return sha


class VocoderFinetune(FinetuneRun):
    """A vocoder fine-tuning run, opened (data and GTA mels prepared, model loaded), ready to `run`."""

    _desc = "fine-tuning vocoder"

    def __init__(self, run_start, report: PreprocessReport, model, optimizer, record: RunRecord,
                 train_rows, val_rows, device: torch.device, cfg: VocoderTrainConfig) -> None:
        self.folder = run_start.folder
        self.resumed = run_start.resuming
        self.report = report
        self.model, self.optimizer, self.record, self.device, self.cfg = model, optimizer, record, device, cfg
        s = record.settings
        self.seed, self.batch_size, self.target_step = int(s["seed"]), int(s["batch_size"]), int(s["target_step"])
        gta, audio = self.folder.path / GTA_DIR / "mels_gta", self.folder.path / DATA_DIR / "audio"
        self.train_data = VocoderDataset(train_rows, gta, audio, cfg)
        self.val_data = VocoderDataset(val_rows, gta, audio, cfg)

    @classmethod
    def open(cls, data: str | os.PathLike, out_dir: str | os.PathLike, *, synthesizer: str | os.PathLike,
             start: str | os.PathLike | None = None, config: FinetuneConfig = FinetuneConfig(),
             device: str = "cpu", encoder=None, overwrite: bool = False, resume: bool | None = None,
             progress: bool | None = None, train_config: VocoderTrainConfig = VocoderTrainConfig()
             ) -> "VocoderFinetune":
        """Check the output folder, preprocess DATA, make the GTA mels with ``synthesizer`` (a
        fine-tuned synthesizer.pt), load the vocoder (the run's checkpoint when resuming, else
        ``start``: None = the default vocoder). InputError / CheckpointError before any training."""
        dev = resolve_device(device)
        synthesizer = Path(synthesizer)
        run_start = open_run(out_dir, MODEL, start, overwrite=overwrite, resume=resume)
        S.load_tacotron(synthesizer)  # a bad synthesizer file fails here, before preprocessing
        report = prepare(data, run_start.folder, encoder=encoder, progress=progress)
        folder = run_start.folder
        syn_sha = ensure_gta_mels(folder.path / DATA_DIR, synthesizer, folder.path / GTA_DIR, dev)
        model, optimizer = V.open_for_training(run_start.load_from, dev, train_config)
        step = int(model.step.reshape(-1)[0])
        old = run_start.record.settings if run_start.record is not None else {}
        seed = check_seed(config.seed if config.seed is not None else old.get("seed", 0))
        start_step = run_start.record.start_step if run_start.record is not None else step
        settings = {
            "lr": float(config.lr or old.get("lr", optimizer.param_groups[0]["lr"])),
            "batch_size": int(config.batch_size or old.get("batch_size", train_config.batch_size)),
            "target_step": start_step + (config.steps or (old["target_step"] - start_step if old else DEFAULT_STEPS)),
            "seed": seed, "save_every": config.save_every, "sample_every": config.sample_every,
            "synthesizer": str(synthesizer.resolve()), "synthesizer_sha256": syn_sha,
        }
        for group in optimizer.param_groups:
            group["lr"] = settings["lr"]
        record, train_rows, val_rows = begin_run(run_start, report.kept, config.val_fraction, seed, start_step,
                                                 step, settings)
        return cls(run_start, report, model, optimizer, record, train_rows, val_rows, dev, train_config)

    def _trainer(self) -> "_Trainer":
        return _Trainer(self)


class _Trainer(RunTrainer):
    """`sv2tts.train.loop.Trainer` over a VocoderFinetune."""

    def train_step(self, keep_outputs: bool) -> dict[str, float]:
        run = self.run
        rng = np.random.RandomState(derive_seed(run.seed, run.step + 1))
        batch = collate_vocoder(self.batch_items(), rng, run.cfg).to(run.device)
        result = V.train_step(run.model, run.optimizer, batch)
        return {"step": result.step, "loss": result.loss}

    def validate(self) -> float | None:
        run = self.run
        n = len(run.val_data)
        if n == 0:
            return None
        rng = np.random.RandomState(run.seed)  # the same crops every time
        total = 0.0
        for start in range(0, n, run.batch_size):
            items = [run.val_data[i] for i in range(start, min(start + run.batch_size, n))]
            total += V.evaluate(run.model, collate_vocoder(items, rng, run.cfg).to(run.device)) * len(items)
        return total / n

    def sample(self, step: int) -> list[Path]:
        from ..vocoder import Vocoder

        run = self.run
        data = run.val_data if len(run.val_data) else run.train_data
        mel = np.load(data.mel_dir / data.rows[0].mel_file).T[:, :SAMPLE_FRAMES]
        wav = Vocoder(copy.deepcopy(run.model), run.device).vocode(mel, seed=run.seed, progress=False)
        return [write_audio(run.folder.samples / f"step-{step:06d}.wav", wav)]

"""Fine-tuning end to end on the CPU: clips cut from examples/reference.flac, preprocessing,
a tiny Tacotron trained for a few dozen steps (the loss falls), an RTVC-format checkpoint that
sv2tts.Synthesizer.load reads and that resumes training exactly; atomic checkpoint writes."""
from __future__ import annotations

import errno

import numpy as np
import pytest
import soundfile as sf
import torch

import sv2tts
from sv2tts.synthesizer.config import SynthesizerConfig
from sv2tts.train import synthesizer as S
from sv2tts.train.config import SynthesizerTrainConfig
from sv2tts.train import vocoder as V
from sv2tts.train.data import SynthesizerDataset, VocoderDataset, collate_synthesizer, collate_vocoder, epoch_batches
from sv2tts.vocoder.config import VocoderConfig
from sv2tts.vocoder.model import WaveRNN
from sv2tts.train.preprocess import UtteranceSource, preprocess_dataset

TINY = SynthesizerConfig(embed_dims=32, encoder_dims=32, decoder_dims=16, postnet_dims=32, lstm_dims=64)
TEXTS = ["The quick brown fox jumps over the lazy dog.", "She sells sea shells by the sea shore.",
         "How much wood would a woodchuck chuck?"]
STEPS, BATCH, STAGE = 36, 2, (2, 2e-3, 1000, 2)


@pytest.fixture(scope="module")
def data_dir(example_clip, tmp_path_factory):
    """Three overlapping 2.5 s windows of the example clip, each with a transcript, preprocessed."""
    wav, rate = sf.read(example_clip, dtype="float32")
    folder = tmp_path_factory.mktemp("finetune")
    sources = []
    for i, text in enumerate(TEXTS):
        start = int(i * 1.25 * rate)
        path = folder / f"clip{i}.flac"
        sf.write(path, wav[start:start + int(2.5 * rate)], rate)
        sources.append(UtteranceSource(path, text, path.stem))
    report = preprocess_dataset(sources, folder / "syn")
    assert len(report.kept) == len(TEXTS), report.summary()
    return folder / "syn"


def train(model, optimizer, dataset, steps, generator):
    losses, pending = [], []
    while len(losses) < steps:
        if not pending:
            pending = epoch_batches(len(dataset), BATCH, generator)
        batch = collate_synthesizer([dataset[i] for i in pending.pop(0)], model.r)
        losses.append(S.train_step(model, optimizer, batch, generator=generator).loss)
    return losses


@pytest.mark.slow
def test_finetune_tiny_synthesizer(data_dir, tmp_path):
    dataset = SynthesizerDataset.from_folder(data_dir)
    model = S.new_tacotron(TINY, seed=0)
    optimizer = S.make_optimizer(model)
    S.apply_stage(model, optimizer, STAGE)
    generator = torch.Generator().manual_seed(0)
    losses = train(model, optimizer, dataset, STEPS, generator)
    assert np.isfinite(losses).all()
    assert np.mean(losses[-6:]) < 0.6 * np.mean(losses[:6]), losses
    assert S.model_step(model) == STEPS

    path = S.save_synthesizer(tmp_path / "synthesizer.pt", model, optimizer)
    synthesizer = sv2tts.Synthesizer.load(path)
    assert synthesizer.r == STAGE[0] and synthesizer.config.lstm_dims == TINY.lstm_dims
    embed = np.load(data_dir / "embeds" / dataset.rows[0].embed_file)
    mel = synthesizer.synthesize("Hello there.", embed, seed=0, max_frames=20)
    assert mel.shape[0] == 80 and 1 <= mel.shape[1] <= 20 and np.isfinite(mel).all()

    # resume: the file restores step, r, weights and Adam state, so training continues exactly
    resumed, resumed_opt, stage = S.open_for_training(path, cfg=SynthesizerTrainConfig(schedule=(STAGE,)))
    assert stage == STAGE and S.model_step(resumed) == STEPS and resumed.r == STAGE[0]
    assert float(resumed_opt.state_dict()["state"][0]["step"]) == STEPS
    state = generator.get_state()
    more = train(model, optimizer, dataset, 2, generator)
    generator.set_state(state)
    assert train(resumed, resumed_opt, dataset, 2, generator) == more


@pytest.mark.slow
def test_gta_mels_then_vocoder_steps(data_dir, tmp_path):
    """vocoder_preprocess.py's GTA mels from a synthesizer, then a tiny WaveRNN trained on them."""
    model = S.new_tacotron(TINY, seed=2)
    S.apply_stage(model, S.make_optimizer(model), STAGE)
    assert S.write_gta_mels(data_dir, model, tmp_path, batch_size=2) == len(TEXTS)
    dataset = SynthesizerDataset.from_folder(data_dir)
    assert (tmp_path / "synthesized.txt").read_text(encoding="utf-8") == (data_dir / "train.txt").read_text(encoding="utf-8")
    first = S.gta_mels(model, collate_synthesizer([dataset[0], dataset[1]], model.r))[0]
    np.testing.assert_array_equal(np.load(tmp_path / "mels_gta" / dataset.rows[0].mel_file), first)

    voc_data = VocoderDataset(tmp_path / "synthesized.txt", tmp_path / "mels_gta", data_dir / "audio")
    torch.manual_seed(0)
    vocoder = WaveRNN(VocoderConfig(rnn_dims=32, fc_dims=16, compute_dims=8, res_out_dims=16, res_blocks=2))
    optimizer = V.make_optimizer(vocoder, V.VocoderTrainConfig(lr=1e-2))
    rng = np.random.RandomState(0)
    losses = [V.train_step(vocoder, optimizer, collate_vocoder([voc_data[i] for i in range(len(voc_data))], rng)).loss
              for _ in range(15)]
    assert losses[0] == pytest.approx(np.log(512), rel=0.05)  # about uniform at first
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.15, losses
    assert int(vocoder.step) == 15
    path = V.save_vocoder(tmp_path / "vocoder.pt", vocoder, optimizer)
    assert sv2tts.Vocoder.load(path).config.rnn_dims == 32


def test_new_tacotron_is_rtvc_init():
    model = S.new_tacotron(TINY, seed=0)
    assert model.r == 1 and S.model_step(model) == 0 and not model.training
    for name, p in model.named_parameters():
        if name.endswith("W1.bias"):
            assert not p.any(), name


def test_schedule_stage_walk():
    schedule = SynthesizerTrainConfig().schedule
    assert S.schedule_stage(0, schedule) == schedule[0]
    assert S.schedule_stage(schedule[0][2], schedule) == schedule[1]  # a stage ends at its max step
    assert S.schedule_stage(schedule[-1][2], schedule) is None
    assert S.backup_name(25_000) == "synthesizer_000025.pt"


def test_eval_loss_leaves_model_unchanged(data_dir):
    dataset = SynthesizerDataset.from_folder(data_dir)
    model = S.new_tacotron(TINY, seed=1).train()
    batch = collate_synthesizer([dataset[i] for i in range(len(dataset))], 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert S.evaluate(model, batch) == S.evaluate(model, batch)
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    mels = S.gta_mels(model, batch)
    assert [m.shape for m in mels] == [(int(n), 80) for n in batch.mel_lengths]


def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model = S.new_tacotron(TINY, seed=0)
    path = S.save_synthesizer(tmp_path / "synthesizer.pt", model)
    before = path.read_bytes()

    def disk_full(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        S.save_synthesizer(path, S.new_tacotron(TINY, seed=1))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["synthesizer.pt"]  # no temporary left

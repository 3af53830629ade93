"""Training and fine-tuning with RTVC's numbers (preprocessing, datasets, one training step).

    from sv2tts import train
    sources = train.rtvc_dataset_sources("datasets", "LibriSpeech", ["train-clean-100"])
    report = train.preprocess_dataset(sources, "SV2TTS/synthesizer")   # audio/ mels/ embeds/ train.txt
    data = train.SynthesizerDataset.from_folder("SV2TTS/synthesizer")
    model, optimizer, stage = train.synthesizer.open_for_training("synthesizer.pt")
    r, lr, max_step, batch_size = stage
    for indices in train.epoch_batches(len(data), batch_size, torch.default_generator):
        batch = train.collate_synthesizer([data[i] for i in indices], r)
        result = train.synthesizer.train_step(model, optimizer, batch)   # loss, grad norm, step
    train.synthesizer.save_synthesizer("my_voice.pt", model, optimizer)  # sv2tts.Synthesizer.load reads it

Fine-tuning one voice (what `sv2tts finetune` runs):

    run = train.SynthesizerFinetune.open("clips/", "my_voice/", config=train.FinetuneConfig(steps=2000))
    print(run.report.summary())
    result = run.run()                     # my_voice/synthesizer.pt, metrics.jsonl, samples/
    voc = train.VocoderFinetune.open("clips/", "my_vocoder/", synthesizer="my_voice/synthesizer.pt")
    voc.run()

Modules: `config` (RTVC's defaults, frozen), `preprocess` (synthesizer_preprocess_audio /
_embeds), `data` (train.txt, datasets, collate, shuffling), `synthesizer` (Tacotron losses and
step, schedule, GTA mels), `vocoder` (WaveRNN RAW step), `ge2e` (GE2E loss, EER, gradient
ops, batch sampling), `checkpoint` (RTVC-format files, written atomically); fine-tuning:
`sources` (DATA layouts), `prepare` (cached preprocessing), `run_folder` (output folder,
resume rules, metrics.jsonl), `loop` (the shared loop), `interrupt` (Ctrl-C), `plots`
(alignment PNGs), `session` (shared opening), `finetune` / `finetune_vocoder` (the runs).
"""
from __future__ import annotations

from . import (checkpoint, config, data, finetune, finetune_vocoder, ge2e, loop, plots, prepare, preprocess,
               run_folder, sources, synthesizer, vocoder)
from .checkpoint import load_optimizer_state, read_checkpoint, save_checkpoint
from .config import (RTVC_TTS_SCHEDULE, EncoderTrainConfig, FinetuneConfig, PreprocessConfig,
                     SynthesizerTrainConfig, VocoderTrainConfig)
from .data import (MetadataRow, SynthesizerBatch, SynthesizerDataset, VocoderBatch, VocoderDataset,
                   collate_synthesizer, collate_vocoder, epoch_batches, epoch_order, read_metadata,
                   write_metadata)
from .preprocess import (DroppedUtterance, PreprocessReport, ProcessedUtterance, UtteranceSource,
                         embed_dataset, preprocess_dataset, preprocess_utterance, read_transcript,
                         rtvc_dataset_sources)
from .finetune import SynthesizerFinetune
from .finetune_vocoder import VocoderFinetune
from .loop import LoopResult
from .plots import alignment_png, png_bytes
from .prepare import prepare_data
from .sources import find_utterances

__all__ = [
    "checkpoint", "config", "data", "finetune", "finetune_vocoder", "ge2e", "loop", "plots", "prepare",
    "preprocess", "run_folder", "sources", "synthesizer", "vocoder",
    "SynthesizerFinetune", "VocoderFinetune", "FinetuneConfig", "LoopResult", "alignment_png", "png_bytes",
    "prepare_data", "find_utterances",
    "load_optimizer_state", "read_checkpoint", "save_checkpoint",
    "RTVC_TTS_SCHEDULE", "EncoderTrainConfig", "PreprocessConfig", "SynthesizerTrainConfig",
    "VocoderTrainConfig",
    "MetadataRow", "SynthesizerBatch", "SynthesizerDataset", "VocoderBatch", "VocoderDataset",
    "collate_synthesizer", "collate_vocoder", "epoch_batches", "epoch_order", "read_metadata",
    "write_metadata",
    "DroppedUtterance", "PreprocessReport", "ProcessedUtterance", "UtteranceSource", "embed_dataset",
    "preprocess_dataset", "preprocess_utterance", "read_transcript", "rtvc_dataset_sources",
]

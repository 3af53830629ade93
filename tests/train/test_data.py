"""Synthesizer dataset items and RTVC's collate (golden/train/synthesizer/batch.npz)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sv2tts.train.data import (SynthesizerDataset, collate_synthesizer, epoch_batches, padded_frames,
                               stop_targets)

EMBED_ATOL = 2e-5


@pytest.fixture(scope="module")
def batch_npz(train_golden):
    return np.load(train_golden / "synthesizer" / "batch.npz")


@pytest.fixture(scope="module")
def dataset(rtvc_syn_dir):
    return SynthesizerDataset.from_folder(rtvc_syn_dir)


def item_numbers(npz) -> list[int]:
    found = sorted(int(k[4:-5]) for k in npz.files if k.startswith("item") and k.endswith("_text"))
    assert found
    return found


def test_items(dataset, batch_npz):
    for i in item_numbers(batch_npz):
        item = dataset[int(batch_npz[f"item{i}_index"])]
        assert item.ids.dtype == np.int32 and item.ids[-1] == 1  # EOS
        np.testing.assert_array_equal(item.ids, batch_npz[f"item{i}_text"])
        assert item.mel.shape == (80, int(batch_npz[f"item{i}_mel_frames"]))
        assert item.index == int(batch_npz[f"item{i}_index"])


def test_collate(dataset, batch_npz, rtvc_syn_dir):
    r = int(batch_npz["r"])
    items = [dataset[int(i)] for i in batch_npz["indices"]]
    batch = collate_synthesizer(items, r, float(batch_npz["mel_pad_value"]))
    np.testing.assert_array_equal(batch.chars.numpy(), batch_npz["chars"])
    assert batch.chars.dtype == torch.int64 and batch.mels.dtype == torch.float32
    np.testing.assert_array_equal([int((row != 0).sum()) for row in batch.chars.numpy()], batch_npz["text_lens"])
    np.testing.assert_array_equal(batch.mel_lengths.numpy(), batch_npz["spec_lens"])
    np.testing.assert_array_equal(batch.indices.numpy(), batch_npz["indices"])
    np.testing.assert_array_equal(batch.stop.numpy(), batch_npz["stop"])
    np.testing.assert_allclose(batch.embeds.numpy(), batch_npz["embeds"], rtol=0, atol=EMBED_ATOL)
    assert tuple(batch.mels.shape) == tuple(batch_npz["mels_shape"])
    pad = float(batch_npz["mel_pad_value"])
    for j, item in enumerate(items):  # the stored mels, right-padded with the pad value
        t = item.mel.shape[1]
        np.testing.assert_array_equal(batch.mels[j, :, :t].numpy(), item.mel)
        assert (batch.mels[j, :, t:].numpy() == pad).all()


def test_padded_length_by_r(dataset, batch_npz):
    items = [dataset[int(i)] for i in batch_npz["indices"]]
    longest = max(it.mel.shape[1] for it in items)
    for r, total in batch_npz["max_spec_len_by_r"]:
        assert padded_frames(longest, int(r)) == int(total)
        assert collate_synthesizer(items, int(r)).mels.shape[-1] == int(total)


def test_stop_targets_last_real_frame_is_one():
    stop = stop_targets([3, 5], 6)
    np.testing.assert_array_equal(stop, [[0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1]])


def test_epoch_batches_cover_every_item_once():
    batches = epoch_batches(10, 4, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(i for b in batches for i in b) == list(range(10))

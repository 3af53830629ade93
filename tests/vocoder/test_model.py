"""WaveRNN networks against RTVC's golden forward outputs (rtol 1e-4, atol 1e-5)."""
import json

import numpy as np
import pytest
import torch

from sv2tts.core.checkpoint import load_state_dict
from sv2tts.vocoder.config import VocoderConfig
from sv2tts.vocoder.model import WaveRNN


@pytest.fixture(scope="module")
def model(golden):
    m = WaveRNN()
    m.load_state_dict(load_state_dict(golden / "vocoder" / "vocoder.pt", "vocoder"), strict=True)
    return m.eval()


@pytest.fixture(scope="module")
def fw(golden):
    return np.load(golden / "vocoder" / "wavernn_forward.npz")


def test_state_dict_keys_and_shapes_match_rtvc(golden):
    manifest = json.loads((golden / "vocoder" / "vocoder_manifest.json").read_text())["state_dict"]
    sd = WaveRNN().state_dict()
    assert len(sd) == 148
    assert {k: list(v.shape) for k, v in sd.items()} == {k: v["shape"] for k, v in manifest.items()}
    assert sd["step"].dtype == torch.int64


def test_config_from_state_dict(golden):
    cfg = VocoderConfig.from_state_dict(load_state_dict(golden / "vocoder" / "vocoder.pt", "vocoder"))
    assert cfg == VocoderConfig()
    assert cfg.n_classes == 512 and cfg.aux_dims == 32 and cfg.fade_out_samples == 4000


def test_upsample_network(model, fw):
    with torch.inference_mode():
        mels, aux = model.upsample(torch.from_numpy(fw["fw_mels"]))
    np.testing.assert_allclose(mels.numpy(), fw["upsample_mels_out"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(aux.numpy(), fw["upsample_aux_out"], rtol=1e-4, atol=1e-5)


def test_teacher_forced_logits(model, fw):
    with torch.inference_mode():
        logits = model(torch.from_numpy(fw["fw_x"]), torch.from_numpy(fw["fw_mels"]))
    np.testing.assert_allclose(logits.numpy(), fw["fw_logits"], rtol=1e-4, atol=1e-5)

"""Make sv2tts/encoder/weights/encoder.pt from resemblyzer's pretrained.pt (run once, by hand).

    pip download --no-deps resemblyzer==0.1.4 -d /tmp/rz
    python tools/strip_encoder_weights.py /tmp/rz/Resemblyzer-0.1.4-py3-none-any.whl

Keeps only ``model_state`` and ``step`` (drops the Adam state: 17 MB -> ~5.7 MB) and records the
source file's sha256 beside the weights.
"""
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import torch

SOURCE_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"
OUT = Path(__file__).resolve().parents[1] / "sv2tts" / "encoder" / "weights"


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as z:
        data = z.read("resemblyzer/pretrained.pt")
        licence = z.read(next(n for n in z.namelist() if n.endswith("dist-info/LICENSE")))
    digest = hashlib.sha256(data).hexdigest()
    if digest != SOURCE_SHA256:
        sys.exit(f"unexpected sha256 {digest}")
    ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    state = {k: v.clone() for k, v in ckpt["model_state"].items()}
    torch.save({"step": int(ckpt["step"]), "model_state": state}, OUT / "encoder.pt")
    (OUT / "LICENSE-resemblyzer.txt").write_bytes(licence)
    (OUT / "SOURCE.txt").write_text(
        "encoder.pt: the GE2E speaker encoder weights shipped in the resemblyzer 0.1.4 wheel as\n"
        "resemblyzer/pretrained.pt (Copyright Corentin Jemine / Resemble AI, Apache License 2.0,\n"
        "see LICENSE-resemblyzer.txt), stripped to 'model_state' and 'step' (optimizer state dropped)\n"
        "by tools/strip_encoder_weights.py. Tensor values are unchanged.\n"
        f"source file: resemblyzer/pretrained.pt, {len(data)} bytes\n"
        f"source sha256: {digest}\n"
        f"training step: {int(ckpt['step'])}\n"
    )


if __name__ == "__main__":
    main(sys.argv[1])

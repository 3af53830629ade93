"""core.native: the C extension's packing and its small-batch float32 product."""
import pytest
import torch

from sv2tts.core.native import Linear, native_module, pack_weights


def test_pack_layouts():
    w = torch.arange(20 * 6, dtype=torch.float32).reshape(20, 6) / 100 - 0.5
    f32, scale, wsum = pack_weights(w, "float32")
    assert f32.shape == (2, 16, 16, 1) and scale is None and wsum is None  # [Np/16][Kp][16][1]
    assert float(f32[0, 3, 5, 0]) == float(w[5, 3]) and float(f32[1, 2, 1, 0]) == float(w[17, 2])
    assert torch.equal(f32[1, :, 4:], torch.zeros(16, 12, 1))  # padding rows 20..31
    assert torch.equal(f32[:, 6:], torch.zeros(2, 10, 16, 1))  # padding columns 6..15
    bf, _, _ = pack_weights(w, "bfloat16")
    assert bf.shape == (2, 8, 16, 2) and bf.dtype == torch.int16  # [Np/16][Kp/2][16][2]
    assert int(bf[0, 1, 5, 1]) == int(w[5, 3].to(torch.bfloat16).view(torch.int16))
    q8, scale, wsum = pack_weights(w, "int8")
    assert q8.shape == (2, 4, 16, 4) and q8.dtype == torch.uint8  # [Np/16][Kp/4][16][4]
    q = q8.permute(0, 2, 1, 3).reshape(32, 16).to(torch.int16) - 128
    assert torch.equal(q[20:], torch.zeros(12, 16, dtype=torch.int16))
    assert torch.equal(q[:, 6:], torch.zeros(32, 10, dtype=torch.int16))
    assert int(q[0, 0]) == -127  # the row's largest magnitude (-0.5) maps to -127
    assert torch.equal(scale[20:], torch.zeros(12)) and float(scale[0]) == pytest.approx(0.5 / 127)
    assert torch.equal(wsum, q.sum(dim=1).float())
    assert torch.allclose(q[:20, :6] * scale[:20, None], w, atol=float(scale.max()) / 2 + 1e-7)


@pytest.mark.parametrize("m", [1, 6, 7, 16])
def test_linear_equals_addmm(m):
    if native_module("float32")[0] is None:
        pytest.skip(f"no C float32 kernel here ({native_module('float32')[1]})")
    g = torch.Generator().manual_seed(m)
    w, b = torch.randn(70, 45, generator=g), torch.randn(70, generator=g)  # widths not multiples of 16
    x = torch.randn(m, 45, generator=g)
    y = Linear.create(w, b)(x)
    assert y.shape == (m, 70)
    torch.testing.assert_close(y, torch.addmm(b, x, w.t()), rtol=1e-5, atol=1e-5)


def test_linear_is_none_where_the_kernel_cannot_run(monkeypatch):
    monkeypatch.setenv("SV2TTS_NATIVE", "0")
    assert native_module("int8") == (None, "disabled by SV2TTS_NATIVE")
    assert Linear.create(torch.zeros(4, 4), torch.zeros(4)) is None


def _kernel_or_skip(precision):
    lib, why = native_module(precision)
    if lib is None:
        pytest.skip(f"no C {precision} kernel here ({why})")


@pytest.mark.parametrize("m", [1, 5, 7])
def test_bfloat16_linear_rounds_weights_and_inputs_to_bfloat16(m):
    """y = bf16(x) @ bf16(W)^T + b, accumulated in float32."""
    _kernel_or_skip("bfloat16")
    g = torch.Generator().manual_seed(m)
    w, b, x = torch.randn(70, 45, generator=g), torch.randn(70, generator=g), torch.randn(m, 45, generator=g)
    y = Linear.create(w, b, "bfloat16")(x)
    as_bf16 = lambda t: t.to(torch.bfloat16).double()  # noqa: E731
    expected = (as_bf16(x) @ as_bf16(w).t() + b.double()).float()
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(y, torch.addmm(b, x, w.t()), rtol=1e-6, atol=1e-6)  # it did round


def test_int8_linear_is_exact_on_its_grids():
    """Weights on the per-row int8 grid and inputs spanning [-127, 127] in integers give the exact
    product (scale 1, centre 0); other inputs are within int8 rounding of float32."""
    _kernel_or_skip("int8")
    g = torch.Generator().manual_seed(0)
    w = torch.randint(-126, 127, (40, 33), generator=g).float()
    w[:, 0] = 127.0  # every row's largest magnitude is 127: per-row scale exactly 1
    x = torch.randint(-126, 127, (3, 33), generator=g).float()
    x[:, 1], x[:, 2] = -127.0, 127.0  # every row spans [-127, 127]: scale 1, centre 0
    b = torch.randn(40, generator=g)
    y = Linear.create(w, b, "int8")(x)
    assert torch.equal(y, (x.double() @ w.double().t() + b.double()).float())
    w2, x2 = torch.randn(70, 45, generator=g), torch.randn(4, 45, generator=g)
    y2, exact = Linear.create(w2, b[:1].expand(70), "int8")(x2), torch.addmm(b[:1].expand(70), x2, w2.t())
    assert float((y2 - exact).norm() / exact.norm()) < 0.02

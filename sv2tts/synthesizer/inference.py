"""Fast, batch-independent Tacotron synthesis (the public path).

Same procedure as RTVC's `generate`, with three differences so that a text's mel does not
depend on the other texts of its batch:
- attention energies at padding positions are -inf (RTVC multiplies them by 0);
- the encoder and postnet CBHGs treat each item at its own length (zeroed padding before
  each convolution, packed bidirectional GRU);
- each item stops at its own stop token (stop > 0.5 once t > 10 frames); the batch goes on
  for the others, and the item's frames after its stop are cut before the postnet.
With pre-net dropout on, the masks are drawn for the whole batch tensor (as in RTVC), so
only dropout-off output is batch-independent.

Speed: the small weights the decoder reads at each step are laid out once for row-vector
products (`x @ W_t`, W_t contiguous (in, out)); the LSTM input and recurrent matrices are
fused into one (4 * lstm, 2 * lstm) matrix per cell, run by the C extension's kernel where it
runs (core.native; float32, or bfloat16 / int8 weights with ``precision``), else by ``addmm``; only the r mel columns of `mel_proj` that are kept are
computed, the stop projection rides along with the mel projection, and the location conv and
its linear layer are folded into one conv. These change float rounding only (~1e-7).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core.native import Linear
from ..core.runtime import ThreadChoice, torch_threads
from .model import Tacotron, dropout


@dataclass
class Generated:
    """One item's result: postnet mel (M, T) float32 tensor, decoder mel, attention, stopped."""

    mel: torch.Tensor  # (M, T) postnet output, RTVC's mel
    decoder_mel: torch.Tensor  # (M, T) decoder output (before the postnet)
    alignment: torch.Tensor | None  # (T / r, N_i) attention weights, when requested
    stopped: bool  # False when the item reached max_frames without its stop token


def _fuse_lstm_cell(cell: torch.nn.LSTMCell, precision: str) -> "_BigLinear":
    """One matrix for an LSTMCell's input and recurrent products: gates = [x, h] @ W^T + b."""
    w_ih, w_hh = cell.weight_ih.detach(), cell.weight_hh.detach()
    fused = _BigLinear(torch.cat([w_ih, w_hh], dim=1), cell.bias_ih.detach() + cell.bias_hh.detach(), precision)
    if fused.weight is not None:  # the cell's weights become views of the fused matrix: no second copy
        n_in = w_ih.shape[1]
        cell.weight_ih.data = fused.weight.t()[:, :n_in]
        cell.weight_hh.data = fused.weight.t()[:, n_in:]
    return fused


class _BigLinear:
    """y = x @ W^T + b for a large W read once per decoder step (memory-bound at small batch):
    the C extension's kernel of ``precision`` where it runs (core.native.Linear), else float32
    ``addmm`` with W^T stored contiguous (in, out)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, precision: str):
        self.native = Linear.create(weight, bias, precision)
        if self.native is None and precision != "float32":
            self.native = Linear.create(weight, bias)  # no kernel of that precision here: float32
        self.bias = bias.contiguous()
        self.weight = None if self.native is not None else weight.t().contiguous()  # (in, out)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.native is not None:
            return self.native(x)
        return torch.addmm(self.bias, x, self.weight)


class FastTacotron:
    """Inference engine over a loaded Tacotron; immutable after construction (thread-safe).

    precision: "float32" (RTVC's numbers, ~1e-7), or "bfloat16" / "int8": the decoder LSTMs'
    weights (17M of the model's 31M parameters, read at every step) in that precision, through
    the C extension's kernels where this CPU has them (else float32).
    """

    def __init__(self, model: Tacotron, precision: str = "float32"):
        model.eval()
        self.precision = precision
        self.model = model
        cfg = model.cfg
        self.cfg = cfg
        self.r = model.r
        if not 1 <= self.r <= cfg.max_r:
            raise ValueError(f"reduction factor r={self.r} outside 1..{cfg.max_r}")
        dec = model.decoder
        with torch.no_grad():
            self.pre1 = (dec.prenet.fc1.weight.t().contiguous(), dec.prenet.fc1.bias.detach())
            self.pre2 = (dec.prenet.fc2.weight.t().contiguous(), dec.prenet.fc2.bias.detach())
            self.p = dec.prenet.p
            gru = dec.attn_rnn
            self.gru = (gru.weight_ih.detach(), gru.weight_hh.detach(), gru.bias_ih.detach(),
                        gru.bias_hh.detach())
            att = dec.attn_net
            self.query = (att.W.weight.t().contiguous(), att.W.bias.detach())
            conv_w = att.conv.weight.detach()  # (filters, 1, K)
            self.loc_w = (att.L.weight @ conv_w.squeeze(1)).unsqueeze(1).contiguous()
            self.loc_b = att.L.weight @ att.conv.bias  # (attn,)
            self.loc_pad = att.conv.padding[0]
            self.v = att.v.weight.detach().contiguous()  # (1, attn)
            self.rnn_in = (dec.rnn_input.weight.t().contiguous(), dec.rnn_input.bias.detach())
            self.lstm1 = _fuse_lstm_cell(dec.res_rnn1, precision)
            self.lstm2 = _fuse_lstm_cell(dec.res_rnn2, precision)
            # mel_proj rows are mel-major (row = mel * max_r + k); keep k < r, then stop.
            n_mels, max_r, r = cfg.n_mels, cfg.max_r, self.r
            rows = (torch.arange(n_mels)[:, None] * max_r + torch.arange(r)[None, :]).reshape(-1)
            w_mel = dec.mel_proj.weight.detach()[rows.to(dec.mel_proj.weight.device)]
            w_stop = dec.stop_proj.weight.detach()  # (1, lstm + memory), x first
            lstm = cfg.lstm_dims
            out_w = torch.zeros(w_stop.shape[1], n_mels * r + 1, dtype=w_mel.dtype,
                                device=w_mel.device)
            out_w[:lstm, : n_mels * r] = w_mel.t()
            out_w[:, n_mels * r] = w_stop[0]
            out_b = torch.zeros(n_mels * r + 1, dtype=w_mel.dtype, device=w_mel.device)
            out_b[-1] = dec.stop_proj.bias.detach()[0]
            self.out = (out_w.contiguous(), out_b)

    @property
    def device(self) -> torch.device:
        return self.model.encoder_proj.weight.device

    @torch.inference_mode()
    def generate(self, sequences: list[list[int]], speaker_embeddings: torch.Tensor, *,
                 max_frames: int = 2000, generator: torch.Generator | None = None,
                 fixed_steps: int | None = None, return_alignments: bool = False
                 ) -> list[Generated]:
        """Synthesise a batch of id sequences.

        sequences: B lists of ids (EOS included); speaker_embeddings (B, S) float32.
        max_frames: cap on decoded frames (RTVC's `steps`); generator: None = dropout off.
        fixed_steps: decode exactly this many steps and ignore stop tokens (benchmarks).
        """
        cfg, r = self.cfg, self.r
        device = self.device
        batch = len(sequences)
        lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
        n = int(lengths.max())
        chars = torch.zeros(batch, n, dtype=torch.long)
        for i, s in enumerate(sequences):
            chars[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        chars = chars.to(device)
        padded = bool((lengths < n).any())
        spk = speaker_embeddings.to(device=device, dtype=torch.float32)

        model = self.model
        enc = model.encoder(chars, spk, lengths if padded else None, generator)  # (B, N, mem)
        enc_proj_t = model.encoder_proj(enc).transpose(1, 2) + self.loc_b[:, None]  # (B, A, N)
        neg_mask = None
        if padded:
            valid = torch.arange(n, device=device)[None, :] < lengths.to(device)[:, None]
            neg_mask = torch.zeros(batch, n, device=device).masked_fill_(~valid, float("-inf"))

        steps = fixed_steps if fixed_steps is not None else -(-max_frames // r)
        capacity = min(steps, _INITIAL_STEPS)  # grown on demand: max_frames may be huge
        mels = torch.empty(batch, cfg.n_mels, capacity * r, device=device)
        align = torch.empty(batch, capacity, n, device=device) if return_alignments else None
        end_step = [steps] * batch  # per item: number of steps kept
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        stop_p = cfg.stop_probability

        # Recurrent state, fresh per call.
        zeros = lambda d: torch.zeros(batch, d, device=device)  # noqa: E731
        attn_h = zeros(cfg.decoder_dims)
        h1, c1 = zeros(cfg.lstm_dims), zeros(cfg.lstm_dims)
        h2, c2 = zeros(cfg.lstm_dims), zeros(cfg.lstm_dims)
        context = zeros(enc.size(2))
        cumulative = torch.zeros(batch, 1, n, device=device)
        prev = zeros(cfg.n_mels)
        n_mel_r = cfg.n_mels * r
        pre1_w, pre1_b = self.pre1
        pre2_w, pre2_b = self.pre2
        q_w, q_b = self.query
        in_w, in_b = self.rnn_in
        lstm1, lstm2 = self.lstm1, self.lstm2
        out_w, out_b = self.out
        p = self.p

        rows: torch.Tensor | None = None  # indices of the items still decoding (None: all)
        most = torch.get_num_threads()
        threads, n_threads, piece_start = ThreadChoice(most), most, 0.0
        with torch_threads(most):  # restores the count the pieces change
            for step in range(steps):
                if step % _PIECE == 0:
                    # Torch's threads for the next steps: one when a busy machine makes more slower
                    # (each op's thread team would wait for time slices). torch.set_num_threads sets
                    # the calling thread's OpenMP team size; torch_threads restores it.
                    if step:
                        threads.record(n_threads, time.perf_counter() - piece_start, _PIECE)
                    n_threads, piece_start = threads.next(), time.perf_counter()
                    torch.set_num_threads(n_threads)
                x = dropout(torch.relu(torch.addmm(pre1_b, prev, pre1_w)), p, generator)
                x = dropout(torch.relu(torch.addmm(pre2_b, x, pre2_w)), p, generator)
                attn_h = torch.gru_cell(torch.cat([context, x], 1), attn_h, *self.gru)
                # Location-sensitive attention in (B, A, N) layout.
                e = F.conv1d(cumulative, self.loc_w, padding=self.loc_pad)
                e += enc_proj_t
                e += torch.addmm(q_b, attn_h, q_w).unsqueeze(2)
                u = torch.matmul(self.v, e.tanh_()).squeeze(1)  # (B, N)
                if neg_mask is not None:
                    u += neg_mask
                scores = torch.softmax(u, dim=1)
                cumulative += scores.unsqueeze(1)
                context = torch.bmm(scores.unsqueeze(1), enc).squeeze(1)
                x = torch.addmm(in_b, torch.cat([context, attn_h], 1), in_w)
                h1, c1 = _lstm(lstm1(torch.cat([x, h1], 1)), c1)
                x = x + h1
                h2, c2 = _lstm(lstm2(torch.cat([x, h2], 1)), c2)
                x = x + h2
                out = torch.addmm(out_b, torch.cat([x, context], 1), out_w)
                frames = out[:, :n_mel_r].view(-1, cfg.n_mels, r)
                prev = frames[:, :, -1]
                if step == capacity:
                    capacity = min(steps, 2 * capacity)
                    mels = _grow(mels, 2, capacity * r)
                    align = None if align is None else _grow(align, 1, capacity)
                if rows is None:
                    mels[:, :, step * r:(step + 1) * r] = frames
                    if align is not None:
                        align[:, step] = scores
                else:
                    mels[rows, :, step * r:(step + 1) * r] = frames
                    if align is not None:
                        align[rows, step] = scores
                if fixed_steps is None and step * r > cfg.min_stop_frames:
                    stopped = torch.sigmoid(out[:, n_mel_r]) > stop_p
                    if bool(stopped.any()):
                        local = torch.nonzero(stopped).flatten()
                        ids = local if rows is None else rows[local]
                        for i in ids.tolist():
                            end_step[i] = step + 1
                            done[i] = True
                        if bool(done.all()):
                            break
                        # Drop the finished items: every row is computed independently, so the
                        # others' numbers do not change (dropout masks shrink with the batch).
                        keep = torch.nonzero(~stopped).flatten()
                        rows = keep if rows is None else rows[keep]
                        attn_h, h1, c1, h2, c2, context, prev = (
                            t.index_select(0, keep) for t in (attn_h, h1, c1, h2, c2, context, prev))
                        cumulative = cumulative.index_select(0, keep)
                        enc = enc.index_select(0, keep)
                        enc_proj_t = enc_proj_t.index_select(0, keep)
                        if neg_mask is not None:
                            neg_mask = neg_mask.index_select(0, keep)

        frames_kept = torch.tensor([e * r for e in end_step], dtype=torch.long)
        t_max = int(frames_kept.max())
        dec_mels = mels[:, :, :t_max]
        varying = bool((frames_kept < t_max).any())
        post = model.postnet_mels(dec_mels, frames_kept if varying else None)
        results = []
        for i in range(batch):
            t_i = int(frames_kept[i])
            results.append(Generated(
                mel=post[i, :, :t_i],
                decoder_mel=dec_mels[i, :, :t_i],
                alignment=None if align is None else align[i, : end_step[i], : int(lengths[i])],
                stopped=fixed_steps is not None or bool(done[i]),
            ))
        return results


_INITIAL_STEPS = 512
_PIECE = 8  # decoder steps between two thread-count decisions


def _grow(t: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """`t` with dimension `dim` enlarged to `size` (new entries uninitialised)."""
    shape = list(t.shape)
    shape[dim] = size - shape[dim]
    return torch.cat([t, t.new_empty(shape)], dim=dim)


def _lstm(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch's LSTM cell update from pre-activation gates (i, f, g, o)."""
    i, f, g, o = gates.chunk(4, 1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


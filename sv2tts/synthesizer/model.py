"""Tacotron (RTVC's SV2TTS variant) as torch modules with RTVC's state_dict keys and shapes.

The modules only hold the networks plus RTVC's exact procedures, kept as the faithful
reference: `forward` (teacher forcing) and `generate_rtvc` (RTVC's `generate` on a padded
batch: padding energies multiplied by 0, GRUs run over padding, one stop decision for the
whole batch). The fast, batch-independent synthesis loop lives in `inference.py`.

Shapes: B batch, N text length (ids incl. EOS and padding), T mel frames, M mel bins (80).
Pre-net dropout draws `bernoulli_(1 - p)` masks from an explicit `torch.Generator`, in RTVC's
call order (2 calls in the encoder pre-net, then 2 per decoder step), so a generator seeded
with s reproduces RTVC run after `torch.manual_seed(s)` on the CPU.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .config import SynthesizerConfig


def dropout(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """RTVC's always-on pre-net dropout; identity when `generator` is None or p == 0.

    Same arithmetic and RNG use as F.dropout(training=True) on the CPU: one bernoulli_(1-p)
    draw of x's shape, scaled by 1 / (1 - p).
    """
    if generator is None or p <= 0.0:
        return x
    noise = torch.empty_like(x).bernoulli_(1.0 - p, generator=generator)
    return x * noise.div_(1.0 - p)


def zoneout(prev: torch.Tensor, new: torch.Tensor, p: float,
            generator: torch.Generator | None) -> torch.Tensor:
    """RTVC's training-time zoneout of an LSTMCell's h: each unit keeps its previous value
    with probability p (mask 1), else takes the new one. One bernoulli_(p) draw of h's shape
    from `generator` (None: torch's global generator, as RTVC)."""
    mask = torch.zeros_like(prev).bernoulli_(p, generator=generator)
    return prev * mask + new * (1 - mask)


class HighwayNetwork(nn.Module):
    """y = g * relu(W1 x) + (1 - g) * x, g = sigmoid(W2 x)."""

    def __init__(self, size: int):
        super().__init__()
        self.W1 = nn.Linear(size, size)
        self.W2 = nn.Linear(size, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.W2(x))
        return g * F.relu(self.W1(x)) + (1.0 - g) * x


class BatchNormConv(nn.Module):
    """Conv1d (no bias, 'same' padding k // 2) -> ReLU (optional) -> BatchNorm1d."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, relu: bool = True):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=1, padding=kernel // 2,
                              bias=False)
        self.bnorm = nn.BatchNorm1d(out_channels)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.relu:
            x = F.relu(x)
        return self.bnorm(x)


class CBHG(nn.Module):
    """Conv bank + max-pool + projections + residual + highways + bidirectional GRU."""

    def __init__(self, K: int, in_channels: int, channels: int, proj_channels: tuple[int, int],
                 num_highways: int):
        super().__init__()
        self.conv1d_bank = nn.ModuleList(
            BatchNormConv(in_channels, channels, k) for k in range(1, K + 1))
        self.maxpool = nn.MaxPool1d(kernel_size=2, stride=1, padding=1)
        self.conv_project1 = BatchNormConv(K * channels, proj_channels[0], 3)
        self.conv_project2 = BatchNormConv(proj_channels[0], proj_channels[1], 3, relu=False)
        if proj_channels[-1] != channels:
            self.pre_highway = nn.Linear(proj_channels[-1], channels, bias=False)
        else:
            self.pre_highway = None
        self.highways = nn.ModuleList(HighwayNetwork(channels) for _ in range(num_highways))
        self.rnn = nn.GRU(channels, channels // 2, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C_in, N) -> (B, N, channels).

        lengths=None is RTVC's procedure (padding is processed like real steps). With
        `lengths` (B,) every item is computed as if it were alone: the time steps past its
        length are zeroed before each convolution and the GRU runs over its length only
        (outputs past the length are 0).
        """
        mask = None
        if lengths is not None:
            steps = torch.arange(x.size(-1), device=x.device)
            mask = (steps[None, :] < lengths[:, None].to(x.device)).unsqueeze(1).to(x.dtype)
            x = x * mask
        residual = x
        seq_len = x.size(-1)
        x = torch.cat([conv(x)[:, :, :seq_len] for conv in self.conv1d_bank], dim=1)
        x = self.maxpool(x)[:, :, :seq_len]
        if mask is not None:
            x = x * mask
        x = self.conv_project1(x)
        if mask is not None:
            x = x * mask
        x = self.conv_project2(x)
        x = x + residual
        x = x.transpose(1, 2)
        if self.pre_highway is not None:
            x = self.pre_highway(x)
        for highway in self.highways:
            x = highway(x)
        if lengths is None:
            return self.rnn(x)[0]
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=seq_len)[0]


class PreNet(nn.Module):
    """Linear -> ReLU -> dropout -> Linear -> ReLU -> dropout (dropout active at inference)."""

    def __init__(self, in_dims: int, fc1_dims: int, fc2_dims: int, p: float):
        super().__init__()
        self.fc1 = nn.Linear(in_dims, fc1_dims)
        self.fc2 = nn.Linear(fc1_dims, fc2_dims)
        self.p = p

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = dropout(F.relu(self.fc1(x)), self.p, generator)
        return dropout(F.relu(self.fc2(x)), self.p, generator)


class Encoder(nn.Module):
    """ids (B, N) + speaker (B, S) -> (B, N, encoder_dims + S)."""

    def __init__(self, cfg: SynthesizerConfig):
        super().__init__()
        self.embedding = nn.Embedding(cfg.num_chars, cfg.embed_dims)
        self.pre_net = PreNet(cfg.embed_dims, cfg.encoder_dims, cfg.encoder_dims, cfg.dropout)
        self.cbhg = CBHG(cfg.encoder_K, cfg.encoder_dims, cfg.encoder_dims,
                         (cfg.encoder_dims, cfg.encoder_dims), cfg.num_highways)

    def forward(self, chars: torch.Tensor, speaker_embedding: torch.Tensor,
                lengths: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        x = self.pre_net(self.embedding(chars), generator)
        x = self.cbhg(x.transpose(1, 2), lengths)
        return add_speaker_embedding(x, speaker_embedding)


def add_speaker_embedding(x: torch.Tensor, speaker_embedding: torch.Tensor) -> torch.Tensor:
    """Append the speaker embedding to every position: (B, N, C) + (B, S) -> (B, N, C + S).

    A 1-D (S,) embedding is used for every item (RTVC's B = 1 branch).
    """
    if speaker_embedding.dim() == 1:
        speaker_embedding = speaker_embedding.unsqueeze(0).expand(x.size(0), -1)
    spk = speaker_embedding.unsqueeze(1).expand(-1, x.size(1), -1)
    return torch.cat([x, spk], dim=2)


class LSA(nn.Module):
    """Location-sensitive attention (state is passed explicitly, nothing is stored)."""

    def __init__(self, attn_dim: int, kernel_size: int = 31, filters: int = 32):
        super().__init__()
        self.conv = nn.Conv1d(1, filters, padding=(kernel_size - 1) // 2,
                              kernel_size=kernel_size, bias=True)
        self.L = nn.Linear(filters, attn_dim, bias=False)
        self.W = nn.Linear(attn_dim, attn_dim, bias=True)
        self.v = nn.Linear(attn_dim, 1, bias=False)

    def forward(self, encoder_seq_proj: torch.Tensor, query: torch.Tensor,
                cumulative: torch.Tensor, chars: torch.Tensor) -> torch.Tensor:
        """RTVC's energies and softmax: (B, N) weights; padding energies are multiplied by 0."""
        processed_query = self.W(query).unsqueeze(1)
        processed_loc = self.L(self.conv(cumulative.unsqueeze(1)).transpose(1, 2))
        u = self.v(torch.tanh(processed_query + encoder_seq_proj + processed_loc)).squeeze(-1)
        u = u * (chars != 0).to(u.dtype)
        return F.softmax(u, dim=1)


@dataclass
class DecoderState:
    """Recurrent state of the decoder for one batch (fresh per call: thread-safe)."""

    attn_hidden: torch.Tensor  # (B, decoder_dims)
    rnn1_hidden: torch.Tensor  # (B, lstm_dims)
    rnn1_cell: torch.Tensor
    rnn2_hidden: torch.Tensor
    rnn2_cell: torch.Tensor
    context: torch.Tensor  # (B, encoder_dims + speaker)
    cumulative: torch.Tensor  # (B, N) attention summed over past steps

    @classmethod
    def zeros(cls, cfg: SynthesizerConfig, batch: int, n: int, device, dtype) -> "DecoderState":
        def z(*shape):
            return torch.zeros(*shape, device=device, dtype=dtype)

        return cls(z(batch, cfg.decoder_dims), z(batch, cfg.lstm_dims), z(batch, cfg.lstm_dims),
                   z(batch, cfg.lstm_dims), z(batch, cfg.lstm_dims),
                   z(batch, cfg.encoder_dims + cfg.speaker_embedding_size), z(batch, n))


class Decoder(nn.Module):
    """One step emits r frames: pre-net, attention GRU, LSA, 2 residual LSTMs, projections."""

    def __init__(self, cfg: SynthesizerConfig):
        super().__init__()
        self.register_buffer("r", torch.tensor(cfg.r, dtype=torch.int32))
        self.n_mels = cfg.n_mels
        self.max_r = cfg.max_r
        self.zoneout_p = cfg.zoneout
        memory = cfg.encoder_dims + cfg.speaker_embedding_size
        self.prenet = PreNet(cfg.n_mels, cfg.decoder_dims * 2, cfg.decoder_dims * 2, cfg.dropout)
        self.attn_net = LSA(cfg.decoder_dims, cfg.lsa_kernel, cfg.lsa_filters)
        self.attn_rnn = nn.GRUCell(memory + cfg.decoder_dims * 2, cfg.decoder_dims)
        self.rnn_input = nn.Linear(memory + cfg.decoder_dims, cfg.lstm_dims)
        self.res_rnn1 = nn.LSTMCell(cfg.lstm_dims, cfg.lstm_dims)
        self.res_rnn2 = nn.LSTMCell(cfg.lstm_dims, cfg.lstm_dims)
        self.mel_proj = nn.Linear(cfg.lstm_dims, cfg.n_mels * cfg.max_r, bias=False)
        self.stop_proj = nn.Linear(memory + cfg.lstm_dims, 1)

    def forward(self, encoder_seq: torch.Tensor, encoder_seq_proj: torch.Tensor,
                prenet_in: torch.Tensor, state: DecoderState, chars: torch.Tensor,
                generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, DecoderState]:
        """RTVC's decoder step. In training mode (`train()`) the residual LSTMs' h go through
        zoneout (p = cfg.zoneout, masks drawn from `generator` after the pre-net's).

        Returns mels (B, M, r), attention (B, 1, N), stop probability (B, 1), new state.
        """
        batch = encoder_seq.size(0)
        r = int(self.r)
        prenet_out = self.prenet(prenet_in, generator)
        attn_hidden = self.attn_rnn(torch.cat([state.context, prenet_out], dim=-1),
                                    state.attn_hidden)
        scores = self.attn_net(encoder_seq_proj, attn_hidden, state.cumulative, chars)
        cumulative = state.cumulative + scores
        scores = scores.unsqueeze(1)
        context = (scores @ encoder_seq).squeeze(1)
        x = self.rnn_input(torch.cat([context, attn_hidden], dim=1))
        h1, c1 = self.res_rnn1(x, (state.rnn1_hidden, state.rnn1_cell))
        if self.training:
            h1 = zoneout(state.rnn1_hidden, h1, self.zoneout_p, generator)
        x = x + h1
        h2, c2 = self.res_rnn2(x, (state.rnn2_hidden, state.rnn2_cell))
        if self.training:
            h2 = zoneout(state.rnn2_hidden, h2, self.zoneout_p, generator)
        x = x + h2
        mels = self.mel_proj(x).view(batch, self.n_mels, self.max_r)[:, :, :r]
        stop = torch.sigmoid(self.stop_proj(torch.cat([x, context], dim=1)))
        new_state = DecoderState(attn_hidden, h1, c1, h2, c2, context, cumulative)
        return mels, scores, stop, new_state


class Tacotron(nn.Module):
    """RTVC's Tacotron; `state_dict()` has exactly RTVC's 170 keys for the default sizes."""

    def __init__(self, cfg: SynthesizerConfig | None = None):
        super().__init__()
        cfg = cfg or SynthesizerConfig()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.encoder_proj = nn.Linear(cfg.encoder_dims + cfg.speaker_embedding_size,
                                      cfg.decoder_dims, bias=False)
        self.decoder = Decoder(cfg)
        self.postnet = CBHG(cfg.postnet_K, cfg.n_mels, cfg.postnet_dims,
                            (cfg.postnet_dims, cfg.n_mels), cfg.num_highways)
        self.post_proj = nn.Linear(cfg.postnet_dims, cfg.n_mels, bias=False)
        self.register_buffer("step", torch.zeros(1, dtype=torch.long))
        self.register_buffer("stop_threshold", torch.tensor(cfg.stop_threshold,
                                                            dtype=torch.float32))
        self.eval()

    @property
    def r(self) -> int:
        return int(self.decoder.r)

    def train(self, mode: bool = True) -> "Tacotron":
        """Training mode (for sv2tts.train): BatchNorm uses batch statistics, the decoder's
        zoneout is on. A new Tacotron is in eval mode, and inference always uses eval."""
        return super().train(mode)

    def postnet_mels(self, mel_outputs: torch.Tensor,
                     lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder mels (B, M, T) -> postnet output (B, M, T), the synthesizer's mel."""
        return self.post_proj(self.postnet(mel_outputs, lengths)).transpose(1, 2)

    def forward(self, chars: torch.Tensor, mels: torch.Tensor,
                speaker_embedding: torch.Tensor, generator: torch.Generator | None = None):
        """RTVC's teacher-forced forward: previous ground-truth frame as input (eval mode, or
        train mode for training; RTVC's forward also adds 1 to `step`: sv2tts.train does that).

        chars (B, N) int64, mels (B, M, T), speaker (B, S) -> (mel_outputs (B, M, T),
        postnet (B, M, T), attention (B, T / r, N), stop (B, T)).
        """
        batch, _, steps = mels.shape
        r = self.r
        encoder_seq = self.encoder(chars, speaker_embedding, generator=generator)
        encoder_seq_proj = self.encoder_proj(encoder_seq)
        state = DecoderState.zeros(self.cfg, batch, chars.size(1), mels.device, mels.dtype)
        go_frame = torch.zeros(batch, self.cfg.n_mels, device=mels.device, dtype=mels.dtype)
        outs, attns, stops = [], [], []
        for t in range(0, steps, r):
            prenet_in = mels[:, :, t - 1] if t > 0 else go_frame
            m, a, s, state = self.decoder(encoder_seq, encoder_seq_proj, prenet_in, state, chars,
                                          generator)
            outs.append(m)
            attns.append(a)
            stops.extend([s] * r)
        mel_outputs = torch.cat(outs, dim=2)
        return (mel_outputs, self.postnet_mels(mel_outputs), torch.cat(attns, 1),
                torch.cat(stops, 1))

    def generate_rtvc(self, chars: torch.Tensor, speaker_embedding: torch.Tensor,
                      steps: int = 2000, generator: torch.Generator | None = None,
                      stop_hook=None):
        """RTVC's `generate`, faithfully, on a padded batch (its numbers, its batch effects).

        Decodes until every item's stop probability > 0.5 and t > 10 frames, or `steps`
        frames. Returns (mel_outputs (B, M, T), postnet (B, M, T), attention (B, T / r, N)).
        `generator` None = dropout off; `stop_hook(stop (B, 1))` sees every step's stop.
        """
        batch = chars.size(0)
        r = self.r
        device, dtype = self.encoder_proj.weight.device, self.encoder_proj.weight.dtype
        encoder_seq = self.encoder(chars, speaker_embedding, generator=generator)
        encoder_seq_proj = self.encoder_proj(encoder_seq)
        state = DecoderState.zeros(self.cfg, batch, chars.size(1), device, dtype)
        prenet_in = torch.zeros(batch, self.cfg.n_mels, device=device, dtype=dtype)
        outs, attns = [], []
        for t in range(0, steps, r):
            m, a, s, state = self.decoder(encoder_seq, encoder_seq_proj, prenet_in, state, chars,
                                          generator)
            outs.append(m)
            attns.append(a)
            if stop_hook is not None:
                stop_hook(s)
            prenet_in = m[:, :, -1]
            if bool((s > 0.5).all()) and t > 10:
                break
        mel_outputs = torch.cat(outs, dim=2)
        return mel_outputs, self.postnet_mels(mel_outputs), torch.cat(attns, 1)

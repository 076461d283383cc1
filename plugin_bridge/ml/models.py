"""The torch models (training only; inference runs their ONNX exports with onnxruntime).

Every model takes ``patch`` ``(B, 2, N_BANDS, N_FRAMES)`` (mid/side band energies per frame, dB)
and ``glob`` ``(B, N_GLOBAL)`` (see `plugin_bridge.ml.features`) and returns ``(B, 2 P)``: ``P``
corrective moves in dB (the chain's EQ gains and the width as 20 log10 width, each within
+-`MOVE_LIMIT_DB` by a scaled tanh), then ``P`` uncertainties (dB, > 0: the expected absolute error
of each move). Input standardisation (per channel and band, per global feature; statistics of the
training split) is part of the module, so the exported ONNX graph takes raw features.

- `CNN`: the baseline, 3 conv blocks (16-32-48 channels), pooled over time only (frequency position
  is what EQ is about), plus the time-averaged spectrum and the global features into a 2-layer head.
- `CNNLarge`: 4 conv blocks (24-48-72-96; two convolutions in the last two), wider head.
- `AST`: a small spectrogram transformer from scratch: 8x8 patch embedding of both channels, a
  learned position embedding, a class token, 3 pre-norm encoder layers (d=96, 4 heads).
"""

from __future__ import annotations

import torch
from torch import nn

from .features import N_BANDS, N_FRAMES, N_GLOBAL

#: Largest corrective move (dB) a model can propose (the EQ gains' range and x0.25 - x4 width).
MOVE_LIMIT_DB = 12.0


class _Standardize(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mel_mean", torch.zeros(1, 2, N_BANDS, 1))  # "mel": the band patch
        self.register_buffer("mel_std", torch.ones(1, 2, N_BANDS, 1))
        self.register_buffer("glob_mean", torch.zeros(1, N_GLOBAL))
        self.register_buffer("glob_std", torch.ones(1, N_GLOBAL))

    def set_stats(self, mel_mean, mel_std, glob_mean, glob_std) -> None:  # noqa: ANN001 - arrays
        """Store training-split statistics (numpy arrays of the buffer shapes)."""
        for name, v in (
            ("mel_mean", mel_mean),
            ("mel_std", mel_std),
            ("glob_mean", glob_mean),
            ("glob_std", glob_std),
        ):
            getattr(self, name).copy_(
                torch.as_tensor(v, dtype=torch.float32).reshape(getattr(self, name).shape)
            )

    def forward(self, mel: torch.Tensor, glob: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (mel - self.mel_mean) / self.mel_std, (glob - self.glob_mean) / self.glob_std


class _Base(nn.Module):
    """Standardisation + a trunk giving a feature vector + a head that sees the time-averaged
    spectrum and the global features too."""

    def __init__(self, n_out: int, trunk_dim: int, hidden: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.n_moves = n_out
        self.norm = _Standardize()
        self.head = nn.Sequential(
            nn.Linear(trunk_dim + 2 * N_BANDS + N_GLOBAL, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, 2 * n_out),
        )

    def trunk(self, mel: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, mel: torch.Tensor, glob: torch.Tensor) -> torch.Tensor:
        m, g = self.norm(mel, glob)
        spectrum = m.mean(dim=3).flatten(1)
        z = torch.cat([self.trunk(m), spectrum, g], dim=1)
        out = self.head(z)
        moves = MOVE_LIMIT_DB * torch.tanh(out[:, : self.n_moves] / 4.0)
        sigma = torch.nn.functional.softplus(out[:, self.n_moves :]) + 0.05
        return torch.cat([moves, sigma], dim=1)


def _block(cin: int, cout: int, double: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.GELU()]
    if double:
        layers += [nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.GELU()]
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class CNN(_Base):
    """Baseline CNN (see the module docstring)."""

    def __init__(self, n_out: int, width: int = 16) -> None:
        chans = (width, 2 * width, 3 * width)
        super().__init__(n_out, chans[-1] * (N_BANDS // 8), 192)
        self.convs = nn.Sequential(
            _block(2, chans[0]), _block(chans[0], chans[1]), _block(chans[1], chans[2])
        )

    def trunk(self, mel: torch.Tensor) -> torch.Tensor:
        return self.convs(mel).mean(dim=3).flatten(1)


class CNNLarge(_Base):
    """Larger CNN: 4 conv blocks (see the module docstring)."""

    def __init__(self, n_out: int, width: int = 24) -> None:
        chans = (width, 2 * width, 3 * width, 4 * width)
        super().__init__(n_out, chans[-1] * (N_BANDS // 16), 256)
        self.convs = nn.Sequential(
            _block(2, chans[0]),
            _block(chans[0], chans[1]),
            _block(chans[1], chans[2], True),
            _block(chans[2], chans[3], True),
        )

    def trunk(self, mel: torch.Tensor) -> torch.Tensor:
        return self.convs(mel).mean(dim=3).flatten(1)


class AST(_Base):
    """Small audio spectrogram transformer (see the module docstring)."""

    def __init__(self, n_out: int, dim: int = 96, depth: int = 3, heads: int = 4, patch: int = 8) -> None:
        super().__init__(n_out, dim, 192)
        self.embed = nn.Conv2d(2, dim, patch, stride=patch)
        n_tokens = (N_BANDS // patch) * (N_FRAMES // patch)
        self.pos = nn.Parameter(torch.randn(1, n_tokens + 1, dim) * 0.02)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        layer = nn.TransformerEncoderLayer(
            dim, heads, 2 * dim, dropout=0.1, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(dim)

    def trunk(self, mel: torch.Tensor) -> torch.Tensor:
        t = self.embed(mel).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1) + self.pos
        return self.out_norm(self.encoder(t)[:, 0])


ARCHITECTURES: dict[str, type[_Base]] = {"cnn": CNN, "cnn_large": CNNLarge, "ast": AST}


def build_model(arch: str, n_out: int, **kwargs) -> _Base:
    """A fresh model of architecture ``arch`` (``cnn``, ``cnn_large``, ``ast``) proposing ``n_out``
    moves (and as many uncertainties)."""
    return ARCHITECTURES[arch](n_out, **kwargs)

"""Latent dynamics predictors: (latent history, action-embedding history) -> next latent."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import mlp


def set_dropout(module: nn.Module, p: float) -> None:
    """Set every dropout probability inside ``module`` to ``p``: each ``nn.Dropout`` and each float ``dropout``
    attribute (attention dropout of ``nn.MultiheadAttention``, predictors that apply dropout functionally).

    Dropout has no parameters, so a model trained without it can be finetuned with it (and back); it acts in
    train mode only.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.0), nn.MultiheadAttention(4, 2))
        >>> set_dropout(net, 0.1)
        >>> net[1].p, net[2].dropout
        (0.1, 0.1)
    """
    if not 0 <= p < 1:
        raise ValueError(f"dropout must lie in [0, 1), got {p!r}")
    for sub in module.modules():
        if isinstance(sub, nn.Dropout):
            sub.p = float(p)
        elif isinstance(getattr(sub, "dropout", None), float):
            sub.dropout = float(p)


class ResidualMLPPredictor(nn.Module):
    """Predicts ``z_{t+1} = z_t + MLP([z_{t-h+1..t}, e_{t-h+1..t}])``.

    Args:
        latent_dim: size of one latent.
        action_embed_dim: size of one action embedding.
        num_hist: number of history frames ``h`` the predictor reads.
        hidden_dim, depth: MLP width and number of hidden layers.
        dropout: dropout probability after each hidden activation (train mode only; the parameters do not
            depend on it, :meth:`set_dropout` changes it).

    Example:
        >>> pred = ResidualMLPPredictor(2, 4, num_hist=3, hidden_dim=32, depth=2)
        >>> pred(torch.zeros(5, 3, 2), torch.zeros(5, 3, 4)).shape
        torch.Size([5, 2])
    """

    def __init__(self, latent_dim: int, action_embed_dim: int, num_hist: int = 1,
                 hidden_dim: int = 256, depth: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_hist = num_hist
        self.net = mlp(num_hist * (latent_dim + action_embed_dim), latent_dim, hidden_dim, depth)
        self.dropout = 0.0
        self.set_dropout(dropout)

    def set_dropout(self, p: float) -> None:
        """Use dropout probability ``p`` from now on (see :func:`set_dropout`)."""
        set_dropout(self, p)

    def forward(self, z_hist: torch.Tensor, e_hist: torch.Tensor) -> torch.Tensor:
        """``z_hist``: ``(..., h, D)``, ``e_hist``: ``(..., h, E)`` -> ``(..., D)``."""
        x = torch.cat([z_hist.flatten(-2), e_hist.flatten(-2)], dim=-1)
        for layer in self.net:  # applied functionally, so the layer indices (parameter names) never change
            x = layer(x)
            if self.dropout and isinstance(layer, nn.GELU):
                x = F.dropout(x, self.dropout, self.training)
        return z_hist[..., -1, :] + x


def frame_causal_mask(num_frames: int, tokens_per_frame: int) -> torch.Tensor:
    """Boolean attention mask ``(F * N, F * N)``: True where a token may NOT attend (a later frame).

    Example:
        >>> frame_causal_mask(2, 1)
        tensor([[False,  True],
                [False, False]])
    """
    frame = torch.arange(num_frames).repeat_interleave(tokens_per_frame)
    return frame.unsqueeze(1) < frame.unsqueeze(0)


class FrameCausalTransformerPredictor(nn.Module):
    """DINO-WM-style predictor: a transformer over (history frames x patch tokens), frame-causal.

    One frame's flat latent is ``num_tokens * token_dim`` visual entries followed
    by ``proprio_dim`` proprio entries. Every token's input is its visual token
    with the frame's proprio embedding and action embedding concatenated onto
    it, plus a learned (frame, token) position embedding. Attention is
    frame-causal: a token sees the tokens of its own and earlier frames only.
    The output at frame ``t`` predicts frame ``t + 1``: visual tokens as a
    residual on frame ``t``'s, proprio as a residual from the mean over the
    frame's tokens.

    Args:
        num_tokens, token_dim: tokens per frame and their size.
        proprio_dim: proprio entries per frame (0: none).
        action_embed_dim: size of one action embedding.
        num_hist: history frames ``h``.
        width, depth, heads: transformer width, layers and attention heads.
        proprio_embed_dim: size of the proprio embedding concatenated to each token.
        dropout: the transformer's dropout probability (attention weights, attention and feed-forward outputs,
            after the feed-forward activation; train mode only; :meth:`set_dropout` changes it).

    Example:
        >>> pred = FrameCausalTransformerPredictor(4, 3, proprio_dim=2, action_embed_dim=5, num_hist=3, width=16)
        >>> pred(torch.zeros(7, 3, 4 * 3 + 2), torch.zeros(7, 3, 5)).shape
        torch.Size([7, 14])
    """

    def __init__(self, num_tokens: int, token_dim: int, proprio_dim: int, action_embed_dim: int, num_hist: int,
                 width: int = 64, depth: int = 2, heads: int = 4, proprio_embed_dim: int = 8,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width={width} must be a multiple of heads={heads}")
        self.num_tokens, self.token_dim, self.proprio_dim, self.num_hist = num_tokens, token_dim, proprio_dim, num_hist
        self.visual_dim = num_tokens * token_dim
        self.proprio_embedding = nn.Linear(proprio_dim, proprio_embed_dim) if proprio_dim else None
        in_dim = token_dim + (proprio_embed_dim if proprio_dim else 0) + action_embed_dim
        self.input = nn.Linear(in_dim, width)
        self.position = nn.Parameter(torch.zeros(num_hist, num_tokens, width))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.token_head = nn.Linear(width, token_dim)
        self.proprio_head = nn.Linear(width, proprio_dim) if proprio_dim else None
        self.register_buffer("mask", frame_causal_mask(num_hist, num_tokens), persistent=False)

    def set_dropout(self, p: float) -> None:
        """Use dropout probability ``p`` in the transformer from now on (see :func:`set_dropout`)."""
        set_dropout(self.transformer, p)

    def forward_frames(self, z_hist: torch.Tensor, e_hist: torch.Tensor) -> torch.Tensor:
        """Next-frame predictions at every history frame: ``(..., h, L)``, ``(..., h, E)`` -> ``(..., h, L)``."""
        lead, h = z_hist.shape[:-2], z_hist.shape[-2]
        if h != self.num_hist or z_hist.shape[-1] != self.visual_dim + self.proprio_dim:
            raise ValueError(f"the predictor expects latents (..., {self.num_hist}, "
                             f"{self.visual_dim + self.proprio_dim}), got {tuple(z_hist.shape)}")
        z = z_hist.reshape(-1, h, z_hist.shape[-1])
        e = e_hist.reshape(-1, h, e_hist.shape[-1])
        b, n = z.shape[0], self.num_tokens
        tokens = z[..., :self.visual_dim].reshape(b, h, n, self.token_dim)
        parts = [tokens]
        if self.proprio_embedding is not None:
            parts.append(self.proprio_embedding(z[..., self.visual_dim:]).unsqueeze(2).expand(b, h, n, -1))
        parts.append(e.unsqueeze(2).expand(b, h, n, e.shape[-1]))
        x = self.input(torch.cat(parts, dim=-1)) + self.position
        x = self.norm(self.transformer(x.reshape(b, h * n, -1), mask=self.mask)).reshape(b, h, n, -1)
        out = [(tokens + self.token_head(x)).flatten(-2)]
        if self.proprio_head is not None:
            out.append(z[..., self.visual_dim:] + self.proprio_head(x.mean(2)))
        return torch.cat(out, dim=-1).reshape(*lead, h, -1)

    def forward(self, z_hist: torch.Tensor, e_hist: torch.Tensor) -> torch.Tensor:
        """``z_hist`` ``(..., h, L)``, ``e_hist`` ``(..., h, E)`` -> the next frame's latent ``(..., L)``."""
        return self.forward_frames(z_hist, e_hist)[..., -1, :]

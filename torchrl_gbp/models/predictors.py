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
    """Boolean attention mask ``(F * N, F * N)``: True where a token may attend (a token of its own or an earlier
    frame), as ``F.scaled_dot_product_attention`` reads it.

    Example:
        >>> frame_causal_mask(2, 1)
        tensor([[ True, False],
                [ True,  True]])
    """
    frame = torch.arange(num_frames).repeat_interleave(tokens_per_frame)
    return frame.unsqueeze(1) >= frame.unsqueeze(0)


class FrameCausalAttention(nn.Module):
    """Pre-norm multi-head self-attention under a boolean mask (DINO-WM's names: ``norm``, ``to_qkv``, ``to_out.0``).

    Example:
        >>> attention = FrameCausalAttention(dim=8, heads=2, dim_head=4)
        >>> attention(torch.zeros(5, 3, 8), frame_causal_mask(3, 1)).shape
        torch.Size([5, 3, 8])
    """

    def __init__(self, *, dim: int, heads: int, dim_head: int, dropout: float = 0.0, qkv_bias: bool = False,
                 project_out: bool = True) -> None:
        super().__init__()
        self.heads, self.dim_head, self.dropout = heads, dim_head, dropout
        inner = heads * dim_head
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=qkv_bias)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout)) if project_out else nn.Identity()

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, n, dim)``; ``allowed`` ``(n, n)``: True where a query token may attend to a key token."""
        b, n, _ = x.shape
        q, k, v = self.to_qkv(self.norm(x)).view(b, n, 3, self.heads, self.dim_head).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=self.dim_head ** -0.5,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class FeedForward(nn.Module):
    """Pre-norm MLP (``net``: 0 LayerNorm, 1 Linear to ``hidden``, GELU, dropout, 4 Linear back, dropout).

    Example:
        >>> FeedForward(dim=8, hidden=16)(torch.zeros(5, 3, 8)).shape
        torch.Size([5, 3, 8])
    """

    def __init__(self, *, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., dim)`` -> ``(..., dim)``."""
        return self.net(x)


class FrameCausalTransformer(nn.Module):
    """Pre-norm transformer over up to ``num_frames`` frames of ``tokens_per_frame`` tokens, frame-causal: a token
    attends to the tokens of its own and earlier frames only.

    ``layers`` of (attention, feed-forward) residual pairs, then ``norm``. The
    parameter names are DINO-WM's ViT predictor's (``layers.i.0.norm``,
    ``layers.i.0.to_qkv``, ``layers.i.0.to_out.0``, ``layers.i.1.net.{0,1,4}``,
    ``norm``), so its state dicts load strictly into
    :class:`~torchrl_gbp.bridges.DinoWMPredictor`; with ``qkv_bias=True`` it
    computes what a ``norm_first`` ``nn.TransformerEncoder`` (GELU, feed-forward
    ``mlp_dim``) and a final ``LayerNorm`` compute, as
    :class:`FrameCausalTransformerPredictor` uses it.

    Args:
        dim: token width.
        depth: number of (attention, feed-forward) layers.
        heads, dim_head: attention heads and their width.
        mlp_dim: feed-forward hidden width.
        num_frames, tokens_per_frame: the longest input, ``num_frames * tokens_per_frame`` tokens.
        dropout: on attention weights, attention and feed-forward outputs and after the feed-forward activation
            (train mode only; :func:`set_dropout` changes it).
        qkv_bias: a bias on the query, key and value projection (DINO-WM has none).
        project_out: an output projection after attention (DINO-WM skips it when one head is as wide as a token).

    Example:
        >>> net = FrameCausalTransformer(dim=8, depth=1, heads=2, dim_head=4, mlp_dim=16, num_frames=3,
        ...                              tokens_per_frame=2)
        >>> net(torch.zeros(5, 2 * 2, 8)).shape   # tokens of the first 2 frames
        torch.Size([5, 4, 8])
    """

    def __init__(self, *, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int, num_frames: int,
                 tokens_per_frame: int, dropout: float = 0.0, qkv_bias: bool = False, project_out: bool = True) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([FrameCausalAttention(dim=dim, heads=heads, dim_head=dim_head, dropout=dropout,
                                                qkv_bias=qkv_bias, project_out=project_out),
                           FeedForward(dim=dim, hidden=mlp_dim, dropout=dropout)])
            for _ in range(depth))
        self.register_buffer("frame_mask", frame_causal_mask(num_frames, tokens_per_frame), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens of the first frames ``(B, n, dim)``, ``n <= num_frames * tokens_per_frame`` -> same shape."""
        n = x.shape[1]
        allowed = self.frame_mask[:n, :n]
        for attention, feed_forward in self.layers:
            x = attention(x, allowed) + x
            x = feed_forward(x) + x
        return self.norm(x)


# nn.TransformerEncoder's parameter names in FrameCausalTransformerPredictor checkpoints saved before it used
# FrameCausalTransformer (layer i: "transformer.layers.i.<old>" -> "transformer.layers.i.<new>"; the final
# LayerNorm "norm" -> "transformer.norm"); the numbers are the same
TORCH_ENCODER_NAMES = {"self_attn.in_proj_weight": "0.to_qkv.weight", "self_attn.in_proj_bias": "0.to_qkv.bias",
                       "self_attn.out_proj.": "0.to_out.0.", "norm1.": "0.norm.", "norm2.": "1.net.0.",
                       "linear1.": "1.net.1.", "linear2.": "1.net.4."}


def renamed_torch_encoder_key(name: str) -> str | None:
    """The :class:`FrameCausalTransformerPredictor` parameter a pre-:class:`FrameCausalTransformer` name stood for
    (``None``: not an old name).

    Example:
        >>> renamed_torch_encoder_key("transformer.layers.1.linear2.bias"), renamed_torch_encoder_key("norm.weight")
        ('transformer.layers.1.1.net.4.bias', 'transformer.norm.weight')
    """
    if name.startswith("norm."):
        return f"transformer.{name}"
    parts = name.split(".", 3)
    if len(parts) == 4 and parts[:2] == ["transformer", "layers"]:
        for old, new in TORCH_ENCODER_NAMES.items():
            if parts[3].startswith(old):
                return f"transformer.layers.{parts[2]}.{new}{parts[3][len(old):]}"
    return None


class FrameCausalTransformerPredictor(nn.Module):
    """DINO-WM-style predictor: a transformer over (history frames x patch tokens), frame-causal.

    One frame's flat latent is ``num_tokens * token_dim`` visual entries followed
    by ``proprio_dim`` proprio entries. Every token's input is its visual token
    with the frame's proprio embedding and action embedding concatenated onto
    it, plus a learned (frame, token) position embedding. Attention is
    frame-causal (:class:`FrameCausalTransformer`, ``qkv_bias=True``, feed-forward
    ``4 * width``): a token sees the tokens of its own and earlier frames only.
    The output at frame ``t`` predicts frame ``t + 1``: visual tokens as a
    residual on frame ``t``'s, proprio as a residual from the mean over the
    frame's tokens.

    Checkpoints saved when the transformer was ``nn.TransformerEncoder`` (its
    parameter names, the final LayerNorm as ``norm``) load: their keys are
    renamed (:func:`renamed_torch_encoder_key`), the numbers are the same.

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
        self.transformer = FrameCausalTransformer(dim=width, depth=depth, heads=heads, dim_head=width // heads,
                                                  mlp_dim=4 * width, num_frames=num_hist,
                                                  tokens_per_frame=num_tokens, dropout=dropout, qkv_bias=True)
        self.token_head = nn.Linear(width, token_dim)
        self.proprio_head = nn.Linear(width, proprio_dim) if proprio_dim else None

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        for key in [k for k in state_dict if k.startswith(prefix)]:
            new = renamed_torch_encoder_key(key[len(prefix):])
            if new is not None:
                state_dict[prefix + new] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

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
        x = self.transformer(x.reshape(b, h * n, -1)).reshape(b, h, n, -1)
        out = [(tokens + self.token_head(x)).flatten(-2)]
        if self.proprio_head is not None:
            out.append(z[..., self.visual_dim:] + self.proprio_head(x.mean(2)))
        return torch.cat(out, dim=-1).reshape(*lead, h, -1)

    def forward(self, z_hist: torch.Tensor, e_hist: torch.Tensor) -> torch.Tensor:
        """``z_hist`` ``(..., h, L)``, ``e_hist`` ``(..., h, E)`` -> the next frame's latent ``(..., L)``."""
        return self.forward_frames(z_hist, e_hist)[..., -1, :]

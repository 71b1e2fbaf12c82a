"""A small vision transformer for small images, the model TransMix is trained with here.

``SmallViT``: non-overlapping ``patch_size`` patches embedded by a strided convolution, a
learned class token and learned position embeddings, ``depth`` pre-norm blocks (LayerNorm,
``nn.MultiheadAttention``, residual; LayerNorm, a GELU MLP, residual), a final LayerNorm, the
class token's features, a linear classifier. The defaults (width 64, 4 blocks of 4 heads, MLP
width 128) give 136k parameters for 28x28 grey images in 4x4 patches (a 7x7 grid, 50 tokens).
Pixels past the last whole patch (a side not divisible by the patch size) are not seen.

Besides the attributes every model of the zoo carries (``mixing_layers = ["", "blocks.0",
"blocks.1"]``, token sequences that Manifold Mixup mixes like feature maps; ``feature_layer =
"pool"``, the class token's (B, D) features; ``head = "fc"``), it names what ``mixkit.TransMix``
reads: ``attention_layer`` (the last block's attention), ``patch_size`` and
``num_prefix_tokens = 1`` (the class token, first); and ``no_weight_decay``, the parameters the
harness's AdamW leaves undecayed (class token, position embeddings).

Weights: truncated normal (std 0.02) for linear layers, the class token and the position
embeddings, zero biases, LayerNorm weight 1 and bias 0, as ViTs are usually initialised; the
patch embedding keeps PyTorch's default.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["SmallViT"]


class _Block(nn.Module):
    """x + attn(norm1(x)), then + mlp(norm2(x))."""

    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ClassTokenPool(nn.Module):
    """(B, N, D) tokens -> (B, D), the first (class) token: the ViT's penultimate features."""

    def forward(self, x: Tensor) -> Tensor:
        return x[:, 0]


class SmallViT(nn.Module):
    """A pre-norm ViT with a class token for (C, H, W) images; see the module docstring."""

    def __init__(self, *, num_classes: int, in_channels: int, image_size: tuple[int, int],
                 patch_size: int, dim: int = 64, depth: int = 4, heads: int = 4, mlp_hidden: int = 128):
        super().__init__()
        height, width = image_size
        if height < patch_size or width < patch_size:
            raise ValueError(f"image_size: expected sides >= the patch size {patch_size}, got {image_size}")
        self.grid = (height // patch_size, width // patch_size)
        self.patch_size = patch_size
        self.num_prefix_tokens = 1
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], dim))
        self.blocks = nn.Sequential(*[_Block(dim, heads, mlp_hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.pool = ClassTokenPool()
        self.fc = nn.Linear(dim, num_classes)
        for p in (self.cls_token, self.pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.MultiheadAttention):
                nn.init.trunc_normal_(m.in_proj_weight, std=0.02)
                nn.init.zeros_(m.in_proj_bias)
        self.mixing_layers = ["", "blocks.0", "blocks.1"]
        self.feature_layer = "pool"
        self.head = "fc"
        self.attention_layer = f"blocks.{depth - 1}.attn"
        self.no_weight_decay = ("cls_token", "pos_embed")

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)              # (B, h*w, D)
        if tokens.shape[1] != self.pos_embed.shape[1] - 1:
            raise ValueError(f"inputs: expected images whose patch grid is {self.grid} (built for it), "
                             f"got shape {tuple(x.shape)}")
        tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1) + self.pos_embed
        return self.fc(self.pool(self.norm(self.blocks(tokens))))

"""zeta-mixup (Abhishek, Brown, Hamarneh, "Multi-sample zeta-mixup: richer, more realistic
synthetic samples from a p-series interpolant", J. Big Data 2024, arXiv 2204.03323).

    x^_p = sum_i W[p, i] x_i,   y^_p = sum_i W[p, i] y_i,   W[p, pi_p(k)] = k^-gamma / C_N(gamma)

row p of W holds the N-term p-series (``C_N`` the N-truncated Riemann zeta), rank 1 on sample p
itself and ranks 2..N on a random arrangement of N - 1 other samples. Draws: ``p``, then W.
"""

from __future__ import annotations

import math

import torch

from .. import checks
from ..base import Mixer
from ..functional import execution, mixing, sampling
from ..params import MixParams, declare_field, expect_tensor, expect_values

__all__ = ["ZetaMixup"]


def _smallest_weight(n: int, gamma: float) -> float:
    """A lower bound on the rank-N weight ``N^-gamma / C_N(gamma)`` of an N-term zeta-mixup row:
    ``C_N <= 1 + integral_1^N t^-gamma dt``. Arithmetic on Python numbers only (no loop), so
    torch.compile folds it."""
    integral = math.log(n) if gamma == 1.0 else (n ** (1.0 - gamma) - 1.0) / (1.0 - gamma)
    return n ** -gamma / (1.0 + integral)


def _check_weights(value, inputs, params):
    b = inputs.shape[0]
    expect_tensor("weights", value, shape=(b, b))
    expect_values("weights", (value >= 0).all(1) & ((value.sum(1) - 1).abs() <= 1e-4),
                  "non-negative rows summing to 1", value.sum(1))


declare_field("weights", "(B, B) float32 weight matrix, row p mixes into sample p (zeta-mixup)",
              _check_weights)


class ZetaMixup(Mixer):
    """zeta-mixup (Abhishek, Brown, Hamarneh; arXiv 2204.03323, J. Big Data 2024).

    Each synthetic sample is a convex combination of N samples:
    ``x_hat_p = sum_i W[p, i] x_i`` and ``y_hat_p = sum_i W[p, i] y_i``, where row p of W holds
    the p-series ``k^-gamma / C_N(gamma)`` (k = 1..N; ``C_N`` the N-truncated Riemann zeta) with
    rank 1 on sample p itself and the other ranks on a random arrangement of N - 1 other samples.
    For gamma >= 1.7286 the own sample outweighs all others together. ``n_mix=None`` uses
    N = batch size, as the paper does; mixup is the case N = 2 with gamma = log2(lam / (1 - lam)).
    ``p`` is the chance that the batch is mixed. Any ``(B, *)`` input (points, signals, images,
    volumes).

    Example:

    ```python
    >>> import torch, mixkit
    >>> zeta = mixkit.ZetaMixup(gamma=2.8, num_classes=10)
    >>> mixed, soft = zeta(torch.rand(16, 3, 32, 32), torch.randint(0, 10, (16,)))
    >>> bool(torch.allclose(soft.sum(1), torch.ones(16)))
    True

    ```
    """

    pairwise = False
    modes = ()
    supports_inplace = False

    def __init__(self, *, gamma: float = 2.8, num_classes=None, n_mix: int | None = None,
                 p: float = 1.0, label_smoothing: float = 0.0, multilabel: bool = False):
        super().__init__(num_classes=num_classes, p=p, label_smoothing=label_smoothing, multilabel=multilabel)
        self.gamma = checks.positive("gamma", gamma)
        self.n_mix = checks.optional_int("n_mix", n_mix, 1)

    def _sample(self, inputs, generator):
        b, dev, _, _, applied = self._start(inputs, generator, count=1)
        weights, _ = sampling.zeta_weight_matrix(b, self.gamma, self.n_mix, generator=generator, device=dev)
        weights = self._where_applied(applied[:1], weights, lambda: torch.eye(b, device=dev))
        return MixParams(lam=weights.diagonal().clone(), applied=applied, weights=weights)

    def _mix(self, inputs, soft, params):
        if params.weights is None or params.weights.shape != (inputs.shape[0],) * 2:
            raise ValueError(
                f"params: expected a ({inputs.shape[0]}, {inputs.shape[0]}) weight matrix, got "
                f"{None if params.weights is None else tuple(params.weights.shape)}"
            )
        return (mixing.blend_matrix(inputs, params.weights, exact=self._exact(inputs)),
                mixing.mix_labels_matrix(soft, params.weights))

    def _unmixed(self, params, rows, spatial):
        return rows & ((params.weights != 0).sum(1) == 1)

    def _exact(self, inputs) -> bool:
        """Whether the product must keep a non-finite sample to the rows that give it weight: only
        where a drawn row can give a sample weight 0 (N < B, or a p-series term below the
        smallest normal number of the weights' or inputs' type; on the CPU also p < 1, whose
        unmixed batch is the identity). On accelerators p < 1 needs nothing here (the unmixed
        batch is restored by a select in ``Mixer``), so N = B there keeps the single product."""
        b, dtype = inputs.shape[0], inputs.dtype
        n = b if self.n_mix is None else min(self.n_mix, b)
        if n < b or (self.p < 1.0 and execution.host_readable(inputs)):
            return True
        tiny = max(torch.finfo(torch.float32).tiny,
                   torch.finfo(dtype).tiny if dtype.is_floating_point else 0.0)
        return _smallest_weight(n, float(self.gamma)) < 2 * tiny

    def _mix_dense(self, masks, params):
        return mixing.blend_matrix(mixing.probability_maps(masks, self.num_classes), params.weights)

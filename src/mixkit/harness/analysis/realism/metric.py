"""The metric: the distance from a synthetic sample to its nearest real one (and, on the
half-moons, to the clean manifold), and how synthetic samples are made from a mixer with the
share of every input in each (``mix_with_weights``)."""

from __future__ import annotations

import copy

import torch
from torch import Tensor


def nearest_real_distance(
    synthetic: Tensor, real: Tensor, k: int = 1, *, chunk: int = 1024, return_index: bool = False
):
    """Distance ``(M,)`` from each row of ``synthetic (M, D)`` to its k-th nearest row of
    ``real (N, D)`` (Euclidean, float64 accumulation, computed in chunks of ``chunk`` rows so that
    memory stays at ``chunk * N`` distances).

    To measure real samples against their own set, pass ``k=2``: the nearest one is the sample
    itself at distance 0. ``return_index=True`` also returns the index ``(M,)`` of that real row.
    """
    if synthetic.ndim != 2 or real.ndim != 2 or synthetic.shape[1] != real.shape[1]:
        raise ValueError(
            f"synthetic, real: expected (M, D) and (N, D) with the same D, got "
            f"{tuple(synthetic.shape)} and {tuple(real.shape)}"
        )
    if not 1 <= k <= real.shape[0]:
        raise ValueError(f"k: expected an integer in [1, {real.shape[0]}], got {k}")
    real64 = real.to(torch.float64)
    dist = torch.zeros(0, dtype=torch.float64)
    index = torch.zeros(0, dtype=torch.int64)
    dists, indices = [dist], [index]
    for start in range(0, synthetic.shape[0], chunk):
        block = synthetic[start : start + chunk].to(torch.float64)
        d = torch.cdist(block, real64, compute_mode="use_mm_for_euclid_dist")
        top = d.topk(k, dim=1, largest=False, sorted=True)
        dists.append(top.values[:, k - 1])
        indices.append(top.indices[:, k - 1])
    dist, index = torch.cat(dists), torch.cat(indices)
    return (dist, index) if return_index else dist


def moons_manifold_distance(points: Tensor) -> Tensor:
    """Distance ``(M,)`` from 2-D points ``(M, 2)`` to the noise-free half-moons of
    scikit-learn's ``make_moons``: the upper unit half circle centred at (0, 0) and the lower unit
    half circle centred at (1, 0.5).

    For a point whose direction from a circle's centre falls inside the arc, the nearest arc point
    is the radial projection (distance ``| |p - c| - 1 |``); otherwise it is an end of the arc.
    """
    p = points.to(torch.float64)

    def arc(centre: tuple[float, float], upper: bool, ends: Tensor) -> Tensor:
        rel = p - torch.tensor(centre, dtype=torch.float64)
        radial = (rel.norm(dim=1) - 1.0).abs()
        inside = rel[:, 1] >= 0 if upper else rel[:, 1] <= 0
        to_ends = torch.cdist(p, ends).min(dim=1).values
        return torch.where(inside, radial, to_ends)

    outer = arc((0.0, 0.0), True, torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64))
    inner = arc((1.0, 0.5), False, torch.tensor([[0.0, 0.5], [2.0, 0.5]], dtype=torch.float64))
    return torch.minimum(outer, inner)


def make_moons(n: int = 512, noise: float = 0.1, seed: int = 0) -> tuple[Tensor, Tensor]:
    """scikit-learn's ``make_moons`` (imported here, lazily) as float32 points ``(n, 2)`` and int64
    labels ``(n,)``."""
    from sklearn.datasets import make_moons as sk_make_moons

    x, y = sk_make_moons(n_samples=n, noise=noise, random_state=seed)
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)


def summary(d: Tensor) -> dict[str, float]:
    d = d.to(torch.float64)
    return {
        "mean": float(d.mean()),
        "median": float(d.median()),
        "p90": float(torch.quantile(d, 0.9)),
    }


def _without_classes(mixer):
    """A copy of ``mixer`` (and of the mixers inside a combination) with ``num_classes=None``, so
    that it accepts any probability labels, such as the one-hot sample ids used below."""
    m = copy.deepcopy(mixer)
    stack = [m]
    while stack:
        cur = stack.pop()
        if hasattr(cur, "num_classes"):
            cur.num_classes = None
        stack.extend(getattr(cur, "mixers", []))
    return m


def mix_with_weights(mixer, x: Tensor, generator: torch.Generator | None = None, *,
                     _stripped: bool = False):
    """Mix ``x (B, *)`` once and return ``(mixed, weights, params)``, where ``weights (B, B)``
    row p holds the share of every input sample in synthetic sample p (for masks: the realised
    pixel share). It is read off by mixing one-hot sample ids as labels, so it holds for every
    mixer and combination whose label mixing matches its input mixing."""
    m = mixer if _stripped else _without_classes(mixer)
    params = m.sample(x, generator=generator)
    ids = torch.eye(x.shape[0], dtype=torch.float32, device=x.device)
    mixed, weights = m.apply(x, ids, params)
    return mixed, weights, params


def synthesize(
    mixer, x: Tensor, batch: int, draws: int, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """Shuffle ``x`` into batches of ``batch`` (the last partial batch dropped) ``draws`` times and
    mix each batch. Returns the synthetic samples, their own-sample weights and the index (into
    ``x``) of each one's dominant parent (the input with the largest weight)."""
    n = x.shape[0]
    m = _without_classes(mixer)
    outs, owns, dominant = [], [], []
    for _ in range(draws):
        perm = torch.randperm(n, generator=generator)
        for start in range(0, n - batch + 1, batch):
            idx = perm[start : start + batch]
            mixed, weights, _ = mix_with_weights(m, x[idx], generator, _stripped=True)
            outs.append(mixed)
            owns.append(weights.diagonal().clone())
            dominant.append(idx[weights.argmax(dim=1)])
    return torch.cat(outs), torch.cat(owns), torch.cat(dominant)

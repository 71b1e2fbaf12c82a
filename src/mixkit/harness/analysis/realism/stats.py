"""Statistics over networks and methods: Spearman's rank correlation, and the mean and sample std
of each method's realism over several networks."""

from __future__ import annotations

import math
from collections.abc import Sequence


def _average_ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n of ``values``; tied values share the mean of the ranks they occupy."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for pos in range(start, end + 1):
            ranks[order[pos]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman_rank_correlation(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation of the pairs ``(x[i], y[i])``: the Pearson correlation of their
    ranks, ties given the average of the ranks they span. NaN when either side has a single
    distinct value (no ranking to correlate)."""
    x, y = [float(v) for v in x], [float(v) for v in y]
    if len(x) != len(y):
        raise ValueError(f"x, y: expected the same length, got {len(x)} and {len(y)}")
    if len(x) < 2:
        raise ValueError(f"x, y: expected at least 2 pairs, got {len(x)}")
    if not all(math.isfinite(v) for v in x + y):
        raise ValueError(f"x, y: expected finite values, got {x} and {y}")
    rx, ry = _average_ranks(x), _average_ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return math.nan
    return sxy / math.sqrt(sxx * syy)


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1; None for a single value), as the comparisons
    compute them."""
    from ...train.compare import mean_std as compare_mean_std

    mean, std = compare_mean_std(list(values))
    return mean, None if math.isnan(std) else std


def summarize_networks(results: Sequence[dict]) -> dict[str, dict]:
    """Per method of several ``image_realism`` results (one per network, same methods): the mean
    and sample std over networks of ``nearest_real`` mean and of ``shift`` (std None for one
    network) and ``n``, the number of networks."""
    if not results:
        raise ValueError("results: expected at least one image_realism result, got none")
    names = list(results[0]["methods"])
    for res in results[1:]:
        if list(res["methods"]) != names:
            raise ValueError(f"results: expected the same methods in every result, got {names} and "
                             f"{list(res['methods'])}")
    return {name: {"nearest_real": mean_std([r["methods"][name]["nearest_real"]["mean"] for r in results]),
                   "shift": mean_std([r["methods"][name]["shift"] for r in results]),
                   "n": len(results)}
            for name in names}

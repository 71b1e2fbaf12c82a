"""Regenerate the published speed figures: ``python benchmarks/run_bench.py``.

Runs the full ``mixkit bench`` (every standard shape, peers, official-style references, masks/s,
train-step overhead, zeta-mixup scaling) and writes ``docs/bench/bench.md``, ``bench.json`` and
``zeta_scaling.png``. Extra arguments go to ``mixkit bench`` (e.g. ``--device cuda``, ``--out``).
Run it on a quiet machine: the figures are medians of wall-clock timings.
"""

import os
import sys

from mixkit.harness.bench import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--out" not in args:
        args += ["--out", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "bench")]
    raise SystemExit(main(args))

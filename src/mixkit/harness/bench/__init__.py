"""Speed benchmark: every mixer against the memory-traffic floor, the peer libraries and
re-implementations of the official algorithms, on the same tensors, in one run.

    python -m mixkit.harness.bench --out docs/bench            # or: mixkit bench --out docs/bench
    mixkit bench --device-path                                 # the device path, without a GPU

Timings are medians of repeated calls after warm-up (CUDA: events with synchronisation). Each
row reports the time, the ratio to the floor (one pre-allocated pass reading two batches and
writing one), the ratio to the fastest peer for the same method, and the extra memory a call
allocates relative to the input's size (CPU: from the profiler's allocation records; CUDA: peak
allocator statistics). On CUDA a row also reports the ratio to the HBM floor: the bytes of that
pass (three times the input's size) over the device's memory bandwidth (``--bandwidth-gbs``;
by default NVIDIA's figure for an H200, else a measured device-to-device copy).

Inputs are made on the device; mixkit's mixers are called with a CPU ``torch.Generator`` (the
recommended form for inputs on any device). A peer that rejects an input is recorded as failed
with the exception's name; an error in mixkit's own entries is raised.

Peers, when installed: timm ``Mixup`` (which mixes in place), torchvision v2 ``MixUp``/``CutMix``
and kornia ``RandomMixUpV2``/``RandomCutMixV2``. "official-style" and "OpenMixup-style" rows are
re-implementations of the upstream code as it runs (``references``).

The parts:

- ``entries``: which entries are benchmarked (the hand-typed tables of mixer names, at its top);
- ``references``: the official-style and OpenMixup-style re-implementations;
- ``timing``: timers, memory probes, the memory bandwidth and the HBM floor;
- ``measure``: the rows of a shape, masks per second, the training step, zeta-mixup's scaling,
  and ``run``;
- ``report``: the targets checked against a run, its Markdown, the plot, reading ``bench.json``;
- ``records``: ``Row`` and ``Report``;
- ``devicepath``: ``mixkit bench --device-path``, the device path without a GPU (ops per call on
  meta tensors, the host time of the device path forced on CPU tensors, inductor kernel counts);
- ``cli``: ``mixkit bench``'s arguments and ``main``.
"""

from .cli import build_parser, main
from .entries import mixkit_entries, official_entries, peer_entries, train_step_mixers
from .measure import (
    DEFAULT_SHAPES,
    bench_masks,
    bench_shape,
    bench_train_step,
    bench_zeta_scaling,
    run,
)
from .measure import small_cnn as small_cnn  # the tests build the training-step model
from .records import NUM_CLASSES, Report, Row
from .references import (
    official_fmix,
    official_fmix_mask,
    official_zeta,
    openmixup_style_gridmix,
    openmixup_style_resizemix,
    openmixup_style_saliencymix,
    openmixup_style_smoothmix,
)
from .report import LARGE, SMALL, plot_zeta_scaling, report_from_json, target_checks, to_markdown
from .report import fmt as fmt  # the tests format cells as the tables do
from .timing import (
    H200_HBM_GBS,
    device_bandwidth_gbs,
    extra_memory_bytes,
    hbm_floor_ms,
    measure_copy_bandwidth_gbs,
    time_ms,
)

__all__ = [
    "DEFAULT_SHAPES", "H200_HBM_GBS", "LARGE", "NUM_CLASSES", "SMALL", "Report", "Row",
    "bench_masks", "bench_shape", "bench_train_step", "bench_zeta_scaling", "build_parser",
    "device_bandwidth_gbs", "extra_memory_bytes", "hbm_floor_ms", "main", "measure_copy_bandwidth_gbs",
    "mixkit_entries", "official_entries", "official_fmix", "official_fmix_mask", "official_zeta",
    "openmixup_style_gridmix", "openmixup_style_resizemix", "openmixup_style_saliencymix",
    "openmixup_style_smoothmix", "peer_entries", "plot_zeta_scaling", "report_from_json", "run",
    "target_checks", "time_ms", "to_markdown", "train_step_mixers",
]

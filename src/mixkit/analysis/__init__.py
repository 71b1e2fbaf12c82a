"""Analyses of mixed samples and trained models (harness side: may use numpy, matplotlib,
scikit-learn, always imported lazily inside the functions that need them).

- ``realism``: distance of synthetic samples to the real data (zeta-mixup's manifold claim),
  on the half-moons (with the exact noise-free manifold) and on images.
- ``cohesion``: within/between-class scatter of penultimate features (SynerMix's claim),
  feature extraction by forward hook, expected calibration error.
- ``gallery``: the figures under docs/gallery (``python -m mixkit.analysis.gallery --out DIR``).
"""

from .cohesion import expected_calibration_error, penultimate_features, scatter_ratios
from .realism import (
    half_moons_realism,
    image_realism,
    load_fashion_mnist,
    mix_with_weights,
    moons_manifold_distance,
    nearest_real_distance,
    plot_half_moons,
)

__all__ = [
    "expected_calibration_error",
    "half_moons_realism",
    "image_realism",
    "load_fashion_mnist",
    "mix_with_weights",
    "moons_manifold_distance",
    "nearest_real_distance",
    "penultimate_features",
    "plot_half_moons",
    "scatter_ratios",
]

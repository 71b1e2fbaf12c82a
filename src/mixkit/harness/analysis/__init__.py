"""Analyses of mixed samples and trained models (harness side: may use numpy, matplotlib,
scikit-learn, always imported lazily inside the functions that need them).

- ``realism``: distance of synthetic samples to the real data (zeta-mixup's manifold claim),
  on the half-moons (with the exact noise-free manifold) and on images.
- ``cohesion``: within/between-class scatter of penultimate features (SynerMix's claim),
  feature extraction by forward hook, expected calibration error (their code lives in
  ``mixkit.harness.train.metrics`` and ``mixkit.harness.features``, which training uses too).
- ``gallery``: the figures under docs/gallery (``python -m mixkit.harness.analysis.gallery --out DIR``).
"""

import importlib

# Names are resolved on first use, so ``python -m mixkit.harness.analysis.realism`` (or ``.gallery``)
# does not import its own module twice and ``import mixkit.harness.analysis`` stays light.
# The modules are named relative to this package.
_HOME = {
    "expected_calibration_error": ".cohesion",
    "penultimate_features": ".cohesion",
    "scatter_ratios": ".cohesion",
    "half_moons_realism": ".realism",
    "image_realism": ".realism",
    "load_fashion_mnist": "..data.datasets",
    "mix_with_weights": ".realism",
    "moons_manifold_distance": ".realism",
    "nearest_real_distance": ".realism",
    "plot_half_moons": ".realism",
}


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_HOME))


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

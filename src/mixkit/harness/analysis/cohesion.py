"""Cohesion, separability and calibration of a trained model's features and outputs.

SynerMix (Xu et al., arXiv 2403.14137) claims intra-class mixing makes features of one class more
cohesive and classes more separable, but its code computes no metric. Here: the traces of the
within-class and between-class scatter matrices of penultimate features (Fisher's criterion in
trace form). ``ratio = tr(S_b) / tr(S_w)`` is unitless and invariant to a global rescaling or
rotation of the features, so it can be compared across models whose features differ in scale;
``within`` and ``between`` alone cannot. Calibration (expected calibration error with
equal-width confidence bins, Guo et al. 2017) is here too, since mixing methods are often
credited with better calibration.

The computations live where the training loop, which reports them for every run, can use them
without importing the analyses: ``scatter_ratios`` and ``expected_calibration_error`` in
``mixkit.harness.train.metrics``, ``penultimate_features`` in ``mixkit.harness.features``.
"""

from __future__ import annotations

from ..features import penultimate_features
from ..train.metrics import expected_calibration_error, scatter_ratios

__all__ = ["scatter_ratios", "penultimate_features", "expected_calibration_error"]

"""Realism of mixed samples: how far synthetic samples fall from the data.

zeta-mixup (Abhishek, Brown, Hamarneh; arXiv 2204.03323) claims its synthetic samples stay nearer
the data manifold than mixup's; the official code only plots them (2-D half-moons, 512 points,
noise 0.1, batch 32, mixup with alpha = 1). Here the claim is measured.

The metric: the Euclidean distance from each synthetic sample to its nearest real sample
(``nearest_real_distance``). Why this one:

- It needs no model of the manifold: the real samples are the only evidence of where the data
  lie, and a sample that sits far from all of them is off the data in the plainest sense.
- It is in the units of the data, so it can be compared with the noise level (half-moons) or with
  the typical gap between a real sample and its nearest neighbour (images), which makes 1.0 read as
  "as close to the data as a real sample is".
- On the half-moons the manifold is known in closed form (two half circles), so the distance to
  the *clean* manifold (``moons_manifold_distance``) is measured as well: the nearest-real
  distance can be small simply because the synthetic point lands between two noisy real points,
  the clean-manifold distance cannot.

Caveats, stated where the numbers are reported (docs/analysis.md): in pixel space an average of
two images is blurry, and Euclidean distance rewards blur (an average can be nearer to some real
image than either parent is), so pixel-space distances flatter blending methods against masking
ones; a learnt feature space (``feature_fn``) is the fairer judge between the two families. Every
synthetic sample's own source is in the real set by default (as in training), so a method that
barely moves its samples scores well: ``shift`` (distance from the dominant parent) is reported
next to the realism numbers so the trade-off is visible.

Run ``python -m mixkit.harness.analysis.realism`` to print the tables of docs/analysis.md. With
``--features-from RUN_DIR [RUN_DIR ...]`` the image tables are measured in each trained network's
feature space and summarised over the networks (mean ± std); ``--gammas`` sweeps zeta-mixup's
gamma; ``--results CSV`` (a ``mixkit compare`` results.csv) sets realism against test error with
their Spearman rank correlation; ``--plot PNG`` draws both against gamma; ``--out MD`` writes
everything printed to a Markdown file.

The parts: ``metric`` (the distances, mixing with the inputs' shares), ``experiments`` (the
half-moons and image experiments, trained feature spaces, the compare method of a mixer),
``stats`` (Spearman's rank correlation, the summary over networks), ``report`` (the tables, the
results CSV, the plots) and ``cli`` (the command line).
"""

from .cli import main
from .experiments import compare_method, half_moons_realism, image_realism, trained_feature_fn
from .experiments import default_mixers as default_mixers  # the tests read the methods' names
from .metric import make_moons, mix_with_weights, moons_manifold_distance, nearest_real_distance
from .report import plot_half_moons, plot_realism_sweep, read_compare_results
from .stats import spearman_rank_correlation, summarize_networks

__all__ = [
    "nearest_real_distance",
    "moons_manifold_distance",
    "make_moons",
    "mix_with_weights",
    "half_moons_realism",
    "plot_half_moons",
    "image_realism",
    "trained_feature_fn",
    "compare_method",
    "spearman_rank_correlation",
    "read_compare_results",
    "summarize_networks",
    "plot_realism_sweep",
    "main",
]

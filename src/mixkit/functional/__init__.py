"""Pure tensor functions under the mixers: no state, randomness only from ``generator``."""

from .masks import (
    binarise_noise,
    box_keep_mask,
    boxes_lambda,
    fourier_frequencies,
    fourier_masks,
    fourier_noise,
    sample_boxes,
    top_k_mask,
)
from .mixing import (
    blend_mask,
    blend_matrix,
    blend_pairs,
    mix_labels_matrix,
    mix_labels_pairs,
    paste_box,
    to_soft_labels,
)
from .sampling import (
    ZETA_DOMINANCE_GAMMA,
    check_generator,
    sample_bernoulli,
    sample_beta,
    sample_pairing,
    sample_uniform,
    zeta_gamma_for_lambda,
    zeta_weight_matrix,
    zeta_weights,
)

__all__ = [
    "ZETA_DOMINANCE_GAMMA",
    "binarise_noise",
    "blend_mask",
    "blend_matrix",
    "blend_pairs",
    "box_keep_mask",
    "boxes_lambda",
    "check_generator",
    "fourier_frequencies",
    "fourier_masks",
    "fourier_noise",
    "mix_labels_matrix",
    "mix_labels_pairs",
    "paste_box",
    "sample_bernoulli",
    "sample_beta",
    "sample_boxes",
    "sample_pairing",
    "sample_uniform",
    "to_soft_labels",
    "top_k_mask",
    "zeta_gamma_for_lambda",
    "zeta_weight_matrix",
    "zeta_weights",
]

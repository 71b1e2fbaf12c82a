"""Hidden-layer mixing, kept as one import place: ``ManifoldMixup`` (``mixkit.manifold``),
``SynerMix`` and ``intra_class_mix`` (``mixkit.synermix``), and the hooks they mix through
(``LayerTaps``, ``mixkit.hooks``). Each method's maths lives in its own module; the model-aware
base they share is ``mixkit.model.ModelMixer``.
"""

from .hooks import LayerTaps
from .manifold import ManifoldMixup
from .synermix import SynerMix, intra_class_mix, intra_class_mix_dense

__all__ = ["LayerTaps", "ManifoldMixup", "SynerMix", "intra_class_mix", "intra_class_mix_dense"]

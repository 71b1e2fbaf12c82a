"""The examples in the public docstrings run and print what they say."""

import doctest

import pytest

import mixkit.compose
import mixkit.hidden
import mixkit.losses
import mixkit.mixers
import mixkit.samplers


@pytest.mark.parametrize("module", [mixkit.mixers, mixkit.compose, mixkit.losses, mixkit.hidden,
                                    mixkit.samplers], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_every_public_mixer_has_an_example():
    for name in ["MixUp", "ZetaMixup", "CutMix", "FMix", "RandomChoice", "Alternate", "Compose",
                 "ManifoldMixup", "SynerMix", "BalancedBatchSampler"]:
        doc = getattr(mixkit, name).__doc__ or ""
        assert ">>>" in doc, f"{name} has no runnable example"

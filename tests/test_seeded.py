"""Seeded outputs are a promise: the same arguments, inputs and generator seed give the same mixed
batch, soft labels, parameters, dense targets, logits, losses and gradients as the recording in
``tests/data/seeded_outputs.pt`` (made by ``scripts/record_seeded.py`` on the code before the
registry rebuild). Mixing outputs are compared bit for bit, but for ζ-mixup's ``W @ x`` (its
mixed batch, soft labels and dense targets, to float32 rounding of the product) and what passes
through a model (logits, losses, gradients, to float32 rounding): matrix products take other CPU
kernels, summing in another order, on other processors. A deliberate change re-records it and says so in the CHANGELOG."""

import importlib.util
import pathlib

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "seeded_outputs.pt"


def _recorder():
    spec = importlib.util.spec_from_file_location("record_seeded", ROOT / "scripts" / "record_seeded.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fresh():
    return _recorder().record()


@pytest.fixture(scope="module")
def stored():
    return torch.load(DATA, weights_only=True)


def test_every_recorded_case_is_reproduced(stored, fresh):
    problems = _recorder().compare(stored, fresh)
    assert not problems, "\n".join(problems[:40])


def test_the_comparison_sees_a_change(stored, fresh):
    cid, case = next(iter(fresh["cases"].items()))
    key = next(k for k, v in case["outputs"].items() if v.is_floating_point())
    changed = {"cases": {**fresh["cases"], cid: {**case, "outputs": {**case["outputs"], key: case["outputs"][key] + 1e-6}}}}
    assert any("differs" in line for line in _recorder().compare(stored, changed))
    assert not _recorder().compare(stored, fresh)


def test_the_comparison_sees_a_change_through_a_model(stored, fresh):
    model_ids = [cid for cid, _, _ in _recorder().model_cases()]
    cid = model_ids[0]
    case = fresh["cases"][cid]
    for key, delta in (("0.loss", 1e-4), ("0.logits", 1e-4)):
        changed = {"cases": {**fresh["cases"], cid: {**case, "outputs": {**case["outputs"],
                                                                     key: case["outputs"][key] + delta}}}}
        assert any(line.startswith(f"{cid}: {key} differs") for line in _recorder().compare(stored, changed))


def test_zetas_products_are_compared_to_float32_rounding_and_the_rest_bit_for_bit(stored, fresh):
    rec = _recorder()

    def nudged(cid, key, by):
        case = fresh["cases"][cid]
        out = case["outputs"][key]
        return {"cases": {**fresh["cases"], cid: {**case, "outputs": {**case["outputs"], key: by(out)}}}}

    one_ulp = lambda t: torch.nextafter(t, torch.full_like(t, 2.0))  # noqa: E731
    assert not rec.compare(stored, nudged("zeta/3d", "0.mixed", one_ulp))
    assert not rec.compare(stored, nudged("cutmix+zeta/1d", "1.soft", one_ulp))
    assert any("zeta/3d: 0.mixed differs" in p for p in rec.compare(stored, nudged("zeta/3d", "0.mixed", lambda t: t + 1e-5)))
    # a NaN where the recording has a number is a difference, however close the rest
    assert rec.compare(stored, nudged("zeta/3d", "0.mixed", lambda t: t.flatten().index_fill(0, torch.tensor([0]), float("nan")).view_as(t)))
    # ζ-mixup's weights and the other mixers' outputs: one ulp is a difference
    assert rec.compare(stored, nudged("zeta/3d", "0.params.weights", one_ulp))
    mixup = "mixup-batch/3d"
    assert any(f"{mixup}: 0.mixed differs" in p for p in rec.compare(stored, nudged(mixup, "0.mixed", one_ulp)))

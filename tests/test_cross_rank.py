"""CrossRank: mixing over the global batch of all ranks (gloo, 2 processes, one spawn for all).

Each rank builds every rank's batch (seeded by rank), so the single-process reference, the
wrapped mixer on the concatenated batch with the same generator seed, is computed on each rank
and compared with that rank's rows of CrossRank's result: outputs, soft rows, masks, input
gradients (of the sum of both ranks' losses) and, for ManifoldMixup inside DDP, parameter
gradients.
"""

import copy
import datetime
import os
import socket

import grid
import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp

from mixkit import MixUp
from mixkit.distributed import CrossRank

B = 8
# every registered mixer and combination once (its first example configuration, tests/grid.py),
# and two more that take other paths: p < 1 with label smoothing, and a soft mask with "flip"
MIXERS = [*grid.one_per_method(grid.mixers(10)), "mixup-elem-p", "fmix-soft-flip"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mixer(name):
    from mixkit import FMix

    extra = {
        "mixup-elem-p": lambda: MixUp(alpha=1.0, num_classes=10, mode="elem", p=0.6, label_smoothing=0.1),
        "fmix-soft-flip": lambda: FMix(alpha=1.0, num_classes=10, max_soft=0.2, pairing="flip"),
    }
    return extra[name]() if name in extra else grid.mixers(10)[name]()


class _MaskAware(MixUp):
    """A mixer whose sample takes masks= (as ClassMix's will): records what it was given."""

    def sample(self, inputs, generator=None, *, masks=None):
        self.seen = masks
        return super().sample(inputs, generator=generator)


def _batch(rank, b=B):
    g = torch.Generator().manual_seed(100 + rank)
    return (torch.randn(b, 3, 8, 8, generator=g), torch.randint(0, 10, (b,), generator=g),
            torch.randint(0, 10, (b, 8, 8), generator=g))


def _diff(a, b):
    return float((a.double() - b.double()).abs().max())


def _worker(rank, port, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=30))
    try:
        results[rank] = _cases(rank)
    finally:
        tdist.destroy_process_group()


def _cases(rank):
    import mixkit.distributed as md
    from mixkit import ManifoldMixup

    out = {}
    x, y, m = _batch(rank)
    batches = [_batch(r) for r in range(2)]
    X, Y, M = (torch.cat(t) for t in zip(*batches, strict=True))
    rows = slice(rank * B, (rank + 1) * B)
    g = lambda s=7: torch.Generator().manual_seed(s)  # noqa: E731

    # counts the gathers (the small description tensors included)
    calls = {"n": 0}
    plain_gather = md._gather_plain

    def counting(*args):
        calls["n"] += 1
        return plain_gather(*args)
    md._gather_plain = counting

    for name in MIXERS:
        # the call, with masks: every output equals the reference's rows
        cr, ref = CrossRank(_mixer(name)), _mixer(name)
        calls["n"] = 0
        mixed, soft, masks = cr(x, y, generator=g(), masks=m)
        gathers = calls["n"]
        r_mixed, r_soft, r_masks = ref(X, Y, generator=g(), masks=M)
        out[f"call {name}"] = max(_diff(mixed, r_mixed[rows]), _diff(soft, r_soft[rows]),
                                  _diff(masks, r_masks[rows]))
        out[f"call gathers {name}"] = gathers
        # sample, then apply replays: global parameters, this rank's rows
        cr, ref = CrossRank(_mixer(name)), _mixer(name)
        params, r_params = cr.sample(x, generator=g(11)), ref.sample(X, generator=g(11))
        parts = getattr(params, "parts", [params])
        r_parts = getattr(r_params, "parts", [r_params])
        mixed, soft = cr.apply(x, y, params)
        r_mixed, r_soft = ref.apply(X, Y, r_params)
        out[f"replay {name}"] = max([_diff(mixed, r_mixed[rows]), _diff(soft, r_soft[rows])]
                                    + [_diff(p.lam, q.lam) for p, q in zip(parts, r_parts, strict=True)])
        out[f"replay lam size {name}"] = parts[0].lam.shape[0]
        # gradients: each rank's loss on its rows; the reference sums both ranks' losses
        weights = [torch.randn(B, 3, 8, 8, generator=g(200 + r)) for r in range(2)]
        xg = x.clone().requires_grad_()
        mixed, soft = CrossRank(_mixer(name))(xg, y, generator=g(3))
        ((mixed * weights[rank]).sum() + (soft * 0.5).sum()).backward()
        Xg = X.clone().requires_grad_()
        r_mixed, _ = _mixer(name)(Xg, Y, generator=g(3))
        sum((r_mixed[r * B:(r + 1) * B] * weights[r]).sum() for r in range(2)).backward()
        out[f"grad {name}"] = _diff(xg.grad, Xg.grad[rows]) / float(Xg.grad.abs().max())

    # ManifoldMixup's order, sample then apply_soft on the same tensor: gradients, and the
    # tensor sample gathered is reused (2 + 2 gathers, not 2 + 3)
    for name in ("mixup-batch", "zeta"):
        cr = CrossRank(_mixer(name))
        xg = x.clone().requires_grad_()
        calls["n"] = 0
        params = cr.sample(xg, generator=g(5))
        mixed, soft = cr.apply_soft(xg, cr.targets(xg, y), params)
        out[f"hook gathers {name}"] = calls["n"]
        (mixed * weights[rank]).sum().backward()
        Xg = X.clone().requires_grad_()
        ref = _mixer(name)
        r_mixed, _ = ref.apply_soft(Xg, ref.targets(Xg, Y), ref.sample(Xg, generator=g(5)))
        sum((r_mixed[r * B:(r + 1) * B] * weights[r]).sum() for r in range(2)).backward()
        out[f"hook grad {name}"] = _diff(xg.grad, Xg.grad[rows]) / float(Xg.grad.abs().max())
    md._gather_plain = plain_gather

    # masks reach a sample that takes them: the global ones
    cr = CrossRank(_MaskAware(alpha=1.0, num_classes=10))
    cr.sample(x, generator=g(), masks=m)
    out["sample masks"] = _diff(cr.mixer.seen, M)

    # channels_last stays channels_last
    mixed, _ = CrossRank(_mixer("mixup-batch"))(x.contiguous(memory_format=torch.channels_last), y, generator=g())
    out["channels_last"] = mixed.is_contiguous(memory_format=torch.channels_last)

    # ManifoldMixup inside DDP: parameter gradients equal the single-process reference's
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 32), torch.nn.ReLU(),
                              torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    plain = copy.deepcopy(net)
    ddp = torch.nn.parallel.DistributedDataParallel(net)
    layers = ["", "1", "3"]
    mm = ManifoldMixup(ddp, layers, mixer=CrossRank(MixUp(alpha=2.0, num_classes=10)))
    mm_ref = ManifoldMixup(plain, layers, mixer=MixUp(alpha=2.0, num_classes=10))
    worst, chosen = 0.0, []
    for step in range(6):
        loss = mm.loss(x, y, generator=g(step))
        loss.backward()
        r_loss = mm_ref.loss(X, Y, generator=g(step))
        r_loss.backward()
        chosen.append((mm.last_layer, mm_ref.last_layer))
        both = loss.detach().clone()
        tdist.all_reduce(both)
        worst = max(worst, abs(float(both) / 2 - float(r_loss)) / float(r_loss))
        for p, q in zip(net.parameters(), plain.parameters(), strict=True):
            worst = max(worst, _diff(p.grad, q.grad) / (float(q.grad.abs().max()) + 1e-12))
            p.grad = q.grad = None
    out["manifold ddp"] = worst
    out["manifold layers"] = chosen

    # a group of one rank: the wrapped mixer, call for call
    own = [tdist.new_group([0]), tdist.new_group([1])][rank]
    for name in ("mixup-batch", "cutmix-elem", "cutmix+zeta"):
        single = CrossRank(_mixer(name), group=own)(x, y, generator=g(), masks=m)
        alone = _mixer(name)(x, y, generator=g(), masks=m)
        out[f"world one {name}"] = all(torch.equal(a, b) for a, b in zip(single, alone, strict=True))

    # errors: raised on both ranks, no hang, and the ranks stay in step afterwards
    cr = CrossRank(_mixer("mixup-batch"))
    wrong = {
        "batch size": lambda: cr(x[: B - 1 + rank], y[: B - 1 + rank]),
        "shape": lambda: cr(x if rank == 0 else x.reshape(B, 3, 4, 16), y),
        "dtype": lambda: cr(x if rank == 0 else x.double(), y),
        "bad label": lambda: cr(x, y if rank == 0 else torch.full((B,), 10)),
        "grad on one rank": lambda: cr(x.clone().requires_grad_(rank == 0), y),
        "masks on one rank": lambda: cr(x, y, masks=m if rank == 0 else None),
        "not a tensor": lambda: cr(x if rank == 0 else x.tolist(), y),
    }
    for case, call in wrong.items():
        try:
            call()
            out[f"error {case}"] = ("no error", "")
        except Exception as err:
            out[f"error {case}"] = (type(err).__name__, str(err))
    mixed, soft, masks = cr(x, y, generator=g(), masks=m)
    r_mixed, r_soft, r_masks = _mixer("mixup-batch")(X, Y, generator=g(), masks=M)
    out["after errors"] = max(_diff(mixed, r_mixed[rows]), _diff(soft, r_soft[rows]))
    return out


@pytest.fixture(scope="module")
def results():
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        shared = manager.dict()
        mp.start_processes(_worker, args=(_free_port(), shared), nprocs=2, start_method="spawn")
        found = dict(shared)
    assert sorted(found) == [0, 1]
    return found


@pytest.mark.slow
@pytest.mark.parametrize("name", MIXERS)
def test_each_ranks_rows_equal_the_single_process_reference(results, name):
    for rank in (0, 1):
        out = results[rank]
        assert out[f"call {name}"] < 1e-6, f"rank {rank}: mixed, soft or masks differ by {out[f'call {name}']}"
        assert out[f"replay {name}"] < 1e-6, f"rank {rank}: sample/apply differ by {out[f'replay {name}']}"
        assert out[f"replay lam size {name}"] == 2 * B  # sample returns the global parameters
        assert out[f"grad {name}"] < 1e-5, f"rank {rank}: input gradient differs by {out[f'grad {name}']}"
        # one description, then inputs, soft rows and masks: each gathered once
        assert out[f"call gathers {name}"] == 4


@pytest.mark.slow
def test_the_tensor_sample_gathered_is_reused_and_gradients_reach_their_rank(results):
    for rank in (0, 1):
        for name in ("mixup-batch", "zeta"):
            assert results[rank][f"hook gathers {name}"] == 4   # not 5: the inputs once
            assert results[rank][f"hook grad {name}"] < 1e-5
        assert results[rank]["sample masks"] == 0.0
        assert results[rank]["channels_last"] is True


@pytest.mark.slow
def test_manifold_mixup_inside_ddp_matches_the_single_process_gradients(results):
    for rank in (0, 1):
        assert results[rank]["manifold ddp"] < 1e-5, f"rank {rank}: relative difference {results[rank]['manifold ddp']}"
        chosen = results[rank]["manifold layers"]
        assert all(a == b for a, b in chosen)
        assert {a for a, _ in chosen} == {"", "1", "3"}, chosen   # the input and both hidden layers


@pytest.mark.slow
def test_a_group_of_one_is_the_wrapped_mixer(results):
    for rank in (0, 1):
        for name in ("mixup-batch", "cutmix-elem", "cutmix+zeta"):
            assert results[rank][f"world one {name}"] is True


@pytest.mark.slow
def test_mismatched_ranks_raise_a_clear_error_on_every_rank(results):
    r0, r1 = results[0], results[1]
    for out in (r0, r1):
        kind, text = out["error batch size"]
        assert kind == "ValueError"
        assert text == ("CrossRank: expected inputs of one shape and dtype on every rank (the global batch is "
                        "their concatenation, and all_gather needs equal shapes), got rank 0: float32 "
                        "(7, 3, 8, 8); rank 1: float32 (8, 3, 8, 8)")
        assert out["error shape"][0] == "ValueError" and "rank 1: float32 (8, 3, 4, 16)" in out["error shape"][1]
        assert out["error dtype"][0] == "ValueError" and "rank 1: float64 (8, 3, 8, 8)" in out["error dtype"][1]
        assert out["error grad on one rank"][0] == "ValueError"
        assert "rank 0: requires grad; rank 1: no grad" in out["error grad on one rank"][1]
        assert out["error masks on one rank"] == (
            "ValueError", "CrossRank: expected masks on every rank or on none, got them on rank 0 only")
        assert out["after errors"] < 1e-6   # the ranks are still in step
    # an error on one rank before the gather: its own there, a RuntimeError naming it elsewhere
    assert r1["error bad label"][0] == "ValueError" and "10" in r1["error bad label"][1]
    assert r0["error bad label"] == (
        "RuntimeError", "CrossRank: expected every rank to reach the gather, got an error on rank 1 before "
        "it (see its traceback); stopping this rank too rather than waiting")
    assert r1["error not a tensor"] == ("TypeError", "inputs: expected a batch tensor (B, ...), got list")
    assert r0["error not a tensor"][0] == "RuntimeError"


def test_without_a_process_group_it_says_what_to_call():
    assert not tdist.is_initialized()
    cr = CrossRank(MixUp(alpha=1.0, num_classes=10))   # creating it needs no process group
    x, y = torch.rand(4, 3, 8, 8), torch.arange(4)
    expected = ("CrossRank: expected an initialised torch.distributed process group (call "
                "torch.distributed.init_process_group first), got none")
    for call in (lambda: cr(x, y), lambda: cr.sample(x), lambda: cr.apply(x, y, MixUp().sample(x))):
        with pytest.raises(RuntimeError) as info:
            call()
        assert str(info.value) == expected


def test_construction_refuses_what_it_cannot_mix():
    from mixkit import Compose, CutMix

    with pytest.raises(TypeError, match=r"mixer: expected a mixkit mixer or combination .*got Linear"):
        CrossRank(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"expected inplace=False .*got inplace=True on CutMix"):
        CrossRank(Compose([MixUp(), CutMix(inplace=True)]))
    with pytest.raises(TypeError, match="got a CrossRank"):
        CrossRank(CrossRank(MixUp()))
    with pytest.raises(TypeError, match="group: expected None .* got int"):
        CrossRank(MixUp(), group=0)
    cr = CrossRank(MixUp(num_classes=7, label_smoothing=0.1, multilabel=True))
    assert (cr.num_classes, cr.label_smoothing, cr.multilabel) == (7, 0.1, True)
    assert repr(cr) == "CrossRank(MixUp(num_classes=7, label_smoothing=0.1, multilabel=True))"

"""mixkit's hidden-layer methods and mixers under DistributedDataParallel (gloo, 2 processes).

For every method and DDP setting, the gradients DDP leaves on each rank must equal the average
over ranks of the gradients a plain copy of the model computes on the same rank's batch with the
same random draws: DDP (buckets, overlap with backward) changes where the averaging happens, not
what is averaged, also for SynerMix's two forwards and its direct call of the head.
"""

import os
import socket
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp

from mixkit import registry

DEFAULTS = SimpleNamespace(alpha=1.0, mix_mode="batch", zeta_gamma=2.8, decay_power=3.0, fmix_spectrum="paper",
                           manifold_alpha=1.0, syner_beta=None)


def _cases():
    """Every harness method the small CNN can run, and the model-aware ones also with DDP's
    static graph and unused-parameter search; SynerMix also in one pass."""
    from mixkit.harness.models import build_model

    model = build_model("small-cnn", num_classes=10, input_shape=(1, 16, 16))
    runs = [m for m in registry.methods() if m.build is not None and all(hasattr(model, a) for a in m.needs)]
    cases = [(m.name, {}) for m in runs]
    cases += [(m.name, opt) for m in runs if m.kind == "model"
              for opt in ({"static_graph": True}, {"find_unused_parameters": True})]
    single = next(m.name for m in runs if m.traits.get("needs_originals") and m.baselines)
    return cases + [(single + "+single-pass", {})]


CASES = _cases()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _method(name, model):
    """The loss of method ``name`` as the harness builds it, on ``model`` (DDP or not)."""
    from mixkit.losses import soft_target_cross_entropy

    base, _, single = name.partition("+single-pass")
    method = registry.get(base)
    built = registry.build(base, DEFAULTS, 10, model)
    if name.endswith("+single-pass"):
        built.single_pass = True
    if method.kind == "input":
        def loss(x, y, g):
            mixed, soft = built(x, y, generator=g)
            return soft_target_cross_entropy(model(mixed), soft)
        return loss
    if built.needs_originals:
        return lambda x, y, g: built.loss(x, x.flip(-1), y, generator=g)
    return lambda x, y, g: built.loss(x, y, generator=g)


def _worker(rank, port, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        from mixkit.harness.models import build_model

        out = {}
        for name, options in CASES:
            torch.manual_seed(0)
            plain = build_model("small-cnn", num_classes=10, input_shape=(1, 16, 16))
            wrapped = build_model("small-cnn", num_classes=10, input_shape=(1, 16, 16))
            wrapped.load_state_dict(plain.state_dict())
            ddp = torch.nn.parallel.DistributedDataParallel(wrapped, **options)
            data = torch.Generator().manual_seed(100 + rank)
            x = torch.randn(16, 1, 16, 16, generator=data)
            y = torch.cat([torch.arange(8), torch.arange(8)])     # every class twice (SynerMix)
            grads = {}
            for key, model in (("plain", plain), ("ddp", ddp)):
                model.train()
                loss = _method(name, model)(x, y, torch.Generator().manual_seed(7 + rank))
                loss.backward()
                grads[key] = [p.grad.clone() for p in plain.parameters()] if key == "plain" else \
                    [p.grad.clone() for p in wrapped.parameters()]
            for g in grads["plain"]:
                tdist.all_reduce(g)
                g /= 2
            out[f"{name} {options}"] = max(float((a - b).abs().max() / (b.abs().max() + 1e-12))
                                           for a, b in zip(grads["ddp"], grads["plain"], strict=True))
        results[rank] = out
    finally:
        tdist.destroy_process_group()


@pytest.mark.slow
def test_ddp_gradients_equal_the_average_of_each_ranks_gradients():
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        results = manager.dict()
        mp.start_processes(_worker, args=(_free_port(), results), nprocs=2, start_method="spawn")
        results = dict(results)
    assert sorted(results) == [0, 1]
    for rank in (0, 1):
        assert len(results[rank]) == len(CASES)
        for case, rel in results[rank].items():
            assert rel < 1e-5, f"rank {rank}, {case}: DDP gradients differ by {rel:.2e} (relative)"


def _stop_worker(rank, port, results):
    """Rank 1's loss is NaN, rank 0's finite: both must stop at the same step with the same words
    (before the fix, rank 1 raised and rank 0 waited in the next collective for ever)."""
    from mixkit.harness.train import dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    tdist.init_process_group("gloo", rank=rank, world_size=2, timeout=__import__("datetime").timedelta(seconds=60))
    try:
        info = dist.DistInfo(rank=rank, world_size=2)
        said = []
        for step in range(3):
            loss = torch.tensor(float("nan") if (rank == 1 and step == 1) else 0.5 + step)
            problem = dist.non_finite(dist.every_rank(loss, info, torch.device("cpu")), info, "the loss")
            if problem:
                said.append((step, problem))
                break
        tdist.barrier()  # both reach it: neither is left waiting
        results[rank] = said
    finally:
        tdist.destroy_process_group()


@pytest.mark.slow
def test_a_non_finite_loss_on_one_rank_stops_every_rank_at_the_same_step():
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        results = manager.dict()
        mp.start_processes(_stop_worker, args=(_free_port(), results), nprocs=2, start_method="spawn")
        results = dict(results)
    want = [(1, "the loss is nan on rank 1 (of 2 ranks; every rank stops here)")]
    assert results == {0: want, 1: want}


def test_non_finite_names_the_ranks_and_stays_plain_in_one_process():
    from mixkit.harness.train import dist

    one = dist.DistInfo()
    assert dist.non_finite(dist.every_rank(torch.tensor(0.3), one, torch.device("cpu")), one, "the loss") is None
    assert dist.non_finite(torch.tensor([float("inf")]), one, "the loss") == "the loss is inf"
    two = dist.DistInfo(rank=0, world_size=2)
    assert dist.non_finite(torch.tensor([0.2, float("nan")]), two, "the loss") == \
        "the loss is nan on rank 1 (of 2 ranks; every rank stops here)"

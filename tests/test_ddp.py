"""mixkit's hidden-layer methods and mixers under DistributedDataParallel (gloo, 2 processes).

For every method and DDP setting, the gradients DDP leaves on each rank must equal the average
over ranks of the gradients a plain copy of the model computes on the same rank's batch with the
same random draws: DDP (buckets, overlap with backward) changes where the averaging happens, not
what is averaged, also for SynerMix's two forwards and its direct call of the head.
"""

import os
import socket

import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp

CASES = [
    ("mixup", {}), ("manifold", {}), ("manifold", {"static_graph": True}),
    ("manifold", {"find_unused_parameters": True}), ("synermix", {}), ("synermix-single-pass", {}),
    ("synermix-manifold", {}), ("synermix-manifold", {"static_graph": True}),
    ("synermix-manifold", {"find_unused_parameters": True}), ("cutmix", {}),
]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _method(name, model):
    from mixkit import CutMix, ManifoldMixup, MixUp, SynerMix
    from mixkit.losses import soft_target_cross_entropy

    def input_mixer(mixer):
        def loss(x, y, g):
            mixed, soft = mixer(x, y, generator=g)
            return soft_target_cross_entropy(model(mixed), soft)
        return loss

    if name == "mixup":
        return input_mixer(MixUp(alpha=1.0, num_classes=10))
    if name == "cutmix":
        return input_mixer(CutMix(alpha=1.0, num_classes=10))
    layers = ["", "layer1", "layer2"]
    if name == "manifold":
        mm = ManifoldMixup(model, layers, alpha=2.0, num_classes=10)
        return lambda x, y, g: mm.loss(x, y, generator=g)
    inter = (ManifoldMixup(model, layers, alpha=1.0, num_classes=10) if name == "synermix-manifold"
             else MixUp(alpha=1.0, num_classes=10))
    sm = SynerMix(model, "pool", "fc", beta=0.1, inter=inter, num_classes=10,
                  single_pass=name == "synermix-single-pass")
    return lambda x, y, g: sm.loss(x, x.flip(-1), y, generator=g)


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

"""What TransMix adds to a ViT training step, against the same step with CutMix's area labels.

    python benchmarks/transmix_overhead.py [--batch 32] [--repeats 7] [--device cpu|cuda]
                                           [--out docs/bench/transmix_overhead.md]

Both steps mix the batch with the same CutMix parameters and run forward, soft-target
cross-entropy and backward on the same model; TransMix also recomputes the class token's
attention row in the hooked layer (one key projection without gradient) and re-weights the
labels. Models: timm's ``vit_tiny_patch16_224`` and ``vit_small_patch16_224`` (random weights,
224 x 224) and the harness's ``small-vit`` (28 x 28). The two steps are timed alternately (A, B,
A, B, ...) so that whatever else runs on the machine weighs on both alike; the median of
``--repeats`` timings of each is printed with their ratio.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

import mixkit
from mixkit.harness.models import build_model


def _models(device: torch.device):
    import timm
    for name in ("vit_tiny_patch16_224", "vit_small_patch16_224"):
        model = timm.create_model(name, pretrained=False, num_classes=10).to(device)
        yield name, model, f"blocks.{len(model.blocks) - 1}.attn", (3, 224, 224)
    vit = build_model("small-vit", num_classes=10, input_shape=(1, 28, 28)).to(device)
    yield "harness small-vit", vit, vit.attention_layer, (1, 28, 28)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model, layer: str, shape, batch: int, repeats: int, device: torch.device) -> tuple[float, float]:
    """Median seconds of one CutMix step and of one TransMix step (same draws)."""
    model.train()
    cutmix = mixkit.CutMix(alpha=1.0, num_classes=10)
    tm = mixkit.TransMix(model, layer, mixer=mixkit.CutMix(alpha=1.0, num_classes=10), num_classes=10)
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def cutmix_step(seed):
        mixed, soft = cutmix(x, y, generator=torch.Generator().manual_seed(seed))
        mixkit.soft_target_cross_entropy(model(mixed), soft).backward()

    def transmix_step(seed):
        tm.loss(x, y, generator=torch.Generator().manual_seed(seed)).backward()

    times = {cutmix_step: [], transmix_step: []}
    try:
        for step in (cutmix_step, transmix_step):      # warm-up
            step(0)
        for r in range(repeats):
            for step in (cutmix_step, transmix_step):
                model.zero_grad(set_to_none=True)
                _sync(device)
                t0 = time.perf_counter()
                step(r + 1)
                _sync(device)
                times[step].append(time.perf_counter() - t0)
    finally:
        tm.taps.remove()
    return statistics.median(times[cutmix_step]), statistics.median(times[transmix_step])


def main() -> None:
    parser = argparse.ArgumentParser(description="TransMix's cost over a CutMix training step")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="also write the table here (Markdown)")
    args = parser.parse_args()
    device = torch.device(args.device)
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{platform.machine()} CPU, {torch.get_num_threads()} threads")
    lines = [f"TransMix over CutMix, one training step (forward + backward), batch {args.batch}, "
             f"median of {args.repeats}; {where}, torch {torch.__version__}, mixkit {mixkit.__version__}",
             "", "| model | input | CutMix step (ms) | TransMix step (ms) | TransMix / CutMix |",
             "|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for name, model, layer, shape in _models(device):
        plain, trans = measure(model, layer, shape, args.batch, args.repeats, device)
        row = (f"| {name} | {'x'.join(map(str, shape))} | {1e3 * plain:.1f} | {1e3 * trans:.1f} | "
               f"{trans / plain:.3f} |")
        print(row, flush=True)
        lines.append(row)
    if args.out:
        from mixkit.harness.files import atomic_write_text
        atomic_write_text(args.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

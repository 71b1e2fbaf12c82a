"""The small-batch and elem speed targets, timed alternately against the peers in one loop.

``python benchmarks/paired_targets.py`` (CPU, 2 threads). ``mixkit bench`` times each entry in
its own block, so allocator state and machine drift between blocks move the ratios (timm's elem
mode, which clones the batch, measured 6.4 and 17.6 ms in two full runs an hour apart). Here each
round calls every entry once, in turn, and the ratio is the median over rounds of mixkit's best
form against the fastest peer of that round.
"""

import argparse
import statistics
import time
import warnings

import torch

import mixkit


def _entries(mode: str, method: str):
    from timm.data import Mixup as TimmMixup
    from torchvision.transforms import v2

    cls = {"mixup": mixkit.MixUp, "cutmix": mixkit.CutMix}[method]
    mine = {f"mixkit {mode}" + (" inplace" if inplace else ""):
            cls(num_classes=10, mode=mode, inplace=inplace) for inplace in (False, True)}
    alphas = {"mixup": dict(mixup_alpha=1.0, cutmix_alpha=0.0),
              "cutmix": dict(mixup_alpha=0.0, cutmix_alpha=1.0)}
    peers = {f"timm {mode}": TimmMixup(**alphas[method], mode=mode, num_classes=10)}
    if mode == "batch":
        tv = {"mixup": v2.MixUp, "cutmix": v2.CutMix}[method]
        peers["torchvision v2 batch"] = tv(alpha=1.0, num_classes=10)
    return mine, peers


def measure(shape, method, mode, rounds):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=g)
    y = torch.randint(0, 10, (shape[0],), generator=g)
    mine, peers = _entries(mode, method)
    calls = {**{k: (lambda m=m: m(x, y, generator=g)) for k, m in mine.items()},
             **{k: (lambda p=p: p(x, y)) for k, p in peers.items()}}
    times = {k: [] for k in calls}
    for _ in range(3):
        for f in calls.values():
            f()
    for _ in range(rounds):
        for k, f in calls.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    ratios = [min(times[k][i] for k in mine) / min(times[k][i] for k in peers) for i in range(rounds)]
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}, statistics.median(ratios)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    cases = [((128, 3, 32, 32), "mixup", "batch", 1.0), ((128, 3, 32, 32), "cutmix", "batch", 1.0),
             ((64, 3, 224, 224), "cutmix", "elem", 0.25), ((64, 3, 224, 224), "mixup", "elem", 0.25)]
    print("| shape | method | mode | median ms per entry | mixkit / fastest peer | target |")
    print("|---|---|---|---|---:|---:|")
    for shape, method, mode, limit in cases:
        rounds = args.rounds if shape[-1] < 100 else max(10, args.rounds // 8)
        ms, ratio = measure(shape, method, mode, rounds)
        cells = ", ".join(f"{k} {v:.3g}" for k, v in ms.items())
        print(f"| {'×'.join(map(str, shape))} | {method} | {mode} | {cells} | {ratio:.2f} | ≤ {limit} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Before/after timing of every mixkit bench entry against another checkout of mixkit, in one run.

``python benchmarks/compare_versions.py OLD_SRC`` where OLD_SRC is the ``src`` folder of the other
checkout (e.g. a ``git worktree`` of an earlier commit). The old package is imported under the name
``mixkit_old`` (its imports are relative), and both versions are timed alternately on the same
inputs, so the ratio new / old is free of machine drift. Prints a Markdown table.
"""

import argparse
import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time

import torch

SHAPES = [(128, 3, 32, 32), (64, 3, 224, 224), (256, 1, 40), (64, 1, 16000), (16, 1, 32, 32, 32)]


def _load_old(src: str):
    tmp = tempfile.mkdtemp()
    shutil.copytree(os.path.join(src, "mixkit"), os.path.join(tmp, "mixkit_old"))
    sys.path.insert(0, tmp)
    return importlib.import_module("mixkit_old")


def _entries(pkg, ndim):
    mask_ok = 3 <= ndim <= 5
    out = []
    for mode in ("batch", "elem"):
        for inplace in (False, True):
            tag = mode + (" inplace" if inplace else "")
            kw = dict(num_classes=10, mode=mode, inplace=inplace)
            out.append(("mixup " + tag, pkg.MixUp(**kw)))
            if mask_ok:
                out.append(("cutmix " + tag, pkg.CutMix(**kw)))
                out.append(("fmix " + tag, pkg.FMix(**kw)))
    if mask_ok:
        for cls in ("ResizeMix", "SaliencyMix", "GridMix", "SmoothMix"):
            for mode in ("batch", "elem"):
                out.append((f"{cls.lower()} {mode}", getattr(pkg, cls)(num_classes=10, mode=mode)))
    out.append(("zeta N=B", pkg.ZetaMixup(num_classes=10)))
    out.append(("zeta N=4", pkg.ZetaMixup(num_classes=10, n_mix=4)))
    if mask_ok:
        out.append(("mixup+fmix", pkg.Alternate([pkg.MixUp(), pkg.FMix()], num_classes=10)))
        out.append(("cutmix+zeta", pkg.Compose([pkg.CutMix(), pkg.ZetaMixup()], num_classes=10)))
    return out


def _time(fn, x, y, g) -> float:
    t = time.perf_counter()
    fn(x, y, generator=g)
    return time.perf_counter() - t


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_src")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    import mixkit

    old = _load_old(args.old_src)
    print("| shape | entry | old ms | new ms | new / old |\n|---|---|---:|---:|---:|")
    for shape in SHAPES:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(shape, generator=g)
        y = torch.randint(0, 10, (shape[0],), generator=g)
        pairs = zip(_entries(mixkit, len(shape)), _entries(old, len(shape)), strict=True)
        for (name, new_m), (_, old_m) in pairs:
            t_new, t_old = [], []
            for _ in range(3):  # warm-up
                new_m(x, y, generator=g)
                old_m(x, y, generator=g)
            for i in range(args.repeats):
                pair = [(new_m, t_new), (old_m, t_old)]
                for m, store in pair if i % 2 == 0 else pair[::-1]:
                    store.append(_time(m, x, y, g))
            ratio = statistics.median(n / o for n, o in zip(t_new, t_old, strict=True))
            print(f"| {'×'.join(map(str, shape))} | {name} | {1e3 * statistics.median(t_old):.3f} | "
                  f"{1e3 * statistics.median(t_new):.3f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

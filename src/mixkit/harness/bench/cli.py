"""The ``mixkit bench`` command line: its arguments, checked before anything is measured, and
``main``."""

from __future__ import annotations

import argparse
import errno
import math
import os
import sys

import torch

from .measure import run
from .report import to_markdown

DESCRIPTION = ("Speed benchmark: every mixer against the memory-traffic floor, the peer libraries and "
               "re-implementations of the official algorithms, on the same tensors, in one run.")


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.lower().replace("x", ",").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape like 128x3x32x32, got {text!r}") from None
    if len(shape) < 2 or any(v < 1 for v in shape):
        raise argparse.ArgumentTypeError(f"expected a shape like 128x3x32x32, got {text!r}")
    return shape


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="mixkit bench", description=DESCRIPTION)
    p.add_argument("--shapes", type=_parse_shape, nargs="+", default=None,
                   help="input shapes, e.g. 128x3x32x32 64x1x16000 (default: the standard five)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--repeats", type=int, default=15, help="timed calls per entry (median reported)")
    p.add_argument("--no-peers", action="store_true", help="skip peers and official-style")
    p.add_argument("--quick", action="store_true", help="only the shape tables")
    p.add_argument("--out", default=None, help="directory for bench.md, bench.json, zeta_scaling.png "
                   "(--device-path: devicepath.md, devicepath.json)")
    p.add_argument("--bandwidth-gbs", type=float, default=None, metavar="GB/S",
                   help="CUDA: memory bandwidth for the HBM floor column (default: 4800 on an H200, "
                   "else measured from a large device-to-device copy)")
    dp = p.add_argument_group("device path without a GPU (devicepath)")
    dp.add_argument("--device-path", action="store_true",
                    help="instead of the timings: ops per call on meta tensors and the host time of the "
                    "device path forced on small CPU tensors, mixkit beside torchvision and kornia")
    dp.add_argument("--calls", type=int, default=200, help="--device-path: timed calls per entry (median)")
    dp.add_argument("--no-compile", action="store_true",
                    help="--device-path: skip the inductor kernel counts (compiled apply and whole call)")
    return p


def _check_out(out) -> None:
    """A bad ``--out`` fails now, not after the measurements."""
    if out is not None:
        os.makedirs(out, exist_ok=True)
        if not os.access(out, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "the directory is not writable", str(out))


def _device_path(args, argv) -> int:
    if args.calls < 1:
        print(f"mixkit bench: --calls expected >= 1, got {args.calls}", file=sys.stderr)
        return 2
    _check_out(args.out)
    from .devicepath import main as device_path_main

    return device_path_main(args, "mixkit bench " + " ".join(argv or sys.argv[1:]))


def main(argv=None, args=None) -> int:
    if args is None:
        args = build_parser().parse_args(argv)
    for flag, value in (("--threads", args.threads), ("--repeats", args.repeats)):
        if value < 1:
            print(f"mixkit bench: error: {flag}: expected an integer >= 1, got {value}", file=sys.stderr)
            return 2
    if getattr(args, "device_path", False):  # meta and CPU tensors: --device does not apply
        return _device_path(args, argv)
    try:
        device = torch.device(args.device)
    except RuntimeError:
        print(f"mixkit bench: --device expected cpu, cuda or cuda:N, got {args.device!r}", file=sys.stderr)
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"mixkit bench: --device {args.device}: CUDA is not available on this machine (torch "
              f"{torch.__version__}, CUDA build {torch.version.cuda})", file=sys.stderr)
        return 2
    bandwidth = getattr(args, "bandwidth_gbs", None)
    if bandwidth is not None:
        if device.type != "cuda":
            print("mixkit bench: --bandwidth-gbs applies to --device cuda (the HBM floor)", file=sys.stderr)
            return 2
        if not (math.isfinite(bandwidth) and bandwidth > 0):
            print(f"mixkit bench: --bandwidth-gbs expected a positive number, got {bandwidth}",
                  file=sys.stderr)
            return 2
    _check_out(args.out)
    rep = run(args.shapes, device, args.threads, args.repeats, peers=not args.no_peers,
              extras=not args.quick, out=args.out, command="mixkit bench " + " ".join(argv or sys.argv[1:]),
              bandwidth_gbs=bandwidth)
    print(to_markdown(rep))
    return 0

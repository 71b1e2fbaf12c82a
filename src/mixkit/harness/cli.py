"""The ``mixkit`` command: ``train``, ``compare``, ``show`` and ``bench``.

Every ``TrainConfig`` field is a flag (``--train-size 2000``, ``--no-amp``, ``--milestones
100,150``); values come from the defaults, then ``--preset``, then ``--config file.yaml``, then
the flags given. A bool field is ``--amp`` / ``--no-amp`` (no value); a list field takes
comma-separated integers; a bad or non-finite value is an error naming the field. ``--resume``
continues with the settings stored in the run's checkpoint (an edited ``config.yaml`` changes
nothing) and refuses a flag, preset or ``--config`` that differs from them. Examples::

    mixkit train --dataset digits --model small-cnn --method mixup --epochs 1 --seed 0 --out runs/a
    mixkit train --out runs/a --resume
    mixkit compare --dataset digits --methods erm,mixup --seeds 0,1 --epochs 1 --out runs/cmp
    mixkit compare --preset quick --out runs/quick
    torchrun --nproc_per_node=2 -m mixkit train --dataset digits --out runs/ddp
    mixkit show --out docs/gallery
    mixkit bench --quick
"""

from __future__ import annotations

import argparse
import errno
import faulthandler
import os
import shlex
import signal
import sys
import types
import typing
from dataclasses import MISSING, fields

from .train.config import (
    LIST_FIELDS,
    TrainConfig,
    harness_methods,
    method_variants,
    parse_int_list,
    preset_names,
    read_presets,
)

__all__ = ["main", "build_parser"]


def _int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 0,1,2, got {text!r}") from None


def _name_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _optional(kind):
    def parse(text: str):
        if text.lower() in ("none", "null", ""):
            return None
        if kind is bool:                     # --balanced true|false|none (not bool("false"))
            if text.lower() in ("true", "false"):
                return text.lower() == "true"
            raise argparse.ArgumentTypeError(f"expected true, false or none, got {text!r}")
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__} or none, got {text!r}") from None
    parse.__name__ = f"{kind.__name__} or none"
    return parse


def _add_config_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    hints = typing.get_type_hints(TrainConfig)
    group = parser.add_argument_group("run settings (TrainConfig fields)")
    for f in fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        default = f.default if f.default is not MISSING else f.default_factory()
        help_text = f"{f.metadata.get('help', '')} (default: {default})"
        args = (typing.get_origin(hint), typing.get_args(hint))
        if hint is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
        elif args[0] is list:        # parsed after argparse, by the same rule as a YAML string
            group.add_argument(flag, dest=f.name, type=str, default=argparse.SUPPRESS,
                               metavar="N,N", help=help_text)
        elif args[0] in (typing.Union, types.UnionType):
            inner = next(a for a in args[1] if a is not type(None))
            group.add_argument(flag, dest=f.name, type=_optional(inner), default=argparse.SUPPRESS,
                               metavar=inner.__name__.upper(), help=help_text)
        else:
            group.add_argument(flag, dest=f.name, type=hint, default=argparse.SUPPRESS,
                               metavar=hint.__name__.upper(), help=help_text)


def _overrides(ns: argparse.Namespace) -> dict:
    """The TrainConfig fields given as flags; a list flag (``--milestones 100,150``) becomes a list
    of ints here (ValueError ``milestones: expected ...`` for a bad element)."""
    names = {f.name for f in fields(TrainConfig)}
    over = {k: v for k, v in vars(ns).items() if k in names}
    for name in LIST_FIELDS:
        if isinstance(over.get(name), str):
            over[name] = parse_int_list(name, over[name])
    return over


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mixkit", description="Mixed-sample data augmentation: train, "
                                "compare, show, bench.", formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("Examples::", 1)[1])
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", metavar="{train,compare,show,bench}")
    sub.required = True

    t = sub.add_parser("train", help="train one run", description="Train one classifier with one method; "
                       "writes config.yaml, metrics.jsonl, checkpoint.pt and final.json into --out.")
    t.add_argument("--out", required=True, help="run directory")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--preset", choices=preset_names(), help="a recipe to start from")
    t.add_argument("--config", dest="config_file", help="YAML file of settings")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: when stderr is a terminal)")
    _add_config_flags(t)

    c = sub.add_parser("compare", help="train methods x seeds and tabulate",
                       description="Train every method with every seed (skipping finished runs) and "
                       "write results.md, results.csv, summary.csv and plots into --out.")
    c.add_argument("--out", required=True, help="comparison directory")
    c.add_argument("--methods", type=_name_list,
                   help="comma-separated: " + ", ".join(harness_methods() + tuple(method_variants())))
    c.add_argument("--seeds", type=_int_list, help="comma-separated seeds, e.g. 0,1,2")
    c.add_argument("--preset", choices=preset_names(), help="a recipe (sets methods and seeds too)")
    c.add_argument("--config", dest="config_file", help="YAML file of settings")
    c.add_argument("--jobs", type=int, default=None,
                   help="runs trained at once, in separate processes (1 thread each unless "
                   "--threads says otherwise); default 1, or the preset's")
    c.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: when stderr is a terminal)")
    # train's --method and --seed, refused by name (argparse would read them as --methods, --seeds)
    c.add_argument("--method", dest="train_method", default=None, help=argparse.SUPPRESS)
    c.add_argument("--seed", dest="train_seed", default=None, help=argparse.SUPPRESS)
    _add_config_flags(c, skip=("method", "seed"))

    sub.add_parser("show", help="write the gallery PNGs (mixed batches, masks, weights)", add_help=False)
    sub.add_parser("bench", help="speed benchmark against the floor and peer libraries", add_help=False)
    return p


def _where(message: str, ns, over: dict) -> str:
    """``message`` (a settings error that starts with the field's name) with where that setting came
    from: the flag given, the config file, or the preset."""
    from .train.config import read_yaml

    name = message.split(":", 1)[0].strip()
    if name in over:
        return f"{message} (given as --{name.replace('_', '-')})"
    if ns.config_file:
        try:
            in_file = name in read_yaml(ns.config_file)
        except (OSError, ValueError):
            in_file = False
        if in_file:
            return f"{message} (in config file {ns.config_file})"
    if ns.preset and name in read_presets()[0].get(ns.preset, {}):
        return f"{message} (from --preset {ns.preset})"
    return message


def _config(ns, over: dict, saved: dict | None = None) -> TrainConfig:
    """The run's settings: ``saved`` (a resumed run's) or the defaults, then the preset, the config
    file and the flags; a bad value is a ValueError naming the field and where it came from."""
    from .train.config import config_from_dict, read_yaml, resolve_config

    try:
        if saved is None:
            return resolve_config(preset=ns.preset, yaml_path=ns.config_file, overrides=over)
        values = dict(saved)
        if ns.preset:
            values.update(read_presets()[0][ns.preset])
        if ns.config_file:
            values.update(read_yaml(ns.config_file))
        values.update(over)
        return config_from_dict(values)
    except ValueError as e:
        raise ValueError(_where(str(e), ns, over)) from None


def _train(ns) -> int:
    from .train.loop import saved_config, train

    over = _overrides(ns)
    # --resume: the run's own settings (its checkpoint's config; config.yaml for older checkpoints),
    # so an edited config.yaml changes nothing; a flag, preset or --config that differs is refused.
    cfg = _config(ns, over, saved_config(ns.out) if ns.resume else None)
    from .train.dist import end_process

    final = train(cfg, ns.out, resume=ns.resume, progress=ns.progress)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"test error {final['test_error']:.4f}  macro-F1 {final['macro_f1']:.4f}  "
              f"NLL {final['nll']:.4f}  ECE {final['ece']:.4f}  -> {os.path.join(ns.out, 'final.json')}")
    end_process(0)  # a torchrun worker ends here (see train.dist.teardown)
    return 0


def _compare(ns, command: str) -> int:
    from .train.compare import compare, reading

    for given, flag, example in ((ns.train_method, "--method", "--methods erm,mixup"),
                                 (ns.train_seed, "--seed", "--seeds 0,1,2")):
        if given is not None:
            raise ValueError(f"{flag}: compare takes {flag}s, a comma-separated list (e.g. {example}), "
                             f"not train's {flag}; got {flag} {given}")
    cfg = _config(ns, _overrides(ns))
    preset = read_presets()[1].get(ns.preset or "", {})
    methods = ns.methods if ns.methods is not None else preset.get("methods", ["erm", "mixup"])
    seeds = ns.seeds if ns.seeds is not None else preset.get("seeds", [0])
    jobs = ns.jobs if ns.jobs is not None else preset.get("jobs", 1)
    summary = compare(cfg, methods, seeds, ns.out, progress=ns.progress, paper=preset.get("paper"),
                      jobs=jobs, command=command)
    with open(os.path.join(ns.out, "results.md"), encoding="utf-8") as f:
        print(f.read())
    print(reading(summary, methods, ns.out, claim=preset.get("claim", "test_error")))
    return 0


def _version() -> str:
    import platform

    import torch

    from .. import __version__
    return f"mixkit {__version__} (torch {torch.__version__}, Python {platform.python_version()})"


# The packages the extras bring (import name: extra); a command that misses one says which to install.
EXTRA_OF = {**dict.fromkeys(("numpy", "scipy", "sklearn", "matplotlib", "tqdm", "yaml", "mnist1d",
                             "torchvision", "PIL"), "harness"),
            **dict.fromkeys(("timm", "kornia", "lightning", "pytorch_lightning", "accelerate"), "peers")}


def _describe(e: BaseException, command: str = "train") -> str:
    top = (getattr(e, "name", None) or "").split(".")[0]
    if isinstance(e, ImportError) and top in EXTRA_OF:
        extra = EXTRA_OF[top]
        return (f"{top} is not installed (the {extra} extra); install it with: "
                f"pip install 'mixkit[{extra}]'")
    if isinstance(e, OSError) and e.strerror and not isinstance(e, FileNotFoundError):
        where = f" ({e.filename})" if e.filename else ""
        again = "run the same command again" if command == "compare" else "continue with --resume"
        return f"{e.strerror}{where}" + (f"; free some space and {again}" if e.errno == errno.ENOSPC else "")
    return str(e)


def _stacks_on_sigusr1() -> None:
    """``kill -USR1 PID`` makes the process print every thread's Python stack to its stderr, and go on:
    where a run that seems hung waits (a rank in a collective, a DataLoader worker, which inherits the
    handler). Installed only when ``main`` runs as the command, not when called from Python."""
    if hasattr(signal, "SIGUSR1") and sys.__stderr__ is not None:
        faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)


def main(argv=None) -> int:
    if argv is None:
        _stacks_on_sigusr1()
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in ("show", "bench") else None
    if command is None:
        ns = build_parser().parse_args(argv)
        command = ns.command
    try:
        if command == "show":
            from .analysis.gallery import main as show_main
            return show_main(argv[1:])
        if command == "bench":
            from .bench import main as bench_main
            return bench_main(argv[1:])
        if command == "train":
            return _train(ns)
        return _compare(ns, "mixkit " + shlex.join(argv))
    except (ValueError, OSError, RuntimeError, ImportError, FloatingPointError) as e:
        # OSError: a full disk, a vanished directory, permissions (files are written atomically,
        # so what was there before stays whole)
        print(f"mixkit {command}: error: {_describe(e, command)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # compare has no --resume: it skips the finished runs and resumes the interrupted ones itself
        hint = {"train": "; continue with --resume",
                "compare": "; run the same command again to continue (finished runs are skipped, "
                "interrupted ones resume)"}.get(command, "")
        print(f"mixkit {command}: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

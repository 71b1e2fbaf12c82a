"""The configuration of one training run, its presets, and how it is read and saved.

A run is fully described by a ``TrainConfig``: the dataset, the model, the method and its
hyperparameters, the optimiser and schedule, the seed. Values come, in increasing priority, from
the dataclass defaults, a named preset (``PRESETS``), a YAML file, and command-line flags; every
field is type-checked the same way whatever the source (``TrainConfig.validate``). The resolved
config is saved as ``config.yaml`` in every run directory and inside every checkpoint; a resumed run
continues with the checkpoint's config (``config.yaml`` is only a copy to read) and must agree with it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from dataclasses import dataclass, field, fields
from typing import Any

from mixkit import checks, registry

__all__ = ["TrainConfig", "METHODS", "SCHEDULES", "AUGMENTS", "LOADERS",
           "resolve_config", "config_from_dict", "config_to_dict", "read_yaml", "config_diff",
           "parse_int_list", "LIST_FIELDS", "needs_originals", "harness_methods", "method_variants",
           "preset_names", "read_presets"]

# The methods the harness trains, in the registry's order (``mixkit.registry``).
METHODS: tuple[str, ...] = registry.names(harness=True)
SCHEDULES: tuple[str, ...] = ("constant", "step", "multistep", "cosine", "onecycle")
AUGMENTS: tuple[str, ...] = ("crop-flip", "crop", "flip", "none", "rrc-flip")
LOADERS: tuple[str, ...] = ("memory", "stream")


@dataclass
class TrainConfig:
    """Everything one training run needs; ``mixkit train --help`` lists every field as a flag."""

    # data
    dataset: str = field(default="digits", metadata={"help": "fashion-mnist, digits, mnist1d, cifar10, "
                                                      "cifar100 or imagefolder"})
    data_dir: str | None = field(default=None, metadata={"help": "where the dataset's files are"})
    train_size: int | None = field(default=None, metadata={"help": "class-stratified training subset "
                                                            "(fixed by data_seed)"})
    test_size: int | None = field(default=None, metadata={"help": "class-stratified test subset"})
    data_seed: int = field(default=0, metadata={"help": "seed of the subsets drawn (not of the run)"})
    image_size: int | None = field(default=None, metadata={"help": "side of imagefolder images"})
    augment: str = field(default="crop-flip", metadata={"help": "crop-flip, crop, flip, none or rrc-flip "
                                                         "(signals: crop = random shift; rrc-flip = random "
                                                         "resized crop + flip, imagefolder with "
                                                         "--loader stream only)"})
    crop_padding: int = field(default=4, metadata={"help": "zero padding of the random crop"})
    cutout: int = field(default=0, metadata={"help": "Cutout: side of the square zeroed in every "
                                             "training image after crop/flip (0: off; SynerMix "
                                             "recipe: 16)"})
    loader: str = field(default="memory", metadata={"help": "memory (the whole set as tensors, "
                                                    "batches augmented on the device) or stream "
                                                    "(DataLoader workers read and transform each "
                                                    "sample; for sets that do not fit in memory)"})
    workers: int = field(default=2, metadata={"help": "DataLoader worker processes of --loader "
                                              "stream (0: in the training process)"})
    balanced: bool | None = field(default=None, metadata={"help": "class-balanced batches (every class "
                                                         "in a batch at least twice, SynerMix's "
                                                         "sampler); default: on for SynerMix methods, "
                                                         "and compare turns it on for every method "
                                                         "when one is SynerMix"})
    # model
    model: str = field(default="small-cnn", metadata={"help": "preact-resnet18, resnet18, resnet50, "
                                                       "small-cnn, cnn1d or small-vit"})
    # method
    method: str = field(default="erm", metadata={"help": ", ".join(METHODS)})
    alpha: float = field(default=1.0, metadata={"help": "Beta(alpha, alpha) of mixup, cutmix, fmix"})
    zeta_gamma: float = field(default=2.8, metadata={"help": "gamma of zeta-mixup's p-series"})
    decay_power: float = field(default=3.0, metadata={"help": "FMix spectrum decay power delta"})
    fmix_spectrum: str = field(default="paper", metadata={"help": "paper (isotropic) or official"})
    mix_mode: str = field(default="batch", metadata={"help": "batch (one lambda per batch) or elem"})
    manifold_alpha: float = field(default=2.0, metadata={"help": "Beta alpha of Manifold Mixup"})
    syner_beta: float | None = field(default=None, metadata={"help": "SynerMix beta (default 0.5 for "
                                                              "synermix-intra, 0.1 otherwise)"})
    # optimisation
    epochs: int = field(default=10, metadata={"help": "training epochs"})
    batch_size: int = field(default=128, metadata={"help": "batch size per process"})
    lr: float = field(default=0.1, metadata={"help": "peak learning rate"})
    optimizer: str = field(default="sgd", metadata={"help": "sgd (momentum, decay on every weight) or "
                                                     "adamw (decoupled decay, none on biases, norms "
                                                     "and the model's no_weight_decay)"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum"})
    nesterov: bool = field(default=False, metadata={"help": "Nesterov momentum"})
    weight_decay: float = field(default=5e-4, metadata={"help": "weight decay (sgd: L2; adamw: decoupled)"})
    schedule: str = field(default="cosine", metadata={"help": ", ".join(SCHEDULES)})
    milestones: list[int] = field(default_factory=lambda: [100, 150],
                                  metadata={"help": "multistep: epochs where lr is multiplied by lr_decay"})
    step_size: int = field(default=10, metadata={"help": "step: epochs between decays"})
    lr_decay: float = field(default=0.1, metadata={"help": "step/multistep decay factor"})
    warmup_epochs: int = field(default=0, metadata={"help": "linear warm-up epochs"})
    # run
    seed: int = field(default=0, metadata={"help": "seed of the model init, the order and the mixing"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N"})
    amp: bool = field(default=True, metadata={"help": "mixed precision on GPU (ignored on CPU)"})
    channels_last: bool = field(default=True, metadata={"help": "channels-last images on GPU"})
    sync_bn: bool = field(default=False, metadata={"help": "SyncBatchNorm under torchrun (GPUs only)"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: torch's)"})
    eval_batch_size: int = field(default=512, metadata={"help": "batch size of evaluation"})
    eval_every: int = field(default=1, metadata={"help": "evaluate the test set every N epochs and "
                                                 "after the last (training is unaffected)"})

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the field, what is expected and what came.

        Every field's type is checked first (the same for a YAML file, a dict and flags): a bool
        field takes only ``True``/``False`` (a YAML string such as ``"false"`` or ``"no"`` is an
        error, not a truthy value), numbers must be finite and not bools, ``milestones`` a list of
        integers. Then the ranges.
        """
        def bad(name, expected):
            raise ValueError(f"{name}: expected {expected}, got {getattr(self, name)!r}")

        for f in fields(self):
            _check_type(f.name, _FIELD_KINDS[f.name], getattr(self, f.name))
        for f in fields(self):              # ints are fine where floats are expected; store floats
            if _FIELD_KINDS[f.name][0] == "float" and isinstance(getattr(self, f.name), int):
                setattr(self, f.name, float(getattr(self, f.name)))
        from ..models import MODELS

        if self.model not in MODELS:
            bad("model", "one of " + ", ".join(MODELS))
        if self.method not in harness_methods():
            bad("method", "one of " + ", ".join(harness_methods()))
        if self.method == "transmix" and self.model != "small-vit":
            bad("model", "small-vit for method transmix (it reads a vision transformer's class-token "
                "attention)")
        if self.optimizer not in ("sgd", "adamw"):
            bad("optimizer", "sgd or adamw")
        if self.schedule not in SCHEDULES:
            bad("schedule", "one of " + ", ".join(SCHEDULES))
        if self.augment not in AUGMENTS:
            bad("augment", "one of " + ", ".join(AUGMENTS))
        if self.fmix_spectrum not in ("paper", "official"):
            bad("fmix_spectrum", "paper or official")
        if self.mix_mode not in ("batch", "elem"):
            bad("mix_mode", "batch or elem")
        if self.loader not in LOADERS:
            bad("loader", "one of " + ", ".join(LOADERS))
        if self.augment == "rrc-flip" and (self.loader != "stream" or self.dataset != "imagefolder"):
            bad("augment", "crop-flip, crop, flip or none (rrc-flip needs dataset imagefolder and "
                "loader stream)")
        for name in ("epochs", "batch_size", "eval_batch_size", "eval_every", "step_size"):
            if getattr(self, name) < 1:
                bad(name, "an integer >= 1")
        for name in ("train_size", "test_size", "threads", "image_size"):
            v = getattr(self, name)
            if v is not None and v < 1:
                bad(name, "an integer >= 1 or None")
        for name in ("warmup_epochs", "crop_padding", "seed", "data_seed", "cutout", "workers"):
            if getattr(self, name) < 0:
                bad(name, "an integer >= 0")
        if not self.lr > 0:
            bad("lr", "a number > 0")
        for name in ("alpha", "manifold_alpha", "zeta_gamma", "decay_power"):
            checks.positive(name, getattr(self, name))    # the library's rule: >= float32's smallest normal
        for name in ("momentum", "weight_decay"):
            if getattr(self, name) < 0:
                bad(name, "a number >= 0")
        if not (0 < self.lr_decay <= 1):
            bad("lr_decay", "a number in (0, 1]")
        if self.syner_beta is not None and not (0 <= self.syner_beta <= 1):
            bad("syner_beta", "None or a number in [0, 1]")
        if not all(m >= 1 for m in self.milestones):
            bad("milestones", "a list of integers >= 1")
        if self.warmup_epochs >= self.epochs and self.warmup_epochs > 0:
            bad("warmup_epochs", f"fewer than epochs ({self.epochs})")


def _kind(annotation: str) -> tuple[str, bool]:
    """``("int", True)`` for ``"int | None"``: the base type's name and whether None is allowed."""
    parts = [p.strip() for p in str(annotation).split("|")]
    optional = "None" in parts
    base = [p for p in parts if p != "None"]
    if len(base) != 1 or base[0] not in _EXPECTED:
        raise TypeError(f"TrainConfig field of unsupported type {annotation!r}")
    return base[0], optional


_EXPECTED = {"bool": "true or false", "int": "an integer", "float": "a finite number", "str": "a string",
             "list[int]": "a list of integers (or comma-separated integers like 100,150)"}


def _check_type(name: str, kind: tuple[str, bool], value: Any) -> None:
    base, optional = kind
    if value is None and optional:
        return
    ok = {
        "bool": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: (isinstance(v, (int, float)) and not isinstance(v, bool)
                            and math.isfinite(v)),
        "str": lambda v: isinstance(v, str),
        "list[int]": lambda v: isinstance(v, list) and all(
            isinstance(m, int) and not isinstance(m, bool) for m in v),
    }[base](value)
    if not ok:
        raise ValueError(f"{name}: expected {_EXPECTED[base]}{' or None' if optional else ''}, "
                         f"got {value!r}")


def parse_int_list(name: str, text: str) -> list[int]:
    """``"100,150"`` -> ``[100, 150]`` (spaces and empty items ignored; ``""`` is ``[]``)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        return [int(t) for t in items]
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated integers like 100,150, got {text!r}") from None


# Presets: the papers' recipes and small CPU runs, one YAML file each in ``presets/`` (what each is
# for is written at its top). A preset's ``config`` sets config fields; its ``compare`` names the
# methods and seeds of a comparison (and the paper's figures, where there are some). Flags given
# on the command line override them.
PRESET_DIR = os.path.join(os.path.dirname(__file__), "presets")


def preset_names() -> list[str]:
    """The presets there are (their files' names; nothing is parsed)."""
    return sorted(file[:-5] for file in os.listdir(PRESET_DIR) if file.endswith(".yaml"))


@functools.lru_cache(maxsize=1)
def read_presets() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """``(PRESETS, COMPARE_PRESETS)``: every preset's config fields and comparison, read once
    (when first asked for, so that importing the harness needs no YAML reader)."""
    config, compare = {}, {}
    for name in preset_names():
        data = read_yaml(os.path.join(PRESET_DIR, name + ".yaml"))
        config[name] = dict(data.get("config") or {})
        compare[name] = dict(data.get("compare") or {})
    return config, compare


def __getattr__(name: str):
    if name == "PRESETS":
        return read_presets()[0]
    if name == "COMPARE_PRESETS":
        return read_presets()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def harness_methods() -> tuple[str, ...]:
    """The methods the harness trains, read from the registry at each call (a method registered
    at run time is accepted too)."""
    return registry.names(harness=True)


def method_variants() -> dict[str, dict[str, Any]]:
    """Method variants a comparison may name: a method plus hyperparameters (``name ->
    overrides``), from the registry's entries."""
    return {name: dict(method=m.name, **v.overrides) for name, (m, v) in registry.variants().items()}


VARIANTS: dict[str, dict[str, Any]] = method_variants()


def balanced_batches(cfg: TrainConfig) -> bool:
    """Whether a run draws class-balanced batches: ``cfg.balanced``, or by default for the
    SynerMix methods only (their intra-class term needs two samples of a class)."""
    return needs_originals(cfg.method) if cfg.balanced is None else cfg.balanced


def needs_originals(method: str) -> bool:
    """Whether a method also trains on the unaugmented batch (SynerMix's intra-class term)."""
    return bool(registry.get(method).traits.get("needs_originals"))


def method_overrides(name: str) -> dict[str, Any]:
    """Config overrides of a comparison entry: a method name or a variant in ``VARIANTS``."""
    variants = method_variants()
    if name in harness_methods():
        return {"method": name}
    if name in variants:
        return dict(variants[name])
    raise ValueError(f"methods: expected names among {', '.join(harness_methods() + tuple(variants))}, "
                     f"got {name!r}")


_FIELDS = {f.name: f for f in fields(TrainConfig)}
_FIELD_KINDS = {f.name: _kind(f.type) for f in fields(TrainConfig)}
LIST_FIELDS = tuple(name for name, (base, _) in _FIELD_KINDS.items() if base == "list[int]")


def config_from_dict(values: dict[str, Any], where: str = "config") -> TrainConfig:
    """A ``TrainConfig`` from a dict; unknown keys or wrong types raise ValueError naming them.

    The values are taken as they are (a YAML string is not a bool or a number), except that a
    list field (``milestones``) may also be given as comma-separated integers, ``"100,150"``.
    """
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping of fields, got {type(values).__name__}")
    unknown = sorted(set(values) - set(_FIELDS), key=str)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; expected keys among {sorted(_FIELDS)}")
    values = dict(values)
    for name in LIST_FIELDS:
        if isinstance(values.get(name), str):
            values[name] = parse_int_list(name, values[name])
    return TrainConfig(**values)


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _yaml_loader():
    """PyYAML's safe loader, reading ``1e-3`` as a number as YAML 1.2 does (YAML 1.1 wants ``1.0e-3``;
    without this, ``lr: 1e-3`` would be the string ``"1e-3"`` and rejected by validation)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                                 re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                                 list("-+0123456789."))
    return Loader


def read_yaml(path: str) -> dict[str, Any]:
    """Read a YAML mapping of config fields (clear errors for a missing or malformed file)."""
    import yaml

    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path}: not found")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.load(f, Loader=_yaml_loader())
        except yaml.YAMLError as e:
            raise ValueError(f"config file {path}: expected YAML, could not parse it ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path}: expected a mapping of fields, got {type(data).__name__}")
    return data


def resolve_config(*, preset: str | None = None, yaml_path: str | None = None,
                   overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults < preset < YAML file < overrides (flags)."""
    values: dict[str, Any] = {}
    if preset is not None:
        presets = read_presets()[0]
        if preset not in presets:
            raise ValueError(f"preset: expected one of {', '.join(presets)}, got {preset!r}")
        values.update(presets[preset])
    if yaml_path is not None:
        values.update(read_yaml(yaml_path))
    values.update(overrides or {})
    return config_from_dict(values)


def config_diff(a: TrainConfig, b: TrainConfig, ignore: tuple[str, ...] = ()) -> dict[str, tuple]:
    """Fields whose values differ: ``{name: (a's, b's)}``."""
    da, db = config_to_dict(a), config_to_dict(b)
    return {k: (da[k], db[k]) for k in da if k not in ignore and da[k] != db[k]}

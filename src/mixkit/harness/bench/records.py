"""What a benchmark run records: one ``Row`` per timed entry and the ``Report`` holding them,
with the class count every benchmark input's labels use."""

from __future__ import annotations

from dataclasses import dataclass, field

NUM_CLASSES = 10


@dataclass
class Row:
    shape: tuple
    method: str
    impl: str
    mode: str
    ms: float
    extra_mem: float | None = None  # bytes allocated per call / input bytes
    vs_floor: float | None = None
    vs_peer: float | None = None
    note: str = ""
    vs_hbm: float | None = None  # time / HBM floor (CUDA only)


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    masks: list[dict] = field(default_factory=list)
    train_step: list[dict] = field(default_factory=list)
    zeta_scaling: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

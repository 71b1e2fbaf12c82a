"""Random draws for the mixers, always from an explicit ``torch.Generator``.

Every function here takes ``generator`` (``None`` means torch's default generator of ``device``)
and draws on ``device``; nothing uses numpy or Python's ``random``, so a run can be replayed from
one seed and the global RNG stays untouched whenever a generator is given.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import struct

import torch
from torch import Tensor
from torch.utils.data import get_worker_info

from .execution import host_cached, on_host

__all__ = [
    "check_generator",
    "device_generator",
    "host_generator",
    "host_uniform",
    "sample_beta",
    "beta_value",
    "host_draws_from",
    "host_draws",
    "host_draw",
    "as_float32",
    "batch_value",
    "sample_uniform",
    "sample_bernoulli",
    "sample_pairing",
    "PAIRINGS",
    "zeta_weights",
    "zeta_weight_matrix",
    "zeta_gamma_for_lambda",
    "ZETA_DOMINANCE_GAMMA",
]

# zeta(gamma) = 2 at this gamma: for gamma >= it, the p-series' first term outweighs all the others
# together for every N (Abhishek et al., zeta-mixup, "gamma >= 1.72865").
ZETA_DOMINANCE_GAMMA = 1.7286472


def check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    """Raise unless ``generator`` can drive draws for tensors on ``device``: None, a CPU generator
    (for inputs on any device), or a generator on the inputs' device type."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    kind = torch.device(device).type
    if generator.device.type not in ("cpu", kind):
        raise ValueError(
            f"generator: expected a CPU generator or one on the inputs' device ({torch.device(device)}), "
            f"got one on {generator.device}; create it with torch.Generator() or "
            "torch.Generator(device=inputs.device)"
        )


# Generators on other devices made from a CPU generator, one per device, re-seeded before each use.
_DERIVED: dict[str, torch.Generator] = {}
# In a DataLoader worker: id(generator) -> the worker seed it was last re-seeded for.
_WORKER_SEEDED: dict[int, int] = {}
_MIX = 0x9E3779B97F4A7C15  # odd 64-bit constant (golden ratio) for mixing two seeds into one


def _fork_for_worker(generator: torch.Generator) -> None:
    """In a DataLoader worker, re-seed the worker's copy of ``generator`` once per worker seed.

    Every worker starts with a copy of the main process's generator, so without this all workers
    (and every epoch) would draw the same parameters. The new seed combines a draw from the copy
    (the user's seed) with the worker's seed, which the DataLoader derives from its own generator,
    the epoch and the worker id: different per worker and per epoch, and reproducible when both
    seeds are fixed. The main process's generator is never touched.
    """
    info = get_worker_info()
    if info is None or generator.device.type != "cpu" or _WORKER_SEEDED.get(id(generator)) == info.seed:
        return
    own = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    generator.manual_seed((own * _MIX + info.seed) % 2**63)
    _WORKER_SEEDED[id(generator)] = info.seed


def device_generator(generator: torch.Generator | None, device: torch.device | str) -> torch.Generator | None:
    """The generator for draws on ``device`` (the per-sample parameters of a mixer).

    - None: None (torch's default generator of ``device``).
    - A generator on ``device``'s type: itself.
    - A CPU generator for tensors on another device: a generator on that device, re-seeded from
      one 62-bit draw of ``generator`` (on the host, no device sync); same seed, same draws.

    In a DataLoader worker the generator is first re-seeded for that worker (``_fork_for_worker``).
    """
    if generator is None:
        return None
    check_generator(generator, device)
    _fork_for_worker(generator)
    device = torch.device(device)
    if generator.device.type == device.type:
        return generator
    if device.type == "meta":  # stands in for an accelerator in tests; it has no generators
        torch.randint(0, 2**62, (1,), generator=generator)
        return None
    key = str(device)
    derived = _DERIVED.get(key)
    if derived is None:
        derived = _DERIVED[key] = torch.Generator(device=device)
    derived.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
    return derived


def host_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """A CPU generator for choices made on the host (which mixer, which layer).

    A CPU generator (or None, torch's default) is returned as it is. For a generator on an
    accelerator, a CPU generator is seeded from its host-side state (seed and offset, read without
    a device sync) and the device generator's offset is stepped, so successive calls differ and a
    run replays from the same seed.
    """
    if generator is None or generator.device.type == "cpu":
        if generator is not None:
            _fork_for_worker(generator)
        return generator
    seed, offset = generator.initial_seed(), generator.get_offset()
    generator.set_offset(offset + 4)
    return torch.Generator().manual_seed((seed * _MIX + offset) % 2**63)


def host_uniform(generator: torch.Generator | None) -> float:
    """One U(0, 1) draw on the host, as a Python float (see ``host_generator``)."""
    return float(torch.rand(1, generator=host_generator(generator), dtype=torch.float64))


def sample_uniform(
    size: int | tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """U(0, 1) draws of ``size``."""
    size = (size,) if isinstance(size, int) else tuple(size)
    return torch.rand(size, generator=generator, device=device, dtype=dtype)


def sample_bernoulli(
    p: float, size: int, *, generator: torch.Generator | None = None, device="cpu"
) -> Tensor:
    """``size`` booleans, each True with probability ``p`` (no draw is made when p is 0 or 1)."""
    if p >= 1.0:
        return torch.ones(size, dtype=torch.bool, device=device)
    if p <= 0.0:
        return torch.zeros(size, dtype=torch.bool, device=device)
    return sample_uniform(size, generator=generator, device=device) < p


def sample_beta(
    alpha: float,
    beta: float | None = None,
    size: int = 1,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """``size`` draws of Beta(alpha, beta) (beta defaults to alpha), float32, from ``generator``.

    Drawn as G1 / (G1 + G2) with Gi ~ Gamma, computed in log space so that small concentrations
    (alpha = 0.1 and below) do not underflow to 0/0: Gamma(a) = Gamma(a + 1) * U^(1/a).
    """
    beta = _concentrations(alpha, beta)
    if size == 1 and on_host(device):
        return torch.full((1,), _beta_value(alpha, beta, generator), dtype=torch.float32)
    key = (float(alpha), float(beta), int(size), str(torch.device(device)))
    # Cached on the host (the constants are filled on the device, no host-to-device copy).
    conc, inv, sign = host_cached(_beta_constants, *key)
    # Columns hold (beta, alpha): their product with sign (-1, 1) is log G_alpha - log G_beta, one
    # op for diff's slice, slice and sub, and the same number (both products exact, one rounding).
    log_g = torch._standard_gamma(conc, generator=generator).log_()
    log_u = torch.rand(size, 2, generator=generator, device=device, dtype=torch.float64).log_()
    log_g = torch.addcmul(log_g, log_u, inv)
    return torch.sigmoid(log_g @ sign).to(torch.float32)


# The CPU generator of the host draws of the ``Mixer.sample`` call in progress (``host_draw``).
ON_DEVICE = object()
_HOST: contextvars.ContextVar = contextvars.ContextVar("mixkit_host_draws", default=ON_DEVICE)


def host_draws_from(generator: torch.Generator | None, device) -> torch.Generator | None | object:
    """The CPU generator of a ``sample`` call's host draws for inputs on an accelerator: the
    caller's ``generator`` when it is a CPU one (such a call is eager only anyway: its device
    generator is seeded from a host draw), else ``ON_DEVICE``. Without a generator or with a
    device one, and under torch.compile, every draw is a device op, so a call can be captured in
    a CUDA graph. (CPU inputs in eager mode draw on the host from their own generator: ``host_draw``.)"""
    if torch.device(device).type == "cpu" or torch.compiler.is_compiling():
        return ON_DEVICE
    return generator if generator is not None and generator.device.type == "cpu" else ON_DEVICE


@contextlib.contextmanager
def host_draws(host):
    """``host`` (from ``host_draws_from``) as the generator of ``host_draw`` in the block."""
    token = _HOST.set(host)
    try:
        yield
    finally:
        _HOST.reset(token)


def host_draw(count: int, generator: torch.Generator | None, device) -> tuple[bool, torch.Generator | None]:
    """``(True, host generator)`` when ``count`` draws of the ``sample`` call in progress are made
    on the host as Python numbers: one draw (a batch-level lam, a box for the batch), for CPU
    inputs in eager mode from ``generator`` (theirs), for inputs on an accelerator from the CPU
    generator ``host_draws`` set (a few host microseconds instead of a dozen kernel launches on
    two numbers). Else ``(False, None)``."""
    if count != 1 or torch.compiler.is_compiling():
        return False, None
    if torch.device(device).type == "cpu":
        return True, generator
    host = _HOST.get()
    return (False, None) if host is ON_DEVICE else (True, host)


def beta_value(alpha: float, beta: float | None = None, *, generator: torch.Generator | None = None) -> float:
    """One Beta(alpha, beta) draw on the host, a Python float rounded to float32: the draws and
    formula of ``sample_beta`` for one CPU draw, from the CPU ``generator`` (None: torch's
    default), the arithmetic on Python numbers (a few microseconds instead of a dozen tensor
    operations on two numbers). Mixers draw a batch-level lam so for inputs on any device when
    given a CPU generator (``mixkit.base.Mixer.sample``)."""
    return _beta_value(alpha, _concentrations(alpha, beta), generator)


def _beta_value(alpha: float, beta: float, generator) -> float:
    """``beta_value`` with the concentrations checked already."""
    conc = _beta_constants(float(alpha), float(beta), 1, "cpu")[0]
    (g_b, g_a), = torch._standard_gamma(conc, generator=generator).tolist()
    (u_b, u_a), = torch.rand(1, 2, generator=generator, dtype=torch.float64).tolist()
    z = (_log(g_a) + _log(u_a) / alpha) - (_log(g_b) + _log(u_b) / beta)
    lam = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    return as_float32(lam)


def as_float32(value: float) -> float:
    """``value`` rounded to the nearest float32 (as ``torch.tensor(value, dtype=torch.float32)``),
    on Python numbers."""
    return _FLOAT32.unpack(_FLOAT32.pack(value))[0]


_FLOAT32 = struct.Struct("f")


def batch_value(value: float, batch: int, device) -> Tensor:
    """One float32 ``value`` (a batch-level lam) for each of ``batch`` samples: on the CPU an
    expanded view (stride 0: the blends then take a Python weight), elsewhere one fill (one op,
    no view)."""
    if torch.device(device).type == "cpu":  # (called in eager mode only: see host_draw)
        return torch.full((1,), value, dtype=torch.float32).expand(batch)
    return torch.full((batch,), value, dtype=torch.float32, device=device)


def _concentrations(alpha: float, beta: float | None) -> float:
    """``beta`` (``alpha`` when None), after checking both are finite and > 0."""
    beta = alpha if beta is None else beta
    if not (alpha > 0 and beta > 0 and math.isfinite(alpha) and math.isfinite(beta)):
        raise ValueError(f"Beta concentrations: expected finite values > 0, got ({alpha}, {beta})")
    return beta


def _log(v: float) -> float:
    return math.log(v) if v > 0 else -math.inf


@functools.lru_cache(maxsize=64)
def _beta_constants(alpha: float, beta: float, size: int, device: str) -> tuple[Tensor, Tensor, Tensor]:
    """``[[beta + 1, alpha + 1]] * size``, ``[1 / beta, 1 / alpha]`` and ``[-1, 1]``, float64 on
    ``device``."""
    conc = torch.full((size, 2), beta + 1.0, dtype=torch.float64, device=device)
    conc[:, 1] = alpha + 1.0
    inv = torch.full((2,), 1.0 / beta, dtype=torch.float64, device=device)
    inv[1] = 1.0 / alpha
    sign = torch.ones(2, dtype=torch.float64, device=device)
    sign[0] = -1.0
    return conc, inv, sign


PAIRINGS: tuple[str, ...] = ("permutation", "roll", "flip")


def sample_pairing(
    batch_size: int, *, generator: torch.Generator | None = None, device="cpu", kind: str = "permutation"
) -> Tensor:
    """The partner ``index`` of every sample: sample i is mixed with sample ``index[i]``.

    - ``"permutation"``: a uniformly random permutation (mixup's, CutMix's and FMix's papers);
      about one sample in B is its own partner and stays unmixed.
    - ``"roll"``: ``index[i] = i - 1`` (mod B), what torchvision's v2 MixUp/CutMix do
      (``batch.roll(1, 0)``); no draw, nobody is its own partner when B > 1.
    - ``"flip"``: ``index[i] = B - 1 - i``, what timm's Mixup does (``x.flip(0)``); no draw; the
      middle sample of an odd batch is its own partner. Pairs are mutual, as timm's pair mode needs.
    """
    if kind == "permutation":
        return torch.randperm(batch_size, generator=generator, device=device)
    if kind == "roll":
        return torch.arange(batch_size, device=device).roll(1)
    if kind == "flip":
        return torch.arange(batch_size - 1, -1, -1, device=device)
    raise ValueError(f"pairing: expected one of {', '.join(PAIRINGS)}, got {kind!r}")


def zeta_weights(n: int, gamma: float, *, dtype: torch.dtype = torch.float64, device="cpu") -> Tensor:
    """The normalised p-series ``k^-gamma / C_n(gamma)``, k = 1..n (largest first, sums to 1).

    ``C_n(gamma) = sum_{k<=n} k^-gamma`` is the n-truncated Riemann zeta function.
    """
    if n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n}")
    k = torch.arange(1, n + 1, dtype=torch.float64, device=device)
    w = k.pow(-float(gamma))
    return (w / w.sum()).to(dtype)


@functools.lru_cache(maxsize=32)
def _zeta_weights(n: int, gamma: float, dtype: torch.dtype, device: str) -> Tensor:
    """``zeta_weights``, kept per (n, gamma, dtype, device): the matrix draws read it only."""
    return zeta_weights(n, gamma, dtype=dtype, device=device)


def zeta_gamma_for_lambda(lam: float) -> float:
    """The gamma at which zeta-mixup with N = 2 equals mixup with weight ``lam`` (> 0.5) on the
    own sample: ``gamma = log2(lam / (1 - lam))``."""
    if not 0.5 < lam < 1.0:
        raise ValueError(f"lam: expected a value in (0.5, 1), got {lam}")
    return math.log2(lam / (1.0 - lam))


def zeta_weight_matrix(
    batch_size: int,
    gamma: float,
    n_mix: int | None = None,
    *,
    generator: torch.Generator | None = None,
    device="cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """The zeta-mixup weight matrix W (B, B) and the rank order it was built from.

    Row p holds the normalised p-series over N = ``n_mix`` samples (``None``: N = B): rank 1 on
    sample p itself and ranks 2..N on a uniformly random arrangement of N - 1 other samples; all
    other entries are 0. Each row sums to 1, ``x_hat = W @ x`` and ``y_hat = W @ y``.

    Returns ``(W, order)`` where ``order[p, r]`` is the sample given rank ``r + 1`` in row p
    (shape (B, N); ``order[:, 0]`` is the diagonal).
    """
    n = batch_size if n_mix is None else min(int(n_mix), batch_size)
    if n < 1:
        raise ValueError(f"n_mix: expected an integer >= 1, got {n_mix}")
    # Random keys per row; the own sample gets a key below every other one so it sorts first and
    # the remaining samples come in a uniformly random order.
    keys = torch.rand(batch_size, batch_size, generator=generator, device=device)
    keys.diagonal().fill_(-1.0)
    if n == batch_size:
        order = keys.argsort(dim=1)
    else:
        order = keys.topk(n, dim=1, largest=False, sorted=True).indices
    w = host_cached(_zeta_weights, n, float(gamma), dtype, str(device))
    W = torch.zeros(batch_size, batch_size, dtype=dtype, device=device)
    W.scatter_(1, order, w.expand(batch_size, n))
    return W, order

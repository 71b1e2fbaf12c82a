import os

import pytest
import torch

# Two cores on CI: keep torch from oversubscribing when pytest runs.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """A test that trains in-process with ``threads=1`` (``train`` calls ``torch.set_num_threads``)
    must not change the thread count of the tests after it: results computed with another count
    differ in the last bits, which the seeded-output test (bit-exact) sees."""
    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def pytest_addoption(parser):
    parser.addoption(
        "--device", default="cpu",
        help="device for the contract tests and the CUDA tests: cpu (default), cuda or cuda:N. "
        "tests/test_cuda.py runs only with a CUDA device.")


def _parse_device(text: str) -> torch.device:
    """The ``--device`` value as a torch.device, or a pytest.UsageError saying what is wrong."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise pytest.UsageError(f"--device: expected cpu, cuda or cuda:N, got {text!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise pytest.UsageError(f"--device: expected cpu, cuda or cuda:N, got {text!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            built = torch.version.cuda or "no CUDA (a CPU-only build)"
            raise pytest.UsageError(
                f"--device {text}: CUDA is not available on this machine (torch {torch.__version__}, "
                f"built with {built}); run with --device cpu or on a machine with an NVIDIA GPU")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise pytest.UsageError(f"--device {text}: expected an index below {count} "
                                    f"(the CUDA devices here), got {device.index}")
        device = torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())
    return device


def pytest_configure(config):
    if config.getoption("help", default=False):
        return
    _parse_device(config.getoption("--device"))  # a usage error before any test is collected


@pytest.fixture(scope="session")
def device(pytestconfig) -> torch.device:
    """The device given by ``--device`` (``cuda`` resolved to ``cuda:<current index>``)."""
    dev = _parse_device(pytestconfig.getoption("--device"))
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return dev


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


# The fast subset (-m "not slow") runs each method's first configuration in the per-configuration
# grids of these files; their other configurations (in place, p < 1, other spectra, ...) are
# marked slow here and run in the full suite. Keeps the inner loop near a minute on 2 cores.
_GRID_FILES = ("test_training_conditions.py", "test_mixers_contract.py", "test_dense.py", "test_errors.py")


def pytest_collection_modifyitems(config, items):
    import grid

    first = None
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.fspath.basename not in _GRID_FILES or not isinstance(params.get("name"), str):
            continue
        if first is None:
            cases = grid.mixers(7)
            first, every = set(grid.one_per_method(cases)), set(cases)
        if params["name"] in every and params["name"] not in first:
            item.add_marker(pytest.mark.slow)

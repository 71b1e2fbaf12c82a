"""The built wheel: its metadata asks for torch alone, its version is ``mixkit.__version__`` (one
source), it carries the library, the harness and ``py.typed``, and once installed into a fresh
virtual environment (outside the checkout) it imports and mixes a batch.

The fresh environment reuses the running interpreter's torch, so the test needs no download: the
venv is made without ``--system-site-packages`` (which, from inside a venv, would show the base
Python's packages and not this venv's torch) and a ``.pth`` file in it lists the site-packages
directories this interpreter imports from, after the venv's own (the wheel is installed with
``--no-deps`` before that file is written, so pip sees none of this interpreter's packages). That the library needs nothing but
torch is checked three ways: the wheel's ``Requires-Dist``; in the venv, every library module
imported and used with the harness's, the peers' and compat's packages made unimportable; and
what ``import mixkit`` loads (``tests/test_architecture.py``).
"""

import os
import re
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import mixkit

ROOT = Path(__file__).resolve().parents[1]
# what the harness, the peers and mixkit.compat use; the library must work without any of them
BLOCKED = {"torchvision", "timm", "lightning", "pytorch_lightning", "kornia", "accelerate", "PIL",
           "matplotlib", "sklearn", "scipy", "yaml", "mnist1d"}


def _site_dirs() -> list[str]:
    """The directories this interpreter imports installed packages from (site-packages,
    dist-packages, the user site), whether it is a venv or a base Python."""
    dirs = [*site.getsitepackages(), site.getusersitepackages() if site.ENABLE_USER_SITE else ""]
    dirs += [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")]
    return list(dict.fromkeys(d for d in dirs if d and os.path.isdir(d)))


def _clean_env() -> dict:
    """This process's environment without PYTHONPATH (a checkout's ``src`` on it, with its
    ``mixkit.egg-info``, would make pip in the venv take the wheel as installed already)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def fresh_venv(where: Path) -> Path:
    """A venv made from the running interpreter, without its packages; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    return where / "bin" / "python"


def borrow_packages(py: Path) -> None:
    """Let the venv of ``py`` import the running interpreter's packages (torch), after its own:
    a ``.pth`` of plain paths (no code, and the borrowed directories' own ``.pth`` files, such as
    an editable mixkit's, are not run)."""
    own = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    Path(own, "_borrowed_site.pth").write_text("".join(d + "\n" for d in _site_dirs()), encoding="utf-8")


def _requirement(text: str) -> tuple[str, set[str], str | None]:
    """``(name, extras asked for, the extra it belongs to or None)`` of a ``Requires-Dist`` line."""
    spec, _, marker = text.partition(";")
    name = re.match(r"[A-Za-z0-9._-]+", spec.strip()).group()
    extras = re.search(r"\[([^\]]*)\]", spec)
    belongs = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
    return (name, {e.strip() for e in extras.group(1).split(",")} if extras else set(),
            belongs.group(1) if belongs else None)


def torch_alone(dst: Path) -> list[str]:
    """Links in ``dst`` to torch and the distributions it requires (recursively, with the extras
    they ask for), and to nothing else: a site directory that holds what ``pip install torch``
    would. Returns the distributions linked."""
    from importlib import metadata

    dst.mkdir(parents=True, exist_ok=True)
    todo, seen = [("torch", set())], {}
    while todo:
        name, extras = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen and extras <= seen[key]:
            continue
        seen[key] = seen.get(key, set()) | extras
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue                       # a platform's requirement this machine has not installed
        for req in dist.requires or []:
            req_name, req_extras, belongs = _requirement(req)
            if belongs is None or belongs in extras:
                todo.append((req_name, req_extras))
        for f in dist.files or []:
            top = f.parts[0]
            if top in ("..", "__pycache__") or top.endswith(".pth") or (dst / top).exists():
                continue
            (dst / top).symlink_to(Path(str(dist.locate_file(top))))
    return sorted(seen)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out),
                        str(ROOT)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    wheels = list(out.glob("mixkit-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.mark.slow
def test_wheel_metadata_and_contents(wheel):
    assert wheel.name.startswith(f"mixkit-{mixkit.__version__}-")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert re.search(rf"^Version: {re.escape(mixkit.__version__)}$", meta, re.M)
    required = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    core = [r for r in required if "extra ==" not in r]
    assert core == ["torch>=2.1"], core                  # the library needs torch alone
    assert any(r.startswith("scipy") and "extra == \"harness\"" in r for r in required), required
    # licence, classifiers: what an index shows
    assert re.search(r"^License-Expression: MIT$", meta, re.M) and re.search(r"^License-File: LICENSE$", meta, re.M)
    classifiers = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Classifier:")]
    assert "Programming Language :: Python :: 3" in classifiers and "Typing :: Typed" in classifiers
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    for path in ("mixkit/__init__.py", "mixkit/py.typed", "mixkit/functional/masks.py",
                 "mixkit/harness/cli.py", "mixkit/harness/train/feed.py", "mixkit/harness/data/stream.py"):
        assert path in names, path
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


@pytest.mark.slow
def test_wheel_installs_and_mixes_in_a_fresh_venv(wheel, tmp_path):
    venv = tmp_path / "venv"
    py = fresh_venv(venv)
    p = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall", str(wheel)],
                       capture_output=True, text=True, timeout=300, env=_clean_env())
    assert p.returncode == 0, p.stderr[-3000:]
    borrow_packages(py)
    # Torch only: the packages the harness, the peers and compat adapt to are made unimportable
    # in that process, and every library module is imported and used.
    code = f"""
import importlib.abc, sys
BLOCKED = {sorted(BLOCKED)!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError('blocked in the torch-only check: ' + name)
sys.meta_path.insert(0, Block())
import torch, mixkit
from mixkit import functional, inputs, samplers, collate, paired, hidden, losses
g = torch.Generator().manual_seed(0)
x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
for m in (mixkit.MixUp(num_classes=3), mixkit.CutMix(num_classes=3), mixkit.FMix(num_classes=3),
          mixkit.Compose([mixkit.CutMix(), mixkit.ZetaMixup()], num_classes=3, label_smoothing=0.1)):
    out, soft = m((x, y), generator=g)
u8, _ = mixkit.CutMix(num_classes=3)((x * 255).to(torch.uint8), y, generator=g)
assert u8.dtype == torch.uint8 and not any(b in sys.modules for b in BLOCKED)
x, s = mixkit.MixUp(alpha=1.0, num_classes=3)(x, y, generator=torch.Generator().manual_seed(0))
print(mixkit.__version__, mixkit.__file__, tuple(x.shape), round(float(s.sum()), 4), sep='|')
"""
    env = _clean_env()
    p = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    version, where, shape, total = p.stdout.strip().split("|")
    assert version == mixkit.__version__
    assert str(venv) in where and str(ROOT) not in where          # the installed copy, not the checkout
    assert shape == "(4, 3, 8, 8)" and total == "4.0"              # four soft rows, each summing to 1


@pytest.mark.slow
def test_torch_only_install_explains_itself(wheel, tmp_path):
    """The wheel in a venv with torch and its requirements alone: the library imports, ``mixkit
    --version`` answers, and a harness command says in one line which extra to install."""
    py = fresh_venv(tmp_path / "venv")
    p = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
                       capture_output=True, text=True, timeout=300, env=_clean_env())
    assert p.returncode == 0, p.stderr[-3000:]
    linked = torch_alone(tmp_path / "torch-alone")
    assert "torch" in linked and "numpy" not in linked and "matplotlib" not in linked
    own = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    Path(own, "_torch_alone.pth").write_text(str(tmp_path / "torch-alone") + "\n", encoding="utf-8")
    env = _clean_env()

    def run(*args):
        return subprocess.run(list(args), capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)

    p = run(str(py), "-c", "import torch, mixkit, importlib.util as u; print(mixkit.__version__, "
            "[m for m in ('numpy', 'matplotlib', 'yaml', 'scipy', 'torchvision') if u.find_spec(m)])")
    assert p.returncode == 0 and p.stdout.split() == [mixkit.__version__, "[]"], p.stdout + p.stderr[-2000:]
    cli = str(py.parent / "mixkit")
    p = run(cli, "--version")
    assert p.returncode == 0 and p.stdout.startswith(f"mixkit {mixkit.__version__} (torch "), p.stdout + p.stderr
    for args in (["train", "--dataset", "digits", "--epochs", "1", "--out", str(tmp_path / "run")],
                 ["compare", "--out", str(tmp_path / "cmp")], ["show", "--out", str(tmp_path / "gallery")]):
        p = run(cli, *args)
        last = p.stderr.strip().splitlines()[-1]
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
        assert re.fullmatch(rf"mixkit {args[0]}: error: \w+ is not installed \(the harness extra\); "
                            r"install it with: pip install 'mixkit\[harness\]'", last), last
        assert not os.path.exists(args[-1])                  # nothing half-made left behind

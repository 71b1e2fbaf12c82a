"""The shape of the house: the torch-only library, the harness beside it, no import cycles
between the harness's parts, and no long function bodies anywhere in src/."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mixkit"
HARNESS_PARTS = ["data", "models", "train", "analysis", "bench", "cli"]
MAX_BODY_LINES = 70


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth of its code, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _library_files():
    # __main__.py is the `python -m mixkit` entry point of the command (the harness), not library code
    return [p for p in SRC.rglob("*.py") if "harness" not in p.relative_to(SRC).parts and p.name != "__main__.py"]


# mixkit.compat's adapters import what they adapt to, and only that (importing mixkit never loads them)
COMPAT_TARGETS = {"timm.py": {"timm", "numpy"}, "lightning.py": {"lightning"}}


def test_the_library_imports_torch_and_the_standard_library_only():
    allowed = set(sys.stdlib_module_names) | {"torch", "mixkit"}
    for path in _library_files():
        extra = COMPAT_TARGETS.get(path.name, set()) if path.parent.name == "compat" else set()
        for module in _imports(path):
            top = module.split(".")[0]
            assert top in allowed | extra, f"{path.relative_to(SRC)} imports {module}"
            assert not module.startswith("mixkit.harness"), f"{path.relative_to(SRC)} imports the harness"


def test_import_mixkit_loads_nothing_heavier_than_torch():
    code = ("import sys, torch; before = set(sys.modules); import mixkit; "
            "print('\\n'.join(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    new = [m for m in out.split() if m]
    assert any(m == "mixkit" for m in new)
    foreign = [m for m in new if m.split(".")[0] not in sys.stdlib_module_names
               and not (m == "mixkit" or m.startswith("mixkit.") and not m.startswith("mixkit.harness"))]
    assert not foreign, f"import mixkit also loaded {foreign}"


def _part(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) >= 3 and parts[:2] == ["mixkit", "harness"] and parts[2] in HARNESS_PARTS:
        return parts[2]
    return None


def test_no_import_cycles_between_the_harness_parts():
    edges = {p: set() for p in HARNESS_PARTS}
    for path in (SRC / "harness").rglob("*.py"):
        src = _part(_module_name(path))
        if src is None:
            continue
        for module in _imports(path):
            dst = _part(module)
            if dst is not None and dst != src:
                edges[src].add(dst)

    def reach(start, seen):
        for nxt in edges[start]:
            if nxt not in seen:
                seen.add(nxt)
                reach(nxt, seen)
        return seen

    cycles = sorted(p for p in HARNESS_PARTS if p in reach(p, set()))
    assert not cycles, f"import cycles through {cycles}: {edges}"


def _function_bodies():
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None),
                                                                            ast.Constant):
                    body = body[1:]  # the docstring does not count
                if body:
                    yield path, node.name, body[-1].end_lineno - body[0].lineno + 1


def test_no_function_body_over_70_lines():
    long = [f"{p.relative_to(SRC)}:{name} ({n} lines)" for p, name, n in _function_bodies() if n > MAX_BODY_LINES]
    assert not long, long


@pytest.mark.parametrize("rule", [test_no_import_cycles_between_the_harness_parts,
                                  test_the_library_imports_torch_and_the_standard_library_only])
def test_the_checks_can_fail(rule, monkeypatch, tmp_path):
    # A library file that imports the harness, and a harness cycle (train <-> analysis), are caught.
    fake = tmp_path / "mixkit"
    (fake / "harness" / "train").mkdir(parents=True)
    (fake / "harness" / "analysis").mkdir(parents=True)
    (fake / "bad.py").write_text("from .harness.train import loop\nimport numpy\n")
    (fake / "harness" / "train" / "loop.py").write_text("from ..analysis import x\n")
    (fake / "harness" / "analysis" / "x.py").write_text("from ..train import loop\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", fake)
    with pytest.raises(AssertionError):
        rule()

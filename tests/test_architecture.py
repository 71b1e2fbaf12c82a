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


# ---------------------------------------------------------------------------------------------
# sizes: no library or harness module over 500 lines, no class over 250

MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 250


def test_no_module_over_500_lines_and_no_class_over_250():
    big = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            big.append(f"{path.relative_to(SRC)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                big.append(f"{path.relative_to(SRC)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not big, big


# ---------------------------------------------------------------------------------------------
# one list of methods: outside the registry (and its test), no list, tuple, set, dict or if-chain
# names four or more methods, by harness name ("cutmix") or by class (mixkit.CutMix). A fixture
# that names methods for another reason (rows for particular targets) says so on its first line
# with "# method-list: ok (why)".

TESTS = SRC.parents[1] / "tests"
REGISTRY_FILES = {SRC / "registry.py", TESTS / "test_registry.py"}


def _method_tokens():
    """``name -> what it names`` for harness names, and the class names: a method counts once
    however it is written (``"mixup"``, ``"mixup-elem"``, ``MixUp``)."""
    import mixkit

    names = {m.name: (m.cls.__name__ if m.cls is not None else m.name) for m in mixkit.registry.methods()}
    classes = {m.cls.__name__ for m in mixkit.registry.methods() if m.cls is not None}
    return names, classes


def _methods_named(node, names, classes) -> set[str]:
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            head = sub.value if sub.value in names else sub.value.split("-")[0]
            if head in names:
                found.add(names[head])
        elif isinstance(sub, ast.Name) and sub.id in classes:
            found.add(sub.id)
        elif isinstance(sub, ast.Attribute) and sub.attr in classes:
            found.add(sub.attr)
    return found


def _if_chain(node: ast.If) -> list:
    tests = [node.test]
    while len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If):
        node = node.orelse[0]
        tests.append(node.test)
    return tests


def _hand_lists(paths, names, classes):
    for path in paths:
        text = path.read_text()
        lines = text.splitlines()
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if "# method-list: ok (" in lines[node.lineno - 1] if hasattr(node, "lineno") else False:
                continue
            if isinstance(node, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
                found = _methods_named(node, names, classes)
            elif isinstance(node, ast.If):
                found = set().union(*(_methods_named(t, names, classes) for t in _if_chain(node)))
            else:
                continue
            if len(found) >= 4:
                yield f"{path}:{node.lineno} ({', '.join(sorted(found))})"


def _checked_files():
    return [p for p in [*SRC.rglob("*.py"), *TESTS.rglob("*.py")] if p not in REGISTRY_FILES]


def test_no_hand_typed_list_of_methods_outside_the_registry():
    names, classes = _method_tokens()
    found = sorted(set(_hand_lists(_checked_files(), names, classes)))
    assert not found, found


def test_the_method_list_check_can_fail(tmp_path):
    names, classes = _method_tokens()
    bad = tmp_path / "bad.py"
    bad.write_text('A = ["mixup", "cutmix", "fmix", "zeta"]\nB = [MixUp, CutMix]\n'
                   'if m == "mixup":\n    pass\nelif m == "cutmix":\n    pass\nelif m == "fmix-elem":\n    pass\n'
                   'elif isinstance(m, mixkit.GridMix):\n    pass\n')
    assert len(list(_hand_lists([bad], names, classes))) == 2

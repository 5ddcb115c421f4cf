"""The package's import graph, read from the source's AST: imports flow one way, down the levels of
the architecture, and no set of modules imports itself in a circle.

Every import counts, the function-local ones included (they hide circles). Within one package a
module may import its siblings as long as no circle forms; across packages an import may only go
to a lower level. The levels are those of spikeroll/__init__.py's docstring.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "spikeroll"

# top to bottom; a module may import only from its own package or from a lower level
LEVELS = [
    ["cli"],
    ["api"],
    ["tools", "interop", "control"],
    ["training"],
    ["modules"],
    ["es"],
    ["nets", "data"],
    ["config", "atomic", "memory", "cachedir", "userfile"],
    ["errors", "version"],
    ["noise"],
]
LEVEL = {name: depth for depth, names in enumerate(LEVELS) for name in names}
LAZY_ALLOWED = {"cli"}  # imports the library inside each command: `spikeroll --help` loads no torch


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in SRC.rglob("*.py")}


def resolve(target: str, known: dict[str, Path]) -> str:
    """`from spikeroll.a import b` names module spikeroll.a.b when that is a module, else spikeroll.a."""
    return target if target in known else target.rsplit(".", 1)[0]


def imports(path: Path, known: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """(imported spikeroll module, line, function-local) for every import in a file."""
    tree = ast.parse(path.read_text())
    local_lines = {node.lineno for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: relative import; spikeroll imports by full name")
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "spikeroll":
            for alias in node.names:
                found.append((resolve(f"{node.module}.{alias.name}", known), node.lineno, node.lineno in local_lines))
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno, node.lineno in local_lines) for a in node.names
                      if a.name.split(".")[0] == "spikeroll"]
    return found


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {target for target, _, _ in imports(path, known)} for name, path in known.items()}


def test_every_module_has_a_level():
    missing = sorted({top(m) for m in modules()} - set(LEVEL) - {""})
    assert not missing, f"add these to LEVELS (and to spikeroll/__init__.py's map): {missing}"


def test_imports_only_go_down_the_levels():
    known = modules()
    upward = []
    for name, path in known.items():
        if name == "spikeroll":
            continue  # the facade: its names are imported lazily, and only under TYPE_CHECKING here
        for target, line, local in imports(path, known):
            source_pkg, target_pkg = top(name), top(target)
            if target == "spikeroll" or target_pkg == "":
                upward.append(f"{path.name}:{line} imports the package facade; import the defining module")
            elif source_pkg != target_pkg and LEVEL[target_pkg] <= LEVEL[source_pkg]:
                upward.append(f"{name}:{line} -> {target}")
            if local and source_pkg not in LAZY_ALLOWED:
                upward.append(f"{name}:{line} imports {target} inside a function (only optional deps may)")
    assert not upward, "imports against the architecture:\n" + "\n".join(upward)


def test_no_import_circle():
    edges = graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in edges:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert not cycles, f"import circles: {cycles}"


def test_the_checker_sees_a_circle_and_an_upward_import(tmp_path, monkeypatch):
    """The walker above is itself checked on a tiny package with a known circle and upward import."""
    pkg = tmp_path / "spikeroll"
    (pkg / "es").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "es" / "__init__.py").write_text("")
    (pkg / "es" / "a.py").write_text("def f():\n    from spikeroll.es import b\n")
    (pkg / "es" / "b.py").write_text("from spikeroll.es.a import f\nfrom spikeroll.api import x\n")
    (pkg / "api.py").write_text("x = 1\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", pkg)
    with pytest.raises(AssertionError, match=r"spikeroll\.es\.a', 'spikeroll\.es\.b'"):
        test_no_import_circle()
    with pytest.raises(AssertionError, match=r"spikeroll\.es\.b:2 -> spikeroll\.api"):
        test_imports_only_go_down_the_levels()


@pytest.mark.parametrize("code", [
    "import spikeroll",
    "from spikeroll.cli import main",
    "from spikeroll import TrainConfig; TrainConfig().validate()",
])
def test_import_and_help_load_no_torch_numba_or_ray(code):
    probe = f"{code}\nimport sys\nprint(sorted(m for m in ('torch', 'numba', 'ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_api_resolves():
    import spikeroll

    for name in spikeroll.__all__:
        assert getattr(spikeroll, name) is not None
    with pytest.raises(AttributeError):
        spikeroll.no_such_name  # noqa: B018

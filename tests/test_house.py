"""The package's shape: no import cycles, a typed public API that mypy checks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pstfast"


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def import_graph() -> dict[str, set[str]]:
    """module -> the pstfast modules it imports anywhere (module level, in functions, under
    TYPE_CHECKING), ``from X import y`` counted as importing ``X.y`` when that is a module."""
    files = {(_module_name(p)[0]): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        base = name.split(".") if is_package else name.split(".")[:-1]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                head = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else [])) \
                    if node.level else (node.module or "")
                targets = [f"{head}.{a.name}" if f"{head}.{a.name}" in files else head for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in files:  # pstfast.x.y where y is a name in x
                    target = target.rpartition(".")[0]
                if target.startswith("pstfast") and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert "pstfast.pipeline.runner" in graph and "pstfast.pipeline.commands" in graph["pstfast.pipeline.runner"]
    assert cycles(graph) == []


def test_the_package_is_folders_by_stage() -> None:
    flat = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert len(flat) <= 12, flat
    for folder in ("pst", "extraction", "loading", "enrich", "db", "pipeline", "synthetic", "cli"):
        assert (PACKAGE / folder / "__init__.py").exists(), folder


mypy_api = pytest.importorskip("mypy.api", reason="mypy is in the test extra")


def test_mypy_strict_passes_on_the_package() -> None:
    out, err, status = mypy_api.run(["--config-file", str(ROOT / "pyproject.toml"), str(PACKAGE)])
    assert status == 0, out + err


def test_mypy_rejects_a_wrong_call_of_the_public_api(tmp_path: Path) -> None:
    snippet = tmp_path / "use.py"
    snippet.write_text(
        "import pstfast\n"
        "pstfast.extract(123)\n"
        "pstfast.extract('a.pst', 'out/', workers='many')\n"
        "m: pstfast.Manifest = pstfast.extract('a.pst', 'out/', workers=2)\n"
    )
    out, _, status = mypy_api.run(["--strict", "--no-incremental", str(snippet)])
    assert status == 1
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert sorted({line.split(":")[1] for line in errors}) == ["2", "3"], out  # line 4 is a right call
    assert 'Argument 1 to "extract" has incompatible type "int"' in out
    assert 'Argument "workers" to "extract" has incompatible type "str"' in out

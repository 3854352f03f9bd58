"""The package's shape (issue 14): no import cycle, one home per status name, short modules.

Read from the source with ``ast`` (nothing is imported except ``featnorm.status``), so an import
inside a function counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from featnorm import status

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "featnorm"
README = Path(__file__).resolve().parents[1] / "README.md"
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """featnorm modules that ``name`` imports anywhere in its source (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from featnorm import images` imports the module featnorm.images
            targets = [
                f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known
            ] or [base]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_graph_sees_imports_inside_functions():
    """The parser counts a function-level import (cli_embed imports embed inside its step
    function, cli imports the cli_* modules inside build_parser)."""
    graph = _graph()
    assert "featnorm.embed" in graph["featnorm.cli_embed"]
    assert "featnorm.cli_embed" in graph["featnorm.cli"]
    assert "featnorm.recordio" in graph["featnorm.sources"]
    assert "featnorm.images" in graph["featnorm.recordio.reader"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_inside_featnorm():
    graph = _graph()
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


def test_images_knows_no_recordio():
    """featnorm.images decodes files and bytes; the choice of source lives in featnorm.sources."""
    graph = _graph()
    assert not {m for m in graph["featnorm.images"] if m.startswith("featnorm.recordio")}


def _status_names() -> dict[str, str]:
    return {k: v for k, v in vars(status).items() if k.isupper() and isinstance(v, str)}


def test_every_status_has_a_meaning():
    assert set(_status_names().values()) == set(status.MEANINGS)
    assert len(set(_status_names().values())) == len(_status_names())


def _string_literals(path: Path) -> list[tuple[int, str]]:
    """(line, value) of every string constant of ``path`` that is not a docstring."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and ast.get_docstring(node, clean=False) is not None
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_each_status_name_is_spelled_in_featnorm_status_only():
    names = set(_status_names().values())
    spelled = [
        f"{name}:{line}: {value!r}"
        for name, path in _modules().items()
        if name != "featnorm.status"
        for line, value in _string_literals(path)
        if value in names
    ]
    assert not spelled, f"use featnorm.status constants instead of: {spelled}"


def _readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_readme_status_table_equals_the_status_module():
    """README "Bad input": the status table lists every status with its meaning, and the table of
    cases names only statuses that exist."""
    section = _readme_section("Bad input")
    rows = re.findall(r"^\| `([a-z_]+)` \| (.+) \|$", section, flags=re.M)
    assert dict(rows) == status.MEANINGS
    assert len(rows) == len(status.MEANINGS)
    cases = section[: section.index("| status | meaning |")]
    case_rows = "\n".join(line for line in cases.splitlines() if line.startswith("| "))
    named = set(re.findall(r"`([a-z_]+)`", case_rows))
    assert named, "the table of bad-input cases names no status"
    assert named <= set(status.MEANINGS), named - set(status.MEANINGS)


@pytest.mark.parametrize("name", sorted(_modules()))
def test_no_module_over_600_lines(name):
    lines = len(_modules()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name}: {lines} lines; split it by concept"

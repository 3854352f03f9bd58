"""The package's shape: stage subpackages and the layers between them (issue 24), no import
cycle, one home per status name, short modules, a docstring on every public function, class and
method (issue 14).

Read from the source with ``ast`` (nothing is imported except ``featnorm.status``), so an import
inside a function counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from featnorm import status

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "featnorm"
BAD_INPUT_DOC = Path(__file__).resolve().parents[2] / "docs" / "bad-input.md"
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
            # `from featnorm import images` imports the module featnorm.data.images
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
    assert "featnorm.embedding.embed" in graph["featnorm.cli.embed"]
    assert "featnorm.cli.embed" in graph["featnorm.cli.main"]
    assert "featnorm.data.recordio" in graph["featnorm.data.sources"]
    assert "featnorm.data.images" in graph["featnorm.data.recordio.reader"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_inside_featnorm():
    graph = _graph()
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


STAGES = ("config", "data", "quality", "embedding", "analysis", "evaluation", "report", "cli")
MAX_TOP_LEVEL_MODULES = 8  # __init__ and __main__ included


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_uses(name: str, path: Path, known: set[str]) -> list[str]:
    """Private names of *other* featnorm modules that ``name`` imports or reads as attributes."""
    found = []
    bound: dict[str, str] = {}  # local name -> featnorm module it is bound to
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("featnorm"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in known:
                    bound[alias.asname or alias.name] = full
                elif _is_private(alias.name) and node.module != name:
                    found.append(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known and alias.asname:
                    bound[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and bound.get(node.value.id, name) != name
            and _is_private(node.attr)
        ):
            found.append(f"{bound[node.value.id]}.{node.attr}")
    return sorted(set(found))


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every featnorm module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def _imports_torch(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        if any(n == "torch" or n.startswith("torch.") for n in names):
            return True
    return False


def _in(module: str, *stages: str) -> bool:
    return any(module == f"featnorm.{s}" or module.startswith(f"featnorm.{s}.") for s in stages)


def test_the_private_name_check_sees_imports_and_attributes(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "from featnorm.analysis import stats\n"
        "from featnorm.analysis.stats import _hidden, public\n"
        "x = stats._finite_rows\n"
        "y = stats.correlate\n"
    )
    known = {"featnorm.analysis.stats", "featnorm.m"}
    assert _private_uses("featnorm.m", source, known) == [
        "featnorm.analysis.stats._finite_rows",
        "featnorm.analysis.stats._hidden",
    ]
    assert _private_uses("featnorm.analysis.stats", source, known) == []  # its own names


def test_no_module_uses_another_modules_private_names():
    modules = _modules()
    known = set(modules)
    found = {n: uses for n, p in modules.items() if (uses := _private_uses(n, p, known))}
    assert not found, f"private names used across modules: {found}"


def test_scripts_outside_the_package_use_its_public_names_only():
    """benchmarks/, docs/ and tests/scripts/ run featnorm as users do: a private name there
    breaks silently when its module changes (benchmarks/scale.py did, on the new demo)."""
    known = set(_modules())
    repo = SRC.parent
    scripts = [p for d in ("benchmarks", "docs", "tests/scripts") for p in (repo / d).glob("*.py")]
    assert scripts
    found = {str(p.relative_to(repo)): u for p in scripts if (u := _private_uses("", p, known))}
    assert not found, f"private featnorm names used by scripts: {found}"


def test_the_package_is_stage_subpackages_with_few_modules_at_the_top():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    assert all((PACKAGE / s / "__init__.py").is_file() for s in STAGES)


def test_analysis_and_evaluation_reach_neither_torch_nor_the_embedding_stage():
    modules = _modules()
    graph = _graph()
    torch_users = {n for n, p in modules.items() if _imports_torch(p)}
    assert "featnorm.embedding.embed" in torch_users  # the check sees torch where it is
    for name in modules:
        if _in(name, "analysis", "evaluation"):
            reached = _reach(graph, name) | {name}
            bad = sorted(m for m in reached if m in torch_users or _in(m, "embedding"))
            assert not bad, f"{name} reaches {bad}"


def test_nothing_outside_cli_imports_it():
    graph = _graph()
    for name, deps in graph.items():
        if not _in(name, "cli") and name != "featnorm.__main__":
            assert not [d for d in deps if _in(d, "cli")], f"{name} imports the cli"


def test_analysis_and_evaluation_do_not_import_report():
    graph = _graph()
    for name in graph:
        if _in(name, "analysis", "evaluation"):
            reached = _reach(graph, name)
            assert not [m for m in reached if _in(m, "report")], f"{name} reaches report/"


def test_config_stage_and_planning_need_neither_torch_nor_opencv():
    """`snakemake -n` imports featnorm.config and featnorm.options only (workflow/rules/common.smk)."""
    modules = _modules()
    graph = _graph()
    for name in [m for m in modules if _in(m, "config")] + ["featnorm.options"]:
        for m in _reach(graph, name) | {name}:
            source = modules[m].read_text(encoding="utf-8")
            assert not re.search(r"^\s*(import|from) (torch|cv2)\b", source, re.M), (name, m)


def test_images_knows_no_recordio():
    """featnorm.data.images decodes files and bytes; the choice of source lives in featnorm.data.sources."""
    graph = _graph()
    assert not {m for m in graph["featnorm.data.images"] if m.startswith("featnorm.data.recordio")}


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


def test_bad_input_status_table_equals_the_status_module():
    """docs/bad-input.md: the status table lists every status with its meaning, and the table of
    cases names only statuses that exist."""
    section = BAD_INPUT_DOC.read_text(encoding="utf-8")
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


def _public_definitions(tree: ast.Module) -> list[tuple[str, ast.AST]]:
    """(qualified name, node) of the public module-level functions and classes of ``tree`` and
    the public methods of those classes; nested functions and ``_private`` names are left out."""
    found: list[tuple[str, ast.AST]] = []
    defs = ast.FunctionDef | ast.AsyncFunctionDef
    for node in tree.body:
        if not isinstance(node, defs | ast.ClassDef) or node.name.startswith("_"):
            continue
        found.append((node.name, node))
        if isinstance(node, ast.ClassDef):
            found += [
                (f"{node.name}.{item.name}", item)
                for item in node.body
                if isinstance(item, defs) and not item.name.startswith("_")
            ]
    return found


def _undocumented(source: str) -> list[str]:
    return [
        name
        for name, node in _public_definitions(ast.parse(source))
        if not (ast.get_docstring(node) or "").strip()
    ]


def test_the_docstring_check_sees_functions_classes_and_methods():
    source = '''
def documented():
    """Does a thing."""

def bare():
    def nested():
        pass

def _private():
    pass

class Thing:
    def method(self):
        pass

    def _helper(self):
        pass

    def __len__(self):
        return 0

class Blank:
    """ """
'''
    assert _undocumented(source) == ["bare", "Thing", "Thing.method", "Blank"]


@pytest.mark.parametrize("name", sorted(_modules()))
def test_every_public_function_class_and_method_has_a_docstring(name):
    """Issue 14 item 7: what each public definition computes is written next to it."""
    missing = _undocumented(_modules()[name].read_text(encoding="utf-8"))
    assert not missing, f"{name}: add a docstring to {', '.join(missing)}"


MAX_FUNCTION_LINES = 60
LONG_REASON = re.compile(r"long because: \S.{9,}")


def _long_functions(path: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``name:line (n lines)`` of each function of ``path`` longer than ``limit`` lines, counted
    from the ``def`` line to its last line, that does not state why it is long."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        length = node.end_lineno - node.lineno + 1
        if length <= limit:
            continue
        # the reason may sit anywhere before the first statement after the docstring
        after_doc = 1 if ast.get_docstring(node, clean=False) is not None else 0
        first = node.body[min(after_doc, len(node.body) - 1)]
        head = lines[node.lineno - 1 : first.lineno - 1 if after_doc < len(node.body) else None]
        if not any(LONG_REASON.search(line) for line in head):
            found.append(f"{node.name}:{node.lineno} ({length} lines)")
    return found


def test_the_function_length_check_counts_def_to_last_line_and_reads_reasons(tmp_path):
    def body(n: int) -> str:
        return "".join(f"    x{i} = {i}\n" for i in range(n))

    plain = tmp_path / "plain.py"
    plain.write_text(f"def short():\n{body(59)}\n\ndef long():\n{body(60)}")
    assert _long_functions(plain) == ["long:63 (61 lines)"]  # short: exactly 60 lines
    stated = tmp_path / "stated.py"
    stated.write_text(
        'def f():\n    """Doc."""\n    # long because: a table of 60 rows\n' + body(60)
    )
    assert _long_functions(stated) == []
    in_doc = tmp_path / "in_doc.py"
    in_doc.write_text('def f():\n    """Doc; long because: a literal table."""\n' + body(60))
    assert _long_functions(in_doc) == []
    vague = tmp_path / "vague.py"
    vague.write_text("def f():\n    # long because: it is\n" + body(60))
    assert _long_functions(vague) == ["f:1 (62 lines)"]
    late = tmp_path / "late.py"  # a reason further down the body does not count
    late.write_text("def f():\n" + body(60) + "    # long because: a table of 60 rows\n    y = 1\n")
    assert _long_functions(late) == ["f:1 (63 lines)"]


@pytest.mark.parametrize("name", sorted(_modules()))
def test_no_function_over_60_lines_without_a_stated_reason(name):
    """Functions stay at most 60 lines (``def`` line to last line, docstring included), so each
    reads on one screen and does one thing.

    A longer one is allowed when it says why, before its first statement: a comment
    ``# long because: <reason of 10 or more characters>`` right after the signature or the
    docstring, or the same words inside the docstring (e.g. "long because: a literal table of
    the 36 feature names", "long because: the docstring documents 12 parameters").
    """
    long = _long_functions(_modules()[name])
    assert not long, f"{name}: {long}; split into named helpers or state why (long because: ...)"

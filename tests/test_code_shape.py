"""The code keeps the shape style.md promises: small modules, short functions.

Counted are lines of logic: not blank lines, comments or docstrings. Alembic migrations are
declarative DDL and are left out. A module or function over its limit fails with its name and
size, so the split happens when the code grows, not in a later clean-up.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edgecount", "gateway", "drivers", "models", "simulators", "reconciler")
MODULE_LIMIT = 500
FUNCTION_LIMIT = 60
_SKIPPED_TOKENS = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENDMARKER,
}
_Scope = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef


def _docstring_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, _Scope) or not node.body:
            continue
        first = node.body[0]
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def _logic_lines(source: str, tree: ast.Module) -> set[int]:
    docs = _docstring_lines(tree)
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in _SKIPPED_TOKENS:
            continue
        lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docs)
    return lines


def _modules() -> list[Path]:
    found = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    return [p for p in found if "migrations" not in p.parts]


def _sizes() -> tuple[dict[str, int], dict[str, int]]:
    modules: dict[str, int] = {}
    functions: dict[str, int] = {}
    for path in _modules():
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        lines = _logic_lines(source, tree)
        name = str(path.relative_to(ROOT))
        modules[name] = len(lines)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                end = node.end_lineno or node.lineno
                size = sum(1 for n in lines if node.lineno <= n <= end)
                functions[f"{name}:{node.lineno} {node.name}"] = size
    return modules, functions


def test_the_count_sees_every_package() -> None:
    modules, functions = _sizes()
    assert {name.split("/")[0] for name in modules} == set(PACKAGES)
    assert len(functions) > 500  # the walk found the code, not an empty tree


def test_logic_lines_leave_out_docstrings_and_comments() -> None:
    source = 'def f() -> int:\n    """Doc.\n\n    More.\n    """\n    # note\n\n    return 1\n'
    assert sorted(_logic_lines(source, ast.parse(source))) == [1, 8]


def test_modules_stay_under_the_limit() -> None:
    modules, _ = _sizes()
    over = {name: size for name, size in modules.items() if size > MODULE_LIMIT}
    assert not over, f"modules over {MODULE_LIMIT} lines of logic: {over}"


def test_functions_stay_under_the_limit() -> None:
    _, functions = _sizes()
    over = {name: size for name, size in functions.items() if size > FUNCTION_LIMIT}
    assert not over, f"functions over {FUNCTION_LIMIT} lines of logic: {over}"

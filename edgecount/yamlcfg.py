"""Strict YAML configuration loading with file, line and key in every error.

Both the gateway and the reconciler configurations go through :func:`load_model`: the YAML is
parsed with ruamel.yaml (which remembers where each key stands), validated by a pydantic
model that forbids unknown keys, and every error is reported as ``FILE:LINE: key.path: why``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pydantic
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)

PATTERN_MESSAGES: dict[str, str] = {}
"""Plain-words explanations of regular expressions used in models (pattern → text)."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem found in a configuration file."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(Exception):
    """A configuration file could not be loaded; :attr:`issues` lists every problem."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


def _plain(node: Any) -> Any:
    """Turn ruamel's commented containers into plain dicts and lists."""
    if isinstance(node, Mapping):
        return {key: _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(value) for value in node]
    return node


def _line_of(root: Any, loc: Sequence[int | str]) -> tuple[int | None, list[int | str]]:
    """Find the line of the deepest key of ``loc`` that exists in the document.

    Pydantic puts union tags (``'llrp'``) and validator names into ``loc``; steps that do not
    match the document are skipped. Returns the 1-based line and the path that matched.
    """
    node = root
    line = None
    matched: list[int | str] = []
    for step in loc:
        if isinstance(node, CommentedMap) and step in node:
            line = node.lc.key(step)[0] + 1
            node = node[step]
        elif (
            isinstance(node, CommentedMap)
            and isinstance(step, str)
            and step.isdigit()
            and int(step) in node
        ):
            line = node.lc.key(int(step))[0] + 1
            node = node[int(step)]
        elif isinstance(node, CommentedSeq) and isinstance(step, int) and 0 <= step < len(node):
            line = node.lc.item(step)[0] + 1
            node = node[step]
        else:
            continue
        matched.append(step)
    return line, matched


def _format_key(loc: Sequence[int | str]) -> str:
    parts: list[str] = []
    for step in loc:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        else:
            parts.append(f".{step}" if parts else str(step))
    return "".join(parts)


def _issues_from(exc: pydantic.ValidationError, doc: Any, file: str) -> Iterator[ConfigIssue]:
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        if error["type"] in {"union_tag_invalid", "union_tag_not_found"}:
            # Point at the discriminator key itself (``readers[0].type``), not its mapping.
            loc.append(str((error.get("ctx") or {}).get("discriminator", "")).strip("'"))
        line, matched = _line_of(doc, loc)
        if error["type"] == "union_tag_invalid":
            ctx = error.get("ctx") or {}
            message = f"{ctx.get('tag')!r} is not a known type (one of {ctx.get('expected_tags')})"
        elif error["type"] == "union_tag_not_found":
            message = "required key is missing (it picks the kind of entry)"
            matched = loc
        elif error["type"] == "extra_forbidden":
            message = "unknown key (not allowed here)"
        elif error["type"] == "missing":
            message = "required key is missing"
            matched = loc  # the key is absent: name it in full, at its parent's line
        elif error["type"] == "string_pattern_mismatch":
            pattern = str((error.get("ctx") or {}).get("pattern", ""))
            explain = PATTERN_MESSAGES.get(pattern, f"must match the pattern {pattern}")
            message = f"{error['input']!r} is not valid: {explain}"
        else:
            message = error["msg"]
        key = _format_key(matched)
        yield ConfigIssue(file=file, line=line, key=key, message=message)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file keeping line information; raise :class:`ConfigError` when it fails."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), None, "", f"cannot read: {exc}")]) from exc
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            [ConfigIssue(str(path), line, "", f"invalid YAML: {exc.problem}")]
        ) from exc
    except Exception as exc:  # ruamel raises several unrelated types for bad documents
        raise ConfigError([ConfigIssue(str(path), None, "", f"invalid YAML: {exc}")]) from exc


def config_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """Add the ``-c/--config FILE`` option every edgecount command takes."""
    parser.add_argument(
        "-c", "--config", type=Path, required=True, metavar="FILE", help=f"{what} YAML file"
    )


def load_or_report(loader: Callable[[Path], ModelT], path: Path) -> ModelT | None:
    """Load a configuration; on errors print each (file, line, key, why) to stderr, return None."""
    try:
        return loader(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return None


def load_model(
    path: Path, model: type[ModelT], *, context: Mapping[str, Any] | None = None
) -> ModelT:
    """Load ``path`` and validate it against ``model``.

    Args:
        path: The YAML file.
        model: A pydantic model class (use ``extra="forbid"`` on every level).
        context: Passed to pydantic validators (the gateway passes the config directory).

    Raises:
        ConfigError: With one :class:`ConfigIssue` per problem, each naming file, line and key.
    """
    return validate_document(read_yaml(path), path, model, context=context)


def validate_document(
    doc: Any, path: Path, model: type[ModelT], *, context: Mapping[str, Any] | None = None
) -> ModelT:
    """Validate a document already read by :func:`read_yaml` against ``model``.

    For callers that look at the document first (to tell which kind of file it is).

    Raises:
        ConfigError: With one :class:`ConfigIssue` per problem, each naming file, line and key.
    """
    if not isinstance(doc, CommentedMap):
        raise ConfigError([ConfigIssue(str(path), None, "", "top level must be a mapping")])
    try:
        return model.model_validate(_plain(doc), context=dict(context or {}))
    except pydantic.ValidationError as exc:
        raise ConfigError(list(_issues_from(exc, doc, str(path)))) from exc

"""YAML configuration files that remember where each key is, for errors that say file, key, line.

:func:`parse_yaml` refuses a key given twice in one mapping (PyYAML silently keeps the last) and
records the line of every key and list item, so a problem found later, e.g. by pydantic, can be
reported as ``file: rules[2].within, line 23: what is wrong``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml

from services.errors import ConfigurationError

__all__ = ["Key", "YamlDocument", "format_key", "parse_yaml"]

_BOOL = "tag:yaml.org,2002:bool"


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true and false, so keys and values such as
    ``on``, ``off``, ``yes`` and ``no`` stay text (a journey rule's ``on:`` key)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

#: Where a value sits in a document: mapping keys and list indexes from the top.
Key = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """A parsed document and the 1-based line of each key path in it."""

    data: object
    lines: dict[Key, int] = field(default_factory=dict)

    def line(self, key: Sequence[str | int]) -> int | None:
        """The line of ``key``, or of its nearest enclosing key that has one (for a missing key,
        the line of the mapping that lacks it); ``None`` at the top level."""
        path = tuple(key)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


def format_key(key: Sequence[str | int]) -> str:
    """``("rules", 2, "within")`` -> ``rules[2].within``; odd names are quoted: ``track['A B']``."""
    text = ""
    for part in key:
        if isinstance(part, bool):
            text += f"[{part!r}]"
        elif isinstance(part, int):
            text += f"[{part}]"
        elif part.isidentifier():
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text or "(top level)"


def parse_yaml(text: str, label: str, *, yaml11_booleans: bool = False) -> YamlDocument:
    """Parse one YAML document with safe tags only; ``label`` names the file in errors.

    Only ``true`` and ``false`` are booleans (YAML 1.2) unless ``yaml11_booleans`` asks for
    PyYAML's YAML 1.1 reading, where ``on``, ``off``, ``yes`` and ``no`` are booleans too.

    Raises :class:`ConfigurationError` for a syntax error (with line and column) and for keys
    given twice (every one, with its key path, line and column).
    """
    loader = yaml.SafeLoader(text) if yaml11_booleans else _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(None)
        lines: dict[Key, int] = {}
        duplicates: list[str] = []
        _walk(node, (), lines, duplicates, set())
        if duplicates:
            raise ConfigurationError("\n".join(f"{label}: {problem}" for problem in duplicates))
        return YamlDocument(loader.construct_document(node), lines)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = error.problem or "not valid YAML"
        raise ConfigurationError(f"{label}: {where}{problem} (the file must be YAML)") from None
    except yaml.YAMLError as error:
        raise ConfigurationError(f"{label}: not valid YAML: {error}") from None
    finally:
        loader.dispose()


def _walk(
    node: yaml.Node, key: Key, lines: dict[Key, int], duplicates: list[str], seen: set[int]
) -> None:
    """Record the line of every key and item below ``node`` and every key given twice.

    A node reached again through an alias is not walked again (its lines are those of the
    anchor), which also keeps recursive and exponential alias structures cheap.
    """
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # complex keys: PyYAML's constructor reports them
            child = (*key, str(key_node.value))
            mark = key_node.start_mark
            identity = (key_node.tag, str(key_node.value))
            if identity in first:
                duplicates.append(
                    f"{format_key(child)}, line {mark.line + 1}, column {mark.column + 1}: "
                    f"{key_node.value!r} is given twice (first on line {first[identity]}); "
                    "keep one"
                )
                continue
            first[identity] = mark.line + 1
            lines[child] = mark.line + 1
            _walk(value_node, child, lines, duplicates, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*key, index)
            lines[child] = item.start_mark.line + 1
            _walk(item, child, lines, duplicates, seen)

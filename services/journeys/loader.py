"""Read journey maps from YAML files; every problem becomes one ConfigurationError.

Each problem names the file, the key path (with the rule or stage id), the line where the file
has one, and what is wrong, e.g.::

    journey_maps/support.yaml: rules[1] (repeat_contact).within, line 23: '7 days' is not a
    duration such as 90s, 30m, 48h or 7d

The format is docs/journey-maps.md; what a map may say is checked by
:mod:`services.journeys.checks`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.errors import ConfigurationError
from services.journeys.checks import FLAG_REFERENCE, Problem, check_map
from services.journeys.maps import JourneyMap
from services.settings import Settings
from services.yamlfile import Key, YamlDocument, format_key, parse_yaml

__all__ = ["configured_maps_dir", "default_maps_dir", "load_map", "load_maps"]

_SETTING = "TOUCHSTREAM_JOURNEY_MAPS_DIR"


def default_maps_dir() -> Path:
    """The shipped maps: ``journey_maps/`` at the top of the repository."""
    return Path(__file__).resolve().parents[2] / "journey_maps"


def configured_maps_dir(settings: Settings) -> Path:
    """``TOUCHSTREAM_JOURNEY_MAPS_DIR``, or the shipped maps when it is unset."""
    return settings.journey_maps_dir or default_maps_dir()


def load_map(path: Path) -> JourneyMap:
    """Read and check one journey map file.

    ``flag:`` references to rules of other maps are not checked here: :func:`load_maps` does.
    Raises :class:`ConfigurationError` listing every problem, each with file, key and line.
    """
    parsed = _parse(Path(path))
    if parsed.errors or parsed.journey is None:
        raise ConfigurationError("\n".join(parsed.errors))
    return parsed.journey


def load_maps(directory: Path) -> dict[str, JourneyMap]:
    """Every ``*.yaml`` journey map in ``directory``, by journey name, in file name order.

    Besides each file's own problems, a journey name or rule id used twice and a
    ``flag:<rule id>`` that names no rule of any of the maps are errors. Raises one
    :class:`ConfigurationError` with every problem of every file.
    """
    directory = Path(directory)
    label = _label(directory)
    if not directory.exists():
        raise ConfigurationError(
            f"{label}: no such directory; point {_SETTING} at a directory of journey maps "
            "(*.yaml, docs/journey-maps.md) or unset it to use the shipped maps"
        )
    if not directory.is_dir():
        raise ConfigurationError(
            f"{label}: not a directory; {_SETTING} names a directory of journey maps (*.yaml)"
        )
    files = sorted(p for p in directory.glob("*.yaml") if p.is_file())
    if not files:
        others = sorted(p.name for p in directory.glob("*.yml"))
        hint = f" (rename {', '.join(others)} to .yaml)" if others else ""
        raise ConfigurationError(
            f"{label}: no journey maps in this directory: it has no *.yaml files{hint}; "
            f"add maps (docs/journey-maps.md) or point {_SETTING} at the directory that has them"
        )
    parsed = [_parse(path) for path in files]
    errors = [error for p in parsed for error in p.errors]
    errors += _duplicate_journeys(parsed)
    errors += _duplicate_rules(parsed)
    errors += _dangling_flags(parsed)
    if errors:
        raise ConfigurationError("\n".join(errors))
    return {p.journey.journey: p.journey for p in parsed if p.journey is not None}


@dataclass(slots=True)
class _Parsed:
    """One file: its label, document and map when they could be read, and its errors."""

    label: str
    document: YamlDocument | None = None
    journey: JourneyMap | None = None
    errors: list[str] = field(default_factory=list)

    def error(self, problem: Problem) -> str:
        """``file: key (id), line N: message``."""
        assert self.document is not None
        where = _where(problem.key, self.document.data)
        line = self.document.line(problem.key)
        located = ", ".join(part for part in (where, f"line {line}" if line else "") if part)
        return f"{self.label}: {located + ': ' if located else ''}{problem.message}"


def _parse(path: Path) -> _Parsed:
    parsed = _Parsed(_label(path))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        parsed.errors.append(f"{parsed.label}: no such file; give a journey map (*.yaml)")
        return parsed
    except (OSError, UnicodeDecodeError) as error:
        parsed.errors.append(f"{parsed.label}: cannot read it: {error}")
        return parsed
    try:
        parsed.document = parse_yaml(text, parsed.label)
    except ConfigurationError as error:
        parsed.errors.append(str(error))
        return parsed
    journey, problems = check_map(parsed.document.data)
    document = parsed.document
    problems.sort(key=lambda p: document.line(p.key) or 0)
    parsed.errors = [parsed.error(problem) for problem in problems]
    parsed.journey = None if problems else journey
    return parsed


def _duplicate_journeys(parsed: list[_Parsed]) -> list[str]:
    errors = []
    first: dict[str, str] = {}
    for p in parsed:
        if p.journey is None:
            continue
        name = p.journey.journey
        if name in first:
            message = f"journey {name!r} is also defined in {first[name]}; names must be unique"
            errors.append(p.error(Problem(("journey",), message)))
        else:
            first[name] = p.label
    return errors


def _duplicate_rules(parsed: list[_Parsed]) -> list[str]:
    """A rule id names one rule across all maps: flags and their ids carry only the rule id."""
    errors = []
    first: dict[str, str] = {}
    journeys: set[str] = set()
    for p in parsed:
        if p.journey is None or p.journey.journey in journeys:
            continue  # a second copy of a journey is reported as such
        journeys.add(p.journey.journey)
        for index, rule in enumerate(p.journey.rules):
            if rule.id in first:
                message = (
                    f"rule id {rule.id!r} is also used in {first[rule.id]}; "
                    "rule ids must be unique across all maps"
                )
                errors.append(p.error(Problem(("rules", index, "id"), message)))
            else:
                first[rule.id] = p.label
    return errors


def _dangling_flags(parsed: list[_Parsed]) -> list[str]:
    """``flag:<rule id>`` items of sequence rules naming a rule that no file defines; not
    checked while a file is not even YAML, as its rules are unknown."""
    if any(p.document is None for p in parsed):
        return []
    rules = {p.label: _items(p.document.data, "rules") for p in parsed if p.document is not None}
    ids = [rule.get("id") for items in rules.values() for _, rule in items]
    known = sorted({ident for ident in ids if isinstance(ident, str)})
    errors = []
    for p in parsed:
        for index, rule in rules.get(p.label, []):
            after = rule.get("after") if rule.get("kind") == "sequence" else None
            for position, item in enumerate(after if isinstance(after, list) else []):
                if not isinstance(item, str) or not FLAG_REFERENCE.match(item):
                    continue  # not a flag reference, or a malformed one check_map reports
                ref = item.removeprefix("flag:")
                if ref in known:
                    continue
                close = difflib.get_close_matches(ref, known, n=1, cutoff=0.75)
                guess = f"did you mean flag:{close[0]}? " if close else ""
                message = (
                    f"{item!r} names no rule of the loaded maps; {guess}"
                    f"their rule ids are: {', '.join(known) or 'none'}"
                )
                errors.append(p.error(Problem(("rules", index, "after", position), message)))
    return errors


def _items(data: object, section: str) -> list[tuple[int, Mapping[str, object]]]:
    items = data.get(section) if isinstance(data, Mapping) else None
    return [
        (index, item)
        for index, item in enumerate(items if isinstance(items, list) else [])
        if isinstance(item, Mapping)
    ]


def _where(key: Key, data: object) -> str:
    """``rules[1] (repeat_contact).within``: the key path, with the id of the rule or stage."""
    text = format_key(key) if key else ""
    if len(key) >= 2 and key[0] in ("rules", "stages") and isinstance(key[1], int):
        items = dict(_items(data, str(key[0])))
        ident = items[key[1]].get("id") if key[1] in items else None
        if isinstance(ident, str):
            head = format_key(key[:2])
            text = f"{head} ({ident}){text[len(head) :]}"
    return text


def _label(path: Path) -> str:
    """The path as given, or relative to the working directory when it lies below it."""
    if not path.is_absolute():
        return str(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)

"""What the schema models share: strict, closed models, and pydantic's errors in stackyard's words.

Every file or record stackyard reads is checked by a pydantic model derived from
:class:`Schema` (no unknown fields, no silent type coercion). :func:`problems` turns a
``ValidationError`` into clauses ``<field path>: <what is wrong>`` (``windows.freeze[0]:
'2027-02-30' is not ...``); callers put the file, stack or record in front.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["Schema", "field_path", "problems", "shown"]


class Schema(BaseModel):
    """Closed (unknown fields are errors), strict (``"5"`` is not 5, ``true`` is not 1), frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def field_path(loc: tuple[Any, ...]) -> str:
    """``('windows', 'freeze', 0)`` → ``windows.freeze[0]``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def shown(value: Any) -> str:
    """``repr(value)``, cut to a length that fits an error line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_TYPE_WORDS = {"string_type": "a string", "bool_type": "true or false", "int_type": "an integer",
               "float_type": "a number", "list_type": "a list", "model_type": "an object",
               "dict_type": "an object", "model_attributes_type": "an object"}


def tags_of(item: Mapping[str, Any]) -> list[str]:
    """The ``<x>`` of members ``type=<x>`` a union error lists as expected."""
    listed = (item.get("ctx") or {}).get("expected_tags", "")
    return [tag.split("=", 1)[1] for tag in re.findall(r"'([^']*)'", listed) if tag.startswith("type=")]


def problems(error: ValidationError, *, root: str = "", expected: Mapping[str, str] | None = None,
             required: Mapping[str, str] | None = None, members: frozenset[str] = frozenset(),
             unknown_suffix: str = "", missing_each: bool = False) -> list[str]:
    """One clause per problem, unknown fields first (a misspelt key is the usual cause of the rest).

    ``expected`` maps a field path (list indexes written ``[]``) to what it holds, for errors of
    type or range (pydantic's own words are about Python); ``required`` says why a missing field
    is needed. ``members`` are union-member names pydantic puts in locations (dropped; a member
    ``type=<x>`` also qualifies unknown fields "for type x"). Missing and unknown fields are
    grouped per object as ``<object>: missing field(s) a, b`` (``root`` names the top), or with
    ``missing_each`` one ``<field>: is required`` each.
    """
    expected, required = expected or {}, required or {}
    clauses: list[str] = []
    grouped: dict[tuple[str, str], list[str]] = {}
    for item in error.errors(include_url=False):
        kind, value = item["type"], item.get("input")
        if "str" in members and "str" in item["loc"] and isinstance(value, Mapping):
            continue  # the mapping form of a "text or mapping" union: its own errors say more
        loc = tuple(part for part in item["loc"] if part not in members)
        tags = [part.split("=", 1)[1] for part in item["loc"] if part in members and "=" in str(part)]
        where = field_path(loc)
        shape = re.sub(r"\[\d+\]", "[]", where)
        if kind == "extra_forbidden" or (kind == "missing" and not missing_each and where not in required):
            parent = field_path(loc[:-1]) or root
            words = "unknown field(s)" if kind == "extra_forbidden" else "missing field(s)"
            qualifier = f" for type {tags[-1]}:" if tags and kind == "extra_forbidden" else ""
            grouped.setdefault((parent, f"{words}{qualifier}"), []).append(str(loc[-1]))
        elif kind == "missing":
            clauses.append(f"{where}: {required.get(where, 'is required')}")
        elif kind in ("union_tag_invalid", "union_tag_not_found") and isinstance(value, Mapping) and tags_of(item):
            # a union discriminated by the field ``type`` (members named ``type=<x>``)
            clauses.append(f"{where}.type: {shown(value.get('type'))} is not one of {', '.join(tags_of(item))}")
        elif kind == "value_error":
            clauses.append(f"{where or root}: {item['ctx']['error']}")
        elif shape in expected:
            clauses.append(f"{where}: {expected[shape]}, got {shown(value)}")
        elif kind == "literal_error":
            choices = item["ctx"]["expected"].replace("'", "").replace(" or ", ", ")
            clauses.append(f"{where}: {shown(value)} is not one of {choices}")
        elif kind in _TYPE_WORDS:
            clauses.append(f"{where or root}: expected {_TYPE_WORDS[kind]}, got {shown(value)}")
        else:
            clauses.append(f"{where or root}: {item['msg']}, got {shown(value)}")
    front = []
    for (parent, words), names in grouped.items():
        if parent:
            front.append(f"{parent}: {words} {', '.join(names)}")
        else:  # top-level unknown fields of a model without a root name
            front.append(f"{', '.join(names)}: {words.replace('(s)', '')}{unknown_suffix}")
    return list(dict.fromkeys(front + clauses))

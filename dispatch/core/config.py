"""Configuration files (the allocation policy now; SLA contracts and the roster next): TOML text read
into a pydantic model, and any mistake told in one line that names the file, the key and what is allowed.

    policy.toml: [allocation] busy_factor = 7: must be between 0 and 1
    policy.toml: [alocation]: unknown table; allowed: [allocation]
    policy.toml: not valid TOML: Expected '=' after a key in a key/value pair (at line 2, column 6)

Pure: the caller reads the file (and reports a file it cannot read in the same shape, with
`unreadable`); this module only parses text. A file's model should forbid extra keys
(`extra="forbid"`), be strict about types (`strict=True`: `"0.5"` is not a number) and refuse
`inf`/`nan`, so a typo is refused rather than silently giving defaults.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Sequence
from typing import Any, TypeVar, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

__all__ = ["ConfigError", "describe", "load_toml", "unreadable"]

M = TypeVar("M", bound=BaseModel)

# Longest rendering of a wrong value in the message: the line must stay one readable line.
_VALUE_WIDTH = 40


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message is one line starting with the file's name."""


def load_toml(model: type[M], text: str, source: str) -> M:
    """`text` (the TOML file `source`) validated by `model`; a ConfigError in one line otherwise."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe(exc, source, model)) from None


def unreadable(source: str, error: OSError) -> ConfigError:
    """The one line for a file that cannot be read: `policy.toml: cannot read: No such file or directory`."""
    return ConfigError(f"{source}: cannot read: {error.strerror or error}")


def describe(error: ValidationError, source: str, model: type[BaseModel]) -> str:
    """One line for the first mistake of a validation `error` of `model` over the file `source`.

    The key is written as TOML writes it (`[table] key = value`), followed by what is allowed; a
    count of further mistakes is added, so fixing one does not hide that more follow."""
    errors = error.errors()
    first = errors[0]
    line = f"{source}: {_where(first)}: {_allowed(first, model)}"
    if len(errors) > 1:
        more = len(errors) - 1
        line += f" (and {more} more mistake{'s' if more > 1 else ''})"
    return line


def _where(error: ErrorDetails) -> str:
    """`[allocation] busy_factor = 7`, `[alocation]`, `load = "high"`, `[tiers.gold] respond = "5x"`."""
    loc = error["loc"]
    value = error.get("input")
    if not any(isinstance(key, str) for key in loc):
        return "the file"
    if isinstance(value, dict) and error["type"] != "missing":
        # A whole table: an unknown one, a rule across its keys, or a table where a value was wanted.
        return f"[{_path(loc)}]"
    last = max(i for i, key in enumerate(loc) if isinstance(key, str))
    table, key = loc[:last], _path(loc[last:])
    where = f"[{_path(table)}] {key}" if table else key
    # A missing key's input is the table around it, not worth repeating.
    return where if error["type"] == "missing" else f"{where} = {_toml_value(value)}"


def _path(loc: Sequence[int | str]) -> str:
    """`tiers.gold`, `rotations[0]`, `members[2]`: a location as TOML names it."""
    text = ""
    for key in loc:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else key)
    return text


def _allowed(error: ErrorDetails, model: type[BaseModel]) -> str:
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden":
        what = "table" if isinstance(error.get("input"), dict) else "key"
        parent = _model_at(model, loc[:-1])
        if parent is None:
            return f"unknown {what}"
        shown = ", ".join(_table_name(parent, name) for name in sorted(_names(parent)))
        return f"unknown {what}; allowed: {shown}"
    if kind == "missing":
        return "required, missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a table"
    field = _field_at(model, loc)
    bounds = _bounds(field) if field is not None else ""
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal") and bounds:
        return f"must be {bounds}"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f"must be a number {bounds}".rstrip() if kind != "finite_number" or bounds else "must be a finite number"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number {bounds}".rstrip()
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if kind == "string_type":
        return "must be text in quotes"
    if kind in ("list_type", "tuple_type", "set_type"):
        return "must be a list"
    message = error["msg"]
    # A validator's own ValueError: pydantic prefixes it; the reason alone reads better.
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return message[:1].lower() + message[1:]


def _names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _table_name(model: type[BaseModel], name: str) -> str:
    """`[tiers]` for a table, `[[rotations]]` for an array of tables, `load` for a plain key."""
    info = _field_by_key(model, name)
    if info is None or _model_class(info) is None:
        return name
    return f"[[{name}]]" if get_origin(info.annotation) is list else f"[{name}]"


def _field_by_key(model: type[BaseModel], key: str) -> FieldInfo | None:
    for name, info in model.model_fields.items():
        if (info.alias or name) == key:
            return info
    return None


def _model_class(info: FieldInfo) -> type[BaseModel] | None:
    """The model of a table (`Model`), of each table in a table of tables (`dict[str, Model]`, as
    `[tiers.gold]`) or of an array of tables (`list[Model]`, as `[[rotations]]`); None for a value."""
    annotation = info.annotation
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is dict and len(args) == 2:
        annotation = args[1]
    elif origin is list and len(args) == 1:
        annotation = args[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _model_at(model: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model that validates the table at `loc` (the file's own model for the top)."""
    current: type[BaseModel] | None = model
    dict_key_next = False
    for key in loc:
        if current is None:
            return None
        if isinstance(key, int):
            continue
        if dict_key_next:
            dict_key_next = False
            continue
        info = _field_by_key(current, key)
        if info is None:
            return None
        nested = _model_class(info)
        dict_key_next = nested is not None and get_origin(info.annotation) is dict
        current = nested
    return current


def _field_at(model: type[BaseModel], loc: Sequence[int | str]) -> FieldInfo | None:
    if not loc or not isinstance(loc[-1], str):
        return None
    parent = _model_at(model, loc[:-1])
    return _field_by_key(parent, loc[-1]) if parent is not None else None


def _bounds(field: FieldInfo) -> str:
    """`between 0 and 1`, `more than 0 and at most 1440`, `at least 0`, or `` for a field without bounds."""
    low = high = ""
    for rule in field.metadata:
        if isinstance(rule, annotated_types.Ge):
            low = f"at least {_number(rule.ge)}"
        elif isinstance(rule, annotated_types.Gt):
            low = f"more than {_number(rule.gt)}"
        elif isinstance(rule, annotated_types.Le):
            high = f"at most {_number(rule.le)}"
        elif isinstance(rule, annotated_types.Lt):
            high = f"less than {_number(rule.lt)}"
    if low.startswith("at least ") and high.startswith("at most "):
        return f"between {low.removeprefix('at least ')} and {high.removeprefix('at most ')}"
    return " and ".join(part for part in (low, high) if part)


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _toml_value(value: Any) -> str:
    """A value written back as TOML would show it, cut to stay on one readable line."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else f"{value:g}")
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, list):
        text = "[" + ", ".join(_toml_value(v) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{…}"
    else:  # a date or time: TOML writes it in ISO 8601
        text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 1] + "…"

"""Every error of a config table at once, each with its JSON path, the bad value, what is allowed and,
for a misspelt key or choice, "did you mean".

msgspec stops at the first error of a value. ``walk`` follows the settings types instead (Structs,
dicts, lists, optional Structs) and checks every key and every leaf, so one ``accord check`` run reports
every mistake in the file. It also types what an ``${VAR}`` reference filled in (always text, marked
``Filled`` by the loader): ``port = "${PORT:-9464}"`` becomes the integer 9464 where the field is one.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

import msgspec

from accord.config.types import dec_hook


class Filled(str):
    """Text an ``${VAR}`` reference filled in: converted to the field's type where it parses as it."""


def walk(value: Any, tp: Any, path: str) -> tuple[Any, list[str]]:
    """``value`` checked against ``tp``: (the value with filled-in text typed, every error found)."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return _struct(value, tp, path)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is dict and isinstance(value, dict):
        return _mapping(value, args[0], args[1], path)
    if origin is list and isinstance(value, list):
        walked = [walk(item, args[0], f"{path}[{i}]") for i, item in enumerate(value)]
        return [v for v, _ in walked], [e for _, errs in walked for e in errs]
    if origin in (typing.Union, types.UnionType):
        structs = [a for a in args if isinstance(a, type) and issubclass(a, msgspec.Struct)]
        if len(structs) == 1 and isinstance(value, dict):
            return _struct(value, structs[0], path)
    return _leaf(value, tp, path)


def _struct(value: Any, tp: type[msgspec.Struct], path: str) -> tuple[Any, list[str]]:
    if not isinstance(value, dict):
        return value, [f"{path}: expected a table, got {_shown(value)}"]
    fields = {f.encode_name: f for f in msgspec.structs.fields(tp)}
    errors: list[str] = []
    out: dict[str, Any] = {}
    tag = tp.__struct_config__.tag_field  # ``kind`` of a system's table: chose the type already
    for key, item in value.items():
        field = fields.get(key)
        if key == tag:
            out[key] = item
            continue
        if field is None:
            errors.append(f"{path}.{key}: unknown setting `{key}`{_did_you_mean(str(key), fields)}; "
                          f"allowed here: {', '.join(fields)}")
            continue
        out[key], found = walk(item, field.type, f"{path}.{key}")
        errors += found
    errors += [f"{path}.{name}: required, missing; add `{name} = ...`"
               for name, field in fields.items() if field.required and name not in value]
    return out, errors


def _mapping(value: dict[Any, Any], key_type: Any, item_type: Any, path: str) -> tuple[Any, list[str]]:
    errors: list[str] = []
    out: dict[Any, Any] = {}
    for key, item in value.items():
        _, key_errors = _leaf(key, key_type, f"{path}.{key}")
        errors += [e.replace(": ", ": the name ", 1) for e in key_errors]
        out[key], found = walk(item, item_type, f"{path}.{key}")
        errors += found
    return out, errors


def _leaf(value: Any, tp: Any, path: str) -> tuple[Any, list[str]]:
    try:
        msgspec.convert(value, tp, dec_hook=dec_hook)
        return (str(value) if isinstance(value, Filled) else value), []
    except (msgspec.ValidationError, ValueError) as exc:
        if isinstance(value, Filled):
            try:
                return msgspec.convert(str(value), tp, strict=False, dec_hook=dec_hook), []
            except (msgspec.ValidationError, ValueError):
                pass
        return value, [_describe(exc, value, tp, path)]


def _describe(exc: Exception, value: Any, tp: Any, path: str) -> str:
    choices = _choices(tp)
    if choices:
        hint = _did_you_mean(str(value), [str(c) for c in choices])
        return (f"{path}: {_shown(value)} is not allowed{hint}; expected one of "
                f"{', '.join(repr(c) for c in choices)}")
    message = str(exc).split(" - at `", 1)[0]
    got = "" if ", got " in message else f"; got {_shown(value)}"
    return f"{path}: {message[:1].lower()}{message[1:]}{got}"


def _choices(tp: Any) -> list[Any]:
    """The values a ``Literal`` (possibly optional) allows; [] for any other type."""
    if typing.get_origin(tp) is typing.Literal:
        return list(typing.get_args(tp))
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [c for a in typing.get_args(tp) for c in _choices(a)]
    return []


def _did_you_mean(word: str, known: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _shown(value: Any) -> str:
    return f"`{value!r}`" if not isinstance(value, dict | list) else f"a {type(value).__name__}"

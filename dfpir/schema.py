"""The one strict converter from plain mappings (YAML) to config dataclasses.

Used by ``dfpir.config`` for whole experiments and by ``dfpir.data.config`` for a ``data:``
section. ``Literal[...]`` fields accept only their listed values, so a misspelt choice
(``train.scheduler: cosin``) fails when the config loads, naming the key, the valid values and
the file or ``--set`` that gave it. Unknown keys and wrong types fail the same way.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import unicodedata
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from .errors import ConfigError

__all__ = ["build_dataclass", "check_plain_name", "convert"]



def _type_name(annotation: Any) -> str:
    hint = get_origin(annotation)
    if hint is Literal:
        return " | ".join(map(repr, get_args(annotation)))
    if hint is Union or hint is types.UnionType:
        return " or ".join(_type_name(a) for a in get_args(annotation) if a is not type(None))
    if hint is Annotated:
        return _type_name(get_args(annotation)[0])
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _fail(where: str, origin: dict[str, str], message: str) -> ConfigError:
    parents = (k for k in sorted(origin, key=len, reverse=True)
               if where.startswith((k + ".", k + "[")))
    source = origin.get(where) or next((origin[k] for k in parents), None)
    return ConfigError(f"{where}: {message}" + (f" (set in {source})" if source else ""))


def convert(value: Any, annotation: Any, where: str, origin: dict[str, str]) -> Any:
    """``value`` checked against (and built into) ``annotation``; errors name ``where``."""
    hint = get_origin(annotation)
    if hint is Union or hint is types.UnionType:
        args = get_args(annotation)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert(value, arg, where, origin)
            except ConfigError as err:
                errors.append(str(err))
        raise errors[0] if len(errors) == 1 else _fail(
            where, origin, f"expected {_type_name(annotation)}, got {value!r}"
        )
    if hint is Annotated:  # Annotated[type, check, ...]: each check raises ValueError
        base, *checks = get_args(annotation)
        value = convert(value, base, where, origin)
        for check in (c for c in checks if callable(c)):
            try:
                check(value)
            except ValueError as err:
                raise _fail(where, origin, str(err)) from err
        return value
    if hint is Literal:
        choices = get_args(annotation)
        if value in choices and type(value) is type(choices[choices.index(value)]):
            return value
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint_text = f"; did you mean {close[0]!r}?" if close else ""
        raise _fail(where, origin, f"expected one of {', '.join(map(repr, choices))}, "
                                   f"got {value!r}{hint_text}")
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, dict):
            raise _fail(where, origin, f"expected a mapping of {annotation.__name__} fields, "
                                       f"got {value!r}")
        return build_dataclass(annotation, value, where, origin)
    if hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _fail(where, origin, f"expected a list, got {value!r}")
        (item,) = get_args(annotation)[:1] or (Any,)
        return [convert(v, item, f"{where}[{i}]", origin) for i, v in enumerate(value)]
    if hint is dict:
        if not isinstance(value, dict):
            raise _fail(where, origin, f"expected a mapping, got {value!r}")
        key_t, val_t = get_args(annotation) or (Any, Any)
        return {convert(k, key_t, where, origin): convert(v, val_t, f"{where}.{k}", origin)
                for k, v in value.items()}
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise _fail(where, origin, f"expected true or false, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(where, origin, f"expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, origin, f"expected an integer, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            empty = ' (an empty --set value is null; write KEY="" for an empty string)' \
                if value is None else ""
            raise _fail(where, origin, f"expected a string, got {value!r}{empty}")
        return value
    raise _fail(where, origin, f"unsupported field type {annotation!r}")


def build_dataclass(cls: type, values: dict, where: str = "",
                    origin: dict[str, str] | None = None) -> Any:
    """A ``cls`` instance from a mapping; unknown keys and wrong types raise ``ConfigError``."""
    origin = origin or {}
    hints = get_type_hints(cls, include_extras=True)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    prefix = f"{where}." if where else ""
    for key in values:
        if key not in names:
            text = str(key)
            hidden = [c for c in text if not c.isprintable() or unicodedata.category(c) == "Cf"]
            seen = "".join(c for c in text if c not in hidden)
            close = difflib.get_close_matches(seen, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; expected one of {names}"
            indexed = re.fullmatch(r"(\w+)\[(\d+)\]", seen)
            if indexed and indexed.group(1) in names:  # stages[0]: the dotted form works
                hint = (f"; a list entry is named with a dot: {prefix}{indexed.group(1)}."
                        f"{indexed.group(2)}")
            if hidden:  # a zero-width space or the like, pasted in: name it
                hint = (f" ({text!r} holds the invisible character(s) "
                        f"{', '.join(f'U+{ord(c):04X}' for c in hidden)}){hint}")
            raise _fail(f"{prefix}{key}", origin, f"unknown key{hint}")
    kwargs = {k: convert(v, hints[k], f"{prefix}{k}", origin) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        # a value check whose message starts with a field's name is blamed on that key, so the
        # error names the file or the --set that set it
        path = str(err).split(" ", 1)[0].rstrip(":,")
        first = path.rsplit(".", 1)[-1]
        if path.split(".", 1)[0] in names and "." in path:  # "builtin.tasks: ...": that key
            message = str(err).split(" ", 1)[1] if " " in str(err) else str(err)
            raise _fail(f"{prefix}{path}", origin, message) from err
        if first in names:
            raise _fail(f"{prefix}{first}", origin, str(err)) from err
        raise _fail(where or cls.__name__, origin, str(err)) from err




def check_plain_name(field: str, value: str) -> None:
    """Raise ``ValueError`` (message led by ``field``, so the loader names its source) unless
    ``value`` is a file name: a run or stage name becomes part of a path, never a path itself
    (``../../x`` would write outside ``output_dir``)."""
    if (not value or value in (".", "..") or any(c in value for c in "/\\\0")
            or value != value.strip()):
        raise ValueError(f"{field} must be a plain name (no '/', '\\', '..' or surrounding "
                         f"spaces), got {value!r}")

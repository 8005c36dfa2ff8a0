"""Typed values over the control socket: msgpack with the dataclasses and enums the API uses.

The CLI asks the node to act with the same method names and gets back the same objects it would
get from a local :class:`~meshcrew.service.Member`: frozen dataclasses, enums, tuples, bytes.
Plain msgpack keeps none of those types, so they travel as msgpack extension types:

| ext code | what | payload (msgpack) |
| --- | --- | --- |
| 1 | tuple | array of items |
| 2 | dataclass | ``[type name, {field: value}]`` (init fields only) |
| 3 | enum member | ``[type name, value]`` |
| 4 | frozenset | array of items |
| 5 | set | array of items |

Only types in the :class:`ValueTypes` given to :func:`decode` can be rebuilt; any other name is
refused, so a peer on the socket can never make this process build an arbitrary object.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

import msgpack

from meshcrew.errors import LocalProtocolError

_TUPLE, _DATACLASS, _ENUM, _FROZENSET, _SET = 1, 2, 3, 4, 5


class ValueTypes:
    """The dataclasses and enums that may be rebuilt from the socket, by qualified name."""

    def __init__(self, types: Iterable[type]) -> None:
        self._by_name: dict[str, type] = {}
        for cls in types:
            self._by_name[_name(cls)] = cls

    @classmethod
    def of_modules(cls, modules: Iterable[ModuleType], extra: Iterable[type] = ()) -> ValueTypes:
        """Every dataclass and enum defined in ``modules``, and ``extra``."""
        found: list[type] = list(extra)
        for module in modules:
            for _, obj in inspect.getmembers(module, inspect.isclass):
                if obj.__module__ == module.__name__ and (
                        dataclasses.is_dataclass(obj) or issubclass(obj, enum.Enum)):
                    found.append(obj)
        return cls(found)

    def get(self, name: str) -> type:
        """The type registered under ``name``.

        Raises:
            LocalProtocolError: the name is not registered.
        """
        try:
            return self._by_name[name]
        except KeyError:
            raise LocalProtocolError(f"the control socket sent an unknown type {name!r}") \
                from None


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return msgpack.ExtType(_ENUM, _pack([_name(type(value)), value.value]))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}
        return msgpack.ExtType(_DATACLASS, _pack([_name(type(value)), fields]))
    if isinstance(value, tuple):
        return msgpack.ExtType(_TUPLE, _pack(list(value)))
    if isinstance(value, frozenset):
        return msgpack.ExtType(_FROZENSET, _pack(list(value)))
    if isinstance(value, set):
        return msgpack.ExtType(_SET, _pack(list(value)))
    if isinstance(value, Mapping):  # a dict subclass or a read-only view: send a plain dict
        return dict(value)
    if isinstance(value, list):
        return list(value)
    if isinstance(value, str):
        return str(value)
    raise TypeError(f"cannot send a {type(value).__name__} over the control socket")


def _pack(value: Any) -> bytes:
    # strict_types: subclasses (StrEnum, NamedTuple...) go through _default, keeping their type.
    return msgpack.packb(value, default=_default, strict_types=True,  # type: ignore[no-any-return]
                         use_bin_type=True)


def encode(value: Any) -> bytes:
    """The msgpack bytes of ``value``.

    Raises:
        TypeError: the value holds something that cannot be sent (a function, a file, ...).
    """
    return _pack(value)


def decode(data: bytes, types: ValueTypes) -> Any:
    """The value :func:`encode` made, with its dataclasses, enums, tuples and sets rebuilt.

    Raises:
        LocalProtocolError: the bytes are not such a value, or name a type not in ``types``.
    """

    def hook(code: int, payload: bytes) -> Any:
        inner = _unpack(payload, hook)
        if code in (_TUPLE, _FROZENSET, _SET):
            if not isinstance(inner, list):
                raise LocalProtocolError("a malformed collection on the control socket")
            return {_TUPLE: tuple, _FROZENSET: frozenset, _SET: set}[code](inner)
        if code in (_DATACLASS, _ENUM) and isinstance(inner, list) and len(inner) == 2 \
                and isinstance(inner[0], str):
            cls = types.get(inner[0])
            if code == _ENUM and issubclass(cls, enum.Enum):
                return cls(inner[1])
            if code == _DATACLASS and dataclasses.is_dataclass(cls) and isinstance(inner[1], dict):
                return cls(**inner[1])
        raise LocalProtocolError(f"a malformed value (ext {code}) on the control socket")

    try:
        return _unpack(data, hook)
    except LocalProtocolError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise LocalProtocolError(f"an unreadable value on the control socket: {exc}") from None


def _unpack(data: bytes, hook: Any) -> Any:
    return msgpack.unpackb(data, ext_hook=hook, raw=False, strict_map_key=False,
                           use_list=True)

"""A service's own settings from the environment: a frozen dataclass whose fields name
their variables, read and checked once at start.

    @dataclass(frozen=True)
    class PaymentSettings:
        max_amount_units: int = setting("SHOP_PAYMENT_MAX_AMOUNT_UNITS", 10_000)

    settings = from_env(PaymentSettings)

A variable that is unset or blank leaves the default. The text is read by the field's
type (``int``: a whole number, ``float``, ``bool``, ``str``, ``Path``, each maybe
``| None``) or by the field's own ``parse``, which gets the stripped text even when blank
(so ``""`` can mean "none" for a list). A value that does not parse, or fails ``check``,
stops the start with a ValueError naming the variable: ``SHOP_ORDER_SAGA_TIMEOUT must be
a positive number, not '-1'``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_META = "meshkit.setting"


@dataclasses.dataclass(frozen=True)
class _Setting:
    env: str
    parse: Callable[[str], Any] | None
    check: Callable[[Any], bool] | None
    expect: str


def setting(
    env: str,
    default: Any,
    *,
    parse: Callable[[str], Any] | None = None,
    check: Callable[[Any], bool] | None = None,
    expect: str = "",
) -> Any:
    """A field read from the variable ``env``; ``expect`` says what ``check`` (or
    ``parse``) accepts, for the error (``"a positive number"``)."""
    return dataclasses.field(default=default, metadata={_META: _Setting(env, parse, check, expect)})


def _whole(text: str) -> int:
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _flag(text: str) -> bool:
    lowered = text.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(text)


# The parser of each field type, and what it accepts (for the error).
_PARSERS: dict[Any, tuple[Callable[[str], Any], str]] = {
    int: (_whole, "a whole number"),
    float: (_number, "a number"),
    bool: (_flag, "true or false"),
    str: (str, "text"),
    Path: (Path, "a path"),
}


def _parser(kind: Any) -> tuple[Callable[[str], Any], str]:
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        kinds = [k for k in typing.get_args(kind) if k is not type(None)]
        if len(kinds) == 1:
            kind = kinds[0]
    if kind not in _PARSERS:
        raise TypeError(f"no parser for a setting of type {kind!r}; give it parse=")
    return _PARSERS[kind]


def from_env(cls: type[T], environ: Mapping[str, str] | None = None) -> T:
    """``cls`` (a dataclass of ``setting`` fields) from ``environ`` (``os.environ``)."""
    env = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        spec: _Setting | None = f.metadata.get(_META)
        if spec is None or spec.env not in env:
            continue
        text = env[spec.env].strip()
        if spec.parse is not None:
            parse, expect = spec.parse, spec.expect or "valid"
        elif not text:
            continue
        else:
            parse, expect = _parser(hints[f.name])
            expect = spec.expect or expect
        try:
            value = parse(text)
        except ValueError:
            raise ValueError(f"{spec.env} must be {expect}, not {text!r}") from None
        if spec.check is not None and not spec.check(value):
            raise ValueError(f"{spec.env} must be {expect}, not {text!r}")
        values[f.name] = value
    return cls(**values)

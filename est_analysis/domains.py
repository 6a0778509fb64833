"""Value domains: what an option may hold (a positive integer, a fraction in (0, 1], a finite
number >= 0, a strict boolean), parsed the same way from a command-line flag, a YAML config, a
method option or a Python call, so that `1e-3` is a number everywhere, `"no"` is never taken as
true, and a bad value is refused with its field, the value and the valid range.

A dataclass field declares its domain in its metadata (`metadata={"domain": UNIT}`);
`check_fields` parses every such field of an instance in place.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


@dataclass(frozen=True)
class Domain:
    kind: type  # int, float or bool
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself excluded
    high_open: bool = False
    allow_inf: bool = False  # +inf accepted (e.g. no gradient clipping)

    def describe(self) -> str:
        if self.kind is bool:
            return "true or false"
        what = "an integer" if self.kind is int else "a finite number"
        if self.low is not None and self.high is not None:
            return (f"{what} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            bound = f"{'>' if self.low_open else '>='} {self.low:g}"
            return f"{what} {bound}" + (" (or inf)" if self.allow_inf else "")
        return what

    def parse(self, value: Any, name: str) -> Any:
        """`value` (a Python value or its text) as this domain's type, or a ValueError naming
        `name`, the value and the domain."""
        parsed = self._typed(value)
        if parsed is None or not self._in_range(parsed):
            named = f"{name}={value!r}" if name else repr(value)
            raise ValueError(f"{named} must be {self.describe()}")
        return parsed

    def _typed(self, value: Any) -> Any:
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower() if isinstance(value, (str, int)) else None
            return True if text in TRUE else False if text in FALSE else None
        if isinstance(value, bool):
            return None
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                return None
        if not isinstance(value, (int, float)):
            return None
        if self.kind is int:
            if isinstance(value, float) and not value.is_integer():
                return None
            return int(value)
        return float(value)

    def _in_range(self, value: float) -> bool:
        if self.kind is bool:
            return True
        if math.isnan(value) or (math.isinf(value) and not (self.allow_inf and value > 0)):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or (value < self.high or (not self.high_open and value == self.high))

    def argtype(self, flag: str = "") -> Callable[[str], Any]:
        """An argparse `type`: the flag's text parsed, the error naming the flag (argparse
        names it too: `flag` may be left empty)."""
        def parse(text: str) -> Any:
            try:
                return self.parse(text, flag)
            except ValueError as err:
                raise argparse.ArgumentTypeError(str(err)) from None
        parse.__name__ = self.describe()  # argparse names the type in some messages
        return parse


FINITE = Domain(float)
POSITIVE_INT = Domain(int, low=1)
NONNEGATIVE_INT = Domain(int, low=0)
POSITIVE = Domain(float, low=0, low_open=True)
POSITIVE_OR_INF = Domain(float, low=0, low_open=True, allow_inf=True)
NONNEGATIVE = Domain(float, low=0)
UNIT = Domain(float, low=0, high=1, low_open=True)  # (0, 1]: a rate or a kept fraction
FRACTION = Domain(float, low=0, high=1, high_open=True)  # [0, 1): a share of a run, a beta
PROBABILITY = Domain(float, low=0, high=1)  # [0, 1]
OPEN_UNIT = Domain(float, low=0, high=1, low_open=True, high_open=True)  # (0, 1)
BOOLEAN = Domain(bool)


def check_fields(instance: Any, prefix: str = "") -> None:
    """Parse every field of the dataclass `instance` that declares a domain, in place; None
    stays None (a field left to its default)."""
    for field in dataclasses.fields(instance):
        domain = field.metadata.get("domain")
        value = getattr(instance, field.name)
        if domain is not None and value is not None:
            object.__setattr__(instance, field.name, domain.parse(value, prefix + field.name))


def declared(default: Any, domain: Domain) -> Any:
    """A dataclass field with a default and a domain (for small options dataclasses)."""
    return dataclasses.field(default=default, metadata={"domain": domain})


def environment(name: str, default: Any, domain: Domain) -> Any:
    """The environment variable `name` parsed in `domain` (`default` when unset), refused like
    an option: "environment variable WORLD_SIZE='two' must be an integer >= 1"."""
    import os

    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return domain.parse(value, name)
    except ValueError as err:
        raise ValueError(f"environment variable {err}; unset it or fix its value") from None

"""Strict readers for the fields an adapter keeps from a venue frame.

Every adapter reads prices, sizes, times and names through these, so one rule holds for every
venue: a value that passes is safe to key a book with, to format and to show; anything else raises
:class:`~app.venues.base.DecodeError` and the whole frame is dropped and counted. The checks are
string and integer tests (no ``Decimal`` is built here), cheap enough for the hot path.

* Decimals are the venue's strings, kept as sent: plain digits with at most one point, no sign
  (except where a field is signed, e.g. funding), no exponent, no spaces, at most
  :data:`MAX_DECIMAL_CHARS` characters. Floats, booleans, NaN and infinities are refused: no venue
  we speak sends them for these fields, and a float would already have lost exactness.
* Prices are > 0, sizes >= 0.
* Times are integer Unix milliseconds between 2009 and 2100 (not ``bool``, not float).
* Names (markets, coins, intervals) are non-empty strings of at most :data:`MAX_NAME_CHARS` (a
  market name an aggregator composes from its section, its provider and the upstream's name: at
  most :data:`MAX_MARKET_CHARS`), and
  text for people (a market's question) of at most :data:`MAX_TEXT_CHARS`; their characters are
  not judged here: hostile text is shown inert by the widgets, not rejected.
"""

from __future__ import annotations

import re
from decimal import Decimal, localcontext
from typing import Any

from app.venues.base import DecodeError

MAX_DECIMAL_CHARS = 40
MAX_NAME_CHARS = 100
MAX_MARKET_CHARS = 128  # "predictions:polymarket:" and a 78-digit token id is 101
MAX_TEXT_CHARS = 500
MIN_TIME_MS = 1_230_768_000_000  # 2009-01-01
MAX_TIME_MS = 4_102_444_799_999  # the last millisecond of 2099

_UNSIGNED = re.compile(r"[0-9]+(?:\.[0-9]+)?|\.[0-9]+")  # ASCII digits only: "９" is not a price
_SIGNED = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)")
_NONZERO = re.compile(r"[1-9]")


def shown(value: Any) -> str:
    """A short repr of a bad value for an error text (the log escapes it). Containers are named,
    not printed: a venue can nest them deeper than ``repr`` can recurse."""
    if value is not None and not isinstance(value, (str, int, float, bool)):
        return type(value).__name__
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def decimal_text(value: Any, what: str, *, signed: bool = False) -> str:
    """A decimal string as the venue sent it (see the module rules)."""
    if type(value) is not str or len(value) > MAX_DECIMAL_CHARS:
        raise DecodeError(f"{what} is not a decimal string: {shown(value)}")
    if (_SIGNED if signed else _UNSIGNED).fullmatch(value) is None:
        raise DecodeError(f"{what} is not a plain decimal: {shown(value)}")
    return value


def exact_sum(terms: list[str], what: str, *, signed: bool = False) -> str:
    """The exact sum of decimal strings (each already read by this module; negate one by passing
    it with a sign) as a plain decimal string, checked like one. ``str(Decimal)`` would write
    ``1E+2`` or round past 28 digits; a sum too long to write plainly raises :class:`DecodeError`."""
    with localcontext(prec=2 * MAX_DECIMAL_CHARS + 2):  # exact for any sum of two such strings
        total = sum((Decimal(term) for term in terms), Decimal(0))
    return decimal_text(format(total, "f"), what, signed=signed)


def quotient(dividend: str, divisor: str) -> str | None:
    """``dividend / divisor`` of decimal strings (divisor non-zero), rounded to 28 significant
    digits, trailing zeros dropped, written plainly; ``None`` where that takes more than
    :data:`MAX_DECIMAL_CHARS` characters (a derived value that cannot be shown is unknown)."""
    text = format((Decimal(dividend) / Decimal(divisor)).normalize(), "f")
    return text if len(text) <= MAX_DECIMAL_CHARS else None


def price(value: Any, what: str = "price") -> str:
    """A decimal string > 0."""
    text = decimal_text(value, what)
    if _NONZERO.search(text) is None:
        raise DecodeError(f"{what} is not positive: {shown(value)}")
    return text


def size(value: Any, what: str = "size") -> str:
    """A decimal string >= 0 (zero deletes a level in a delta)."""
    return decimal_text(value, what)


def optional_decimal(value: Any, what: str, *, signed: bool = False) -> str | None:
    """``None`` stays ``None`` (a field the venue leaves out); anything else must be a decimal."""
    return None if value is None else decimal_text(value, what, signed=signed)


def integer(value: Any, what: str, *, low: int = 0, high: int = 2**63 - 1) -> int:
    """An ``int`` (never ``bool``) in ``[low, high]``."""
    if type(value) is not int or not low <= value <= high:
        raise DecodeError(f"{what} is not an integer in range: {shown(value)}")
    return value


def time_ms(value: Any, what: str = "time") -> int:
    """Unix milliseconds in a plausible range."""
    return integer(value, what, low=MIN_TIME_MS, high=MAX_TIME_MS)


def time_ms_text(value: Any, what: str = "time") -> int:
    """Unix milliseconds sent as a string of digits (Polymarket), checked like :func:`time_ms`."""
    if type(value) is not str or not value.isascii() or not value.isdigit() or len(value) > 13:
        raise DecodeError(f"{what} is not a millisecond timestamp string: {shown(value)}")
    return time_ms(int(value), what)


def name(value: Any, what: str = "name") -> str:
    """A non-empty string of bounded length (a market, coin or interval name)."""
    if type(value) is not str or not value or len(value) > MAX_NAME_CHARS:
        raise DecodeError(f"{what} is not a name: {shown(value)}")
    return value


def text(value: Any, what: str = "text", limit: int = MAX_TEXT_CHARS) -> str:
    """Prose a venue shows to people (a prediction market's question): a non-empty string of
    bounded length; like names, shown inert, never judged by its characters."""
    if type(value) is not str or not value or len(value) > limit:
        raise DecodeError(f"{what} is not text of 1 to {limit} characters: {shown(value)}")
    return value


def obj(value: Any, what: str) -> dict[str, Any]:
    """A JSON object."""
    if type(value) is not dict:
        raise DecodeError(f"{what} is not an object: {shown(value)}")
    return value


def array(value: Any, what: str) -> list[Any]:
    """A JSON array."""
    if type(value) is not list:
        raise DecodeError(f"{what} is not an array: {shown(value)}")
    return value


# --- whole lists in one regex call: the hot path of book frames (see bench/ingest.py) ----------

_DECIMAL = r"(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)"
_SIZES = re.compile(rf"(?:{_DECIMAL}\n)*")
_PRICES = re.compile(rf"(?:(?=[0.]*[1-9]){_DECIMAL}\n)*")  # the lookahead: a non-zero digit


def prices(values: list[Any], what: str = "price") -> list[str]:
    """Every value as :func:`price` accepts it, checked in one regex call."""
    return _all(values, _PRICES, price, what)


def sizes(values: list[Any], what: str = "size") -> list[str]:
    """Every value as :func:`size` accepts it, checked in one regex call."""
    return _all(values, _SIZES, size, what)


def _all(values: list[Any], pattern: re.Pattern[str], one: Any, what: str) -> list[str]:
    """Join with newlines and match once; the newline count proves no value held one itself.
    On failure the values are checked one by one, for the precise error."""
    if not values:
        return values
    try:
        text = "\n".join(values)
    except TypeError:  # not all strings
        text = ""
    if (
        not text
        or pattern.fullmatch(text + "\n") is None
        or text.count("\n") != len(values) - 1
        or max(map(len, values)) > MAX_DECIMAL_CHARS
    ):
        for value in values:
            one(value, what)
        raise DecodeError(f"{what} is not a list of plain decimals")
    return values


# --- JSON numbers: model outputs (Greeks, IVs) and venues that send prices as numbers ----------

MAX_NUMBER = 1e18


def number(value: Any, what: str) -> float:
    """A finite JSON number (``int`` or ``float``, never ``bool``) of magnitude below 1e18."""
    if type(value) not in (int, float) or not -MAX_NUMBER < value < MAX_NUMBER:  # NaN fails too
        raise DecodeError(f"{what} is not a finite number: {shown(value)}")
    return float(value)


def optional_number(value: Any, what: str) -> float | None:
    return None if value is None else number(value, what)


def number_text(value: Any, what: str, *, signed: bool = False) -> str:
    """A JSON number as a plain decimal string, exactly as the venue wrote it where it can be
    (the shortest repr of the float): for venues that send prices as numbers (Hypercall REST)."""
    number(value, what)
    text = format(Decimal(repr(value)), "f") if type(value) is float else str(value)
    return decimal_text(text, what, signed=signed)


def flag(value: Any, what: str) -> bool:
    if type(value) is not bool:
        raise DecodeError(f"{what} is not true or false: {shown(value)}")
    return value


MAX_STEP_DECIMALS = 20  # what explicit precisions elsewhere are bounded by; a display has no room for more


def step_decimals(step: Any, what: str) -> int:
    """The decimals of a tick or step size given as a decimal string (``"0.001"`` -> 3)."""
    decimals = len(decimal_text(step, what).partition(".")[2].rstrip("0"))
    if decimals > MAX_STEP_DECIMALS:
        raise DecodeError(f"{what} has more than {MAX_STEP_DECIMALS} decimals: {shown(step)}")
    return decimals

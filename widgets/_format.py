"""Display formatting shared by the widgets: exact decimals, ages, rates and trade times.

Book values stay :class:`~decimal.Decimal` down to the string shown; the number of decimals comes
from the data on screen (the most any visible value has), so a column lines up without a per-market
table and without rounding away a venue's tick.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

MAX_DECIMALS = 10
"""Cap on shown decimals: a venue string like "0.000000000001" must not blow a column apart."""


def parse_decimal(text: str) -> Decimal | None:
    """A venue number, or ``None`` if the venue sent something that is not a finite number."""
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError, ValueError):
        return None
    return value if value.is_finite() else None


def decimals_of(value: Decimal) -> int:
    """Significant decimals of ``value`` ("65000.50" -> 1, "65000" -> 0)."""
    if not value.is_finite():
        return 0
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return min(max(0, -exponent), MAX_DECIMALS)


def common_decimals(values: Iterable[Decimal]) -> int:
    """Decimals that show every one of ``values`` exactly (up to :data:`MAX_DECIMALS`)."""
    return max((decimals_of(value) for value in values), default=0)


def format_decimal(value: Decimal, decimals: int) -> str:
    """``value`` with thousands separators and exactly ``decimals`` decimals."""
    return f"{value:,.{decimals}f}"


def format_age(seconds: float | None, *, tenths: bool = True) -> str:
    """A data age as a trader reads it: "0.3s", "12s", "4m", "2h"; "—" before any data.

    Without ``tenths`` short ages show whole seconds, for text that should not flicker at 10 Hz.
    """
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 10 and tenths:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m"
    return f"{seconds // 3600:.0f}h"


def format_rate(per_second: float) -> str:
    """A message rate: one decimal below 10/s, whole numbers above."""
    return f"{per_second:.1f}" if per_second < 10 else f"{per_second:,.0f}"


def format_time_ms(time_ms: int) -> str:
    """A venue timestamp (Unix milliseconds) as UTC ``HH:MM:SS.mmm``."""
    moment = datetime.fromtimestamp(time_ms // 1000, tz=UTC)
    return f"{moment:%H:%M:%S}.{time_ms % 1000:03d}"

"""Display formatting shared by the widgets: exact decimals, ages, rates, trade times, and the
portfolio's Greeks, money, IVs and durations.

Book values stay :class:`~decimal.Decimal` down to the string shown; the number of decimals comes
from the data on screen (the most any visible value has), so a column lines up without a per-market
table and without rounding away a venue's tick.

Portfolio, account and options figures (the second half) are read at a glance, so Greeks and
dollar risk are compact and signed (``+0.912``, ``-1.2k``, ``+3.4M``): three significant figures
say as much as a trader acts on, and a short fixed width keeps columns aligned. Money (equity,
maintenance) is shown in full with cents, since a margin call is decided on it.
"""

from __future__ import annotations

import math
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


def at_most(text: str, decimals: int) -> str:
    """A venue's decimal text shortened to ``decimals`` places when it has more (Rails sends an
    index like ``97593.3871999584``); as sent otherwise, so what fits is shown exactly."""
    value = parse_decimal(text)
    if value is None or decimals_of(value) <= decimals:
        return text
    return f"{value.quantize(Decimal(1).scaleb(-decimals)):f}"


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


# --- portfolio, account and options figures ------------------------------------------------------

_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))

IV_PERCENT_SCALE = 100.0
"""Implied volatilities arrive as fractions (``0.52``) and are shown in percent (``52.0``).
The one place to change should a venue's adapter hand over percents instead."""


def signed(value: float | None, *, sign: bool = True) -> str:
    """``value`` in at most about seven characters: ``+0.912``, ``-340``, ``+12.3k``, ``+1.23e-05``.

    ``None`` (unknown, e.g. a dollar figure without a price) is "—"; zero is "0" without a sign.
    """
    if value is None or math.isnan(value):
        return "—"
    if math.isinf(value):
        return "+∞" if value > 0 else "-∞"
    plus = "+" if sign else ""
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    for threshold, suffix in _SUFFIXES:
        if magnitude >= threshold * 0.9995:  # 999.5 reads 1.0k, not 1000
            scaled = value / threshold
            return f"{scaled:{plus}.1f}{suffix}" if abs(scaled) < 999.95 else f"{scaled:{plus}.0f}{suffix}"
    if magnitude >= 99.95:
        return f"{value:{plus}.0f}"
    if magnitude >= 9.995:
        return f"{value:{plus}.1f}"
    if magnitude >= 0.9995:
        return f"{value:{plus}.2f}"
    if magnitude >= 0.00099995:
        decimals = 2 - math.floor(math.log10(magnitude))  # three significant figures
        return f"{value:{plus}.{decimals}f}"
    return f"{value:{plus}.1e}"


def sign_of(value: float | Decimal | None) -> int:
    """-1, 0 or 1 (0 for unknown): which colour a figure gets."""
    if value is None or value != value:  # NaN
        return 0
    return (value > 0) - (value < 0)


def quantity(value: Decimal) -> str:
    """A signed position size, exact: ``+2``, ``-0.5``, ``+1,250``."""
    if not value.is_finite():
        return "?"
    text = format_decimal(value, decimals_of(value))
    return text if value <= 0 else "+" + text


def money(value: Decimal | None) -> str:
    """USD with cents and separators: ``13,200.00``; "—" when unknown."""
    if value is None or not value.is_finite():
        return "—"
    return f"{value:,.2f}"


def whole_money(value: Decimal | None) -> str:
    """USD in whole dollars, for narrow panes: ``13,200``; "—" when unknown."""
    if value is None or not value.is_finite():
        return "—"
    return f"{value:,.0f}"


def price(value: float | None) -> str:
    """An underlying's price: cents above 100, more decimals for small prices."""
    if value is None or not math.isfinite(value):
        return "—"
    if abs(value) >= 100:
        return f"{value:,.2f}"
    if abs(value) >= 1:
        return f"{value:,.4f}"
    return f"{value:.6g}"


def option_price(value: float | None) -> str:
    """An option's premium: whole dollars from 100, then more decimals as it gets smaller."""
    if value is None or not math.isfinite(value):
        return "—"
    magnitude = abs(value)
    if magnitude >= 99.95:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:,.1f}"
    if magnitude >= 1 or magnitude == 0:
        return f"{value:.2f}"
    return f"{value:.4f}"


def iv_percent(value: float | None) -> str:
    """Implied volatility in percent with one decimal (see :data:`IV_PERCENT_SCALE`)."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value * IV_PERCENT_SCALE:.1f}"


def ratio(value: float | None) -> str:
    """Equity over maintenance: ``1.32×`` close to the line, ``3.1×`` further away."""
    if value is None or not math.isfinite(value):
        return "—"
    if value >= 99.5:
        return ">99×"
    return f"{value:.2f}×" if value < 2 else f"{value:.1f}×"


def duration(seconds: float | None) -> str:
    """Time in a state: ``45s``, ``2m05s``, ``1h02m``, ``3d04h``; "—" when unknown. Two units,
    unlike :func:`format_age` (one unit: how old data is, read at a glance)."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def clock_time(seconds: float) -> str:
    """Wall-clock seconds (``time.time()``) as UTC ``HH:MM:SS``."""
    return f"{datetime.fromtimestamp(seconds, tz=UTC):%H:%M:%S}"


def short_market(market: str) -> str:
    """An option's name without its underlying, strike first: ``BTC-20260131-100000-C`` ->
    ``100000C 31JAN`` (what tells two legs apart in a narrow column); other names unchanged."""
    parts = market.split("-")
    if len(parts) == 4 and parts[3] in ("C", "P") and len(parts[1]) == 8 and parts[1].isdigit():
        try:
            day = datetime.strptime(parts[1], "%Y%m%d")
        except ValueError:
            return market
        return f"{parts[2]}{parts[3]} {day:%d%b}".upper()
    return market


def expiry_label(expiry_s: int) -> str:
    """An option expiry as exchanges write it: ``31JAN26`` (UTC date)."""
    return datetime.fromtimestamp(expiry_s, tz=UTC).strftime("%d%b%y").upper()

"""Venue text made inert, and the display formatting every widget shares."""

from decimal import Decimal

import pytest
from rich.style import Style

from widgets._base import column_widths, row_strip
from widgets._format import (
    common_decimals,
    decimals_of,
    format_age,
    format_decimal,
    format_rate,
    format_time_ms,
    parse_decimal,
)
from widgets._text import inert


@pytest.mark.parametrize(
    ("hostile", "shown"),
    [
        ("[red]X[/red]\x1b]0;pwned\x07", "[red]X[/red]"),  # markup stays literal, OSC title gone
        ("BTC\x1b[2J\x1b[H", "BTC"),  # CSI: clear screen, cursor home
        ("ETH\x1b]52;c;cHduZWQ=\x1b\\", "ETH"),  # OSC 52 clipboard write, ST-terminated
        ("SOL\x9b31m", "SOL"),  # 8-bit CSI
        ("A\x9d0;title\x9cB", "AB"),  # 8-bit OSC .. ST
        ("DOGE\x1b", "DOGE"),  # lone ESC at the end
        ("\u202eCSI\u202c", "CSI"),  # right-to-left override
        ("a\u2066b\u2069c\u200fd", "abcd"),  # isolates and marks
        ("bell\x07 nul\x00 del\x7f", "bell nul del"),
        ("two\nlines\r\tand tab", "two lines  and tab"),
        ("HYPE/USDC", "HYPE/USDC"),
        ("Will BTC hit 100k? — ünïcödé 比特币", "Will BTC hit 100k? — ünïcödé 比特币"),
    ],
)
def test_inert_removes_escapes_and_controls(hostile: str, shown: str) -> None:
    assert inert(hostile) == shown


def test_inert_accepts_non_strings() -> None:
    assert inert(42) == "42"


def test_decimals_come_from_the_data_not_trailing_zeros() -> None:
    assert decimals_of(Decimal("65000.50")) == 1
    assert decimals_of(Decimal("65000")) == 0
    assert decimals_of(Decimal("6.5E+4")) == 0
    assert decimals_of(Decimal("0.000123")) == 6
    assert common_decimals([Decimal("1"), Decimal("2.25"), Decimal("3.5")]) == 2
    assert common_decimals([]) == 0


def test_format_decimal_is_exact_and_aligned() -> None:
    assert format_decimal(Decimal("65000.5"), 2) == "65,000.50"
    assert format_decimal(Decimal("0.1"), 0) == "0"
    # No float on the way: this would print 0.30000000000000004-ish digits through float.
    assert format_decimal(Decimal("0.1") + Decimal("0.2"), 17) == "0.30000000000000000"


def test_parse_decimal_rejects_what_is_not_a_number() -> None:
    assert parse_decimal("1.5") == Decimal("1.5")
    assert parse_decimal("abc") is None
    assert parse_decimal("NaN") is None
    assert parse_decimal("Infinity") is None


def test_ages_rates_and_times() -> None:
    assert format_age(None) == "—"
    assert format_age(0.34) == "0.3s"
    assert format_age(3.4, tenths=False) == "3s"
    assert format_age(12.4) == "12s"
    assert format_age(250) == "4m"
    assert format_age(7300) == "2h"
    assert format_rate(0.5) == "0.5"
    assert format_rate(142.2) == "142"
    assert format_time_ms(1_700_000_000_123) == "22:13:20.123"  # UTC


def test_column_widths_fill_the_width() -> None:
    widths = column_widths([["Price", "Size"], ["65,000.5", "1.25"]], 20)
    assert sum(widths) == 19  # and a right margin
    assert widths[0] >= len("65,000.5") + 1
    assert column_widths([["abc"]], 2) == [4]  # never narrower than the text plus a gap


def test_row_strip_is_exactly_as_wide_as_asked() -> None:
    base, text, bar = Style(), Style(bold=True), Style(bgcolor="red")
    assert row_strip([("比特币 BTC", text)], 5, base).cell_length == 5  # wide glyphs cropped
    strip = row_strip([("ab", text), ("cd", base)], 8, base, bar=3, bar_style=bar)
    assert strip.text == "abcd    " and strip.cell_length == 8
    barred = [seg.text for seg in strip if seg.style and seg.style.bgcolor == bar.bgcolor]
    assert "".join(barred) == "   "
    assert all(seg.style and seg.style.bold for seg in strip if seg.text == "ab")

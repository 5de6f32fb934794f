"""The market engine: determinism, books that never cross, candles that agree with the trades,
prices and sizes that obey the venue's decimal rules."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import pytest

from app.sim.engine import (
    DEFAULT_ASSETS,
    DEFAULT_START_MS,
    INTERVALS,
    Bar,
    MarketEngine,
    Trade,
    bucket_end,
    bucket_start,
    format_decimal,
    format_fixed,
    format_price,
    price_decimals,
)

MINUTE = 60_000


def run(engine: MarketEngine, steps: int, dt_ms: int = 100) -> dict[str, list[Trade]]:
    trades: dict[str, list[Trade]] = defaultdict(list)
    for _ in range(steps):
        for symbol, batch in engine.step(dt_ms).trades.items():
            trades[symbol].extend(batch)
    return trades


def snapshot(engine: MarketEngine) -> dict[str, object]:
    return {
        symbol: (
            engine.book(symbol, 50),
            engine.recent_trades(symbol, 1000),
            [vars_of(bar) for bar in engine.candles(symbol, "5m", 0, engine.now_ms)],
            engine.context(symbol),
        )
        for symbol in engine.symbols
    }


def vars_of(bar: Bar) -> tuple[int, ...]:
    return (bar.t, bar.o, bar.h, bar.l, bar.c, bar.v, bar.n)


def significant_figures(text: str) -> int:
    return len(text.replace(".", "").lstrip("0").rstrip("0")) if "." in text else len(text.strip("0"))


def obeys_price_rule(text: str, sz_decimals: int, max_decimals: int) -> bool:
    """Hyperliquid's rule: integers always; else <= 5 significant figures and
    <= max_decimals - szDecimals decimals."""
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    if not frac:
        return True
    return len(frac) <= max_decimals - sz_decimals and significant_figures(f"{whole}.{frac}") <= 5


def test_same_seed_and_steps_give_identical_markets() -> None:
    first, second = MarketEngine(11), MarketEngine(11)
    for dt in (100, 250, 1, 3000, 100, 100, 60_000, 17):
        assert first.step(dt) == second.step(dt)
    run(first, 300)
    run(second, 300)
    assert snapshot(first) == snapshot(second)
    assert list(first.account.fills) == list(second.account.fills)


def test_different_seeds_give_different_markets() -> None:
    first, second = MarketEngine(1), MarketEngine(2)
    run(first, 50)
    run(second, 50)
    assert first.book("BTC") != second.book("BTC")


def test_clock_is_virtual_and_only_moves_forward() -> None:
    engine = MarketEngine(3)
    assert engine.now_ms == DEFAULT_START_MS
    assert engine.step(250).time == DEFAULT_START_MS + 250
    assert MarketEngine(3, start_ms=1_800_000_000_000).now_ms == 1_800_000_000_000
    with pytest.raises(ValueError):
        engine.step(-1)


def test_books_are_sorted_and_never_crossed() -> None:
    engine = MarketEngine(5)
    for _ in range(1500):
        engine.step(100)
        for symbol in engine.symbols:
            bids, asks = engine.levels(symbol)
            assert len(bids) >= 20 and len(asks) >= 20
            assert bids[0][0] < asks[0][0], symbol
            assert all(a[0] > b[0] for a, b in zip(bids, bids[1:], strict=False))
            assert all(a[0] < b[0] for a, b in zip(asks, asks[1:], strict=False))
            assert all(size > 0 and orders >= 1 for _, size, orders in bids + asks)


def test_books_and_trades_change_over_time() -> None:
    engine = MarketEngine(5)
    books = []
    for _ in range(10):
        engine.step(100)
        books.append(engine.book("ETH"))
    assert len({repr(book) for book in books}) == 10
    trades = run(engine, 600)
    assert set(trades) == set(engine.symbols)  # every market trades within a minute


def test_trades_carry_aggressor_side_ids_and_addresses() -> None:
    engine = MarketEngine(8)
    trades = run(engine, 600)["BTC"]
    assert {trade.side for trade in trades} == {"buy", "sell"}
    assert [trade.time for trade in trades] == sorted(trade.time for trade in trades)
    for trade in trades:
        assert trade.buyer != trade.seller
        assert trade.hash.startswith("0x") and len(trade.hash) == 66
        assert 0 <= trade.tid < 2**50
        assert trade.px_str == format_fixed(trade.px, 0) and trade.sz_str == format_fixed(trade.sz, 5)
    by_hash = defaultdict(list)
    for trade in trades:
        by_hash[trade.hash].append(trade)
    for fills in by_hash.values():  # one taker order: one time, one side, walking the book
        assert len({(f.time, f.side) for f in fills}) == 1
        prices = [f.px for f in fills]
        assert prices == sorted(prices, reverse=fills[0].side == "sell")


def test_live_candles_agree_with_the_trades() -> None:
    engine = MarketEngine(9)  # the default start is midnight, so live buckets hold live trades only
    trades = run(engine, 6000)  # ten virtual minutes
    for symbol, tape in trades.items():
        for interval, length in (("1m", MINUTE), ("5m", 5 * MINUTE)):
            expected: dict[int, list[Trade]] = defaultdict(list)
            for trade in tape:
                expected[trade.time - trade.time % length].append(trade)
            bars = {bar.t: bar for bar in engine.candles(symbol, interval, DEFAULT_START_MS, engine.now_ms)}
            assert set(bars) == set(expected), (symbol, interval)
            for start, group in expected.items():
                bar = bars[start]
                assert (bar.o, bar.c) == (group[0].px, group[-1].px)
                assert (bar.h, bar.l) == (max(t.px for t in group), min(t.px for t in group))
                assert (bar.v, bar.n) == (sum(t.sz for t in group), len(group))


def test_current_candle_tracks_the_series_incrementally() -> None:
    engine = MarketEngine(10)
    run(engine, 100)
    for interval in INTERVALS:
        engine.current_candle("SOL", interval)  # start tracking
    run(engine, 1900)
    for interval in INTERVALS:
        assert vars_of(engine.current_candle("SOL", interval)) == vars_of(engine.candles("SOL", interval, 0, engine.now_ms)[-1])


def test_history_covers_hundreds_of_bars_for_every_interval() -> None:
    engine = MarketEngine(12)
    for interval in INTERVALS:
        bars = engine.candles("BTC", interval, 0, engine.now_ms)
        minimum = {"1w": 100, "1M": 30}.get(interval, 400)
        assert len(bars) >= minimum, interval
        assert [bar.t for bar in bars] == sorted({bar.t for bar in bars})
        for bar in bars:
            assert bucket_start(interval, bar.t) == bar.t
            assert bar.l <= min(bar.o, bar.c) <= max(bar.o, bar.c) <= bar.h
            assert bar.v > 0 and bar.n > 0


def test_coarse_candles_are_exact_aggregates_of_fine_ones() -> None:
    engine = MarketEngine(13)
    run(engine, 1200)
    minutes = engine.candles("HYPE", "1m", 0, engine.now_ms)
    hours = engine.candles("HYPE", "1h", minutes[0].t, engine.now_ms)
    by_hour: dict[int, list[Bar]] = defaultdict(list)
    for bar in minutes:
        by_hour[bar.t - bar.t % 3_600_000].append(bar)
    for hour in hours[1:]:  # the first hour may begin before the 1m layer
        group = by_hour[hour.t]
        assert (hour.o, hour.c) == (group[0].o, group[-1].c)
        assert (hour.h, hour.l) == (max(b.h for b in group), min(b.l for b in group))
        assert (hour.v, hour.n) == (sum(b.v for b in group), sum(b.n for b in group))


def test_candle_query_range_and_cap() -> None:
    engine = MarketEngine(14)
    start = DEFAULT_START_MS - 10 * 3_600_000 + 1_234
    bars = engine.candles("ETH", "1h", start, DEFAULT_START_MS - 3_600_000)
    assert bars[0].t == start - start % 3_600_000  # the bucket holding startTime is included
    assert bars[-1].t == DEFAULT_START_MS - 3_600_000  # endTime inclusive of the bar opened at it
    assert len(engine.candles("ETH", "1m", 0, engine.now_ms, limit=100)) == 100
    with pytest.raises(ValueError):
        engine.candles("ETH", "2m", 0, engine.now_ms)


def test_prices_and_sizes_obey_the_decimal_rules() -> None:
    engine = MarketEngine(15)
    trades = run(engine, 1200)
    for spec in DEFAULT_ASSETS:
        max_decimals = 6 if spec.kind == "perp" else 8
        assert spec.px_decimals == price_decimals(spec.initial_px, spec.sz_decimals, max_decimals)
        bids, asks = engine.book(spec.symbol, 50)
        prices = [px for px, _, _ in bids + asks] + [t.px_str for t in trades[spec.symbol]]
        bars = engine.candles(spec.symbol, "1m", 0, engine.now_ms)
        prices += [spec.px_str(getattr(bar, f)) for bar in bars for f in "ohlc"]
        assert all(obeys_price_rule(px, spec.sz_decimals, max_decimals) for px in prices), spec.symbol
        sizes = [sz for _, sz, _ in bids + asks] + [t.sz_str for t in trades[spec.symbol]]
        assert all(len(sz.partition(".")[2].rstrip("0")) <= spec.sz_decimals for sz in sizes)
        context = engine.context(spec.symbol)
        for value in (context.mark_px, context.oracle_px, context.prev_day_px):
            assert obeys_price_rule(format_price(value, spec.sz_decimals, max_decimals), spec.sz_decimals, max_decimals)


def test_decimal_formatting_matches_the_venue_style() -> None:
    assert format_fixed(97012, 0) == "97012.0"
    assert format_fixed(123, 5) == "0.00123"
    assert format_fixed(50000, 5) == "0.5"
    assert format_fixed(21130, 4) == "2.113"
    assert format_fixed(14170, 1) == "1417.0"
    assert format_fixed(-25, 2) == "-0.25"
    assert format_decimal(0.00001060066, 10) == "0.0000106007"
    assert format_decimal(-0.0, 4) == "0.0"
    assert format_price(108_800.4, 5, 6) == "108800.0"
    assert format_price(0.1995123, 0, 6) == "0.19951"
    assert format_price(3400.0, 4, 6) == "3400.0"


def test_interval_buckets() -> None:
    t = int(datetime(2025, 6, 18, 13, 47, 12, tzinfo=UTC).timestamp() * 1000)
    week = bucket_start("1w", t)
    assert datetime.fromtimestamp(week / 1000, UTC).strftime("%A %H:%M") == "Thursday 00:00"
    month = bucket_start("1M", t)
    assert datetime.fromtimestamp(month / 1000, UTC) == datetime(2025, 6, 1, tzinfo=UTC)
    assert datetime.fromtimestamp(bucket_end("1M", t) / 1000, UTC) == datetime(2025, 7, 1, tzinfo=UTC)
    assert bucket_end("15m", t) - bucket_start("15m", t) == 15 * MINUTE


def test_demo_account_follows_its_fills() -> None:
    engine = MarketEngine(16)
    run(engine, 6000)
    fills = list(engine.account.fills)
    assert fills and {fill.taker for fill in fills} == {True, False}
    for symbol, position in engine.account.positions.items():
        spec = engine.spec(symbol)
        signed = sum(f.sz if f.side == "buy" else -f.sz for f in fills if f.symbol == symbol)
        assert position.size == signed, spec.symbol
    public = {(t.hash, t.tid) for symbol in engine.symbols for t in engine.recent_trades(symbol, 1000)}
    assert all((f.hash, f.tid) in public for f in fills[-20:])  # fills are trades on the public tape


def test_one_underlying_has_one_price_on_every_venue() -> None:
    """Emulators of different venues, built a few ms apart with other asset lists and stepped
    with other step sizes, agree on an underlying's price at the same virtual time."""
    from app.sim.aster import ASTER_ASSETS

    start = 1_750_000_000_000
    hyperliquid = MarketEngine(7, start_ms=start)
    aster = MarketEngine(7, ASTER_ASSETS, start_ms=start + 37)
    for _ in range(300):
        hyperliquid.step(100)
    while aster.now_ms < hyperliquid.now_ms:
        aster.step(min(333, hyperliquid.now_ms - aster.now_ms))
    assert aster.now_ms == hyperliquid.now_ms
    for underlying in ("BTC", "ETH"):
        assert aster.fair_price(underlying) == hyperliquid.fair_price(underlying)
    assert MarketEngine(8, start_ms=start).fair_price("BTC") != MarketEngine(7, start_ms=start).fair_price("BTC")

"""Stream state: trade de-duplication across backlogs, candle series updates."""

from app.model import Candle, CandleHistory, Side, Trade, Trades
from app.state import CandleSeries, TradeCandles, TradeTape


def _trade(t: int, tid: str, px: str = "1") -> Trade:
    return Trade("BTC", px, "1", Side.BUY, t, tid)


def test_backlog_replay_adds_no_duplicates():
    tape = TradeTape()
    tape.apply(Trades("BTC", [_trade(1, "a"), _trade(2, "b")], backlog=True))
    tape.apply(Trades("BTC", [_trade(3, "c")]))
    generation = tape.generation
    # After a reconnect the venue sends its recent trades again, plus one we missed.
    tape.apply(Trades("BTC", [_trade(2, "b"), _trade(3, "c"), _trade(4, "d")], backlog=True))
    assert [t.trade_id for t in tape.trades] == ["a", "b", "c", "d"]
    assert tape.generation == generation + 1
    tape.apply(Trades("BTC", [_trade(4, "d")]))
    assert tape.generation == generation + 1  # nothing new, nothing to repaint


def test_tape_is_bounded():
    tape = TradeTape(maxlen=3)
    tape.apply(Trades("BTC", [_trade(i, str(i)) for i in range(10)]))
    assert [t.trade_id for t in tape.trades] == ["7", "8", "9"]


def _candle(t: int, close: str) -> Candle:
    return Candle("BTC", "1m", t, t + 59_999, "1", "2", "0.5", close, "3", 4)


def test_candles_replace_update_and_append():
    series = CandleSeries()
    series.apply(CandleHistory("BTC", "1m", [_candle(0, "1"), _candle(60_000, "2")]))
    series.apply(_candle(60_000, "2.5"))  # the forming bar changes
    series.apply(_candle(120_000, "3"))  # a new bar starts
    series.apply(_candle(0, "9"))  # a late update of a closed bar is ignored
    assert [(c.open_time_ms, c.close) for c in series.candles] == [(0, "1"), (60_000, "2.5"), (120_000, "3")]


def test_trade_candles_fold_trades_into_bars_once_each():
    def trade(ms: int, price: str, size: str, tid: str) -> Trade:
        return Trade("ETH-USDT", price, size, Side.BUY, ms, tid)

    bars = TradeCandles("1m", 60_000)
    backlog = Trades("ETH-USDT", [trade(60_500, "10.5", "1", "a"), trade(60_000, "10", "2", "b")], backlog=True)
    bars.apply(backlog)
    assert bars.complete and len(bars.candles) == 1
    bar = bars.candles[0]
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trade_count) == ("10", "10.5", "10", "10.5", "3", 2)
    bars.clear()  # a reconnect: the bars stay, and its backlog is not counted twice
    bars.apply(backlog)
    bars.apply(Trades("ETH-USDT", [trade(119_999, "9.75", "0.25", "c"), trade(120_000, "11", "1", "d")]))
    assert [(c.open_time_ms, c.low, c.close, c.volume) for c in bars.candles] == [
        (60_000, "9.75", "9.75", "3.25"), (120_000, "11", "11", "1"),
    ]
    bars.apply(Trades("ETH-USDT", [trade(61_000, "1", "5", "late")]))  # its bar is drawn: ignored
    assert bars.candles[0].low == "9.75" and len(bars.candles) == 2

"""Stream state: trade de-duplication across backlogs, candle series updates."""

from app.model import Candle, CandleHistory, Side, Trade, Trades
from app.state import CandleSeries, TradeTape


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

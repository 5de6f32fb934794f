"""Hyperliquid frame decoding, on messages shaped exactly like real recorded ones.

The samples below reproduce the shapes of frames recorded from the real venue (strings for every
price and size, the candle as a single object, the spot context channel, the pong without data).
"""

import pytest

from app.model import AllMids, Bbo, BookSnapshot, Candle, Channel, Side, StreamKey, Ticker, Trades, Venue
from app.rest import RestClient
from app.venues.base import Ack, Data, DecodeError, Endpoint, Ignored, Pong, VenueError
from app.venues.hyperliquid import GREETING, NETWORKS, HyperliquidAdapter


@pytest.fixture
def adapter():
    return HyperliquidAdapter(NETWORKS["mainnet"], RestClient(NETWORKS["mainnet"].http_url))


def one(adapter, frame):
    (item,) = adapter.decode(frame)
    return item


def test_l2book_snapshot(adapter):
    item = one(
        adapter,
        '{"channel":"l2Book","data":{"coin":"BTC","time":1751427259657,"levels":['
        '[{"px":"106217.0","sz":"0.001","n":1},{"px":"106215.0","sz":"0.27739","n":2}],'
        '[{"px":"106218.0","sz":"0.5","n":1}]]}}',
    )
    assert isinstance(item, Data) and item.route == ("l2Book", "BTC")
    assert item.event == BookSnapshot(
        "BTC", [("106217.0", "0.001"), ("106215.0", "0.27739")], [("106218.0", "0.5")], 1751427259657
    )


def test_trades_sorted_with_aggressor_side(adapter):
    item = one(
        adapter,
        '{"channel":"trades","data":['
        '{"coin":"BTC","side":"A","px":"69997.0","sz":"0.38111","time":1730160006192,"hash":"0x40","tid":2},'
        '{"coin":"BTC","side":"B","px":"69998.0","sz":"0.1","time":1730160006100,"hash":"0x41","tid":1}]}',
    )
    assert item.route == ("trades", "BTC")
    assert isinstance(item.event, Trades)
    assert [(t.trade_id, t.side) for t in item.event.trades] == [("1", Side.BUY), ("2", Side.SELL)]
    assert adapter.decode('{"channel":"trades","data":[]}') == []


def test_candle_is_a_single_object(adapter):
    item = one(
        adapter,
        '{"channel":"candle","data":{"t":1751493540000,"T":1751493599999,"s":"BTC","i":"1m",'
        '"o":"109579.0","c":"109588.0","h":"109588.0","l":"109579.0","v":"0.0045","n":3}}',
    )
    assert item.route == ("candle", "BTC", "1m")
    assert item.event == Candle("BTC", "1m", 1751493540000, 1751493599999, "109579.0", "109588.0",
                                "109579.0", "109588.0", "0.0045", 3)


def test_spot_context_uses_the_same_route_as_perp_context(adapter):
    item = one(
        adapter,
        '{"channel":"activeSpotAssetCtx","data":{"coin":"@2","ctx":{"prevDayPx":"0.000031",'
        '"dayNtlVlm":"24629.86429498","markPx":"0.00005299","midPx":"0.00005307",'
        '"circulatingSupply":"6879553815.3455801","coin":"@2"}}}',
    )
    key = StreamKey(Venue.HYPERLIQUID, Channel.TICKER, "@2")
    assert item.route == adapter.route(key)
    assert item.event == Ticker("@2", mark="0.00005299", mid="0.00005307", volume_24h="24629.86429498",
                                prev_day_price="0.000031")


def test_all_mids_bbo_and_control_frames(adapter):
    mids = one(adapter, '{"channel":"allMids","data":{"mids":{"BTC":"108963.5","@107":"41.2"}}}')
    assert mids.event == AllMids({"BTC": "108963.5", "@107": "41.2"})
    bbo = one(adapter, '{"channel":"bbo","data":{"coin":"BTC","time":1750948919838,"bbo":[null,{"px":"2","sz":"1","n":1}]}}')
    assert bbo.event == Bbo("BTC", None, ("2", "1"), 1750948919838)
    assert isinstance(one(adapter, '{"channel":"pong"}'), Pong)
    assert isinstance(one(adapter, GREETING), Ignored)
    ack = one(adapter, '{"channel":"subscriptionResponse","data":{"method":"subscribe","subscription":'
                       '{"type":"l2Book","coin":"BTC","nSigFigs":null,"mantissa":null}}}')
    assert ack == Ack({"type": "l2Book", "coin": "BTC", "nSigFigs": None, "mantissa": None})


def test_error_strings_name_their_subscription(adapter):
    error = one(adapter, '{"channel":"error","data":"Invalid subscription {\\"type\\":\\"l2Book\\",\\"coin\\":\\"NOPE\\"}"}')
    assert isinstance(error, VenueError) and error.subscription == {"type": "l2Book", "coin": "NOPE"}
    parse_error = one(
        adapter,
        '{"channel":"error","data":"Error parsing JSON into valid websocket request: {\\"method\\": '
        '\\"subscribe\\", \\"subscription\\": {\\"type\\": \\"candles\\", \\"coin\\": \\"BTC\\"}}"}',
    )
    assert parse_error.subscription == {"type": "candles", "coin": "BTC"}
    assert one(adapter, '{"channel":"error","data":"too many pending post requests id=1234"}').subscription is None


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        '{"channel":"nope","data":1}',
        '{"channel":"l2Book","data":{"coin":"BTC"}}',
        '{"channel":"l2Book","data":{"coin":"BTC","time":1,"levels":[[{"px":"1"}],[]]}}',
        '{"data":{}}',
        "[1,2]",
        '{"channel":"allMids","data":{"mids":[1]}}',
    ],
)
def test_malformed_frames_raise_decode_error(adapter, frame):
    with pytest.raises(DecodeError):
        adapter.decode(frame)


def test_subscription_messages(adapter):
    book = StreamKey(Venue.HYPERLIQUID, Channel.BOOK, "BTC", (("fast", True), ("nSigFigs", 5)))
    assert adapter.subscribe_message(book) == (
        '{"method":"subscribe","subscription":{"type":"l2Book","coin":"BTC","nSigFigs":5,"fast":true}}'
    )
    candles = StreamKey(Venue.HYPERLIQUID, Channel.CANDLES, "ETH", (("interval", "15m"),))
    assert adapter.unsubscribe_message(candles) == (
        '{"method":"unsubscribe","subscription":{"type":"candle","coin":"ETH","interval":"15m"}}'
    )
    with pytest.raises(ValueError, match="interval"):
        adapter.check(StreamKey(Venue.HYPERLIQUID, Channel.CANDLES, "ETH", (("interval", "7m"),)))
    assert Endpoint("a", "b").ws_url == "a"


def test_derived_account_decimals_are_written_plainly(adapter):
    """A position's mark is positionValue / |szi| and an order's filled size origSz - sz: both are
    computed, and must come out as plain decimals (``str(Decimal)`` wrote 100 as ``1E+2``)."""
    state = (
        '{"channel":"clearinghouseState","data":{"dex":"","user":"0x0de0000000000000000000000000000000000001",'
        '"clearinghouseState":{"marginSummary":{"accountValue":"1000.0","totalNtlPos":"200.0","totalRawUsd":"800.0",'
        '"totalMarginUsed":"20.0"},"crossMaintenanceMarginUsed":"10.0","withdrawable":"980.0","time":1751427259657,'
        '"assetPositions":[{"type":"oneWay","position":{"coin":"ETH","szi":"-2.0","entryPx":"101.0",'
        '"positionValue":"200.0","unrealizedPnl":"2.0","liquidationPx":"540.1"}}]}}}'
    )
    positions, margin = (item.event for item in adapter.decode(state))
    assert positions.positions[0].mark_price == "100" and positions.positions[0].size == "-2.0"
    assert margin.equity == "1000.0"

    def order(sz: str, orig: str) -> str:
        return (
            '{"channel":"orderUpdates","data":[{"order":{"coin":"ETH","side":"A","limitPx":"3389.4",'
            f'"sz":"{sz}","oid":7,"timestamp":1751427259657,"origSz":"{orig}"}},"status":"open",'
            '"statusTimestamp":1751427259657}]}'
        )

    (update,) = one(adapter, order("0.0", "100")).event.orders
    assert update.filled == "100.0" and update.size == "100"
    (update,) = one(adapter, order("0.0176", "0.1176")).event.orders
    assert update.filled == "0.1000"
    with pytest.raises(DecodeError):
        adapter.decode(order("1", "0.1176"))  # more left than ordered

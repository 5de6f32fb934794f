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

"""The one interface every venue adapter implements.

An adapter is the venue-specific part and nothing more: how to build the socket URL and the
subscribe/unsubscribe/ping messages, how to turn one inbound frame into normalized events, how to
fetch a REST snapshot, and which close codes are final. Connecting, liveness, backoff, reference
counting and state all live in shared code (:mod:`app.supervisor`, :mod:`app.service`), so adding a
venue means writing one of these and its emulator.

Routing: every data event an adapter decodes carries a *route*, a hashable that names the upstream
stream it belongs to as the venue identifies it on the wire (for Hyperliquid ``("l2Book", "BTC")``).
:meth:`VenueAdapter.route` computes the same value for a :class:`~app.model.StreamKey`, which is how
a frame finds its stream. Two keys with the same route (e.g. two book precisions of one coin whose
frames cannot be told apart) are never put on the same connection.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from app.model import ACCOUNT_CHANNELS, Channel, MarketEvent, MarketInfo, StreamKey, Venue
from app.rest import RestClient
from app.secrets import Credentials
from app.state import StreamData, new_state


class DecodeError(ValueError):
    """A frame could not be understood; counted and reported, never fatal."""


class Refused(Exception):
    """The venue refused our credentials before a socket opened (its token endpoint said 401), or
    they cannot work (a token past its expiry): the connection goes FAILED with this message and
    is not retried until the user asks. The message is shown: never put a secret in it."""


SHAPE_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError, RecursionError)
"""What reading an unexpected shape raises: a missing key, a list where an object was expected, a
short array, nesting past the recursion limit."""


def malformed(exc: Exception, what: str) -> DecodeError:
    """The :class:`DecodeError` for a shape error met while reading ``what``. Adapters catch
    :data:`SHAPE_ERRORS` around a frame and raise this (cheaper per frame than :func:`decoding`)."""
    if isinstance(exc, DecodeError):
        return exc
    if isinstance(exc, KeyError):
        return DecodeError(f"{what} lacks {str(exc)[:40]}")
    return DecodeError(f"malformed {what} ({type(exc).__name__})")


def json_frame(frame: str | bytes) -> Any:
    """The frame parsed as JSON (:class:`DecodeError` if it is not)."""
    try:
        return orjson.loads(frame)
    except orjson.JSONDecodeError:
        raise DecodeError("frame is not JSON") from None


@contextmanager
def decoding(what: str) -> Iterator[None]:
    """Turn shape errors inside the block into a :class:`DecodeError` naming ``what``."""
    try:
        yield
    except SHAPE_ERRORS as exc:
        raise malformed(exc, what) from None


@dataclass(slots=True)
class Data:
    """A market event for the stream whose route is ``route``."""

    route: Hashable
    event: MarketEvent


@dataclass(slots=True)
class Ack:
    """The venue confirmed a subscribe (or unsubscribe) request, echoing its subscription or
    naming the request's id (Binance-style venues).

    ``partial``: the echo names only part of the subscription (Hypercall echoes the channel, not
    its filters), so one ack answers the oldest unanswered subscribe it fits."""

    subscription: Any = None
    unsubscribe: bool = False
    request_id: int | None = None
    partial: bool = False


@dataclass(slots=True)
class VenueError:
    """An error message from the venue; ``subscription`` or ``request_id`` is set when it names
    the request it refuses (``partial``: as for :class:`Ack`; the refusal is then every
    subscription the echo fits, e.g. all of an invalid channel's). ``final``: the connection
    cannot go on as it is (its token expired): it is closed and not retried until the user asks."""

    message: str
    subscription: Any = None
    request_id: int | None = None
    partial: bool = False
    final: bool = False


@dataclass(slots=True)
class Pong:
    """The answer to the adapter's application-level ping."""


@dataclass(slots=True)
class Ignored:
    """A frame with no meaning for us (a greeting, a response to nothing we track)."""


@dataclass(slots=True)
class Authenticated:
    """The venue accepted the connection's :class:`Handshake` (``identity``: what it echoed)."""

    identity: str = ""


Decoded = Data | Ack | VenueError | Pong | Ignored | Authenticated


@dataclass(frozen=True, slots=True)
class Handshake:
    """What a new socket sends before any subscription, and how long it waits for the venue's
    :class:`Authenticated`. A :class:`VenueError` instead is a refusal: not retried until the
    user asks (a wrong wallet stays wrong); no answer in ``timeout`` is a failed attempt."""

    messages: tuple[str, ...]
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class Liveness:
    """How a connection proves it is alive.

    ``ping_interval``: send a probe at least this often (keeps venues with server-silence timeouts
    from closing us). ``probe_after``: inbound silence after which a probe is sent early, so a quiet
    market is told apart from a dead socket. ``pong_timeout``: a probe unanswered this long means
    the connection is dead. Shown STALE from the early probe until the answer or the timeout.
    ``subscribe_timeout``: a subscribe with neither an ack nor data this long is sent again; a
    second such silence recycles the connection.
    """

    ping_interval: float = 20.0
    probe_after: float = 5.0
    pong_timeout: float = 5.0
    subscribe_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a venue lives: WebSocket URL and REST base URL (both may carry no secrets), and any
    further named URLs a venue with several hosts needs (Aster's spot streams: ``spot_ws``)."""

    ws_url: str
    http_url: str
    extra: tuple[tuple[str, str], ...] = ()

    def url(self, name: str) -> str | None:
        return dict(self.extra).get(name)


@dataclass(frozen=True, slots=True)
class Dial:
    """How to open one connection attempt; built anew before every attempt (a fresh token, a
    URL naming the streams). ``max_lifetime``: seconds after which the venue drops the socket,
    so it is replaced before then without a gap."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()
    subprotocols: tuple[str, ...] = ()
    max_lifetime: float | None = None


class VenueAdapter(ABC):
    """Speaks one venue's wire protocol. Stateless per connection, except what it documents."""

    venue: ClassVar[Venue]
    channels: ClassVar[frozenset[Channel]]
    max_subscriptions_per_connection: ClassVar[int] = 1000
    liveness: ClassVar[Liveness] = Liveness()
    # Expected cadence of periodic snapshot streams: silence longer than this (with the connection
    # alive) marks the stream stale. Event-driven channels (trades, candles) are absent: a quiet
    # market is not a stale one.
    stale_after: ClassVar[dict[Channel, float]] = {}
    # How often funding is paid, as the header labels a funding rate (Hyperliquid hourly).
    funding_period: ClassVar[str] = "1h"
    # REST request weight per minute the venue allows (None: no limit); requests queue behind it.
    rest_weight_per_minute: ClassVar[float | None] = None
    # Whether that limit counts per API key (every client of the key shares it) or per client.
    rest_limit_per_key: ClassVar[bool] = False
    # Outbound messages per second the venue tolerates on one socket (None: no limit).
    max_messages_per_second: ClassVar[float | None] = None
    # Whether acks and errors name the request by id (then the connection remembers each id).
    acks_by_id: ClassVar[bool] = False
    # Channels the venue serves over REST alone, fetched every so many seconds while subscribed
    # (Rails' market data for the ticker): no socket message, live from the first answer.
    polled: ClassVar[dict[Channel, float]] = {}
    # Seconds between asking the venue again for a live stream's state on its socket
    # (:meth:`resync_messages`), where the protocol cannot show a lost update (Rails' books have no
    # sequence): the answer replaces the state, and a difference is counted as a gap.
    audit_every: ClassVar[dict[Channel, float]] = {}
    # Why the account channels are refused when :attr:`has_account` is false.
    account_missing: ClassVar[str] = "no wallet configured"
    # Close codes that mean "do not retry" (authentication refused and the like).
    fatal_close_codes: ClassVar[dict[int, str]] = {4001: "authentication rejected", 4003: "forbidden"}

    def __init__(
        self, endpoint: Endpoint, rest: RestClient, wallet: str | None = None, credentials: Credentials | None = None
    ) -> None:
        """``wallet``: the account whose channels (:data:`~app.model.ACCOUNT_CHANNELS`) to
        serve; without one those channels are refused by :meth:`check`. ``credentials``: the
        venue's key, secret or token, for venues that need them (each kept a ``SecretStr`` until a
        dial or request uses it)."""
        self.endpoint = endpoint
        self.rest = rest
        self.wallet = wallet
        self.credentials = credentials or Credentials()

    def group(self, key: StreamKey) -> Hashable:
        """Streams of different groups never share a connection (hosts, paths, auth scopes)."""
        return ()

    async def dial(self, group: Hashable, keys: Sequence[StreamKey] = ()) -> Dial:
        """How to connect for ``group``, carrying ``keys``; called before every attempt (a venue
        that takes its streams in the URL names them here; raise :class:`Refused` for credentials
        that cannot work)."""
        return Dial(self.endpoint.ws_url)

    def handshake(self, group: Hashable) -> Handshake | None:
        """What a socket of ``group`` must send and have accepted before it subscribes
        (Hypercall's ``Authenticate``); ``None`` for none."""
        return None

    def funding_period_of(self, market: str) -> str:
        """How often ``market`` pays funding, as the header labels its rate (an aggregator's
        markets follow their provider)."""
        return self.funding_period

    def chart_market(self, market: str) -> str:
        """The market whose candles chart ``market`` (an option's: its underlying's)."""
        return market

    def check(self, key: StreamKey) -> None:
        """Raise ``ValueError`` with a clear message if the venue cannot serve ``key``."""
        if key.channel not in self.channels:
            raise ValueError(f"{self.venue} has no {key.channel} channel")
        if key.channel in ACCOUNT_CHANNELS and not self.has_account:
            raise ValueError(f"{self.venue} {key.channel}: {self.account_missing}")

    @property
    def has_account(self) -> bool:
        """Whether the account channels have an account to be about: a configured wallet, or
        on venues where the credentials name the account (a token's subject), those."""
        return bool(self.wallet)

    def state_for(self, key: StreamKey) -> StreamData:
        """The state a stream of ``key`` folds into; venues with delta books pick their sync here."""
        return new_state(key.channel)

    @abstractmethod
    def route(self, key: StreamKey) -> Hashable:
        """The route that this key's inbound data events carry (see module docstring)."""

    @abstractmethod
    def subscription(self, key: StreamKey) -> Any:
        """The venue's subscription object for ``key``; acks and errors are matched against it."""

    def subscribe_messages(self, keys: list[StreamKey], request_id: int, *, initial: bool = False) -> list[str]:
        """Messages that subscribe ``keys`` (``initial``: the first request on a new socket).
        Venues that batch override this; ``request_id`` is for venues whose acks name it."""
        return [self.subscribe_message(key) for key in keys]

    def unsubscribe_messages(self, keys: list[StreamKey], request_id: int, *, remaining: list[StreamKey]) -> list[str]:
        """Messages that unsubscribe ``keys``; ``remaining``: the keys the connection still
        carries (venues where several keys share one upstream subscription keep it for them)."""
        return [self.unsubscribe_message(key) for key in keys]

    def subscribe_message(self, key: StreamKey) -> str:
        raise NotImplementedError(f"{type(self).__name__} subscribes in batches")

    def unsubscribe_message(self, key: StreamKey) -> str:
        raise NotImplementedError(f"{type(self).__name__} unsubscribes in batches")

    def resync_messages(self, key: StreamKey) -> list[str] | None:
        """Messages that make the venue send ``key``'s state again on its socket (Rails'
        ``emitPublicOrderBook``, an unsubscribe and subscribe where a subscribe starts with a
        snapshot); ``None``: a resync fetches :meth:`snapshot` over REST."""
        return None

    def ping_message(self) -> str | None:
        """An application-level ping, or ``None`` to probe with a WebSocket ping frame."""
        return None

    def decoder(self, group: Hashable) -> Callable[[str | bytes], list[Decoded]]:
        """The decode function for a connection of ``group`` (a venue whose payloads do not say
        which group they came from binds it here)."""
        return self.decode

    @abstractmethod
    def decode(self, frame: str | bytes) -> list[Decoded]:
        """Decode one inbound frame; raise :class:`DecodeError` for a frame that makes no sense."""

    async def snapshot(self, key: StreamKey) -> list[MarketEvent]:
        """Fetch the state of ``key`` over REST (used on subscribe, reconnect and resync): the
        request, then :meth:`parse_snapshot` of its answer."""
        return []

    def parse_snapshot(self, key: StreamKey, raw: Any) -> list[MarketEvent]:
        """The events of ``raw``, the parsed answer to ``key``'s snapshot request (replay feeds
        recorded answers through here); raise :class:`DecodeError` for one that makes no sense."""
        return []

    # --- replay: the inverses of route/group and of the snapshot request ------------------------
    # Every adapter implements both (tests/test_record_replay.py checks the registered ones).

    def key_for_route(self, route: Hashable, group: Hashable) -> StreamKey | None:
        """The key whose data carries ``route`` on a connection of ``group``, or ``None`` for a
        route that is no stream of ours: the inverse of :meth:`route` and :meth:`group`, so that
        ``route(key_for_route(route(k), group(k))) == route(k)`` for every key ``k``. Where several
        keys share a route (options the frames do not show), the one without those options."""
        return None

    def key_for_request(self, path: str) -> StreamKey | None:
        """The key whose snapshot a recorded REST request fetched, or ``None``. ``path`` is the
        request as recorded (``METHOD path?query body``, see :func:`app.record.parse_request`);
        match on what names the stream, not on values that change per request (times)."""
        return None

    @abstractmethod
    async def markets(self) -> list[MarketInfo]:
        """Every market the venue lists, for the market picker."""

    async def close(self) -> None:
        """Release the adapter's HTTP sessions."""
        await self.rest.close()

    def fatal_close(self, code: int | None, reason: str) -> str | None:
        """Why a close with this code must not be retried, or ``None`` if it may be."""
        return self.fatal_close_codes.get(code) if code is not None else None

"""Every adapter's ``decode()`` (and its REST parsing) against hostile input built from real frames.

The property, for every venue in :data:`tests.conformance.venues.CASES`: a frame either raises the
adapter's :class:`~app.venues.base.DecodeError` or decodes to items that pass
:func:`~tests.conformance.invariants.check_decoded`. Any other exception is a bug (the supervisor
counts ``DecodeError``; anything else escapes the frame). The good frames are the venue emulator's,
captured over a real socket once per session (:func:`~tests.conformance.venues.capture`).

Hypothesis runs derandomized with no example database and a bounded number of examples
(``PERPTERM_FUZZ_EXAMPLES``, default 150), so a run is deterministic and short; the exhaustive
tests walk every field of every frame shape with a fixed list of hostile values and report every
kind of failure at once. One test looks across frames instead: every event a stream gets, pushed or
fetched, names that stream's market.
"""

from __future__ import annotations

import copy
import os
import re
import sys
from collections import defaultdict
from collections.abc import Hashable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from app.model import AllMids, ChainRemoval, ChainRow
from app.venues.base import Ack, Data, DecodeError, Pong, VenueAdapter, VenueError
from tests.conformance.invariants import InvariantError, check_decoded, check_events, check_markets
from tests.conformance.mutations import (
    JSON_DEPTH_LIMIT,
    Raw,
    damaged_frame,
    deep_value,
    delete_at,
    dumps,
    garbage_frames,
    get_at,
    hostile_values_for,
    mutate,
    mutated_frame,
    paths,
    set_at,
    signature,
)
from tests.conformance.venues import (
    CASES,
    Replay,
    ReplayExhausted,
    RestCall,
    Samples,
    capture,
    case_ids,
    missing_cases,
    rest_replaced,
)

# Examples per hypothesis test and venue; raise it for a longer hunt (the run stays deterministic).
EXAMPLES = int(os.environ.get("PERPTERM_FUZZ_EXAMPLES", "150"))

FUZZ = settings(
    max_examples=EXAMPLES,
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink),  # no explain phase: it traces every line, slowly
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module", params=CASES, ids=case_ids)
def samples(request: pytest.FixtureRequest) -> Samples:
    return capture(request.param)


@pytest.fixture(scope="module")
def adapter(samples: Samples) -> VenueAdapter:
    return samples.case.offline_adapter()


# Hypothesis raises the recursion limit while a test runs, which would hide a RecursionError the
# app meets at its default limit of 1000 frames. Adapter code therefore runs under a limit that
# leaves it the room it has in the app: 1000 minus the frames under ``Connection._receive`` there
# (event loop, task, supervisor; a generous estimate).
APP_RECURSION_LIMIT = 1000
APP_STACK_DEPTH = 30


def _stack_depth() -> int:
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    return depth


@contextmanager
def app_recursion_limit() -> Iterator[None]:
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + APP_RECURSION_LIMIT - APP_STACK_DEPTH)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def decode_conforms(adapter: VenueAdapter, frame: str | bytes, group: Hashable = ()) -> list[Any] | None:
    """The property: ``DecodeError`` (-> None) or valid items (returned). Anything else raises.
    ``group``: the connection group the frame arrived on (its decoder may depend on it)."""
    try:
        with app_recursion_limit():
            items = adapter.decoder(group)(frame)
    except DecodeError:
        return None
    check_decoded(items)
    return items


class Failures:
    """Every kind of failure of the exhaustive tests, with where it showed and the shortest frame."""

    def __init__(self) -> None:
        self.places: dict[str, set[str]] = defaultdict(set)
        self.examples: dict[str, tuple[str, str]] = {}
        self.checked = 0

    def check(self, where: str, frame: Any, check: Any, *args: Any) -> None:
        """Run ``check(*args)``; record what it raises besides ``DecodeError`` (which it handles)."""
        self.checked += 1
        try:
            check(*args)
        except InvariantError as exc:
            kind, place = f"invalid value let through: {exc.rule}", exc.what
        except Exception as exc:  # noqa: BLE001 - the point is to catch what the adapter lets escape
            kind, place = f"{type(exc).__name__} escaped: {str(exc)[:100]}", where.split(" = ")[0]
        else:
            return
        self.places[kind].add(re.sub(r"\[\d+\]", "[#]", re.sub(r", \d+", ", #", place)))
        shown = _short(frame, 300)
        if kind not in self.examples or len(shown) < len(self.examples[kind][1]):
            self.examples[kind] = (where, shown)

    def __bool__(self) -> bool:
        return bool(self.places)

    def report(self) -> str:
        lines = [f"{len(self.places)} kind(s) of failure in {self.checked} inputs:"]
        for kind, places in sorted(self.places.items()):
            where, frame = self.examples[kind]
            listed = sorted(places)
            more = f" (+{len(listed) - 12} more)" if len(listed) > 12 else ""
            lines.append(f"- {kind}")
            lines.append(f"    in: {', '.join(listed[:12])}{more}")
            lines.append(f"    e.g. {where}: {frame}")
        return "\n".join(lines)


def run_now(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run an adapter coroutine whose only awaits are on a :class:`Replay` (no loop, no socket)."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise AssertionError("the adapter awaited something besides its RestClient")


def rest_conforms(samples: Samples, call: RestCall, responses: list[Any], *, complete: bool = False) -> Any:
    """The property for REST: ``DecodeError``, a failed request (the adapter asked for more than
    the venue answered), or valid results (returned). With ``complete`` (good answers), exactly
    the answers given are used and the results are valid."""
    adapter = samples.case.offline_adapter()
    replay = Replay(responses)  # every RestClient of the adapter answers from the one list, in order
    try:
        with rest_replaced(adapter, lambda client: replay), app_recursion_limit():
            result = run_now(call.run(adapter))
    except DecodeError:
        assert not complete, "good REST answers did not parse"
        return None
    except ReplayExhausted:
        assert not complete, "the adapter asked for more than it did against the emulator"
        return None
    if complete:
        assert replay.calls == len(responses), f"{call.name}: {replay.calls} of {len(responses)} answers used"
    if call.markets:
        check_markets(result, samples.case.venue)
    else:
        check_events(result)
    return result


def _short(frame: Any, limit: int = 400) -> str:
    text = frame if isinstance(frame, str) else repr(frame)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _shown(value: Any, limit: int = 30) -> str:
    if isinstance(value, Raw):
        text = value.text
    else:
        try:
            text = repr(value)
        except RecursionError:
            text = f"<{type(value).__name__} nested too deep to repr>"
    return text if len(text) <= limit else text[:limit] + "..."


# --- the harness covers every adapter and its frames ----------------------------------------------


def test_every_adapter_has_a_conformance_case() -> None:
    assert not missing_cases(), f"add a VenueCase to tests/conformance/venues.py CASES for {missing_cases()}"


def test_good_frames_decode_and_cover_every_channel(samples: Samples, adapter: VenueAdapter) -> None:
    case = samples.case
    assert {key.channel for key in case.sample_keys} >= adapter.channels, "a channel has no sample key"
    kinds: set[type] = set()
    routes = set()
    for frame, group in zip(samples.frames, samples.groups, strict=True):
        items = decode_conforms(adapter, frame, group)
        assert items is not None, f"a good frame did not decode: {_short(frame)}"
        kinds.update(type(item) for item in items)
        routes.update(item.route for item in items if isinstance(item, Data))
    fetched = {call.key for call in samples.rest}  # a polled key's samples are its snapshot's answers
    covered = lambda key: adapter.route(key) in routes or (key.channel in adapter.polled and key in fetched)  # noqa: E731
    missing = [str(key) for key in case.sample_keys if not covered(key)]
    assert not missing, f"no data frame captured for {missing}"
    assert Ack in kinds
    assert VenueError in kinds or not (case.bad_keys or case.bad_requests)
    assert Pong in kinds or adapter.ping_message() is None


def _markets_named(event: Any) -> set[str]:
    """The markets an event of a one-market stream (not an all-mids map) names, its items'
    included; an options chain's rows name their underlying (the chain's market)."""
    if isinstance(event, (ChainRow, ChainRemoval)):
        return {event.underlying}
    items = getattr(event, "trades", None) or getattr(event, "candles", None) or []
    return {event.market, *(item.market for item in items)}


def test_every_event_of_a_stream_names_its_market(samples: Samples, adapter: VenueAdapter) -> None:
    """Each frame may be valid and a stream still inconsistent: whether pushed on its socket or
    fetched by its REST snapshot, every event a stream gets names the stream's own market (as its
    key, and so the venue's listings, name it); an all-mids map names the markets its stream's
    snapshot names (listed markets, or the underlyings they chart, where it has none: an options
    venue's index prices are its underlyings'). Otherwise a snapshot and the pushes after it
    describe two markets, or a partial map update adds names beside the ones it should update.
    Streams of no one market (listings, the account's) name whatever markets they are about."""
    (listing,) = [call for call in samples.rest if call.markets]
    listed = {info.market for info in rest_conforms(samples, listing, copy.deepcopy(listing.responses), complete=True)}
    listed |= {adapter.chart_market(market) for market in listed}
    fetched = {call.key: rest_conforms(samples, call, copy.deepcopy(call.responses), complete=True) for call in samples.rest if call.key}
    problems: set[str] = set()
    polled = tuple(key for key in samples.case.sample_keys if key.channel in adapter.polled)  # fetched only
    for keys, frames in [*samples.by_socket, (polled, [])]:
        group = adapter.group(keys[0]) if keys else ()
        data = [item for frame in frames for item in decode_conforms(adapter, frame, group) or () if isinstance(item, Data)]
        for key in keys:
            pushed = [item.event for item in data if item.route == adapter.route(key)]
            snapshot_names = {name for event in fetched.get(key, []) if isinstance(event, AllMids) for name in event.mids}
            for origin, events in (("pushed", pushed), ("fetched", fetched.get(key, []))):
                for event in events:
                    kind = type(event).__name__
                    if isinstance(event, AllMids):
                        if unknown := sorted(set(event.mids) - (snapshot_names or listed)):
                            whose = "its snapshot's" if snapshot_names else "listed"
                            problems.add(f"{key} {origin} {kind} names markets that are not {whose}: {unknown[:4]}")
                    elif key.market and (others := sorted(_markets_named(event) - {key.market})):
                        problems.add(f"{key} {origin} {kind} names {others} instead of {key.market!r}")
    assert not problems, "\n".join(sorted(problems))


# --- exhaustive: every field of every frame shape, every hostile value -----------------------------


def grouped_shapes(docs: list[Any], grouped: list[tuple[Any, Hashable]]) -> list[tuple[Any, Hashable]]:
    """One frame of ``docs`` per shape (the first seen), with the connection group it arrived on
    (``docs`` is parallel to ``grouped``, perhaps trimmed)."""
    seen: set[Any] = set()
    out = []
    for doc, (_, group) in zip(docs, grouped, strict=True):
        if (shape := signature(doc)) not in seen:
            seen.add(shape)
            out.append((doc, group))
    return out


def test_every_field_with_every_hostile_value(samples: Samples, adapter: VenueAdapter) -> None:
    """Replace each field (and each container) of each frame shape by each hostile value; delete each
    field; add an unknown key to each object. Reports every kind of failure found."""
    failures = Failures()

    for good, group in grouped_shapes(samples.small_documents, samples.grouped_documents):

        def probe(frame: str, where: str, group: Hashable = group) -> None:
            failures.check(where, frame, decode_conforms, adapter, frame, group)

        doc = copy.deepcopy(good)
        for path in paths(doc, representative=True):
            original = get_at(doc, path)
            for value in hostile_values_for(path):
                probe(dumps(set_at(doc, path, value)), f"{list(path)} = {_shown(value)}")
            doc = set_at(doc, path, original)
            if path:
                probe(dumps(delete_at(copy.deepcopy(doc), path)), f"{list(path)} deleted")
            if isinstance(original, dict):
                original["zz_unknown"] = {"x": [1, None]}
                probe(dumps(doc), f"{list(path)} + unknown key")
                del original["zz_unknown"]
        assert doc == good
    assert failures.checked > 1000
    assert not failures, failures.report()


def test_truncation_at_every_byte_of_every_frame_shape(samples: Samples, adapter: VenueAdapter) -> None:
    failures = Failures()
    for good, group in grouped_shapes(samples.documents, samples.grouped_documents):
        raw = orjson.dumps(good)
        for cut in range(len(raw)):
            for frame in (raw[:cut], raw[:cut].decode("utf-8", "ignore")):
                failures.check(f"cut at {cut}", frame, decode_conforms, adapter, frame, group)
    assert not failures, failures.report()


# --- hypothesis -----------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_mutated_frames(samples: Samples, adapter: VenueAdapter, data: st.DataObject) -> None:
    """Good frames with one to three structural mutations (hostile values, deleted and unknown keys,
    grafted subtrees, renamed channels, wrapping, deep nesting), then perhaps wire damage."""
    frame = data.draw(mutated_frame(samples.frame_pool), label="frame")
    decode_conforms(adapter, frame, data.draw(st.sampled_from(samples.group_choices), label="group"))


@FUZZ
@given(data=st.data())
def test_unknown_channels_and_message_types(samples: Samples, adapter: VenueAdapter, data: st.DataObject) -> None:
    """Channel, type and name fields changed to other venue words or unknown strings, keys renamed,
    subtrees of one message type grafted into another."""
    ops = ("retag", "rename_key", "swap_subtree", "add_key")
    frame = data.draw(mutated_frame(samples.frame_pool, ops=ops, damaged=False), label="frame")
    decode_conforms(adapter, frame, data.draw(st.sampled_from(samples.group_choices), label="group"))


@FUZZ
@given(data=st.data())
def test_wire_damage(samples: Samples, adapter: VenueAdapter, data: st.DataObject) -> None:
    """Good frames truncated, bit-flipped, with invalid UTF-8, lone surrogates, BOM, trailing junk."""
    frame = data.draw(damaged_frame(samples.frame_pool), label="frame")
    decode_conforms(adapter, frame, data.draw(st.sampled_from(samples.group_choices), label="group"))


@FUZZ
@given(frame=garbage_frames())
def test_garbage_frames(adapter: VenueAdapter, frame: str | bytes) -> None:
    decode_conforms(adapter, frame)


@settings(FUZZ, max_examples=max(1, EXAMPLES // 2))
@given(data=st.data())
def test_deep_nesting(samples: Samples, adapter: VenueAdapter, data: st.DataObject) -> None:
    """A field replaced by arrays or objects nested up to the JSON parser's depth limit."""
    frame = data.draw(mutated_frame(samples.frame_pool, max_mutations=1, ops=("deep",), damaged=False), label="frame")
    decode_conforms(adapter, frame, data.draw(st.sampled_from(samples.group_choices), label="group"))


# --- REST bodies ----------------------------------------------------------------------------------


class RestInput:
    """A REST operation with one of its answers mutated (short repr: bodies may be deeply nested)."""

    def __init__(self, call: RestCall, responses: list[Any], index: int) -> None:
        self.call, self.responses, self.index = call, responses, index

    def __repr__(self) -> str:
        try:
            body = orjson.dumps(self.responses[self.index]).decode()
        except TypeError:
            body = "<nested deeper than orjson writes>"
        return f"RestInput({self.call.name!r}, answer #{self.index} = {_short(body, 600)})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis's printer
        printer.text(repr(self))


@st.composite
def rest_inputs(draw: st.DrawFn, samples: Samples) -> RestInput:
    call = draw(st.sampled_from(samples.small_rest))
    responses = copy.deepcopy(call.responses)
    index = draw(st.integers(0, len(responses) - 1))
    body = responses[index]
    for _ in range(draw(st.integers(1, 3))):
        body = draw(mutate(body, samples.rest_pool, wire=False))
    responses[index] = body
    return RestInput(call, responses, index)


def test_rest_samples_parse(samples: Samples) -> None:
    assert samples.rest, "no REST-using operation was captured (snapshot or markets)"
    assert any(call.markets for call in samples.rest)
    for call in samples.rest:
        rest_conforms(samples, call, copy.deepcopy(call.responses), complete=True)


@FUZZ
@given(data=st.data())
def test_rest_bodies(samples: Samples, data: st.DataObject) -> None:
    """``snapshot()`` and ``markets()`` on mutated REST answers: DecodeError or valid results."""
    case = data.draw(rest_inputs(samples), label="rest")
    rest_conforms(samples, case.call, case.responses)


def test_rest_every_field_with_every_hostile_value(samples: Samples) -> None:
    """Each field of each REST answer replaced by each hostile value (Python values: a REST body
    arrives parsed), including nesting as deep as the JSON parser allows, and each field deleted."""
    failures = Failures()
    python_values = [v for v in hostile_values_for(()) if not isinstance(v, Raw)]
    for call in samples.small_rest:
        for index, good in enumerate(call.responses):
            body = copy.deepcopy(good)
            for path in paths(body, representative=True):
                original = get_at(body, path)
                nesting = [deep_value(JSON_DEPTH_LIMIT - len(path)), deep_value(JSON_DEPTH_LIMIT - len(path), "{")]
                for value in [*python_values, *nesting]:
                    responses = [*call.responses[:index], set_at(body, path, value), *call.responses[index + 1 :]]
                    where = f"{call.name} answer #{index} {list(path)} = {_shown(value)}"
                    failures.check(where, RestInput(call, responses, index), rest_conforms, samples, call, responses)
                body = set_at(body, path, original)
                if path:
                    responses = [*call.responses[:index], delete_at(copy.deepcopy(body), path), *call.responses[index + 1 :]]
                    where = f"{call.name} answer #{index} {list(path)} deleted"
                    failures.check(where, RestInput(call, responses, index), rest_conforms, samples, call, responses)
            assert body == good, "an adapter changed a REST body it was given"
    assert failures.checked > 1000
    assert not failures, failures.report()

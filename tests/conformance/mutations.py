"""Hostile frames made from good ones: values, structure, channel names, bytes.

Frames are mutated as parsed JSON (:func:`paths`, :func:`set_at` and friends) and written back by
:func:`dumps`, which, unlike ``orjson``, writes what real sockets may carry and parsers refuse:
``NaN``, ``Infinity``, numbers too long for a double, nesting at the parser's depth limit
(:class:`Raw` tokens). Byte-level damage (truncation, flipped bits, invalid UTF-8) is applied to the
written text. The REST strategies use Python values only, since a REST body reaches the adapter
already parsed.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from json.encoder import encode_basestring, encode_basestring_ascii  # type: ignore[attr-defined]
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

Path = tuple[Any, ...]

JSON_DEPTH_LIMIT = 1024  # orjson refuses deeper nesting (the adapters' parser)
MIN_TIME_MS = 1_230_768_000_000
END_TIME_MS = 4_102_444_800_000


@dataclass(frozen=True, slots=True)
class Raw:
    """A token written verbatim into the frame text."""

    text: str


def deep(depth: int, kind: str = "[") -> Raw:
    """``depth`` nested arrays (``[``) or objects (``{``) as one token."""
    if kind == "[":
        return Raw("[" * depth + "]" * depth)
    return Raw('{"a":' * depth + "1" + "}" * depth)


def deep_value(depth: int, kind: str = "[") -> Any:
    """The Python value of :func:`deep` (built without recursion)."""
    value: Any = [] if kind == "[" else 1
    for _ in range(depth - (1 if kind == "[" else 0)):
        value = [value] if kind == "[" else {"a": value}
    return value


# --- writing --------------------------------------------------------------------------------------


def dumps(value: Any, *, ensure_ascii: bool = False) -> str:
    """JSON text of ``value``; floats NaN/Infinity and :class:`Raw` tokens are written as is."""
    out: list[str] = []
    _write(value, out, ensure_ascii)
    return "".join(out)


def _write(value: Any, out: list[str], ensure_ascii: bool) -> None:
    # Scalars are written as ``json.dumps`` writes them, without its per-call encoder set-up
    # (the exhaustive tests write tens of thousands of frames per venue).
    quote = encode_basestring_ascii if ensure_ascii else encode_basestring
    if isinstance(value, str):
        out.append(quote(value))
    elif isinstance(value, Raw):
        out.append(value.text)
    elif isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(quote(str(key)))
            out.append(":")
            _write(item, out, ensure_ascii)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out, ensure_ascii)
        out.append("]")
    elif value is None:
        out.append("null")
    elif value is True or value is False:
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        if math.isfinite(value):
            out.append(float.__repr__(value))
        else:
            out.append("NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity"))
    else:
        out.append(json.dumps(value, ensure_ascii=ensure_ascii))


# --- navigating -----------------------------------------------------------------------------------


def paths(doc: Any, *, representative: bool = False) -> list[Path]:
    """Every path in ``doc`` (root first). With ``representative``, only the first and last item of
    each array are walked into (items of one array share a shape)."""
    return [path for path, _ in nodes(doc, representative=representative)]


def nodes(doc: Any, *, representative: bool = False, max_depth: int = 64) -> list[tuple[Path, Any]]:
    """``(path, node)`` for every node of ``doc`` (root first), not below ``max_depth``."""
    found: list[tuple[Path, Any]] = []
    stack: list[tuple[Path, Any]] = [((), doc)]
    while stack:
        path, node = stack.pop()
        found.append((path, node))
        if len(path) >= max_depth:
            continue
        if isinstance(node, dict):
            children = list(node.items())
        elif isinstance(node, list):
            indices = range(len(node))
            if representative and len(node) > 2:
                indices = (0, len(node) - 1)
            children = [(index, node[index]) for index in indices]
        else:
            continue
        for key, child in reversed(children):
            stack.append(((*path, key), child))
    return found


def get_at(doc: Any, path: Path) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def set_at(doc: Any, path: Path, value: Any) -> Any:
    """``doc`` with the node at ``path`` replaced (mutates in place; returns the new root)."""
    if not path:
        return value
    get_at(doc, path[:-1])[path[-1]] = value
    return doc


def delete_at(doc: Any, path: Path) -> Any:
    if path:
        del get_at(doc, path[:-1])[path[-1]]
    return doc


def trimmed(doc: Any, max_items: int = 3) -> Any:
    """A copy of ``doc`` whose arrays keep at most their first, middle and last items (the fuzz
    strategies mutate small frames quickly; array items share a shape)."""
    if isinstance(doc, dict):
        return {key: trimmed(value, max_items) for key, value in doc.items()}
    if isinstance(doc, list):
        items = doc if len(doc) <= max_items else [doc[0], doc[len(doc) // 2], doc[-1]]
        return [trimmed(item, max_items) for item in items]
    return doc


def strings_in(docs: Sequence[Any]) -> list[str]:
    """Every string value and key in ``docs`` (channel names, coins, types...), sorted."""
    seen: set[str] = set()
    for doc in docs:
        for path, node in nodes(doc):
            if isinstance(node, str):
                seen.add(node)
            if path and isinstance(path[-1], str):
                seen.add(path[-1])
    return sorted(seen)


def signature(doc: Any) -> frozenset[tuple[Any, ...]]:
    """The shape of a frame: its paths with array indices blurred, and leaf types."""
    return frozenset(
        (tuple("#" if isinstance(k, int) else k for k in path), type(node).__name__)
        for path, node in nodes(doc, representative=True)
    )


def distinct_shapes(docs: Sequence[Any]) -> list[Any]:
    """One frame per shape (the first seen)."""
    seen: set[frozenset[tuple[Any, ...]]] = set()
    out = []
    for doc in docs:
        shape = signature(doc)
        if shape not in seen:
            seen.add(shape)
            out.append(doc)
    return out


# --- hostile values -------------------------------------------------------------------------------

HOSTILE_VALUES: tuple[Any, ...] = (
    None, True, False,
    0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**40, -(10**40),
    MIN_TIME_MS - 1, MIN_TIME_MS, END_TIME_MS - 1, END_TIME_MS,
    0.0, -0.0, 0.5, -1.5, 1e308, -1e308, 5e-324, 1.7e12,
    math.nan, math.inf, -math.inf,
    "", " ", "0", "00", "0.0", "-0", "-1", "+1", "1", "1.", ".5", "1.2.3", "1e5", "1E-5", "0x10",
    " 1", "1 ", "\t1", "1\n", "1_000", "1,000", "NaN", "nan", "Infinity", "-Infinity", "inf",
    "９", "1９", "０.５", "٣", "१", "½", "²", "\u0000", "\x1b[2J", "[bold red]x[/]", "\u202e1",
    "9" * 40, "9" * 41, "1" * 5000, "0." + "0" * 37 + "1", "-" + "9" * 40, "ETH", "BTC",
    [], [None], [[]], ["1", "2"], [1, 2], {}, {"px": "1", "sz": "1"}, {"": None},
)  # fmt: skip

RAW_TOKENS: tuple[str, ...] = (
    "NaN", "-NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" * 5000, "-" + "9" * 400, "-0",
    "1E+2", "0.1e-400", "18446744073709551616", "-9223372036854775809", "00", "+1", ".5", "1.",
    "0x10", "tru", "nul", "'x'", "undefined", "",
)  # fmt: skip

NAMES: tuple[str, ...] = (
    "channel", "data", "type", "method", "subscription", "coin", "levels", "px", "sz", "time", "e",
    "s", "stream", "result", "id", "error", "__proto__", "", "\u0000",
)  # fmt: skip


@functools.cache
def decimal_strings() -> st.SearchStrategy[str]:
    """Strings near the decimal rule's edges: signs, points, lengths 39 to 42, Unicode digits."""
    return st.one_of(
        st.from_regex(r"[-+]?[0-9]{0,42}(\.[0-9]{0,42})?", fullmatch=True),
        st.text(alphabet=st.characters(categories=["Nd"]), min_size=1, max_size=6),
        st.text(alphabet="0123456789.-+eE_ ,", max_size=12),
    )


@functools.cache
def hostile_python(max_leaves: int = 6) -> st.SearchStrategy[Any]:
    """Hostile Python JSON values (for REST bodies, which arrive already parsed)."""
    leaves = st.one_of(
        st.sampled_from(HOSTILE_VALUES),
        st.integers(),
        st.floats(),
        st.text(max_size=40),
        decimal_strings(),
    )
    return st.one_of(
        leaves,
        st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=max_leaves),
    )


@functools.cache
def hostile_wire() -> st.SearchStrategy[Any]:
    """Hostile values for frames (may also be :class:`Raw` tokens)."""
    return st.one_of(hostile_python(), st.sampled_from(RAW_TOKENS).map(Raw))


# --- structural mutations -------------------------------------------------------------------------

STRUCTURAL_OPS = (
    "replace", "delete", "add_key", "rename_key", "swap_subtree", "retag", "wrap", "duplicate",
    "empty", "deep", "truncate_list",
)  # fmt: skip


class Pool:
    """Good documents (to mutate and to graft from) and the words in them; short repr, since
    hypothesis shows the arguments of strategies."""

    def __init__(self, name: str, docs: Sequence[Any], words: Sequence[str] | None = None) -> None:
        self.name = name
        self.docs = list(docs)
        self.words = list(words) if words is not None else (strings_in(self.docs) or ["x"])
        self.word = st.sampled_from(NAMES) | st.sampled_from(self.words) | st.text(max_size=16)
        self.doc = st.sampled_from(self.docs)

    def __repr__(self) -> str:
        return f"<Pool {self.name}: {len(self.docs)} documents>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis's printer
        printer.text(repr(self))


@st.composite
def mutate(draw: st.DrawFn, doc: Any, pool: Pool, *, ops: Sequence[str] = STRUCTURAL_OPS, wire: bool = True) -> Any:
    """One mutation of ``doc`` (mutated in place; the new root is returned)."""
    op = draw(st.sampled_from(ops), label="op")
    every = nodes(doc)
    values = hostile_wire() if wire else hostile_python()
    words = pool.word

    def pick(candidates: list[tuple[Path, Any]]) -> tuple[Path, Any]:
        return draw(st.sampled_from(candidates))

    inner = [(p, n) for p, n in every if p]
    objects = [(p, n) for p, n in every if isinstance(n, dict)]
    keyed = [(p, n) for p, n in inner if isinstance(p[-1], str)]
    texts = [(p, n) for p, n in every if isinstance(n, str)]
    lists = [(p, n) for p, n in every if isinstance(n, list) and n]
    if op == "delete" and inner:
        return delete_at(doc, pick(inner)[0])
    if op == "add_key" and objects:
        node = pick(objects)[1]
        node[draw(words, label="key")] = copy.deepcopy(draw(values | pool.doc, label="value"))
        return doc
    if op == "rename_key" and keyed:
        path = pick(keyed)[0]
        parent = get_at(doc, path[:-1])
        parent[draw(words, label="new key")] = parent.pop(path[-1])
        return doc
    if op == "swap_subtree":  # a piece of another message (type confusion with realistic values)
        donor = draw(pool.doc)
        graft = copy.deepcopy(pick(nodes(donor, representative=True))[1])
        return set_at(doc, pick(every)[0], graft)
    if op == "retag" and texts:  # a channel, type or name changed to another word or an unknown one
        return set_at(doc, pick(texts)[0], draw(words, label="word"))
    if op == "wrap":
        path, node = pick(every)
        return set_at(doc, path, draw(st.sampled_from(([node], {"data": node}, [node, node]))))
    if op == "duplicate" and lists:
        node = pick(lists)[1]
        node.append(node[draw(st.integers(0, len(node) - 1))])  # shared, not copied: may be deep
        return doc
    if op == "empty":
        return set_at(doc, pick(every)[0], draw(st.sampled_from(([], {}, "", None))))
    if op == "deep":
        path = pick(every)[0]
        depth = draw(st.integers(JSON_DEPTH_LIMIT - len(path) - 24, JSON_DEPTH_LIMIT - len(path) + 1), label="depth")
        kind = draw(st.sampled_from("[{"))
        return set_at(doc, path, deep(depth, kind) if wire else deep_value(depth, kind))
    if op == "truncate_list" and lists:
        node = pick(lists)[1]
        del node[draw(st.integers(0, len(node) - 1)) :]
        return doc
    return set_at(doc, pick(every)[0], draw(values, label="value"))  # "replace", and the fallback


# --- byte-level damage ----------------------------------------------------------------------------

INVALID_UTF8: tuple[bytes, ...] = (b"\xff", b"\xfe", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80")


@st.composite
def damage(draw: st.DrawFn, text: str) -> str | bytes:
    """``text`` as sent (str), as bytes, or damaged: truncated, bit-flipped, invalid UTF-8 inserted,
    a lone surrogate, a byte-order mark, trailing garbage."""
    op = draw(st.sampled_from(("none", "bytes", "truncate", "flip", "insert", "surrogate", "bom", "trailing")), label="damage")
    raw = text.encode("utf-8", "surrogatepass")
    if op == "none":
        return text
    if op == "bytes":
        return raw
    if op == "truncate":
        return raw[: draw(st.integers(0, max(0, len(raw) - 1)), label="cut at")]
    if op == "flip":
        data = bytearray(raw)
        for _ in range(draw(st.integers(1, 3))):
            if data:
                data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        return bytes(data)
    if op == "insert":
        at = draw(st.integers(0, len(raw)), label="insert at")
        junk = draw(st.sampled_from(INVALID_UTF8) | st.binary(min_size=1, max_size=4), label="junk")
        return raw[:at] + junk + raw[at:]
    if op == "surrogate":
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.sampled_from(("\ud800", "\udfff", "\\ud800"))) + text[at:]
    if op == "bom":
        return "\ufeff" + text
    return text + draw(st.sampled_from(("}", "]", ",", "\x00", " x", text)))


# --- whole frames ---------------------------------------------------------------------------------


@st.composite
def mutated_frame(draw: st.DrawFn, pool: Pool, *, max_mutations: int = 3, ops: Sequence[str] = STRUCTURAL_OPS, damaged: bool = True) -> str | bytes:
    """A good frame of ``pool`` with 1 to ``max_mutations`` structural mutations, written as text
    and perhaps damaged on the wire."""
    doc = copy.deepcopy(draw(pool.doc, label="good frame"))
    for _ in range(draw(st.integers(1, max_mutations))):
        doc = draw(mutate(doc, pool, ops=ops))
    text = dumps(doc, ensure_ascii=draw(st.booleans()))
    return draw(damage(text)) if damaged else text


@st.composite
def damaged_frame(draw: st.DrawFn, pool: Pool) -> str | bytes:
    """A good frame of ``pool`` written as text, with byte-level damage only."""
    return draw(damage(dumps(draw(pool.doc, label="good frame"))))


def garbage_frames() -> st.SearchStrategy[str | bytes]:
    """Frames that owe nothing to the venue: random text, bytes, JSON values."""
    return st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200),
        hostile_python(max_leaves=20).map(dumps),
        st.sampled_from(RAW_TOKENS),
        st.integers(1, JSON_DEPTH_LIMIT + 2).flatmap(lambda d: st.sampled_from((deep(d).text, deep(d, "{").text))),
    )


def hostile_values_for(path: Path) -> Iterator[Any]:
    """The fixed hostile values, and nesting as deep as the parser allows at ``path``."""
    yield from HOSTILE_VALUES
    yield from map(Raw, RAW_TOKENS)
    yield deep(JSON_DEPTH_LIMIT - len(path))
    yield deep(JSON_DEPTH_LIMIT - len(path), "{")

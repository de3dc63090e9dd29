"""What the fuzz tests feed Casefold, and the one settings profile they all run under.

Two layers of JSON:

* `json_values` are what a parser can actually be handed after our decoder (orjson): no lone
  surrogates (orjson refuses them), integers inside 64 bits (bigger ones arrive as floats),
  finite floats, nesting the store can keep.
* `wire_values` add what only exists on the wire, to be encoded with `to_wire`: integers of any
  size, NaN and infinities, lone surrogates escaped as \\ud800 or sent raw, NUL, very long
  strings. Bodies made of those test the decoder's refusals.

Wazuh alerts start from the real samples in /work/shared/samples/wazuh and are mutated one path at
a time (deleted, retyped, replaced by an edge value), so most of each document is still the shape
the parser knows and the mutation reaches the code behind the first checks.

Profiles: "fuzz" is what CI runs (a few hundred examples per test, no deadline); set
CASEFOLD_FUZZ_PROFILE=fuzz-long for a longer local hunt.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

settings.register_profile("fuzz", max_examples=200, deadline=None, print_blob=True)
settings.register_profile("fuzz-long", settings.get_profile("fuzz"), max_examples=5_000)
FUZZ = settings.get_profile(os.environ.get("CASEFOLD_FUZZ_PROFILE", "fuzz"))
# For tests whose examples all go to one app built by a function-scoped fixture. Sharing it is the
# point (a runtime per example would cost seconds); each example checks only its own difference
# in the store, so what earlier examples left behind cannot mask a failure.
FUZZ_SHARED_APP = settings(FUZZ, suppress_health_check=[HealthCheck.function_scoped_fixture])

SAMPLES_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "samples" / "wazuh"
SAMPLES: dict[str, dict[str, Any]] = {
    p.name: json.loads(p.read_text()) for p in sorted(SAMPLES_DIR.glob("*.json"))
}
ALERT_SAMPLES = {k: v for k, v in SAMPLES.items() if "active_response" not in k}

# orjson refuses to encode containers nested deeper than this, so the store cannot keep such an
# alert (see test_intake_http.py::test_deeply_nested_alert_is_refused_not_a_server_error).
# Generated documents stay well below it so the other properties keep testing everything else:
# a deep value (DEEP_VALUE_DEPTH) only replaces a path at most MUTABLE_PATH_DEPTH long.
STORABLE_DEPTH = 254
DEEP_VALUE_DEPTH = 200
MUTABLE_PATH_DEPTH = 20

# --- scalars and values ----------------------------------------------------------------------

KEYS = st.sampled_from(
    ["id", "rule", "level", "timestamp", "@timestamp", "data", "srcip", "agent", "ip", "name",
     "description", "groups", "mitre", "syscheck", "sha256_after", "md5_after", "win",
     "eventdata", "hashes", "url", "dns", "answers", "type", "", " ", "0", "__proto__"]
)  # fmt: skip
EDGE_STRINGS = st.sampled_from(
    ["", " ", "null", "-", "0", "1e308", "203.0.113.7", "::ffff:10.0.0.1", "fe80::1%eth0",
     "999.1.1.1", "D41D8CD98F00B204E9800998ECF8427E", "http://[::1", "http://x y", "\x00",
     "a\x00b", "\u202e", "\ufeff", "é", "𝟘𝟙", "١٢", "２０２６", "\\\\MYORG\\\\user",
     "SHA1=AA,MD5=zz,SHA256=", "type:  5 a.example;::ffff:1.2.3.4;", "${{ TRIGGER }}"]
)  # fmt: skip
FLOATS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 1.7976931348623157e308, 5e-324, -0.0, 0.1, 16.0, 16.5]),
)
INT64 = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.sampled_from([0, -1, 16, 17, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1]),
)
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), INT64, FLOATS, st.text(max_size=40), EDGE_STRINGS
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.one_of(KEYS, st.text(max_size=8)), children, max_size=5),
    )


json_values = st.recursive(JSON_SCALARS, _containers, max_leaves=25)


@st.composite
def deep_values(draw: st.DrawFn, max_depth: int = DEEP_VALUE_DEPTH) -> Any:
    """A value wrapped in up to `max_depth` lists and objects."""
    value = draw(JSON_SCALARS)
    for wrap in draw(st.lists(st.booleans(), min_size=1, max_size=max_depth)):
        value = [value] if wrap else {"k": value}
    return value


def long_strings(min_size: int = 1_000, max_size: int = 200_000) -> st.SearchStrategy[str]:
    """Very long strings, built without asking Hypothesis to draw every character."""
    return st.builds(
        lambda n, ch: ch * n, st.integers(min_size, max_size), st.sampled_from("aé\x00🙂")
    )


# Only on the wire: orjson turns these into a refusal (400) or a float.
WIRE_SCALARS = st.one_of(
    JSON_SCALARS,
    st.integers(min_value=2**64, max_value=10**30),
    st.integers(max_value=-(2**63) - 1, min_value=-(10**30)),
    st.sampled_from([10**400, float("nan"), float("inf"), -float("inf")]),
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3),  # lone surrogates
    st.sampled_from(["\ud800", "a\udfffb", "\udbff\udc00"]),  # the last one is a valid pair
)
wire_values = st.recursive(WIRE_SCALARS, _containers, max_leaves=20)


def to_wire(value: Any, *, ascii_only: bool) -> bytes:
    """JSON text of `value` as a careless sender would write it.

    The stdlib encoder writes any integer, NaN and Infinity; `ascii_only` escapes lone
    surrogates (\\ud800), otherwise they go out as raw (invalid) UTF-8 bytes.
    """
    text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


# --- Wazuh alerts ----------------------------------------------------------------------------

ALERT_IDS = st.builds(lambda s, n: f"{s}.{n}", st.integers(10**9, 2 * 10**9), st.integers(0, 10**9))

ODD_TIMESTAMPS = st.one_of(
    st.sampled_from(
        ["2026-11-20T10:00:00.000+0000", "2026-11-20T10:00:00Z", "2026-11-20 10:00:00,5-0330",
         "2026-11-20", "2026-11-20T10:00:00", "20261120T100000Z", "1700000000", "",
         "2026-02-30T10:00:00Z", "2026-11-20T24:00:00Z", "0001-01-01T00:00:00+0100",
         "9999-12-31T23:59:59.999999999-2359", "2026-11-20T10:00:00+2400",
         "2026-11-20T10:00:00.1234567890123+0000", "２０２６-11-20T10:00:00Z",
         "2026-11-20T10:00:00\x00Z", " 2026-11-20T10:00:00Z ", "null", "2026-11-20t10:00:00z",
         "+002026-11-20T10:00:00Z", "2026-W47-5T10:00:00Z"]
    ),
    st.text(max_size=40),
    st.integers(),
    FLOATS,
)  # fmt: skip

SPECIAL_VALUES = st.one_of(
    st.integers(min_value=2**53, max_value=2**64 - 1),
    st.integers(min_value=-(2**63), max_value=-(2**53)),
    FLOATS,
    deep_values(),
    st.text(max_size=60),
    EDGE_STRINGS,
    long_strings(1_000, 20_000),
    ODD_TIMESTAMPS,
)


def _retype(value: Any, target: str) -> Any:
    if target == "str":
        return value if isinstance(value, str) else json.dumps(value)
    if target == "int":
        return len(value) if isinstance(value, str | list | dict) else 7
    if target == "list":
        return [value]
    if target == "dict":
        return {"value": value}
    return None


def paths_of(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside `doc` (dict keys and list indexes), parents first."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield (*prefix, key)
            yield from paths_of(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield (*prefix, i)
            yield from paths_of(value, (*prefix, i))


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


def _stringify_scalars(value: Any) -> Any:
    """What Wazuh's JSON decoder does to `data.*`: every scalar becomes a string."""
    if isinstance(value, dict):
        return {k: _stringify_scalars(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify_scalars(v) for v in value]
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value)


def mutate(draw: st.DrawFn, doc: Any, max_mutations: int = 4) -> Any:
    """Delete, retype or replace up to `max_mutations` paths of `doc` (in place)."""
    for _ in range(draw(st.integers(0, max_mutations))):
        paths = [p for p in paths_of(doc) if len(p) <= MUTABLE_PATH_DEPTH]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(doc, path)
        op = draw(st.sampled_from(["delete", "retype", "special"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "retype":
            parent[path[-1]] = _retype(
                parent[path[-1]], draw(st.sampled_from(["str", "int", "list", "dict", "null"]))
            )
        else:
            parent[path[-1]] = draw(SPECIAL_VALUES)
    return doc


@st.composite
def mutated_docs(draw: st.DrawFn, samples: list[dict[str, Any]]) -> Any:
    """One of `samples` (deep-copied) with a few paths mutated."""
    return mutate(draw, copy.deepcopy(draw(st.sampled_from(samples))))


@st.composite
def mutated_alerts(draw: st.DrawFn) -> dict[str, Any]:
    """A real Wazuh sample with paths mutated, and Wazuh's own trouble spots aimed at."""
    doc = copy.deepcopy(ALERT_SAMPLES[draw(st.sampled_from(sorted(ALERT_SAMPLES)))])
    if draw(st.booleans()):
        # a fresh id, so the example is not just a duplicate of the previous one
        doc["id"] = draw(ALERT_IDS)
    for op in draw(st.lists(st.sampled_from(["timestamp", "level", "data"]), max_size=2)):
        if op == "timestamp":
            doc[draw(st.sampled_from(["timestamp", "@timestamp"]))] = draw(ODD_TIMESTAMPS)
        elif op == "level" and isinstance(doc.get("rule"), dict):
            doc["rule"]["level"] = draw(st.one_of(st.integers(-3, 20), SPECIAL_VALUES))
        elif op == "data":
            # `data.*` as Wazuh's JSON decoder leaves it (all strings), or as one string
            data = doc.get("data")
            as_text = draw(st.booleans()) and data is not None
            doc["data"] = json.dumps(data) if as_text else _stringify_scalars(data)
    return mutate(draw, doc)


@st.composite
def fresh_alerts(draw: st.DrawFn) -> dict[str, Any]:
    """An unmutated sample with a new id: should be accepted."""
    doc = copy.deepcopy(ALERT_SAMPLES[draw(st.sampled_from(sorted(ALERT_SAMPLES)))])
    doc["id"] = draw(ALERT_IDS)
    return doc


# --- request bodies --------------------------------------------------------------------------

JSON_TYPES = ["application/json", "application/json; charset=utf-8", None, "text/plain", ""]
NDJSON_TYPES = [
    "application/x-ndjson",
    "application/ndjson",
    "APPLICATION/X-NDJSON ; charset=utf-8",
    "application/jsonl",
    "application/x-jsonlines",
    "application/json-seq",
]
ODD_TYPES = st.one_of(
    st.sampled_from(
        [*JSON_TYPES, *NDJSON_TYPES, "multipart/form-data; boundary=x",
         "application/x-www-form-urlencoded", "application/xml", ";", "application/x-ndjson;;"]
    ),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
)  # fmt: skip


@dataclass
class Body:
    """A request body and what the sender meant by it.

    `kind` is how it was built: "single" (one JSON value), "array", "ndjson" or "raw" (anything).
    `items` holds the bytes of each item the receiver should account for: the value, the array
    elements, or the non-blank NDJSON lines; None for raw bodies.
    """

    content: bytes
    content_type: str | None
    kind: str = "raw"
    items: list[bytes] | None = None


def _item_bytes(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["fresh", "mutated", "mutated", "json", "wire"]))
    if kind == "fresh":
        value: Any = draw(fresh_alerts())
    elif kind == "mutated":
        value = draw(mutated_alerts())
    elif kind == "json":
        value = draw(json_values)
    else:
        value = draw(wire_values)
    return to_wire(value, ascii_only=draw(st.booleans()))


@st.composite
def alert_bodies(draw: st.DrawFn) -> Body:
    """One alert, a JSON array or NDJSON, mixing good, mutated and broken items."""
    shape = draw(st.sampled_from(["single", "array", "ndjson"]))
    if shape == "single":
        content = _item_bytes(draw)
        return Body(content, draw(st.sampled_from(JSON_TYPES)), "single", [content])
    items = [_item_bytes(draw) for _ in range(draw(st.integers(1, 6)))]
    if shape == "array":
        content = b"[" + b",".join(items) + b"]"
        return Body(content, draw(st.sampled_from(JSON_TYPES)), "array", items)
    lines: list[bytes] = []
    counted: list[bytes] = []
    for item in items:
        if draw(st.integers(0, 5)) == 0:
            # a line that is not JSON; it never holds a newline, so it stays one item
            junk = draw(st.binary(min_size=1, max_size=40)).replace(b"\n", b"")
            if junk.strip():
                lines.append(junk)
                counted.append(junk)
        if draw(st.integers(0, 5)) == 0:
            lines.append(draw(st.sampled_from([b"", b"  ", b"\r", b"\t "])))  # blank: skipped
        lines.append(item)
        counted.append(item)
    content = b"\n".join(lines) + draw(st.sampled_from([b"", b"\n", b"\r\n"]))
    return Body(content, draw(st.sampled_from(NDJSON_TYPES)), "ndjson", counted)


@st.composite
def raw_bodies(draw: st.DrawFn) -> Body:
    """Arbitrary bytes, or JSON text with its end cut off, under any content type."""
    ctype = draw(ODD_TYPES)
    kind = draw(st.sampled_from(["bytes", "truncated", "value", "deep", "long"]))
    if kind == "bytes":
        content = draw(st.binary(max_size=300))
    elif kind == "truncated":
        text = to_wire(draw(fresh_alerts()), ascii_only=True)
        content = text[: draw(st.integers(0, len(text)))]
    elif kind == "value":
        content = to_wire(draw(wire_values), ascii_only=draw(st.booleans()))
    elif kind == "long":
        # around the body limits (64 KiB, 512 KiB) and the 256 KiB off-the-event-loop threshold
        doc = draw(fresh_alerts())
        doc["full_log"] = draw(long_strings(30_000, 600_000))
        content = to_wire(doc, ascii_only=draw(st.booleans()))
    else:
        # an alert inside lists: around orjson's decoding limit of 1024 levels, and past it
        n = draw(st.sampled_from([1000, 1025, 5000]))
        content = b"[" * n + to_wire(draw(fresh_alerts()), ascii_only=True) + b"]" * n
    return Body(content, ctype)

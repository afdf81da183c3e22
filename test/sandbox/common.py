"""Shared machinery for the unified_fdw sandbox upstream servers.

This module owns everything that is not specific to one upstream system, so
that the Business Central sandbox (bc.py) and the later SAP (OData V2) and
NetSuite (SuiteQL) sandboxes behave the same way towards tests:

* ``SandboxServer`` / ``SandboxHandler``: a threaded HTTP/1.1 server bound to
  loopback only.  Every response carries ``request-id: <uuid4>`` and (unless it
  is streamed) a Content-Length, so clients keep connections alive.
* ``RequestLog``: every request that is not a control request is recorded
  (method, path, query, headers, body, status, ids, timestamps), bounded.
* ``FaultTable``: switchable faults (status codes, stalls, delays, slow
  bodies, truncated bodies, malformed JSON, HTML login pages, resets).
* ``Config``: runtime settings changed through ``POST /_sandbox/config``.
* Control endpoints under ``/_sandbox/`` (health, requests, faults, config,
  reset) plus whatever the application adds (``SandboxApp.control``).
* ``PurchasingDataset``: a deterministic, seeded, lazily generated canonical
  purchasing dataset (vendors, items, purchase orders with lines) with
  awkward values placed on purpose.  Each sandbox renders it into its native
  wire shape.
* ``ScrambledGuids`` / ``named_guid``: deterministic GUIDs.
* ``dumps`` / ``RawJSON`` / ``decimal_text``: JSON with exact decimals.
* ``main``: the command line shared by every sandbox (``--host``, ``--port``,
  ``--seed``, ``--orders``, ``--ready-file``; prints ``LISTENING host port``).

Control requests (paths under ``/_sandbox/``) are never faulted, never
rate limited, need no authentication and are not written to the request log,
so a test can inspect the log without disturbing it.

Only the Python 3.11 standard library is used.  Every sleep and loop is
bounded (faults are capped at ``MAX_FAULT_SECONDS``).
"""

from __future__ import annotations

import argparse
import base64
import bisect
import collections
import dataclasses
import datetime as dt
import gzip
import hashlib
import ipaddress
import itertools
import json
import os
import random
import re
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
import zlib
from array import array
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Optional

__all__ = [
    "MAX_FAULT_SECONDS", "Request", "Response", "RequestLog", "FaultTable",
    "Config", "SandboxApp", "SandboxHandler", "SandboxServer", "HttpError",
    "RawJSON", "dumps", "decimal_text", "json_string", "utc_now_iso",
    "BoundedCache", "PurchasingDataset", "Vendor", "Item", "Order", "OrderLine", "Buyer",
    "ORDER_STATUSES", "ScrambledGuids", "named_guid", "ZERO_GUID",
    "add_common_arguments", "main", "odata_string", "FilterToken",
]

#: Upper bound for every fault-induced wait (stall, delay, slow drip).
MAX_FAULT_SECONDS = 120.0
#: Largest request body accepted (bytes).
MAX_REQUEST_BODY = 16 * 1024 * 1024
#: Request bodies are kept in the log up to this many characters.
LOG_BODY_CHARS = 4096
#: Default number of entries kept by the request log.
LOG_LIMIT = 20000

ZERO_GUID = "00000000-0000-0000-0000-000000000000"


# --------------------------------------------------------------------------
# Small helpers: time, JSON with exact decimals
# --------------------------------------------------------------------------

def utc_now_iso() -> str:
    """Current UTC time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


try:  # the C accelerated string encoder keeps non-ASCII characters as is
    from _json import encode_basestring as _c_encode_str  # type: ignore
except ImportError:  # pragma: no cover - CPython always has _json
    _c_encode_str = json.encoder.py_encode_basestring

#: ``json_string(s)`` -> ``"s"`` JSON-quoted, UTF-8 characters kept raw.
json_string: Callable[[str], str] = _c_encode_str


def decimal_text(value: Decimal) -> str:
    """Exact JSON number text for a Decimal, without exponent or trailing zeros.

    ``Decimal('1250.00')`` -> ``1250``, ``Decimal('99999999999999.99')`` ->
    ``99999999999999.99``, ``Decimal('0.12345')`` -> ``0.12345``.
    """
    if not value:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


class RawJSON(str):
    """A string that ``dumps`` inserts verbatim (already serialized JSON)."""
    __slots__ = ()


def dumps(obj: Any) -> str:
    """Serialize ``obj`` as compact JSON; Decimals become exact JSON numbers.

    Supports dict, list, tuple, str, int, float, bool, None, Decimal,
    ``RawJSON`` (inserted verbatim), date/datetime (ISO text).  Non-ASCII
    characters are emitted raw (the body is UTF-8).
    """
    out: list[str] = []
    _dump_into(obj, out)
    return "".join(out)


def _dump_into(obj: Any, out: list[str]) -> None:
    if isinstance(obj, RawJSON):
        out.append(obj)
    elif isinstance(obj, str):
        out.append(_c_encode_str(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        out.append(str(int(obj)))
    elif isinstance(obj, Decimal):
        out.append(decimal_text(obj))
    elif isinstance(obj, float):
        out.append(json.dumps(obj))
    elif isinstance(obj, dict):
        out.append("{")
        first = True
        for key, value in obj.items():
            if not first:
                out.append(",")
            first = False
            out.append(_c_encode_str(str(key)))
            out.append(":")
            _dump_into(value, out)
        out.append("}")
    elif isinstance(obj, (list, tuple)):
        out.append("[")
        for n, value in enumerate(obj):
            if n:
                out.append(",")
            _dump_into(value, out)
        out.append("]")
    elif isinstance(obj, (dt.date, dt.datetime)):
        out.append(_c_encode_str(obj.isoformat()))
    else:
        raise TypeError(f"cannot serialize {type(obj).__name__}")


# --------------------------------------------------------------------------
# Requests and responses
# --------------------------------------------------------------------------

class FilterToken:
    """A token of a $filter expression: kind, value, start and end offsets."""
    __slots__ = ("kind", "value", "pos", "end")

    def __init__(self, kind: str, value: Any, pos: int, end: int):
        self.kind, self.value, self.pos, self.end = kind, value, pos, end


def odata_string(text: str, start: int) -> Optional[tuple[str, int]]:
    """The OData string literal (V2 and V4: single quotes, ``''`` for a quote)
    that opens at ``text[start]``: (value, index after it), or None when it
    is not terminated."""
    j, buf, n = start + 1, [], len(text)
    while True:
        k = text.find("'", j)
        if k < 0:
            return None
        buf.append(text[j:k])
        if k + 1 < n and text[k + 1] == "'":
            buf.append("'")
            j = k + 2
            continue
        return "".join(buf), k + 1


class HttpError(Exception):
    """Raised by application code to produce a ready-made response."""

    def __init__(self, response: "Response"):
        super().__init__(response.status)
        self.response = response


@dataclasses.dataclass
class Request:
    """One parsed HTTP request as seen by applications.

    ``path`` is percent-decoded; ``raw_path`` and ``query`` are exactly what
    the client sent.  ``params`` is the query string parsed the way ASP.NET
    and SAP Gateway parse it (``+`` means space, ``%XX`` decoded).
    """
    method: str
    raw_path: str
    path: str
    query: str
    params: list[tuple[str, str]]
    headers: Any                     # http.client.HTTPMessage (case-insensitive)
    body: bytes
    request_id: str
    client_request_id: Optional[str]
    host: str                        # Host header (or the server address)
    server: "SandboxServer"
    received: Optional[float] = None  # arrival, seconds since the epoch

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        value = self.headers.get(name)
        return default if value is None else value

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def form(self) -> dict[str, str]:
        """The body parsed as application/x-www-form-urlencoded (last wins)."""
        return dict(urllib.parse.parse_qsl(self.body.decode("utf-8", "replace"),
                                           keep_blank_values=True))

    def basic_credentials(self) -> Optional[tuple[str, str]]:
        """(user, password) of an ``Authorization: Basic`` header, or None
        (no such header, or not valid base64 "user:password")."""
        scheme, _, cred = (self.header("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(cred.strip(), validate=True) \
                .decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return (user, password) if sep else None

    def token_form(self) -> dict[str, str]:
        """An OAuth 2.0 token request's form; client_id and client_secret may
        also come as HTTP Basic (client_secret_basic, RFC 6749 2.3.1)."""
        ctype = (self.header("Content-Type") or "").split(";")[0].strip().lower()
        form = self.form() if ctype == "application/x-www-form-urlencoded" else {}
        basic = self.basic_credentials()
        if basic:
            form.setdefault("client_id", urllib.parse.unquote_plus(basic[0]))
            form.setdefault("client_secret", urllib.parse.unquote_plus(basic[1]))
        return form

    @property
    def base_url(self) -> str:
        """``http://<Host header>`` - what the client used to reach us."""
        return "http://" + self.host


class Response:
    """An HTTP response.  ``body`` is bytes, or an iterable of bytes chunks
    (sent with ``Transfer-Encoding: chunked``)."""

    __slots__ = ("status", "body", "headers", "content_type", "memo", "records")

    def __init__(self, status: int = 200, body: Any = b"",
                 content_type: Optional[str] = "application/json; charset=utf-8",
                 headers: Optional[list[tuple[str, str]]] = None,
                 memo: Optional[dict] = None):
        self.status = status
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.body = body
        self.content_type = content_type
        self.headers = list(headers or [])
        # Shared by the copies of a cached response: encodings of ``body``
        # computed once (``"gzip"``), so a cache hit costs no compression.
        # The bytes sent are those an uncached response would get.
        self.memo = memo
        # records of a collection page, for the request log (None: not a page)
        self.records: Optional[int] = None

    @classmethod
    def json(cls, obj: Any, status: int = 200,
             content_type: str = "application/json; charset=utf-8",
             headers: Optional[list[tuple[str, str]]] = None) -> "Response":
        return cls(status, dumps(obj).encode("utf-8"), content_type, headers)

    @classmethod
    def text(cls, text: str, status: int = 200,
             content_type: str = "text/plain; charset=utf-8",
             headers: Optional[list[tuple[str, str]]] = None) -> "Response":
        return cls(status, text.encode("utf-8"), content_type, headers)

    def header(self, name: str) -> Optional[str]:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    def set_header(self, name: str, value: str) -> None:
        lname = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != lname]
        self.headers.append((name, value))

    @property
    def streamed(self) -> bool:
        return not isinstance(self.body, (bytes, bytearray))

    def body_bytes(self) -> bytes:
        """The whole body (joins a streamed body; use on small bodies only)."""
        if self.streamed:
            self.body = b"".join(self.body)
        return bytes(self.body)


# --------------------------------------------------------------------------
# Request log
# --------------------------------------------------------------------------

class RequestLog:
    """Bounded, thread-safe log of the requests a sandbox received.

    Each entry is a dict with ``seq`` (monotonically increasing, never reset
    by ``clear``), ``timestamp``, ``time``, ``method``, ``path``, ``query``,
    ``headers``, ``body``, ``status``, ``request_id``, ``client_request_id``,
    ``fault`` (the fault action applied, or null), ``duration_ms`` and
    ``records`` (records a collection page carried, its expanded children
    included; null for anything else) and ``received`` (when the request
    arrived, seconds since the epoch; ``time`` is when it was logged, after
    a ``delay`` fault).
    """

    def __init__(self, limit: int = LOG_LIMIT):
        self._entries: collections.deque = collections.deque(maxlen=limit)
        self._lock = threading.Lock()
        self._seq = 0

    def add(self, req: Request, status: Optional[int],
            fault: Optional[str] = None, records: Optional[int] = None) -> dict:
        received = req.received if req.received is not None else time.time()
        headers: dict[str, str] = {}
        for key, value in req.headers.items():
            headers[key] = headers[key] + ", " + value if key in headers else value
        body = req.body[:LOG_BODY_CHARS * 4].decode("utf-8", "replace")[:LOG_BODY_CHARS]
        now = time.time()
        entry = {
            "seq": 0,
            "timestamp": dt.datetime.fromtimestamp(now, dt.timezone.utc)
                           .strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "time": now,
            "method": req.method,
            "path": req.raw_path,
            "query": req.query,
            "headers": headers,
            "body": body,
            "status": status,
            "request_id": req.request_id,
            "client_request_id": req.client_request_id,
            "fault": fault,
            "duration_ms": None,
            "records": records,
            "received": received,
        }
        with self._lock:
            self._seq += 1
            entry["seq"] = self._seq
            self._entries.append(entry)
        return entry

    def since(self, seq: int = 0, limit: Optional[int] = None) -> list[dict]:
        with self._lock:
            items = [dict(e) for e in self._entries if e["seq"] > seq]
        return items[:limit] if limit else items

    def clear(self) -> int:
        with self._lock:
            n = len(self._entries)
            self._entries.clear()
            return n


# --------------------------------------------------------------------------
# Fault switches
# --------------------------------------------------------------------------

#: The action keys of a fault rule; exactly one must be present.
FAULT_ACTIONS = ("status", "stall", "delay", "slow", "truncate", "malformed",
                 "content_type", "reset", "chunked_bytes", "gzip_bomb", "invalid_utf8")
#: Largest body the ``chunked_bytes`` and ``gzip_bomb`` faults produce (4 GiB).
MAX_FAULT_BYTES = 4 << 30
_FAULT_KEYS = set(FAULT_ACTIONS) | {"match", "method", "times", "skip", "body",
                                   "retry_after", "headers", "id"}


#: One record of the ``chunked_bytes`` body (any JSON array element fits a
#: client's idea of a record; the size cap must stop it, not the content).
_CHUNK_RECORD = b'{"id": "00000000-0000-0000-0000-000000000000", "number": "BIG", ' \
    b'"displayName": "' + b"x" * 160 + b'"},'


def _chunked_json(total: int) -> Iterable[bytes]:
    """Streams a JSON document of exactly ``total`` bytes (an object with a
    ``value`` array of records, padded with spaces), in 64 kB pieces, for
    ``Transfer-Encoding: chunked``.  Bounded: at most total/64k iterations."""
    head, tail = b'{"value": [', b'{}]}'
    records = max(0, (total - len(head) - len(tail)) // len(_CHUNK_RECORD))
    per_piece = max(1, 65536 // len(_CHUNK_RECORD))
    pad = total - len(head) - len(tail) - records * len(_CHUNK_RECORD)
    yield head + b" " * pad
    piece = _CHUNK_RECORD * per_piece
    while records >= per_piece:
        yield piece
        records -= per_piece
    yield _CHUNK_RECORD * records + tail


_BOMBS: dict[int, bytes] = {}


def _gzip_bomb(total: int) -> bytes:
    """A gzip body that inflates to a JSON document of exactly ``total``
    bytes (``{"value": [`` spaces ``]}``, valid JSON).  Built once per size
    in 1 MB steps (deflate reaches about 1000:1 on spaces), then cached."""
    packed = _BOMBS.get(total)
    if packed is not None:
        return packed
    head, tail = b'{"value": [', b']}'
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [comp.compress(head)]
    left = max(0, total - len(head) - len(tail))
    block = b" " * (1 << 20)
    while left > 0:
        n = min(left, len(block))
        out.append(comp.compress(block[:n] if n < len(block) else block))
        left -= n
    out.append(comp.compress(tail))
    out.append(comp.flush())
    packed = b"".join(out)
    if len(_BOMBS) >= 4:
        _BOMBS.clear()
    _BOMBS[total] = packed
    return packed


def _invalid_utf8(resp: Response, key: Any) -> Response:
    """The normal body with the bytes C3 28 (an invalid UTF-8 sequence)
    inserted at the start of the first string value of ``key``, or, for
    ``true``, of the first key that does not start with ``@`` or ``_``
    (so not ``@odata.*`` or ``__metadata``)."""
    if resp.status >= 300:
        return resp
    body = resp.body_bytes()
    if key is True:
        pattern = rb'"[^"\\@_][^"\\]*"\s*:\s*"'
    else:
        pattern = b'"' + re.escape(str(key).encode("utf-8")) + rb'"\s*:\s*"'
    m = re.search(pattern, body)
    if m is None:
        return Response(200, b'{"value": [{"id": "\xc3\x28"}]}', resp.content_type)
    return Response(resp.status, body[:m.end()] + b"\xc3\x28" + body[m.end():],
                    resp.content_type, list(resp.headers))


class FaultRule:
    """One fault rule (see README.md, "Fault rules")."""

    def __init__(self, spec: dict, rule_id: int):
        if not isinstance(spec, dict):
            raise ValueError("a fault rule must be a JSON object")
        unknown = set(spec) - _FAULT_KEYS
        if unknown:
            raise ValueError(f"unknown fault rule keys: {sorted(unknown)}; "
                             f"accepted: {sorted(_FAULT_KEYS - {'id'})}")
        actions = [a for a in FAULT_ACTIONS if a in spec]
        if len(actions) != 1:
            raise ValueError(f"a fault rule needs exactly one action of {list(FAULT_ACTIONS)}, "
                             f"got {actions}")
        self.id = rule_id
        self.action = actions[0]
        self.value = spec[self.action]
        self.match = spec.get("match")
        self.method = spec.get("method")
        self.times = int(spec.get("times", 1))
        self.skip = int(spec.get("skip", 0))
        self.body = spec.get("body")
        self.retry_after = spec.get("retry_after")
        self.extra_headers = spec.get("headers") or {}
        self.hits = 0
        if self.match is not None and not isinstance(self.match, str):
            raise ValueError("'match' must be a string")
        if self.method is not None and not isinstance(self.method, str):
            raise ValueError("'method' must be a string")
        if self.times == 0 or self.times < -1:
            raise ValueError("'times' must be a positive count or -1 (forever)")
        if self.skip < 0:
            raise ValueError("'skip' must be >= 0")
        if not isinstance(self.extra_headers, dict):
            raise ValueError("'headers' must be an object")
        if self.action == "status":
            if not isinstance(self.value, int) or not 100 <= self.value <= 599:
                raise ValueError("'status' must be an HTTP status code")
        elif self.action in ("stall", "delay"):
            if not isinstance(self.value, (int, float)) or self.value < 0:
                raise ValueError(f"'{self.action}' must be a number of seconds >= 0")
        elif self.action == "slow":
            if not isinstance(self.value, (int, float)) or self.value <= 0:
                raise ValueError("'slow' must be bytes per second > 0")
        elif self.action == "content_type":
            if not isinstance(self.value, str) or not self.value:
                raise ValueError("'content_type' must be a media type string")
        elif self.action in ("chunked_bytes", "gzip_bomb"):
            if isinstance(self.value, bool) or not isinstance(self.value, int) \
                    or not 16 <= self.value <= MAX_FAULT_BYTES:
                raise ValueError(f"'{self.action}' must be a byte count from 16 to {MAX_FAULT_BYTES}")
        elif self.action == "invalid_utf8":
            if self.value is not True and (not isinstance(self.value, str) or not self.value):
                raise ValueError("'invalid_utf8' must be true or a JSON key name")
        elif self.value is not True:
            raise ValueError(f"'{self.action}' must be true")
        self._spec = dict(spec)

    def matches(self, method: str, target: str, decoded: str) -> bool:
        if self.method and self.method.upper() != method:
            return False
        if self.match and self.match not in target and self.match not in decoded:
            return False
        return True

    def describe(self) -> dict:
        d = dict(self._spec)
        d.update(id=self.id, remaining_times=self.times, remaining_skip=self.skip,
                 hits=self.hits)
        return d


class FaultTable:
    """Ordered fault rules; the first active matching rule fires.

    A rule with ``skip`` lets that many matching requests pass (they may still
    match later rules); then it fires ``times`` times (-1 = forever) and is
    kept, exhausted, for inspection until the table is cleared.
    """

    def __init__(self):
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._next_id = 1

    def add(self, spec: Any) -> list[dict]:
        specs = spec if isinstance(spec, list) else [spec]
        with self._lock:
            rules = []
            for s in specs:
                rules.append(FaultRule(s, self._next_id))
                self._next_id += 1
            self._rules.extend(rules)
            return [r.describe() for r in rules]

    def clear(self) -> int:
        with self._lock:
            n = len(self._rules)
            self._rules.clear()
            return n

    def list(self) -> list[dict]:
        with self._lock:
            return [r.describe() for r in self._rules]

    def take(self, method: str, target: str) -> Optional[FaultRule]:
        """Find the rule that fires for this request (consuming skip/times)."""
        decoded = urllib.parse.unquote_plus(target)
        with self._lock:
            for rule in self._rules:
                if rule.times == 0 or not rule.matches(method, target, decoded):
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    continue
                if rule.times > 0:
                    rule.times -= 1
                rule.hits += 1
                return rule
        return None


# --------------------------------------------------------------------------
# Runtime configuration
# --------------------------------------------------------------------------

class Config:
    """Runtime settings with typed defaults; changed via ``POST /_sandbox/config``.

    A value must have the type of its default (an int default also accepts
    nothing but ints; a float default accepts ints; a None default accepts
    any JSON value).  ``validators`` maps a key to a predicate.
    """

    def __init__(self, defaults: dict, validators: Optional[dict] = None):
        self._defaults = dict(defaults)
        self._values = dict(defaults)
        self._validators = dict(validators or {})
        self._lock = threading.Lock()

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self._values)

    def reset(self) -> None:
        with self._lock:
            self._values = dict(self._defaults)

    def update(self, changes: Any) -> dict:
        if not isinstance(changes, dict):
            raise ValueError("config must be a JSON object")
        for key, value in changes.items():
            if key not in self._defaults:
                raise ValueError(f"unknown config key {key!r}; known: {sorted(self._defaults)}")
            default = self._defaults[key]
            ok = True
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            elif isinstance(default, str):
                ok = isinstance(value, str)
            elif isinstance(default, (list, dict)):
                ok = isinstance(value, type(default))
            if ok and key in self._validators:
                ok = bool(self._validators[key](value))
            if not ok:
                raise ValueError(f"invalid value {value!r} for config key {key!r}")
        with self._lock:
            self._values.update(changes)
            return dict(self._values)


# --------------------------------------------------------------------------
# Application interface
# --------------------------------------------------------------------------

class SandboxApp:
    """Base class of a sandbox application (one upstream system).

    Subclasses implement ``handle`` (API requests) and usually
    ``error_response`` (the system's native error body, used for fault
    ``status`` rules without a body and for rate limiting).
    """

    #: Short name reported by /_sandbox/health.
    name = "sandbox"
    #: Value of the Server response header.
    server_header = "sandbox"
    #: Content type used by the ``malformed`` fault.
    json_content_type = "application/json; charset=utf-8"
    #: Extra runtime settings (merged with the common ones).
    config_defaults: dict = {}
    config_validators: dict = {}

    server: "SandboxServer"

    def attach(self, server: "SandboxServer") -> None:
        self.server = server

    @property
    def config(self) -> Config:
        return self.server.config

    def handle(self, req: Request) -> Response:
        raise NotImplementedError

    def control(self, req: Request, name: str) -> Optional[Response]:
        """Application control endpoints: ``name`` is the path after
        ``/_sandbox/``.  Return None when the name is unknown."""
        return None

    def error_response(self, req: Request, status: int,
                       message: Optional[str] = None) -> Response:
        """The native error response for ``status`` (override per system)."""
        return Response.json({"error": {"code": str(status),
                                        "message": message or "error"}}, status)

    def mutate(self, spec: dict, at: dt.datetime) -> list[dict]:
        """Called by ``POST /_sandbox/mutate``: applies ``spec["ops"]`` (see
        PurchasingDataset.mutate) and drops whatever was rendered from the
        old data.  Raises ValueError on bad input."""
        raise ValueError(f"the {self.name} sandbox does not take changes")

    def reset(self) -> None:
        """Called by ``POST /_sandbox/reset`` (drop tokens, caches...)."""

    def health(self) -> dict:
        return {}

    def serving(self) -> None:
        """Called once by ``main`` when the server is listening (start
        background work such as a warm-up here; return promptly)."""


COMMON_CONFIG = {
    # Reject API requests beyond this many per rolling 60 s (0 = unlimited),
    # answering with the system's native 429.
    "rate_limit_per_minute": 0,
    # Retry-After value (seconds, as text) sent with those 429s; "" = none.
    "rate_limit_retry_after": "",
    # Gzip API responses when the client sends Accept-Encoding: gzip.
    "compress": True,
    # Send API bodies with Transfer-Encoding: chunked instead of Content-Length.
    "chunked": False,
}


# --------------------------------------------------------------------------
# HTTP handler
# --------------------------------------------------------------------------

_HTML_LOGIN = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to your account</title></head>
<body><form method="post" action="/login"><h1>Sign in</h1>
<input type="email" name="loginfmt" placeholder="Email, phone, or Skype">
<input type="password" name="passwd" placeholder="Password">
<input type="submit" value="Sign in"></form></body></html>
"""


class SandboxHandler(BaseHTTPRequestHandler):
    """Parses requests, applies control endpoints / faults, writes responses."""

    protocol_version = "HTTP/1.1"
    sys_version = ""
    timeout = 300  # idle keep-alive connections are dropped after this long

    server: "SandboxServer"

    # All methods share one dispatcher.
    def do_GET(self):  # noqa: N802 (http.server naming)
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_MERGE = do_GET

    def setup(self) -> None:
        super().setup()
        try:  # headers and body are separate writes: avoid Nagle/delayed-ACK stalls
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def version_string(self) -> str:
        return self.server.app.server_header

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), format % args))

    # -- request parsing ---------------------------------------------------

    def _read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks, total = [], 0
            for _ in range(1_000_000):  # bounded
                line = self.rfile.readline(1024)
                if not line:
                    break
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_REQUEST_BODY:
                    raise ValueError("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        started = time.monotonic()
        srv = self.server
        raw_target = self.path
        split = urllib.parse.urlsplit(raw_target)
        raw_path = split.path or "/"
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._send_simple(413, b"request body too large")
            return
        client_rid = self.headers.get("X-Request-ID")
        req = Request(
            method=self.command,
            raw_path=raw_path,
            path=urllib.parse.unquote(raw_path),
            query=split.query,
            params=urllib.parse.parse_qsl(split.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
            request_id=str(uuid.uuid4()),
            client_request_id=client_rid,
            host=self.headers.get("Host") or "%s:%d" % (srv.host_for_urls, srv.port),
            server=srv,
            received=time.time(),
        )

        if raw_path.startswith("/_sandbox/") or raw_path == "/_sandbox":
            try:
                resp = srv.control(req)
            except HttpError as e:
                resp = e.response
            except Exception as e:  # noqa: BLE001 - report, never crash
                traceback.print_exc()
                resp = Response.json({"error": f"{type(e).__name__}: {e}"}, 500)
            self._send(req, resp, compress=False)
            return

        target = raw_path + ("?" + split.query if split.query else "")
        rule = srv.faults.take(self.command, target)
        entry: Optional[dict] = None
        try:
            if rule is not None and rule.action in ("stall", "reset"):
                entry = srv.log.add(req, None, rule.action)
                if rule.action == "stall":
                    self._stall(min(float(rule.value), MAX_FAULT_SECONDS))
                else:
                    self._reset()
                return
            if rule is not None and rule.action == "status":
                resp = self._fault_status_response(req, rule)
                entry = srv.log.add(req, resp.status, "status")
                self._send(req, resp, compress=False)
                return
            if rule is not None and rule.action == "delay":
                self._sleep(min(float(rule.value), MAX_FAULT_SECONDS))
            if rule is not None and rule.action in ("chunked_bytes", "gzip_bomb"):
                if rule.action == "chunked_bytes":
                    resp = Response(200, _chunked_json(int(rule.value)),
                                    srv.app.json_content_type)
                else:
                    resp = Response(200, _gzip_bomb(int(rule.value)),
                                    srv.app.json_content_type,
                                    [("Content-Encoding", "gzip")])
                entry = srv.log.add(req, 200, rule.action)
                self._send(req, resp, compress=False)
                return

            limited = srv.rate_limited()
            if limited:
                resp = srv.app.error_response(req, 429, None)
                ra = srv.config["rate_limit_retry_after"]
                if ra:
                    resp.set_header("Retry-After", str(ra))
            else:
                try:
                    resp = srv.app.handle(req)
                except HttpError as e:
                    resp = e.response
                except Exception:  # noqa: BLE001
                    traceback.print_exc()
                    resp = srv.app.error_response(req, 500, "Internal server error in sandbox.")
                srv.request_handled()

            action = rule.action if rule is not None and rule.action != "delay" else None
            if action == "malformed":
                resp = self._malformed(resp)
            elif action == "content_type":
                resp = self._content_type(resp, rule.value)
            elif action == "invalid_utf8":
                resp = _invalid_utf8(resp, rule.value)
            entry = srv.log.add(req, resp.status,
                                rule.action if rule is not None else
                                ("rate_limit" if limited else None), resp.records)
            if action == "truncate":
                self._send(req, resp, compress=True, truncate=True)
            elif action == "slow":
                self._send(req, resp, compress=True, drip=float(rule.value))
            else:
                self._send(req, resp, compress=True)
        finally:
            if entry is not None:
                entry["duration_ms"] = round((time.monotonic() - started) * 1000, 3)

    # -- fault helpers -----------------------------------------------------

    def _fault_status_response(self, req: Request, rule: FaultRule) -> Response:
        status = int(rule.value)
        if rule.body is None:
            resp = self.server.app.error_response(req, status, None)
        elif isinstance(rule.body, (dict, list)):
            resp = Response.json(rule.body, status)
        else:
            resp = Response.text(str(rule.body), status)
        if rule.retry_after is not None:
            resp.set_header("Retry-After", str(rule.retry_after))
        for key, value in rule.extra_headers.items():
            if str(key).lower() == "content-type":
                resp.content_type = str(value)
            else:
                resp.set_header(str(key), str(value))
        return resp

    def _malformed(self, resp: Response) -> Response:
        body = resp.body_bytes() if resp.status < 300 else b""
        if len(body) > 2:
            # A strict prefix of a JSON document followed by '<' can never be
            # valid JSON: either the document is unterminated or '<' is stray.
            broken = body[: max(1, min(len(body) // 2, 65536))] + b"<<not json>>"
        else:
            broken = b'{"value": [{"id": "broken",, ]'
        return Response(200, broken, self.server.app.json_content_type)

    def _content_type(self, resp: Response, content_type: str) -> Response:
        if "html" in content_type.lower():
            return Response(200, _HTML_LOGIN.encode("utf-8"), content_type)
        resp.content_type = content_type
        return resp

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.server.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.05, left))

    def _stall(self, seconds: float) -> None:
        """Keep the connection open without answering, then close it.
        Returns early when the client goes away or the server stops."""
        self.close_connection = True
        sock = self.connection
        deadline = time.monotonic() + seconds
        while not self.server.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                readable, _, _ = select.select([sock], [], [], min(0.1, left))
                if readable and not sock.recv(1, socket.MSG_PEEK):
                    break  # client closed
                if readable:
                    time.sleep(min(0.1, max(0.0, left)))  # data pending: ignore it
            except (OSError, ValueError):
                break
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _reset(self) -> None:
        """Close the socket with an RST, without answering."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    # -- response writing ---------------------------------------------------

    def _send_simple(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True

    def _send(self, req: Request, resp: Response, compress: bool,
              truncate: bool = False, drip: Optional[float] = None) -> None:
        srv = self.server
        body = resp.body
        streamed = resp.streamed
        headers = list(resp.headers)
        if compress and not streamed and srv.config["compress"] and len(body) > 256 \
                and "gzip" in (req.header("Accept-Encoding") or "").lower():
            memo = resp.memo
            packed = memo.get("gzip") if memo is not None else None
            if packed is None:
                packed = gzip.compress(body, compresslevel=1)
                if memo is not None:
                    memo["gzip"] = packed
            body = packed
            headers.append(("Content-Encoding", "gzip"))
            headers.append(("Vary", "Accept-Encoding"))
        if compress and not streamed and srv.config["chunked"] and not truncate:
            body, streamed = [body], True
        try:
            self.send_response(resp.status)
            if resp.content_type:
                self.send_header("Content-Type", resp.content_type)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("request-id", req.request_id)
            if streamed:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(len(body)))
            if truncate:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                return
            if streamed:
                self._write_chunked(body)
            elif truncate:
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            elif drip:
                self._drip(body, drip)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            self.close_connection = True

    def _write_chunked(self, chunks: Iterable[bytes]) -> None:
        buf: list[bytes] = []
        size = 0
        for chunk in chunks:
            if not chunk:
                continue
            buf.append(chunk)
            size += len(chunk)
            if size >= 65536:
                data = b"".join(buf)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                buf, size = [], 0
        if buf:
            data = b"".join(buf)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")

    def _drip(self, body: bytes, bytes_per_second: float) -> None:
        """Send ``body`` at about ``bytes_per_second``; give up (closing the
        connection, so the body is short) after MAX_FAULT_SECONDS."""
        step = 0.1
        per_step = max(1, int(bytes_per_second * step))
        deadline = time.monotonic() + MAX_FAULT_SECONDS
        pos = 0
        while pos < len(body):
            if self.server.stopping.is_set() or time.monotonic() > deadline:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            self.wfile.write(body[pos:pos + per_step])
            pos += per_step
            if pos < len(body):
                time.sleep(step if per_step > 1 or bytes_per_second * step >= 1
                           else 1.0 / bytes_per_second)


# --------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------

def check_loopback(host: str) -> str:
    """Return ``host`` if it is a loopback address, else raise ValueError."""
    if host == "localhost":
        return host
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(f"sandbox refuses to bind to {host!r}: only loopback "
                         "addresses (127.0.0.0/8, ::1, localhost) are allowed") from None
    if not ip.is_loopback:
        raise ValueError(f"sandbox refuses to bind to {host!r}: not a loopback address")
    return str(ip)


class SandboxServer(ThreadingHTTPServer):
    """Threaded HTTP/1.1 server for one ``SandboxApp``, loopback only.

    Use ``start()`` to serve from a background thread (tests) or
    ``serve_forever()`` (command line).  ``stop()`` ends serving and makes
    any in-progress stall/delay/drip return promptly.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, app: SandboxApp, host: str = "127.0.0.1", port: int = 0,
                 verbose: bool = False, log_limit: int = LOG_LIMIT):
        host = check_loopback(host)
        bind_host = "127.0.0.1" if host == "localhost" else host
        if ":" in bind_host:
            self.address_family = socket.AF_INET6
        self.app = app
        self.verbose = verbose
        self.stopping = threading.Event()
        self.log = RequestLog(log_limit)
        self.faults = FaultTable()
        defaults = dict(COMMON_CONFIG)
        defaults.update(app.config_defaults)
        self.config = Config(defaults, app.config_validators)
        self.started_at = time.time()
        self._rate_lock = threading.Lock()
        self._rate_window: collections.deque = collections.deque()
        self._thread: Optional[threading.Thread] = None
        self._mutations_lock = threading.Lock()
        self._pending_mutations: list = []     # [requests left, spec, results]
        self._mutations_done: list = []        # results of deferred changes
        super().__init__((bind_host, port), SandboxHandler)
        self.host_for_urls = f"[{bind_host}]" if ":" in bind_host else bind_host
        app.attach(self)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host_for_urls}:{self.port}"

    def start(self) -> "SandboxServer":
        self._thread = threading.Thread(target=self.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name=f"{self.app.name}-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
        self.server_close()

    def rate_limited(self) -> bool:
        limit = self.config["rate_limit_per_minute"]
        if not limit:
            return False
        now = time.monotonic()
        with self._rate_lock:
            window = self._rate_window
            while window and window[0] < now - 60:
                window.popleft()
            if len(window) >= limit:
                return True
            window.append(now)
            return False

    # -- control endpoints --------------------------------------------------

    def request_handled(self) -> None:
        """After each API request: applies the changes that were waiting for
        it (``after_requests`` of POST /_sandbox/mutate), so that a record
        changes while a client is paging through a scan."""
        with self._mutations_lock:
            due = []
            for p in self._pending_mutations:
                p[0] -= 1
                if p[0] <= 0:
                    due.append(p)
            for p in due:
                self._pending_mutations.remove(p)
        for p in due:
            try:
                p[2].extend(self.app.mutate(p[1], _mutation_time(p[1])))
            except ValueError as e:
                p[2].append({"error": str(e)})

    def _mutate(self, req: Request) -> Response:
        try:
            spec = req.json()
            if not isinstance(spec, dict) or not isinstance(spec.get("ops"), list):
                raise ValueError('body must be {"ops": [...]}')
            after = spec.get("after_requests", 0)
            if not isinstance(after, int) or after < 0:
                raise ValueError("after_requests must be an integer >= 0")
            if after:
                with self._mutations_lock:
                    self._pending_mutations.append([after, spec, self._mutations_done])
                return Response.json({"ok": True, "pending": after})
            at = _mutation_time(spec)
            done = self.app.mutate(spec, at)
        except (ValueError, TypeError) as e:
            return Response.json({"error": str(e)}, 400)
        return Response.json({"ok": True, "at": at.isoformat(timespec="milliseconds"),
                              "done": done})

    def control(self, req: Request) -> Response:
        name = req.path[len("/_sandbox/"):].strip("/") if req.path.startswith("/_sandbox/") else ""
        m = req.method
        if name == "mutate" and m == "POST":
            return self._mutate(req)
        if name == "mutate" and m == "GET":
            with self._mutations_lock:
                return Response.json({"pending": len(self._pending_mutations),
                                      "done": list(self._mutations_done)})
        if name == "health" and m == "GET":
            info = {"ok": True, "sandbox": self.app.name,
                    "uptime_seconds": round(time.time() - self.started_at, 3)}
            info.update(self.app.health())
            return Response.json(info)
        if name == "requests":
            if m == "GET":
                params = dict(req.params)
                try:
                    since = int(params.get("since", "0") or 0)
                    limit = int(params.get("limit", "0") or 0) or None
                except ValueError:
                    return Response.json({"error": "since/limit must be integers"}, 400)
                return Response.json({"requests": self.log.since(since, limit)})
            if m == "DELETE":
                return Response.json({"ok": True, "cleared": self.log.clear()})
        if name == "faults":
            if m == "GET":
                return Response.json({"faults": self.faults.list()})
            if m == "DELETE":
                return Response.json({"ok": True, "cleared": self.faults.clear()})
            if m == "POST":
                try:
                    added = self.faults.add(req.json())
                except (ValueError, TypeError) as e:
                    return Response.json({"error": str(e)}, 400)
                return Response.json({"ok": True, "added": added})
        if name == "config":
            if m == "GET":
                return Response.json({"config": self.config.snapshot()})
            if m == "POST":
                try:
                    return Response.json({"ok": True, "config": self.config.update(req.json())})
                except (ValueError, TypeError) as e:
                    return Response.json({"error": str(e)}, 400)
        if name == "reset" and m == "POST":
            self.faults.clear()
            self.log.clear()
            self.config.reset()
            with self._rate_lock:
                self._rate_window.clear()
            self.app.reset()
            return Response.json({"ok": True})
        resp = self.app.control(req, name)
        if resp is not None:
            return resp
        return Response.json({"error": f"unknown control endpoint {m} /_sandbox/{name}"}, 404)


def _mutation_time(spec: dict) -> dt.datetime:
    """The modification time of a batch of changes: ``spec["at"]`` (ISO 8601
    with an offset) or now, in UTC at millisecond precision."""
    at = spec.get("at")
    if at is None:
        t = dt.datetime.now(dt.timezone.utc)
    else:
        t = dt.datetime.fromisoformat(str(at).replace("Z", "+00:00"))
        if t.tzinfo is None:
            raise ValueError("at needs an offset")
        t = t.astimezone(dt.timezone.utc)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


# --------------------------------------------------------------------------
# Deterministic GUIDs
# --------------------------------------------------------------------------

_M64 = (1 << 64) - 1


def _mix64(z: int) -> int:
    """splitmix64 finaliser: a fast, well-distributed 64-bit hash of ``z``."""
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _salt64(*parts: Any) -> int:
    digest = hashlib.sha256(":".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def named_guid(*parts: Any) -> str:
    """A deterministic version-4-shaped GUID derived from ``parts``."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode("utf-8")).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


class ScrambledGuids:
    """Deterministic GUIDs for ``n`` records, indexed 0..n-1.

    The GUIDs sort (as lowercase strings) in a fixed permutation of the index,
    so "order by id" differs from "order by number" as it does with real
    random GUIDs, yet both directions are O(1) and need no memory:
    ``rank(idx)`` is the position of record ``idx`` in id order, ``index(rank)``
    the inverse, ``lookup(guid)`` finds the record of a GUID or None.

    The permutation scrambles indexes within consecutive blocks of ``block``
    records (all of them when n <= block), so a scan in id order touches the
    generated data block by block (memory stays bounded for 1M records).
    The first 48 bits of a GUID encode its rank, spread over the whole range;
    the rest is hash noise with the version-4 and RFC 4122 variant bits set.
    """

    def __init__(self, salt: str, n: int, block: int = 1024):
        self.n = n
        self._salt = _salt64("guid", salt)
        self._stride = (1 << 48) // max(n, 1)
        self._block = block
        self._params: dict[int, tuple[int, int, int]] = {}
        for size in {min(block, n), n % block or min(block, n)}:
            if size > 1:
                mult = max(1, int(size * 0.6180339887))
                while _gcd(mult, size) != 1:
                    mult += 1
                self._params[size] = (mult, pow(mult, -1, size), self._salt % size)
            elif size == 1:
                self._params[1] = (1, 1, 0)

    def _block_of(self, pos: int) -> tuple[int, int, tuple[int, int, int]]:
        base = pos - pos % self._block
        size = min(self._block, self.n - base)
        return base, size, self._params[size]

    def rank(self, idx: int) -> int:
        base, size, (mult, _inv, off) = self._block_of(idx)
        return base + ((idx - base) * mult + off) % size

    def index(self, rank: int) -> int:
        base, size, (_mult, inv, off) = self._block_of(rank)
        return base + ((rank - base - off) * inv) % size

    def guid_at_rank(self, rank: int) -> str:
        h1 = _mix64(self._salt ^ rank)
        h2 = _mix64(h1 ^ 0x5DEECE66D)
        prefix = rank * self._stride + h1 % self._stride
        p = "%012x" % prefix
        return "%s-%s-4%03x-%04x-%012x" % (p[:8], p[8:], (h1 >> 48) & 0xFFF,
                                           0x8000 | ((h2 >> 48) & 0x3FFF), h2 & 0xFFFFFFFFFFFF)

    def guid(self, idx: int) -> str:
        return self.guid_at_rank(self.rank(idx))

    def rank_of_guid(self, guid: str) -> Optional[int]:
        """Rank of an existing GUID, or None."""
        g = guid.lower()
        if len(g) != 36 or self.n == 0:
            return None
        try:
            prefix = int(g[:8] + g[9:13], 16)
        except ValueError:
            return None
        rank = prefix // self._stride
        if rank >= self.n or self.guid_at_rank(rank) != g:
            return None
        return rank

    def lookup(self, guid: str) -> Optional[int]:
        rank = self.rank_of_guid(guid)
        return None if rank is None else self.index(rank)

    def rank_after_guid(self, guid: str) -> int:
        """Number of GUIDs of this set that sort <= ``guid`` (any GUID text):
        the rank to resume from after ``guid`` in id order."""
        g = guid.lower()
        try:
            prefix = int(g[:8] + g[9:13], 16)
        except ValueError:
            return 0
        rank = min(prefix // self._stride, self.n)
        # adjust around the estimate by comparing real GUID strings
        while rank > 0 and self.guid_at_rank(rank - 1) > g:
            rank -= 1
        while rank < self.n and self.guid_at_rank(rank) <= g:
            rank += 1
        return rank


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


# --------------------------------------------------------------------------
# Canonical purchasing dataset
# --------------------------------------------------------------------------

#: Canonical purchase order statuses (the unified model's values).
ORDER_STATUSES = ("draft", "pending_approval", "open", "partially_received",
                  "received", "closed", "rejected", "cancelled")
_STATUS_WEIGHTS = (15, 10, 35, 12, 10, 10, 4, 4)
_STATUS_CUM = list(itertools.accumulate(_STATUS_WEIGHTS))

_UTC = dt.timezone.utc
_D0 = Decimal(0)
_CENT = Decimal("0.01")
_ONE = Decimal(1)
#: Rounding unit of amounts per currency ('' = the buyer's local currency).
CURRENCY_UNITS = {"": _CENT, "USD": _CENT, "EUR": _CENT, "GBP": _CENT,
                  "CAD": _CENT, "DKK": _CENT, "JPY": _ONE}


class Buyer(NamedTuple):
    """The purchasing company (ship-to party) of a dataset."""
    name: str
    address1: str
    city: str
    state: str
    postal_code: str
    country: str
    currency: str            # ISO code of the local currency


class Vendor(NamedTuple):
    index: int               # 0-based position in PurchasingDataset.vendors
    seq: int                 # 1-based sequence; systems derive their number
    name: str                # may be '' and may contain any character
    address1: str
    address2: str
    city: str
    state: str
    postal_code: str
    country: str             # ISO 3166 alpha-2
    phone: str
    email: str
    website: str
    tax_registration: str
    currency: str            # '' = the buyer's local currency
    blocked: str             # 'none' | 'payment' | 'all'
    balance: Decimal
    tax_liable: bool
    payment_terms: str       # code, e.g. '30 DAYS'
    payment_method: str      # code, e.g. 'BANK'
    created_at: dt.datetime  # aware UTC, millisecond precision
    updated_at: dt.datetime


class Item(NamedTuple):
    index: int
    seq: int
    code: str                # item number (upper case, may contain - / & # +)
    name: str
    type: str                # 'inventory' | 'service' | 'non_inventory'
    blocked: bool
    unit_price: Decimal
    unit_cost: Decimal       # may have 5 decimals
    uom: str                 # base unit of measure code; may be ''
    inventory: Decimal
    gtin: str
    category: str            # '' or a category code
    created_at: dt.datetime
    updated_at: dt.datetime


class OrderLine(NamedTuple):
    order_index: int
    line_no: int             # 1-based position within the order
    kind: str                # 'item' | 'comment' (blank item) | 'account'
    item: Optional[int]      # item index, None for comment/account lines
    account: str             # G/L account for 'account' lines, else ''
    description: str
    uom: str                 # '' for comment lines / items without a unit
    quantity: Decimal        # may be negative, zero or have 5 decimals
    unit_cost: Decimal
    discount_percent: Decimal
    discount_amount: Decimal         # line discount
    amount: Decimal                  # quantity * unit_cost - discount (excl. tax)
    invoice_discount_allocation: Decimal
    net_amount: Decimal              # amount - invoice_discount_allocation
    tax_percent: Decimal
    tax_amount: Decimal
    amount_including_tax: Decimal    # net_amount + tax_amount
    expected_receipt_date: Optional[dt.date]
    received_quantity: Decimal
    invoiced_quantity: Decimal


class Order(NamedTuple):
    index: int
    seq: int                 # 1-based; systems derive their document number
    order_date: dt.date
    posting_date: dt.date
    vendor: int              # vendor index
    pay_to_vendor: int       # vendor index (usually == vendor)
    ship_to_name: str        # '' sometimes
    ship_to_contact: str
    currency: str            # == the vendor's currency ('' = local)
    prices_include_tax: bool
    status: str              # one of ORDER_STATUSES
    requested_receipt_date: Optional[dt.date]
    purchaser: str           # purchaser code, '' sometimes
    created_at: dt.datetime
    updated_at: dt.datetime
    invoice_discount: Decimal
    lines: tuple             # tuple[OrderLine, ...] (1-4 lines)
    total_excl_tax: Decimal
    total_tax: Decimal
    total_incl_tax: Decimal
    dimension1: str          # '' or a department code
    dimension2: str


# Awkward vendors first (placed deterministically), then plain ones.
# (name, address1, city, state, postal, country, currency, blocked, email, phone, website)
_AWKWARD_VENDORS = [
    ("Acme Supplies", "1 Main Street", "Atlanta", "GA", "31772", "US", "", "none",
     "orders@acme.example", "+1 404 555 0101", "https://acme.example"),
    ("ACME SUPPLIES", "1 Main Street", "Atlanta", "GA", "31772", "US", "", "payment",
     "ORDERS@ACME.EXAMPLE", "+1 404 555 0102", ""),
    ("O'Brien & Sons", "12 O'Connell St", "Boston", "MA", "02108", "US", "", "none",
     "sales@obrien-sons.example", "+1 617 555 0103", "https://obrien-sons.example/?a=1&b=2"),
    ("Müller Industriebedarf GmbH", "Königstraße 5", "München", "", "80331", "DE", "EUR",
     "none",
     "einkauf@müller.example", "+49 89 5550104", "https://müller.example"),
    ("Ærø Marine ApS", "Havnegade 7", "Ærøskøbing", "", "5970", "DK", "DKK", "none",
     "post@aero-marine.example", "+45 55 50 01 05", ""),
    ("株式会社山田製作所", "千代田区1-1", "東京", "", "100-0001", "JP", "JPY",
     "none",
     "info@yamada.example", "+81 3 5550 0106", ""),
    ("Rocket 🚀 Parts Ltd.", "1 Launch Pad", "London", "", "EC1A 1BB", "GB", "GBP", "none",
     "hello@rocket.example", "+44 20 5550 0107", "https://rocket.example"),
    ('"Quoted" Widgets Inc.', '5 "The Yard"', "Chicago", "IL", "60601", "US", "", "none",
     "quotes@widgets.example", "+1 312 555 0108", ""),
    ("100% Pure Supplies", "100 Percent Way", "Denver", "CO", "80202", "US", "", "none",
     "pure@100pct.example", "+1 303 555 0109", ""),
    ("Hash#Tag Traders", "#9 Hash Lane", "Austin", "TX", "73301", "US", "", "all",
     "", "", ""),
    ("Plus+Minus Components", "1+1 Plus Road", "Toronto", "ON", "M5H 2N2", "CA", "CAD", "none",
     "plus+orders@plusminus.example", "+1 416 555 0111", ""),
    ("North/South Logistics", "N/S Terminal", "Seattle", "WA", "98101", "US", "", "none",
     "ns@logistics.example", "+1 206 555 0112", "https://logistics.example/north/south"),
    ("Why? Consulting", "Question Court 1", "Miami", "FL", "33101", "US", "", "none",
     "why@consulting.example", "+1 305 555 0113", "https://consulting.example/why?"),
    ("", "", "", "", "", "US", "", "none", "", "", ""),
    ("Back\\Slash Supplies", "C:\\Docks\\7", "Newark", "NJ", "07102", "US", "", "none",
     "back@slash.example", "+1 973 555 0115", ""),
    ("Percent %25 Encoded Ltd.", "25 Escape Street", "Phoenix", "AZ", "85001", "US", "", "none",
     "pct@encoded.example", "+1 602 555 0116", ""),
]
_PLAIN_VENDOR_NAMES = [
    "Fabrikam, Inc.", "Contoso Ltd.", "Northwind Traders", "Litware, Inc.",
    "Adatum Corporation", "Proseware, Inc.", "Wide World Importers", "Tailspin Toys",
    "Coho Winery", "Alpine Ski House", "Trey Research", "Fourth Coffee",
    "Woodgrove Bank", "Lucerne Publishing", "Margie's Travel", "Blue Yonder Airlines",
    "City Power & Light", "Graphic Design Institute", "First Up Consultants",
    "Humongous Insurance",
]
_SMALL_VENDOR_NAMES = ["Nordic Timber AB", "Lisbon Cork Lda.", "Kiwi Fasteners Ltd",
                       "Andes Copper S.A.", "Baltic Amber UAB", "Cape Wool (Pty) Ltd"]
_CITIES = [("Atlanta", "GA", "30301"), ("Dallas", "TX", "75201"), ("Portland", "OR", "97201"),
           ("Detroit", "MI", "48201"), ("Columbus", "OH", "43004"), ("Omaha", "NE", "68102")]

# (code, name, type, uom, blocked)
_AWKWARD_ITEMS = [
    ("1000", "Bicycle", "inventory", "PCS", False),
    ("1896-S", "ATHENS Desk", "inventory", "PCS", False),
    ("70000", "Side Panel", "inventory", "PCS", True),
    ("BOLT-M8", "Bolt M8 × 40 mm", "inventory", "BOX", False),
    ("CAFE-01", "Café Crème Pods", "inventory", "BOX", False),
    ("PIPE-12", '12" Steel Pipe', "inventory", "PCS", False),
    ("W&G", "Widget & Gadget Set", "inventory", "PCS", False),
    ("CONSULT", "Consulting Hour", "service", "HOUR", False),
    ("FREIGHT", "Freight 100% insured", "service", "", False),
    ("PAPER-A4", "Paper A4 (500 sheets)", "non_inventory", "BOX", False),
    ("SOFT/LIC", "Software licence / seat", "non_inventory", "PCS", False),
    ("ITEM#7", "Item #7", "inventory", "PCS", False),
    ("ÆRØ-ROPE", "Ærø Rope 10 m", "inventory", "PCS", False),
    ("ACME-KIT", "Acme Kit", "inventory", "PCS", False),
    ("ACME-KIT2", "ACME KIT", "inventory", "PCS", False),
    ("PLUS+1", "Plus+One Adapter?", "non_inventory", "PCS", False),
]
_PLAIN_ITEMS = [("Chair", "PCS"), ("Desk Lamp", "PCS"), ("Monitor 27in", "PCS"),
                ("Cable Set", "BOX"), ("Toner Cartridge", "PCS"), ("Safety Gloves", "BOX"),
                ("Cleaning Service", "HOUR"), ("Pallet", "PCS"), ("Printer Paper", "BOX")]

_PURCHASERS = ("", "JO", "PS", "AH", "MH")
_DIM1 = ("", "", "", "SALES", "ADM", "PROD")
_DIM2 = ("", "", "SMALL", "MEDIUM", "LARGE")
_TAX_BY_COUNTRY = {"US": (_D0, _D0, Decimal("8.25")), "DE": (Decimal(19),),
                   "DK": (Decimal(25),), "GB": (Decimal(20),), "JP": (Decimal(10),),
                   "CA": (Decimal(13),)}
_LINE_TEXTS = ("Please confirm delivery date", "Deliver to rear entrance",
               "Cap 'n' \"Ball\" & Co — 100% #1 / ? +", "Note: see attached drawing")

#: Fixed timestamps shared by several records (identical last-modified values).
SHARED_TS_1 = dt.datetime(2024, 3, 15, 9, 30, 0, tzinfo=_UTC)
SHARED_TS_2 = dt.datetime(2024, 3, 15, 9, 30, 0, 250000, tzinfo=_UTC)

_DATE0 = dt.date(2023, 1, 1)
_DATE_SPAN = 730  # order dates fall in 2023-01-01 .. 2024-12-30
_DATE0_DT = dt.datetime(2023, 1, 1, tzinfo=_UTC)
_DATE0_ORD = [_DATE0 + dt.timedelta(days=k) for k in range(_DATE_SPAN)]
_INTS = [Decimal(k) for k in range(101)]
_FIVE = Decimal(5)
_NO_TAX = (Decimal(0),)

_BLOCK = 1024          # line counts are drawn per block of orders
_ORDER_CACHE = 2048    # generated orders kept in memory (LRU)


class BoundedCache:
    """A bounded mapping with FIFO eviction, safe to share between threads.

    Lookups are a plain ``dict.get`` (atomic under the GIL, no lock); when
    the cache is full, the oldest eighth is evicted under a lock.  Values
    must be immutable (or treated as such) since they are shared.
    """

    def __init__(self, size: int):
        self._size = max(1, size)
        self._data: dict = {}
        self._lock = threading.Lock()
        self.get = self._data.get

    def put(self, key: Any, value: Any) -> None:
        data = self._data
        data[key] = value
        if len(data) > self._size:
            with self._lock:
                drop = max(1, self._size // 8)
                for old in list(itertools.islice(iter(data), drop)):
                    data.pop(old, None)

    def clear(self) -> None:
        self._data.clear()



def _ms_datetime(base: dt.datetime, seconds: int, millis: int) -> dt.datetime:
    return base + dt.timedelta(seconds=seconds, milliseconds=millis)


class PurchasingDataset:
    """A deterministic canonical purchasing dataset, generated lazily.

    ``PurchasingDataset(seed=42, orders=60)`` always yields the same data (the
    generator uses its own seeded streams, independent of Python's hash seed).
    Vendors and items are small lists; orders are generated in blocks of 1024
    on demand (``order(i)``, ``iter_orders()``) and only a few blocks are kept,
    so 1,000,000 orders fit in a small, constant amount of memory.

    ``awkward=True`` (default) places awkward values deterministically: names
    with quotes, ``& % # + / ?``, backslashes, non-ASCII and an emoji, an
    empty name, names differing only by case, leap day and month-end dates,
    zero/negative/huge totals, 5-decimal quantities and costs, identical
    last-modified timestamps, blocked vendors, all item types, comment lines
    without an item, an account line, an item without a unit of measure, a
    JPY (zero-decimal) order, every status.  ``awkward=False`` gives plain data
    (used for secondary companies).  ``special_orders()`` documents where each
    awkward order sits.
    """

    def __init__(self, seed: int = 42, orders: int = 60, vendors: int = 25,
                 items: int = 20, awkward: bool = True,
                 buyer: Optional[Buyer] = None, spare_orders: int = 0):
        if orders < 0 or vendors < 1 or items < 1 or spare_orders < 0:
            raise ValueError("orders must be >= 0, vendors and items >= 1")
        self.seed = seed
        # spare orders are generated like the others but hidden until
        # inserted (see mutate): indexes, ids and lines never move
        self.n_orders = orders + spare_orders
        self.hidden_orders: set[int] = set(range(orders, orders + spare_orders))
        self.hidden_lines: set[tuple[int, int]] = set()   # (order, 0-based position)
        self._next_spare = orders
        self._overrides: dict[int, Order] = {}
        self.changes: dict[tuple[str, int], int] = {}      # ("o"|"v"|"i"|"l", idx) -> count
        self.mutated = bool(spare_orders)
        self.mutate_lock = threading.RLock()
        # whether a line change that leaves the amounts alone (its text)
        # moves the order's modification time; set by each sandbox from its
        # system's documentation (test/sandbox/FIDELITY.md, "Changes")
        self.line_text_moves_header = True
        self.awkward = awkward
        self.buyer = buyer or Buyer("CRONUS USA, Inc.", "7122 South Ashford Street",
                                    "Atlanta", "GA", "31772", "US", "USD")
        self.vendors: list[Vendor] = self._make_vendors(vendors)
        self.items: list[Item] = self._make_items(items)
        self._orders = BoundedCache(_ORDER_CACHE)
        self._key = hashlib.blake2b(f"{seed}:orders".encode(), digest_size=16).digest()
        self._counts = BoundedCache(4096)
        self._offsets: Optional[array] = None
        self._offsets_lock = threading.Lock()
        self._specials = self._make_specials() if awkward else {}

    # -- public API --------------------------------------------------------

    def __len__(self) -> int:
        return self.n_orders

    def order(self, i: int) -> Order:
        if not 0 <= i < self.n_orders:
            raise IndexError(i)
        o = self._overrides.get(i)
        if o is not None:
            return o
        o = self._orders.get(i)
        if o is None:
            o = self._make_order(i, self.line_count(i))
            self._orders.put(i, o)
        return o

    def iter_orders(self, start: int = 0, stop: Optional[int] = None) -> Iterator[Order]:
        stop = self.n_orders if stop is None else min(stop, self.n_orders)
        for i in range(max(start, 0), stop):
            o = self._overrides.get(i) or self._orders.get(i)
            yield o if o is not None else self._make_order(i, self.line_count(i))

    def line_count(self, i: int) -> int:
        b = i // _BLOCK
        return self._block_counts(b)[i - b * _BLOCK]

    @property
    def line_offsets(self) -> array:
        """``offsets[i]`` = global index of order i's first line;
        ``offsets[n]`` = total number of lines.  Computed once, lazily."""
        if self._offsets is None:
            with self._offsets_lock:
                if self._offsets is None:
                    offs = array("q", [0])
                    total = 0
                    for b in range((self.n_orders + _BLOCK - 1) // _BLOCK):
                        counts = self._block_counts(b)
                        for c in counts:
                            total += c
                            offs.append(total)
                    self._offsets = offs
        return self._offsets

    @property
    def total_lines(self) -> int:
        return self.line_offsets[self.n_orders]

    def locate_line(self, j: int) -> tuple[int, int]:
        """Global line index -> (order index, 0-based line position)."""
        offs = self.line_offsets
        i = bisect.bisect_right(offs, j) - 1
        return i, j - offs[i]

    def line(self, j: int) -> OrderLine:
        i, k = self.locate_line(j)
        return self.order(i).lines[k]

    # -- changes (POST /_sandbox/mutate) --------------------------------------

    def order_hidden(self, i: int) -> bool:
        """Whether order i is deleted or a spare not yet inserted."""
        return i in self.hidden_orders

    def line_hidden(self, i: int, k: int) -> bool:
        """Whether line k (0-based) of order i is gone (or its order is)."""
        return i in self.hidden_orders or (i, k) in self.hidden_lines

    def visible_orders(self) -> int:
        return self.n_orders - len(self.hidden_orders)

    def mutate(self, ops: list, at: dt.datetime) -> list[dict]:
        """Applies changes as an upstream user would make them; every record
        changed gets the modification time ``at`` (one batch shares it, so
        two records can carry the same stamp).  Ops (indexes are dataset
        positions):

        * ``{"op": "insert_order"}``: the next spare order appears, with its
          lines (created and modified at ``at``);
        * ``{"op": "update_order", "order": i, "status": s}``: a header
          change (status ``s``, default: open <-> pending_approval);
        * ``{"op": "delete_order", "order": i}``: the order and its lines go;
        * ``{"op": "remove_line", "order": i, "line": n}``: line n (1-based)
          goes and the order's totals drop by it;
        * ``{"op": "update_line", "order": i, "line": n, "description": d}``
          or ``..., "quantity": q}`` (amounts and the order's totals follow);
        * ``{"op": "update_vendor", "vendor": i, "name": n}`` (or ``"email": e``),
          ``{"op": "update_item", "item": i, "name": n}``.

        Inserting an order, removing a line or changing a line's quantity
        moves the order's modification time; a text-only line change does
        so only where ``line_text_moves_header`` (test/sandbox/FIDELITY.md,
        "Changes").  Returns what was
        done, one dict per op; raises ValueError on a bad op (nothing of the
        batch is applied then)."""
        with self.mutate_lock:
            for op in ops:
                self._check_op(op)
            done = []
            for op in ops:
                done.append(self._apply(op, at))
            self.mutated = True
            return done

    def _check_op(self, op: Any) -> None:
        kinds = {"insert_order": (), "update_order": ("order",), "delete_order": ("order",),
                 "remove_line": ("order", "line"), "update_line": ("order", "line"),
                 "update_vendor": ("vendor",), "update_item": ("item",)}
        if not isinstance(op, dict) or op.get("op") not in kinds:
            raise ValueError(f"op must be an object with op one of {sorted(kinds)}")
        for key in kinds[op["op"]]:
            if not isinstance(op.get(key), int) or isinstance(op.get(key), bool):
                raise ValueError(f"{op['op']} needs an integer {key}")
        if "order" in op and (not 0 <= op["order"] < self.n_orders
                              or op["order"] in self.hidden_orders):
            raise ValueError(f"no order {op['order']}")
        if "line" in op and not 1 <= op["line"] <= len(self.order(op["order"]).lines):
            raise ValueError(f"order {op['order']} has no line {op['line']}")
        if "line" in op and (op["order"], op["line"] - 1) in self.hidden_lines:
            raise ValueError(f"line {op['line']} of order {op['order']} was removed")
        if "vendor" in op and not 0 <= op["vendor"] < len(self.vendors):
            raise ValueError(f"no vendor {op['vendor']}")
        if "item" in op and not 0 <= op["item"] < len(self.items):
            raise ValueError(f"no item {op['item']}")
        if op["op"] == "insert_order" and self._next_spare >= self.n_orders:
            raise ValueError("no spare order left (start the sandbox with more --spare-orders)")
        if "status" in op and op["status"] not in ORDER_STATUSES:
            raise ValueError(f"status must be one of {ORDER_STATUSES}")

    def _touch(self, kind: str, idx: int) -> None:
        self.changes[(kind, idx)] = self.changes.get((kind, idx), 0) + 1

    def _apply(self, op: dict, at: dt.datetime) -> dict:
        kind = op["op"]
        if kind == "insert_order":
            i = self._next_spare
            self._next_spare += 1
            self.hidden_orders.discard(i)
            self._overrides[i] = self.order(i)._replace(created_at=at, updated_at=at)
            self._touch("o", i)
            return {"op": kind, "order": i}
        if kind in ("update_vendor", "update_item"):
            key, lst = ("vendor", self.vendors) if kind == "update_vendor" else ("item", self.items)
            j = op[key]
            if "email" in op and key == "vendor":
                lst[j] = lst[j]._replace(email=str(op["email"]), updated_at=at)
            else:
                lst[j] = lst[j]._replace(name=str(op.get("name", lst[j].name + " (changed)")),
                                         updated_at=at)
            self._touch(key[0], j)
            return {"op": kind, key: j}
        i = op["order"]
        o = self.order(i)
        if kind == "delete_order":
            self.hidden_orders.add(i)
            return {"op": kind, "order": i}
        if kind == "update_order":
            status = op.get("status") or ("pending_approval" if o.status == "open" else "open")
            o = o._replace(status=status)
        elif kind == "remove_line":
            k = op["line"] - 1
            ln = o.lines[k]
            self.hidden_lines.add((i, k))
            o = o._replace(total_excl_tax=o.total_excl_tax - ln.net_amount,
                           total_tax=o.total_tax - ln.tax_amount,
                           total_incl_tax=o.total_incl_tax - ln.amount_including_tax)
        elif kind == "update_line":
            k = op["line"] - 1
            lines = list(o.lines)
            ln = lines[k]
            if "quantity" in op:
                q = Decimal(str(op["quantity"]))
                amount = (q * ln.unit_cost - ln.discount_amount).quantize(_CENT)
                delta = amount - ln.amount
                ln = ln._replace(quantity=q, amount=amount, net_amount=ln.net_amount + delta,
                                 amount_including_tax=ln.amount_including_tax + delta)
                o = o._replace(total_excl_tax=o.total_excl_tax + delta,
                               total_incl_tax=o.total_incl_tax + delta)
            else:
                ln = ln._replace(description=str(op.get("description", ln.description + " (changed)")))
            lines[k] = ln
            o = o._replace(lines=tuple(lines))
            self._touch("l", i * 64 + k)
            if "quantity" not in op and not self.line_text_moves_header:
                self._overrides[i] = o
                return {"op": kind, "order": i}
        self._overrides[i] = o._replace(updated_at=at)
        self._touch("o", i)
        return {"op": kind, "order": i}

    def special_orders(self) -> dict[int, str]:
        """Order index -> description of the awkward case placed there."""
        return {i: spec["what"] for i, spec in sorted(self._specials.items())
                if i < self.n_orders}

    # -- vendors and items ---------------------------------------------------

    def _make_vendors(self, n: int) -> list[Vendor]:
        rng = random.Random(f"{self.seed}:vendors")
        out = []
        base = dt.datetime(2022, 6, 1, tzinfo=_UTC)
        for i in range(n):
            r = rng.random
            created = _ms_datetime(base, int(r() * 200 * 86400), int(r() * 1000))
            updated = _ms_datetime(created, int(r() * 400 * 86400),
                                   0 if r() < 0.3 else int(r() * 1000))
            balance = Decimal(int(r() * 5_000_000) - 500_000).scaleb(-2)
            terms = ("30 DAYS", "14 DAYS", "COD", "1M(8D)")[int(r() * 4)]
            method = ("BANK", "CHECK", "CASH")[int(r() * 3)]
            if self.awkward and i < len(_AWKWARD_VENDORS):
                (name, a1, city, state, postal, country, cur, blocked,
                 email, phone, web) = _AWKWARD_VENDORS[i]
                if i in (0, 1):
                    updated = SHARED_TS_1           # identical timestamps
                if i == 2:
                    balance = _D0                    # zero balance
                if i == 13:
                    balance = Decimal("-1234.56")    # negative balance
            else:
                pool = _PLAIN_VENDOR_NAMES if self.awkward else _SMALL_VENDOR_NAMES
                k = (i - len(_AWKWARD_VENDORS)) if self.awkward else i
                name = pool[k] if k < len(pool) else f"Supplier {i + 1:04d}"
                city, state, postal = _CITIES[i % len(_CITIES)]
                a1 = f"{100 + i} Commerce Drive"
                country, cur, blocked = "US", "", ("none" if r() < 0.9 else "payment")
                slug = "".join(ch for ch in name.lower() if ch.isalnum())[:20] or f"v{i}"
                email = f"orders@{slug}.example"
                phone = f"+1 555 01{i % 100:02d}"
                web = f"https://{slug}.example" if r() < 0.5 else ""
            out.append(Vendor(
                index=i, seq=i + 1, name=name, address1=a1,
                address2="Suite 200" if i % 7 == 3 else "", city=city, state=state,
                postal_code=postal, country=country, phone=phone, email=email, website=web,
                tax_registration="" if i % 3 else f"TAX-{i + 1:05d}", currency=cur,
                blocked=blocked, balance=balance, tax_liable=(country == "US" and i % 2 == 0),
                payment_terms=terms, payment_method=method,
                created_at=created, updated_at=max(updated, created),
            ))
        return out

    def _make_items(self, n: int) -> list[Item]:
        rng = random.Random(f"{self.seed}:items")
        out = []
        base = dt.datetime(2022, 3, 1, tzinfo=_UTC)
        for i in range(n):
            r = rng.random
            created = _ms_datetime(base, int(r() * 300 * 86400), int(r() * 1000))
            updated = _ms_datetime(created, int(r() * 500 * 86400),
                                   0 if r() < 0.3 else int(r() * 1000))
            cost = Decimal(int(r() * 50_000) + 25).scaleb(-2)
            if self.awkward and i < len(_AWKWARD_ITEMS):
                code, name, typ, uom, blocked = _AWKWARD_ITEMS[i]
                if i in (0, 1, 2):
                    updated = SHARED_TS_2                    # identical timestamps
                if i == 3:
                    cost = Decimal("1.23456")                # 5 decimals
                if i == 9:
                    cost = _D0                               # zero cost
            else:
                k = i - (len(_AWKWARD_ITEMS) if self.awkward else 0)
                pname, uom = _PLAIN_ITEMS[k % len(_PLAIN_ITEMS)]
                name = pname if k < len(_PLAIN_ITEMS) else f"{pname} {k // len(_PLAIN_ITEMS) + 1}"
                code = f"{2000 + i}"
                typ = "service" if uom == "HOUR" else \
                    ("inventory" if r() < 0.8 else "non_inventory")
                blocked = False
            price = (cost * Decimal("1.4")).quantize(_CENT, ROUND_HALF_UP)
            inventory = Decimal(int(r() * 500)) if typ == "inventory" else _D0
            out.append(Item(
                index=i, seq=i + 1, code=code, name=name, type=typ, blocked=blocked,
                unit_price=price, unit_cost=cost, uom=uom, inventory=inventory,
                gtin="" if i % 4 else "%013d" % (4006381333931 + i * 7),
                category=("" if i % 3 else ("FURNITURE", "MISC", "SUPPLIERS")[i % 9 // 3]),
                created_at=created, updated_at=max(updated, created),
            ))
        return out

    # -- special (awkward) orders -------------------------------------------

    def _make_specials(self) -> dict[int, dict]:
        nv, ni = len(self.vendors), len(self.items)
        lcy = next((v.index for v in self.vendors if v.currency == "" and v.name), 0)

        def vend(i: int) -> int:
            return i if i < nv else lcy

        def item(i: int) -> int:
            return i if i < ni else 0

        def ln(**kw: Any) -> dict:
            return kw

        sp: dict[int, dict] = {
            0: dict(what="order date on leap day 2024-02-29", date=dt.date(2024, 2, 29)),
            1: dict(what="order date 2023-12-31 (year end)", date=dt.date(2023, 12, 31)),
            2: dict(what="order date 2024-01-31 (month end)", date=dt.date(2024, 1, 31)),
            3: dict(what="order date 2024-04-30 (month end)", date=dt.date(2024, 4, 30)),
            4: dict(what="huge total 99999999999999.99", vendor=lcy, tax=_D0, pit=False,
                    lines=[ln(item=item(0), qty=_ONE, cost=Decimal("99999999999999.99"))]),
            5: dict(what="zero total", tax=_D0,
                    lines=[ln(item=item(9), qty=Decimal(3), cost=_D0)]),
            6: dict(what="negative total", vendor=lcy, tax=_D0,
                    lines=[ln(item=item(1), qty=Decimal(-3), cost=Decimal("12.50")),
                           ln(item=item(3), qty=_ONE, cost=Decimal("5.00"))]),
            7: dict(what="comment line without item (blank item)",
                    lines=[ln(kind="comment", text=_LINE_TEXTS[1]),
                           ln(item=item(4), qty=Decimal(2), cost=Decimal("7.99"))]),
            8: dict(what="5-decimal quantity and unit cost", vendor=lcy, tax=_D0,
                    lines=[ln(item=item(3), qty=Decimal("0.12345"), cost=Decimal("1.23456")),
                           ln(item=item(3), qty=Decimal("2.5"), cost=Decimal("1.23456"))]),
            9: dict(what="blank requested receipt date and blank expected receipt date",
                    blank_dates=True),
            10: dict(what="identical updated_at 2024-03-15T09:30:00Z", updated=SHARED_TS_1),
            11: dict(what="identical updated_at 2024-03-15T09:30:00Z", updated=SHARED_TS_1),
            12: dict(what="identical updated_at 2024-03-15T09:30:00Z", updated=SHARED_TS_1),
            13: dict(what="identical updated_at 2024-03-15T09:30:00Z", updated=SHARED_TS_1),
            14: dict(what="identical updated_at 2024-03-15T09:30:00.250Z", updated=SHARED_TS_2),
            15: dict(what="identical updated_at 2024-03-15T09:30:00.250Z", updated=SHARED_TS_2),
            16: dict(what="account (G/L) line without item",
                     lines=[ln(kind="account", account="6130", text="Freight charges",
                               qty=_ONE, cost=Decimal("45.00")),
                            ln(item=item(5), qty=Decimal(4), cost=Decimal("19.90"))]),
            17: dict(what="item without unit of measure (blank UoM)",
                     lines=[ln(item=item(8), qty=_ONE, cost=Decimal("120.00"))]),
            18: dict(what="invoice discount allocated to a line", invoice_discount=Decimal("10.00"),
                     lines=[ln(item=item(6), qty=Decimal(10), cost=Decimal("15.00")),
                            ln(item=item(7), qty=Decimal(2), cost=Decimal("95.00"))]),
            19: dict(what="awkward line description", lines=[
                ln(item=item(5), qty=Decimal(1), cost=Decimal("3.50"), text=_LINE_TEXTS[2])]),
            20: dict(what="same item on several lines, 4 lines", lines=[
                ln(item=item(0), qty=Decimal(1), cost=Decimal("100.00")),
                ln(item=item(0), qty=Decimal(2), cost=Decimal("100.00")),
                ln(item=item(0), qty=Decimal(3), cost=Decimal("99.99"), disc=Decimal("2.5")),
                ln(kind="comment", text=_LINE_TEXTS[0])]),
            21: dict(what="EUR order (Müller)", vendor=vend(3)),
            22: dict(what="JPY order (zero-decimal currency)", vendor=vend(5),
                     lines=[ln(item=item(12), qty=Decimal(7), cost=Decimal("1234")),
                            ln(item=item(4), qty=Decimal(3), cost=Decimal("980"))]),
            23: dict(what="vendor with empty name", vendor=vend(13)),
            24: dict(what="order date 2023-01-01 and prices including tax",
                     date=dt.date(2023, 1, 1), pit=True, vendor=vend(3)),
        }
        for k, status in enumerate(ORDER_STATUSES):  # every status early on
            sp.setdefault(25 + k, {})
            sp[25 + k].update(what=sp[25 + k].get("what", f"status {status}"), status=status)
        sp[26]["what"] = "status pending_approval, ACME SUPPLIES (case twin)"
        sp[26]["vendor"] = vend(1)
        sp[27]["vendor"] = vend(0)
        sp[33] = dict(what="blocked vendor (Hash#Tag Traders)", vendor=vend(9))
        return sp

    # -- order generation -----------------------------------------------------

    def _block_counts(self, b: int) -> bytes:
        counts = self._counts.get(b)
        if counts is None:
            rng = random.Random(f"{self.seed}:lines:{b}")
            start, stop = b * _BLOCK, min(self.n_orders, (b + 1) * _BLOCK)
            getbits = rng.getrandbits
            vals = bytearray(1 + getbits(2) for _ in range(stop - start))
            for i, spec in self._specials.items():
                if start <= i < stop and "lines" in spec:
                    vals[i - start] = len(spec["lines"])
            counts = bytes(vals)
            self._counts.put(b, counts)
        return counts

    def _stream(self, i: int) -> Callable[[], int]:
        """32 uniform 16-bit integers for order ``i`` (one keyed BLAKE2b
        digest), as a callable returning the next one: much cheaper than
        seeding a Mersenne Twister per order, and independent of every other
        order.  An order draws 15 + 4 per line <= 31 values."""
        data = hashlib.blake2b(i.to_bytes(8, "little"), key=self._key, digest_size=64).digest()
        return iter(struct.unpack("<32H", data)).__next__

    def _make_order(self, i: int, nlines: int) -> Order:
        """Generate order ``i``.  ``r()`` draws are 16-bit: ``r() * n >> 16`` is
        uniform in [0, n).  Every draw is taken before specials are applied,
        so a special order never shifts another value."""
        r = self._stream(i)
        vendors, items = self.vendors, self.items
        nv, ni = len(vendors), len(items)
        sp = self._specials.get(i)

        vendor = i if i < nv else r() * nv >> 16
        day = r() * _DATE_SPAN >> 16
        status = ORDER_STATUSES[bisect.bisect_right(_STATUS_CUM, r() * 100 >> 16)]
        created_ms = (28800 + (r() * 36000 >> 16)) * 1000 + (r() * 1000 >> 16)
        upd_ms = (r() * 5184 >> 16) * 1_000_000 + (r() * 1_000_000 >> 16)
        if r() < 19661:                          # 30 %: whole seconds
            upd_ms -= upd_ms % 1000
        req_days = 7 + (r() * 24 >> 16)
        flags = r()                              # independent bits
        other_payee = r() * nv >> 16
        pay_to = other_payee if flags & 0x0F == 0 else vendor        # ~6 %
        ship_blank = flags & 0xF0 < 0x18                              # ~10 %
        pit = (flags >> 8) & 0x1F == 0                                # ~3 %
        no_req_date = (flags >> 13) == 0                              # ~12 %
        purchaser = _PURCHASERS[r() * len(_PURCHASERS) >> 16]
        dim1 = _DIM1[r() * len(_DIM1) >> 16]
        dim2 = _DIM2[r() * len(_DIM2) >> 16]
        tax_pick = r()

        v = vendors[vendor]
        if sp:
            vendor = sp.get("vendor", vendor)
            v = vendors[vendor]
            pay_to = vendor if "vendor" in sp else pay_to
            status = sp.get("status", status)
            if "date" in sp:
                day = (sp["date"] - _DATE0).days
            pit = sp.get("pit", pit)
            no_req_date = no_req_date or sp.get("blank_dates", False)
        order_date = _DATE0_ORD[day] if 0 <= day < _DATE_SPAN else _DATE0 + dt.timedelta(days=day)
        created = _DATE0_DT + dt.timedelta(days=day, milliseconds=created_ms)
        updated = created + dt.timedelta(milliseconds=upd_ms)
        if sp and "updated" in sp:
            updated = sp["updated"]
            if updated < created:
                created = updated
        req_date = None if no_req_date else order_date + dt.timedelta(days=req_days)
        taxes = _TAX_BY_COUNTRY.get(v.country, _NO_TAX)
        tax_pct = taxes[tax_pick * len(taxes) >> 16]
        if sp and "tax" in sp:
            tax_pct = sp["tax"]
        unit = CURRENCY_UNITS.get(v.currency, _CENT)

        # Lines: (kind, item, account, description, uom, qty, cost, discount %)
        line_specs = sp.get("lines") if sp else None
        lines = []
        for k in range(nlines):
            a, b, c, d = r(), r(), r(), r()
            ls = line_specs[k] if line_specs else None
            if ls is None:
                it = items[a * ni >> 16]
                qty = _INTS[1 + (b * 50 >> 16)] if c < 55705 else \
                    Decimal(1 + (b * 5000 >> 16)).scaleb(-2)                 # 15 %: 2 decimals
                if d < 32768:
                    cost = it.unit_cost
                else:
                    cost = Decimal(50 + (d * 200_000 >> 16)).scaleb(-2)
                if unit is _ONE:
                    cost = cost.quantize(_ONE, ROUND_HALF_UP)
                disc = _FIVE if c & 0xF == 0 else _D0
                lines.append(("item", it.index, "", it.name, it.uom, qty, cost, disc))
            elif ls.get("kind", "item") == "item":
                it = items[ls["item"]]
                lines.append(("item", it.index, "", ls.get("text", it.name), it.uom,
                              ls["qty"], ls["cost"], ls.get("disc", _D0)))
            elif ls["kind"] == "account":
                lines.append(("account", None, ls["account"], ls["text"], "",
                              ls["qty"], ls["cost"], _D0))
            else:
                lines.append(("comment", None, "", ls.get("text", _LINE_TEXTS[0]), "",
                              _D0, _D0, _D0))

        # Amounts.
        gross = []
        for line in lines:
            qty, cost, disc = line[5], line[6], line[7]
            g = (qty * cost).quantize(unit, ROUND_HALF_UP)
            if disc:
                da = (g * disc / 100).quantize(unit, ROUND_HALF_UP)
                gross.append((g - da, da))
            else:
                gross.append((g, _D0))
        inv_disc = sp.get("invoice_discount", _D0) if sp else _D0
        alloc_to = -1
        if inv_disc:
            alloc_to = max(range(len(gross)), key=lambda k: gross[k][0])
            inv_disc = min(inv_disc, max(gross[alloc_to][0], _D0))
        full = status == "received" or status == "closed"
        out_lines = []
        tot_net = tot_tax = _D0
        for k, (kind, it, acc, desc, uom, qty, cost, disc) in enumerate(lines):
            amount, disc_amt = gross[k]
            alloc = inv_disc if k == alloc_to else _D0
            if pit:
                incl = amount - alloc
                net = (incl * 100 / (100 + tax_pct)).quantize(unit, ROUND_HALF_UP)
                tax = incl - net
            else:
                net = amount - alloc
                tax = (net * tax_pct / 100).quantize(unit, ROUND_HALF_UP) if tax_pct else _D0
            if full:
                received = qty if qty > 0 else _D0
            elif k == 0 and status == "partially_received" and qty >= 2:
                received = (qty / 2).quantize(_ONE, rounding=ROUND_FLOOR)
            else:
                received = _D0
            out_lines.append(OrderLine(
                i, k + 1, kind, it, acc, desc, uom, qty, cost, disc, disc_amt, amount,
                alloc, net, tax_pct if kind != "comment" else _D0, tax, net + tax,
                None if (no_req_date or kind == "comment") else req_date,
                received, received if status == "closed" else _D0))
            tot_net += net
            tot_tax += tax

        return Order(   # positional (fast): see the field order of Order
            i, i + 1, order_date, order_date, vendor, pay_to,
            "" if ship_blank else self.buyer.name,
            "" if ship_blank or i % 3 else "Jim Olive",
            v.currency, pit, status, req_date, purchaser, created, updated, inv_disc,
            tuple(out_lines), tot_net, tot_tax, tot_net + tot_tax, dim1, dim2)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def add_common_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the options every sandbox accepts."""
    parser.add_argument("--host", default="127.0.0.1",
                        help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0,
                        help="port (default 0: pick a free one; see LISTENING line)")
    parser.add_argument("--seed", type=int, default=42, help="dataset seed (default 42)")
    parser.add_argument("--orders", type=int, default=60,
                        help="number of purchase orders (default 60)")
    parser.add_argument("--spare-orders", type=int, default=0,
                        help="orders kept hidden for POST /_sandbox/mutate to insert "
                             "(default 0; changes the ids of all orders)")
    parser.add_argument("--ready-file", metavar="PATH",
                        help="write the bound port to PATH once listening")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    return parser


def main(make_app: Callable[[argparse.Namespace], SandboxApp],
         parser: argparse.ArgumentParser, argv: Optional[list[str]] = None) -> int:
    """Parse arguments, start the server, print ``LISTENING <host> <port>``
    (flushed) and write ``--ready-file``, then serve until SIGTERM/SIGINT."""
    args = parser.parse_args(argv)
    try:
        app = make_app(args)
        server = SandboxServer(app, args.host, args.port, verbose=args.verbose)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    def _terminate(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _terminate)
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{server.port}\n")
        os.replace(tmp, args.ready_file)
    print(f"LISTENING {server.server_address[0]} {server.port}", flush=True)
    app.serving()
    try:
        server.serve_forever(poll_interval=0.2)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.stopping.set()
        server.server_close()
    return 0

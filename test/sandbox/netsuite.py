#!/usr/bin/env python3
"""Sandbox Oracle NetSuite: the SuiteQL REST query service with TBA.

Reference: shared/reference/upstream-apis.md section 3.  Serves

    POST /services/rest/query/v1/suiteql?limit=N&offset=K
         Prefer: transient, body {"q": "SELECT ...", "params": [...]}

executing SuiteQL against an embedded SQLite copy of the tables
``transaction``, ``transactionline``, ``vendor``, ``item``, ``currency``,
``subsidiary`` (and ``unitstypeuom`` for units of measure), rendered from
``common.PurchasingDataset``.  Enough SuiteQL for a client: SELECT lists
with aliases, ``BUILTIN.DF(x.col)``, ``TO_CHAR(date, 'fmt')``,
``TO_DATE(text, 'fmt')``, joins, WHERE, ORDER BY, ``?`` parameters bound
from ``params``.  Like NetSuite: every value is a string, NULL columns are
left out of a row, keys are lower case, every row has ``"links": []``,
dates and datetimes come in the user's date format (``date_format``, in the
user's ``time_zone``) unless TO_CHAR is used, rows without ORDER BY come in
no particular order (shuffled per request), ``limit`` <= 1000, ``offset`` a
multiple of ``limit``, at most 100,000 results.

Authentication: TBA (OAuth 1.0a, HMAC-SHA256, RFC 5849) verified
independently and exactly: realm = the account id (case-sensitive), known
consumer key and token, HMAC-SHA256 only, timestamp within
``timestamp_tolerance`` seconds, nonce never reused, signature over the
method, base URI and every query + oauth_* parameter.  Or a bearer token
listed in ``bearer_tokens``, or an access token of the OAuth 2.0
authorization code grant (``GET /app/login/oauth2/authorize.nl``, ``POST
/services/rest/auth/oauth2/v1/token`` with HTTP Basic client
authentication; oauth_code.py).  Failures answer 401 INVALID_LOGIN (why is
recorded in ``GET /_sandbox/login_audit``, as NetSuite's Login Audit Trail).
Requests past ``concurrency_limit`` in flight answer 429
CONCURRENCY_LIMIT_EXCEEDED.
"""

from __future__ import annotations

import argparse
import base64
import collections
import datetime as dt
import hashlib
import hmac
import random
import re
import secrets
import sqlite3
import sys
import threading
import time
import urllib.parse
import zoneinfo
from decimal import Decimal
from typing import Any, Optional

from oauth_code import AuthorizationServer  # noqa: E402
from common import (HttpError, PurchasingDataset, Request, Response, SandboxApp,
                    add_common_arguments, decimal_text, main)

SUITEQL_PATH = "/services/rest/query/v1/suiteql"
DEFAULT_ACCOUNT_ID = "1234567_SB1"
DEFAULT_CONSUMER_KEY = "sandbox-consumer-key"
DEFAULT_CONSUMER_SECRET = "sandbox-consumer-secret"
DEFAULT_TOKEN_ID = "sandbox-token-id"
DEFAULT_TOKEN_SECRET = "sandbox token/secret+1"   # needs percent-encoding in the key
DEFAULT_BEARER = "sandbox-bearer-token"
# OAuth 2.0 authorization code grant (oauth_code.py): the integration
# record's client credentials and redirect URI, and the endpoints (the
# authorization endpoint is on the account's UI domain, served here too)
OAUTH2_CLIENT_ID = "sandbox-ns-client-id"
OAUTH2_CLIENT_SECRET = "sandbox-ns-client-secret"
OAUTH2_REDIRECT_URI = "http://127.0.0.1/unified/callback"
OAUTH2_AUTHORIZE_PATH = "/app/login/oauth2/authorize.nl"
OAUTH2_TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"
MAX_LIMIT = 1000
MAX_RESULTS = 100_000
ERROR_TYPE = "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.%s"
# SQLite values: Oracle DATEs carry a type tag.  What a query sees is always
# TAG_DATE + "YYYY-MM-DD HH:MM:SS", a wall-clock time without a zone (for
# createddate / lastmodifieddate: the instant in the time zone of the token's
# user); the stored image keeps instants as TAG_INSTANT + ISO UTC, turned into
# wall-clock DATEs per time zone when a query image is made (_query_image).
TAG_DATE = "\x01D"
TAG_INSTANT = "\x01T"
MAX_PAGES = 1000              # "a maximum of 1000 pages" (Collection Paging)
DEFAULT_TIME_ZONE = "America/Los_Angeles"
# instant columns (Oracle DATE in the user's time zone)
INSTANT_COLUMNS = {"vendor": ("datecreated", "lastmodifieddate"),
                   "item": ("createddate", "lastmodifieddate"),
                   "transaction": ("createddate", "lastmodifieddate")}
# orders whose createddate/lastmodifieddate sit at the 2024 US daylight-saving
# changes (America/Los_Angeles: 2024-03-10 02:00 -> 03:00, 2024-11-03
# 02:00 -> 01:00), so that a test account in that zone has both in its data
DST_ORDERS = {30: "2024-03-10T09:59:59Z",   # 01:59:59 PST, just before the gap
              31: "2024-03-10T10:00:00Z",   # 03:00:00 PDT, just after it
              32: "2024-03-10T10:30:00Z",   # 03:30:00 PDT
              33: "2024-11-03T08:00:00Z",   # 01:00:00 PDT, first pass of the repeated hour
              34: "2024-11-03T08:30:00Z",   # 01:30:00 PDT
              35: "2024-11-03T09:30:00Z",   # 01:30:00 PST, second pass: same wall clock as 34
              36: "2024-11-03T10:00:00Z",   # 02:00:00 PST, after the repeated hour
              37: "2024-11-03T07:59:59Z"}   # 00:59:59 PDT, before it

CURRENCIES = [(1, "US Dollar", "USD"), (2, "Euro", "EUR"), (3, "British Pound", "GBP"),
              (4, "Canadian Dollar", "CAD"), (5, "Danish Krone", "DKK"),
              (6, "Japanese Yen", "JPY")]
SUBSIDIARIES = [(1, "CRONUS USA, Inc.", 1), (2, "CRONUS Europe GmbH", 2)]
# canonical status -> PurchOrd status letter(s) (NetSuite has no draft/cancelled)
PO_STATUS = {"draft": "A", "pending_approval": "A", "open": "B", "partially_received": "DE",
             "received": "F", "closed": "GH", "rejected": "C", "cancelled": "H"}
PO_STATUS_LABEL = {"A": "Pending Supervisor Approval", "B": "Pending Receipt",
                   "C": "Rejected by Supervisor", "D": "Partially Received",
                   "E": "Pending Billing/Partially Received", "F": "Pending Bill",
                   "G": "Fully Billed", "H": "Closed"}
ITEM_TYPES = {"inventory": "InvtPart", "service": "Service", "non_inventory": "NonInvtPart"}

SCHEMA = """
CREATE TABLE currency (id INTEGER PRIMARY KEY, name TEXT, symbol TEXT, isbasecurrency TEXT);
CREATE TABLE subsidiary (id INTEGER PRIMARY KEY, name TEXT, currency INTEGER);
CREATE TABLE unitstypeuom (internalid INTEGER PRIMARY KEY, unitname TEXT, abbreviation TEXT);
CREATE TABLE vendor (id INTEGER PRIMARY KEY, entityid TEXT, companyname TEXT, email TEXT,
  phone TEXT, currency INTEGER, subsidiary INTEGER, isinactive TEXT, datecreated TEXT,
  lastmodifieddate TEXT);
CREATE TABLE item (id INTEGER PRIMARY KEY, itemid TEXT, displayname TEXT, itemtype TEXT,
  purchaseunit INTEGER, cost TEXT, isinactive TEXT, createddate TEXT, lastmodifieddate TEXT);
CREATE TABLE "transaction" (id INTEGER PRIMARY KEY, tranid TEXT, type TEXT, trandate TEXT,
  entity INTEGER, status TEXT, foreigntotal TEXT, currency INTEGER, subsidiary INTEGER,
  memo TEXT, createddate TEXT, lastmodifieddate TEXT);
CREATE TABLE transactionline (id INTEGER, "transaction" INTEGER, linesequencenumber INTEGER,
  mainline TEXT, item INTEGER, memo TEXT, quantity TEXT, rate TEXT, foreignamount TEXT,
  units INTEGER, quantityshiprecv TEXT, PRIMARY KEY ("transaction", id));
"""
TABLES = ("transaction", "transactionline", "vendor", "item", "currency", "subsidiary",
          "unitstypeuom")


class SuiteQLError(Exception):
    """A query NetSuite would refuse (400 INVALID_PARAMETER)."""


def ns_error(status: int, code: str, detail: str, title: Optional[str] = None,
             **extra: str) -> Response:
    """NetSuite's RFC 7807-like error body."""
    titles = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
              405: "Method Not Allowed", 429: "Bad Request", 500: "Internal Server Error",
              503: "Service Unavailable"}
    item = {"detail": detail, "o:errorCode": code}
    item.update(extra)
    # RFC 2616 section numbers: 10.4.1 400, 10.4.2 401, 10.4.4 403, 10.4.5 404,
    # 10.4.6 405; 10.5.x 5xx; 429 is not in RFC 2616 (its title is "Bad Request")
    section = {400: "4.1", 401: "4.2", 403: "4.4", 404: "4.5", 405: "4.6", 429: "4.1"}.get(
        status, "5.%d" % (status - 499) if status >= 500 else "4.1")
    body: dict = {"type": ERROR_TYPE % section,
                  "title": title or titles.get(status, "Error"), "status": status}
    if status == 429:
        body["o:errorCode"] = "USER_ERROR"
    body["o:errorDetails"] = [item]
    return Response.json(body, status, "application/vnd.oracle.resource+json; type=error")


def enc(s: str) -> str:
    """RFC 3986 percent-encoding (everything but unreserved characters)."""
    return urllib.parse.quote(s, safe="~")


def signature_base_string(method: str, scheme: str, host: str, raw_path: str, query: str,
                          oauth: dict) -> str:
    """RFC 5849 section 3.4.1, written from the RFC (not from the client)."""
    host = host.lower()
    default = ":443" if scheme == "https" else ":80"
    if host.endswith(default):
        host = host[: -len(default)]
    uri = f"{scheme}://{host}{raw_path or '/'}"
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    pairs += [(k, v) for k, v in oauth.items() if k not in ("realm", "oauth_signature")]
    norm = "&".join(f"{n}={v}" for n, v in sorted((enc(n), enc(v)) for n, v in pairs))
    return "&".join([method.upper(), enc(uri), enc(norm)])


def hmac_sha256(key: str, text: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), text.encode(), hashlib.sha256).digest()).decode()


def parse_oauth_header(value: str) -> Optional[dict]:
    if not value.startswith("OAuth "):
        return None
    out = {}
    for part in re.finditer(r'\s*([A-Za-z_]+)="([^"]*)"\s*(,|$)', value[6:]):
        key = part.group(1)
        if key in out:
            return None
        out[key] = urllib.parse.unquote(part.group(2))
    return out


# -- values ----------------------------------------------------------------

def tag_date(d: Optional[dt.date]) -> Optional[str]:
    """A date-only Oracle DATE (trandate): midnight."""
    return None if d is None else TAG_DATE + d.isoformat() + " 00:00:00"


def tag_datetime(t: dt.datetime) -> str:
    """An instant as NetSuite keeps it (whole seconds, UTC)."""
    return TAG_INSTANT + t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def wall_clock(v: Optional[str], tz: dt.tzinfo) -> Optional[str]:
    """A stored instant as the Oracle DATE a user in time zone tz sees."""
    if v is None or not v.startswith(TAG_INSTANT):
        return v
    t = dt.datetime.fromisoformat(v[2:].replace("Z", "+00:00")).astimezone(tz)
    return TAG_DATE + t.strftime("%Y-%m-%d %H:%M:%S")


def untag(v: str) -> dt.datetime:
    """An Oracle DATE as a naive datetime (no time zone)."""
    return dt.datetime.strptime(v[2:], "%Y-%m-%d %H:%M:%S")


def native(v: Any) -> Any:
    """Export form: dates as YYYY-MM-DD, instants as ISO UTC, the rest as stored."""
    if isinstance(v, str) and v.startswith(TAG_DATE):
        return v[2:12]
    if isinstance(v, str) and v.startswith(TAG_INSTANT):
        return v[2:]
    return v


_FMT_TOKENS = re.compile(r'YYYY|MM|DD|HH24|HH12|HH|MI|SS|TZH|TZM|TZR|AM|PM|"[^"]*"|[-/,.;: ]',
                         re.IGNORECASE)
ORA_01821 = "ORA-01821: date format not recognized"


def oracle_format(value: str, fmt: str) -> str:
    """TO_CHAR(date, fmt).  NetSuite's date/time fields are Oracle DATEs,
    which hold no time zone: a zone element (TZH, TZM, TZR) is ORA-01821,
    as is any element the sandbox does not know."""
    v = untag(value)
    out, pos = [], 0
    while pos < len(fmt):
        m = _FMT_TOKENS.match(fmt, pos)
        if not m:
            raise SuiteQLError(ORA_01821)
        tok, up = m.group(0), m.group(0).upper()
        pos = m.end()
        if tok.startswith('"'):
            out.append(tok[1:-1])
        elif up in ("TZH", "TZM", "TZR"):
            raise SuiteQLError(ORA_01821)
        elif up == "YYYY":
            out.append("%04d" % v.year)
        elif up == "MM":
            out.append("%02d" % v.month)
        elif up == "DD":
            out.append("%02d" % v.day)
        elif up == "HH24":
            out.append("%02d" % v.hour)
        elif up in ("HH", "HH12"):
            out.append("%02d" % (v.hour % 12 or 12))
        elif up == "MI":
            out.append("%02d" % v.minute)
        elif up == "SS":
            out.append("%02d" % v.second)
        elif up in ("AM", "PM"):
            out.append("PM" if v.hour >= 12 else "AM")
        else:
            out.append(tok)
    return "".join(out)


def oracle_parse(text: str, fmt: str) -> str:
    """TO_DATE(text, fmt) for the elements YYYY MM DD HH24 MI SS and
    separators: an Oracle DATE (no time zone; a wall-clock time that a
    daylight-saving change skips is still a valid DATE)."""
    parts = {"YYYY": 1, "MM": 1, "DD": 1, "HH24": 0, "MI": 0, "SS": 0}
    pos = tpos = 0
    while pos < len(fmt):
        m = _FMT_TOKENS.match(fmt, pos)
        if not m:
            raise SuiteQLError(ORA_01821)
        tok, up = m.group(0), m.group(0).upper()
        pos = m.end()
        if tok.startswith('"') or not tok[0].isalpha():
            lit = tok[1:-1] if tok.startswith('"') else tok
            if text[tpos:tpos + len(lit)] != lit:
                raise SuiteQLError("ORA-01861: literal does not match format string")
            tpos += len(lit)
            continue
        if up not in parts:
            raise SuiteQLError(ORA_01821)
        width = 4 if up == "YYYY" else 2
        digits = text[tpos:tpos + width]
        if len(digits) != width or not digits.isdigit():
            raise SuiteQLError("ORA-01861: literal does not match format string")
        parts[up] = int(digits)
        tpos += width
    if tpos != len(text):
        raise SuiteQLError("ORA-01830: date format picture ends before converting entire input string")
    try:
        v = dt.datetime(parts["YYYY"], parts["MM"], parts["DD"], parts["HH24"], parts["MI"],
                        parts["SS"])
    except ValueError:
        raise SuiteQLError("ORA-01839: date not valid for month specified") from None
    return TAG_DATE + v.strftime("%Y-%m-%d %H:%M:%S")


def display_date(value: str, date_format: str) -> str:
    """A DATE as NetSuite shows it without TO_CHAR (the date part, in the
    user's date format)."""
    v = untag(value)
    text = date_format
    for key, val in (("YYYY", "%04d" % v.year), ("MM", "%02d" % v.month),
                     ("DD", "%02d" % v.day), ("M", str(v.month)), ("D", str(v.day))):
        text = text.replace(key, "\x00%s\x00" % val) if key in text else text
    return text.replace("\x00", "")


def render(v: Any, date_format: str) -> str:
    if isinstance(v, str):
        return display_date(v, date_format) if v.startswith(TAG_DATE) else v
    if isinstance(v, float):
        return decimal_text(Decimal(repr(v)))
    return str(v)


# -- the application -------------------------------------------------------

class NetSuiteApp(SandboxApp):
    name = "netsuite"
    server_header = "sandbox-netsuite"
    json_content_type = "application/json; charset=UTF-8"
    config_defaults = {
        "account_id": DEFAULT_ACCOUNT_ID,
        "consumer_key": DEFAULT_CONSUMER_KEY,
        "consumer_secret": DEFAULT_CONSUMER_SECRET,
        "token_id": DEFAULT_TOKEN_ID,
        "token_secret": DEFAULT_TOKEN_SECRET,
        "bearer_tokens": [DEFAULT_BEARER],
        "timestamp_tolerance": 300,
        "concurrency_limit": 5,
        "processing_delay": 0.0,
        "date_format": "M/D/YYYY",
        "time_zone": DEFAULT_TIME_ZONE,
        "shuffle_unordered": True,
    }
    config_validators = {
        "time_zone": lambda v: v in zoneinfo.available_timezones() or v == "UTC",
        "concurrency_limit": lambda v: v >= 1,
        "processing_delay": lambda v: 0 <= v <= 30,
    }

    def __init__(self, seed: int = 42, orders: int = 60, time_zone: str = DEFAULT_TIME_ZONE):
        if time_zone != "UTC" and time_zone not in zoneinfo.available_timezones():
            raise ValueError(f"unknown time zone {time_zone!r} (an IANA name is expected)")
        self.config_defaults = dict(type(self).config_defaults, time_zone=time_zone)
        self.ds = PurchasingDataset(seed=seed, orders=orders)
        self.image = self._build()
        self._images: collections.OrderedDict = collections.OrderedDict()   # per time zone
        self._results: collections.OrderedDict = collections.OrderedDict()  # per query
        self._lock = threading.Lock()
        self._active = 0
        self._nonces: dict = {}
        self.login_audit: collections.deque = collections.deque(maxlen=1000)
        # OAuth 2.0 authorization code grant: an integration record with a
        # redirect URI and the rest_webservices scope; refresh tokens are
        # not replaced on use and expire 7 days after the authorization;
        # access tokens live 60 minutes
        self.oauth_tokens: dict[str, float] = {}    # access token -> expiry
        self.oauth = AuthorizationServer(
            client_id=OAUTH2_CLIENT_ID, client_secret=OAUTH2_CLIENT_SECRET,
            scopes=["rest_webservices", "restlets", "suite_analytics"],
            redirect_uris=[OAUTH2_REDIRECT_URI], rotation="none", refresh_ttl=7 * 86400,
            access_ttl=3600, error=lambda req, status, err, text: Response.json(
                {"error": err}, status, "application/json;charset=utf-8"),
            issue_access_token=self._issue_access_token)

    # -- data ---------------------------------------------------------------

    @staticmethod
    def vendor_id(index: int) -> int:
        return 300 + 3 * index

    @staticmethod
    def item_id(index: int) -> int:
        return 800 + 2 * index

    @staticmethod
    def order_id(index: int) -> int:
        return 5000 + 3 * index

    def _build(self) -> bytes:
        db = sqlite3.connect(":memory:")
        db.executescript(SCHEMA)
        cur_id = {sym: i for i, _n, sym in CURRENCIES}
        cur_id[""] = cur_id[self.ds.buyer.currency]
        db.executemany("INSERT INTO currency VALUES (?, ?, ?, ?)",
                       [(i, n, s, "T" if i == 1 else "F") for i, n, s in CURRENCIES])
        db.executemany("INSERT INTO subsidiary VALUES (?, ?, ?)", SUBSIDIARIES)
        uoms = sorted({it.uom for it in self.ds.items if it.uom})
        uom_id = {u: 10 + k for k, u in enumerate(uoms)}
        db.executemany("INSERT INTO unitstypeuom VALUES (?, ?, ?)",
                       [(uom_id[u], u, u) for u in uoms])
        none = lambda s: s or None  # noqa: E731 - NetSuite has no empty strings
        for v in self.ds.vendors:
            db.execute("INSERT INTO vendor VALUES (?,?,?,?,?,?,?,?,?,?)", (
                self.vendor_id(v.index), "V%05d" % v.seq, none(v.name), none(v.email),
                none(v.phone), cur_id[v.currency], 1, "T" if v.blocked == "all" else "F",
                tag_datetime(v.created_at), tag_datetime(v.updated_at)))
        for it in self.ds.items:
            db.execute("INSERT INTO item VALUES (?,?,?,?,?,?,?,?,?)", (
                self.item_id(it.index), it.code, none(it.name), ITEM_TYPES[it.type],
                uom_id.get(it.uom), decimal_text(it.unit_cost), "T" if it.blocked else "F",
                tag_datetime(it.created_at), tag_datetime(it.updated_at)))
        for o in self.ds.iter_orders():
            tid = self.order_id(o.index)
            letters = PO_STATUS[o.status]
            db.execute('INSERT INTO "transaction" VALUES (?,?,?,?,?,?,?,?,?,?,?,?)', (
                tid, "PO%d" % (1000 + o.seq), "PurchOrd", tag_date(o.order_date),
                self.vendor_id(o.vendor), letters[o.index % len(letters)],
                decimal_text(o.total_incl_tax), cur_id[o.currency], 1, none(o.purchaser),
                tag_datetime(o.created_at), tag_datetime(o.updated_at)))
            db.execute("INSERT INTO transactionline VALUES (0,?,0,'T',NULL,NULL,NULL,NULL,?,NULL,NULL)",
                       (tid, decimal_text(o.total_incl_tax)))
            for ln in o.lines:
                db.execute("INSERT INTO transactionline VALUES (?,?,?,'F',?,?,?,?,?,?,?)", (
                    2 * ln.line_no - 1, tid, ln.line_no,
                    self.item_id(ln.item) if ln.item is not None else None,
                    none(ln.description), decimal_text(ln.quantity),
                    decimal_text(ln.unit_cost), decimal_text(ln.amount),
                    uom_id.get(ln.uom) if ln.uom else None, decimal_text(ln.received_quantity)))
            if o.index % 4 == 1:
                # a vendor bill for the order: other transaction types share the tables
                bid = tid + 1
                db.execute('INSERT INTO "transaction" VALUES (?,?,?,?,?,?,?,?,?,?,?,?)', (
                    bid, "BILL%d" % (1000 + o.seq), "VendBill", tag_date(o.posting_date),
                    self.vendor_id(o.vendor), "A", decimal_text(o.total_incl_tax),
                    cur_id[o.currency], 1, None, tag_datetime(o.created_at),
                    tag_datetime(o.updated_at)))
                db.execute("INSERT INTO transactionline VALUES (0,?,0,'T',NULL,NULL,NULL,NULL,?,NULL,NULL)",
                           (bid, decimal_text(o.total_incl_tax)))
                db.execute("INSERT INTO transactionline VALUES (1,?,1,'F',NULL,'bill line',"
                           "'1','1','1',NULL,NULL)", (bid,))
        for index, instant in DST_ORDERS.items():
            t = tag_datetime(dt.datetime.fromisoformat(instant.replace("Z", "+00:00")))
            db.execute('UPDATE "transaction" SET createddate = ?, lastmodifieddate = ? '
                       "WHERE id = ?", (t, t, self.order_id(index)))
        db.commit()
        image = db.serialize()
        db.close()
        return image

    def _query_image(self, tz: dt.tzinfo) -> bytes:
        """The tables as a user in time zone tz queries them: every instant
        an Oracle DATE holding its wall-clock time in tz (made once per zone)."""
        key = str(tz)
        with self._lock:
            if key in self._images:
                self._images.move_to_end(key)
                return self._images[key]
        db = sqlite3.connect(":memory:")
        db.deserialize(self.image)
        db.create_function("NS_WALL", 1, lambda v: wall_clock(v, tz))
        for table, cols in INSTANT_COLUMNS.items():
            db.execute('UPDATE "%s" SET %s' % (table, ", ".join(f"{c} = NS_WALL({c})" for c in cols)))
        db.commit()
        image = db.serialize()
        db.close()
        with self._lock:
            self._images[key] = image
            while len(self._images) > 3:
                self._images.popitem(last=False)
        return image

    def _db(self, tz: dt.tzinfo, errors: list) -> sqlite3.Connection:
        """A connection to the tables as the token's user sees them; errors
        collects the SuiteQLError a function raised (SQLite only reports
        "user-defined function raised exception")."""
        db = sqlite3.connect(":memory:", check_same_thread=False)
        db.deserialize(self._query_image(tz))
        db.execute("PRAGMA case_sensitive_like = ON")     # Oracle's LIKE respects case

        def reporting(fn):
            def call(*args):
                try:
                    return fn(*args)
                except SuiteQLError as e:
                    errors.append(e)
                    raise
            return call
        lookups = {
            "entity": ("SELECT companyname FROM vendor WHERE id = ?",),
            "currency": ("SELECT name FROM currency WHERE id = ?",),
            "subsidiary": ("SELECT name FROM subsidiary WHERE id = ?",),
            "item": ("SELECT itemid FROM item WHERE id = ?",),
            "units": ("SELECT unitname FROM unitstypeuom WHERE internalid = ?",),
            "purchaseunit": ("SELECT unitname FROM unitstypeuom WHERE internalid = ?",),
        }

        def df(column: str, value: Any) -> Any:
            if value is None:
                return None
            if column == "status":
                return PO_STATUS_LABEL.get(value, value)
            if column in lookups:
                row = db.execute(lookups[column][0], (value,)).fetchone()
                return row[0] if row else None
            return render(value, "M/D/YYYY")

        def to_char(value: Any, fmt: Any = None) -> Any:
            if value is None:
                return None
            if isinstance(value, str) and value.startswith(TAG_DATE):
                if fmt is None:
                    return display_date(value, self.config["date_format"])
                return oracle_format(value, str(fmt))
            return render(value, "M/D/YYYY")

        def to_date(text: Any, fmt: Any) -> Any:
            if text is None:
                return None
            return oracle_parse(str(text), str(fmt))

        db.create_function("NS_DF", 2, reporting(df))
        db.create_function("TO_CHAR", 2, reporting(to_char))
        db.create_function("TO_CHAR", 1, reporting(to_char))
        db.create_function("TO_DATE", 2, reporting(to_date))
        return db

    # -- SuiteQL --------------------------------------------------------------

    @staticmethod
    def translate(q: str) -> str:
        """SuiteQL to SQLite: BUILTIN.DF(x.col) to NS_DF('col', x.col), and the
        reserved word transaction quoted; string literals are left alone."""
        parts = re.split(r"('(?:[^']|'')*')", q)
        for k in range(0, len(parts), 2):
            p = parts[k]
            if "'" in p:
                raise SuiteQLError("unterminated string literal")
            p = re.sub(r"BUILTIN\.DF\(\s*((?:[A-Za-z_]\w*\.)?([A-Za-z_]\w*))\s*\)",
                       lambda m: "NS_DF('%s', %s)" % (m.group(2).lower(), m.group(1)), p,
                       flags=re.IGNORECASE)
            if re.search(r"BUILTIN\.", p, re.IGNORECASE):
                raise SuiteQLError("unsupported BUILTIN function")
            if ";" in p:
                raise SuiteQLError("only one SELECT statement is allowed")
            p = re.sub(r'(?<![\w"])transaction(?![\w"])', '"transaction"', p, flags=re.IGNORECASE)
            parts[k] = p
        sql = "".join(parts)
        if not re.match(r"\s*SELECT\b", sql, re.IGNORECASE):
            raise SuiteQLError("only SELECT statements are allowed")
        return sql

    def run_query(self, q: str, params: list) -> tuple[list[str], list[tuple]]:
        """The query's result set: at most MAX_RESULTS rows (NetSuite serves
        no more of one query, however it is paged).  Results of ordered
        queries are kept (the data never changes), so paging through a large
        result runs the query once."""
        tz = self.tz()
        body = re.sub(r"'(?:[^']|'')*'", "''", q)
        ordered = re.search(r"\bORDER\s+BY\b", body, re.IGNORECASE) is not None
        key = (q, tuple(params), str(tz), self.config["date_format"])
        with self._lock:
            hit = self._results.get(key)
            if hit is not None:
                self._results.move_to_end(key)
        if hit is not None:
            names, rows = hit
        else:
            errors: list = []
            db = self._db(tz, errors)
            try:
                cur = db.execute(self.translate(q), params)
                names = [d[0].lower() for d in cur.description]
                rows = cur.fetchmany(MAX_RESULTS)
            except sqlite3.Error as e:
                raise (errors[0] if errors else SuiteQLError(str(e))) from None
            finally:
                db.close()
            with self._lock:
                self._results[key] = (names, rows)
                while len(self._results) > 4:
                    self._results.popitem(last=False)
        if self.config["shuffle_unordered"] and not ordered:
            rows = list(rows)
            random.Random().shuffle(rows)   # no ORDER BY: no particular order
        return names, rows

    def tz(self) -> dt.tzinfo:
        name = self.config["time_zone"]
        return dt.timezone.utc if name == "UTC" else zoneinfo.ZoneInfo(name)

    # -- authentication -------------------------------------------------------

    def _reject(self, req: Request, why: str) -> Response:
        self.login_audit.append({"time": time.time(), "request_id": req.request_id,
                                 "reason": why})
        return ns_error(401, "INVALID_LOGIN",
                        "Invalid login attempt. For more details, see the Login Audit Trail "
                        "in the NetSuite UI at Setup > Users/Roles > User Management > "
                        "View Login Audit Trail.")

    def _issue_access_token(self, req: Request, client_id: str, scope: str, ttl: int) -> str:
        token = "ns-oauth2-" + secrets.token_urlsafe(48)
        with self._lock:
            if len(self.oauth_tokens) >= 10_000:
                self.oauth_tokens.pop(next(iter(self.oauth_tokens)))
            self.oauth_tokens[token] = time.time() + ttl
        return token

    def _revoke_access_tokens(self) -> int:
        with self._lock:
            n = len(self.oauth_tokens)
            self.oauth_tokens.clear()
        return n

    def _oauth_token(self, req: Request) -> Response:
        """POST /services/rest/auth/oauth2/v1/token: the client authenticates
        with HTTP Basic (client_id:client_secret)."""
        if req.method != "POST":
            return Response.json({"error": "invalid_request"}, 405)
        if req.basic_credentials() is None:
            return Response.json({"error": "invalid_client"}, 401)
        form = req.token_form()
        if form.get("grant_type") not in ("authorization_code", "refresh_token"):
            return Response.json({"error": "unsupported_grant_type"}, 400)
        return self.oauth.token(req, form)

    def authenticate(self, req: Request) -> Optional[Response]:
        """None if the request is authenticated, else the 401 response."""
        cfg = self.config
        auth = req.header("Authorization") or ""
        if auth.startswith("Bearer "):
            if auth[7:] in cfg["bearer_tokens"]:
                return None
            expiry = self.oauth_tokens.get(auth[7:])
            if expiry is not None and time.time() < expiry:
                return None
            return self._reject(req, "invalid bearer token")
        oauth = parse_oauth_header(auth)
        if oauth is None:
            return self._reject(req, "no OAuth or Bearer authorization")
        need = ("realm", "oauth_consumer_key", "oauth_token", "oauth_nonce", "oauth_timestamp",
                "oauth_signature_method", "oauth_signature")
        missing = [k for k in need if k not in oauth]
        if missing:
            return self._reject(req, "missing " + ", ".join(missing))
        if oauth["realm"] != cfg["account_id"]:
            return self._reject(req, "wrong realm %r (account %s)" % (oauth["realm"], cfg["account_id"]))
        if oauth["oauth_signature_method"] != "HMAC-SHA256":
            return self._reject(req, "unsupported signature method " + oauth["oauth_signature_method"])
        if oauth.get("oauth_version", "1.0") != "1.0":
            return self._reject(req, "unsupported oauth_version")
        if oauth["oauth_consumer_key"] != cfg["consumer_key"] or oauth["oauth_token"] != cfg["token_id"]:
            return self._reject(req, "unknown consumer key or token")
        try:
            ts = int(oauth["oauth_timestamp"])
        except ValueError:
            return self._reject(req, "malformed timestamp")
        now = time.time()
        if abs(now - ts) > cfg["timestamp_tolerance"]:
            return self._reject(req, "stale timestamp")
        base = signature_base_string(req.method, "http", req.host, req.raw_path, req.query, oauth)
        key = enc(cfg["consumer_secret"]) + "&" + enc(cfg["token_secret"])
        if not hmac.compare_digest(hmac_sha256(key, base), oauth["oauth_signature"]):
            return self._reject(req, "bad signature")
        nonce_key = (oauth["oauth_consumer_key"], oauth["oauth_token"], oauth["oauth_nonce"])
        with self._lock:
            horizon = now - 2 * cfg["timestamp_tolerance"]
            if len(self._nonces) > 10000:
                self._nonces = {k: t for k, t in self._nonces.items() if t > horizon}
            if nonce_key in self._nonces:
                replay = True
            else:
                replay = False
                self._nonces[nonce_key] = now
        if replay:
            return self._reject(req, "nonce already used")
        return None

    # -- requests -------------------------------------------------------------

    def handle(self, req: Request) -> Response:
        with self._lock:
            self._active += 1
            over = self._active > self.config["concurrency_limit"]
            if over:
                self._active -= 1
        if over:
            return self.error_response(req, 429)
        try:
            return self._handle(req)
        finally:
            with self._lock:
                self._active -= 1

    def _handle(self, req: Request) -> Response:
        if req.raw_path == OAUTH2_AUTHORIZE_PATH and req.method == "GET":
            return self.oauth.authorize(req)
        if req.raw_path == OAUTH2_TOKEN_PATH:
            return self._oauth_token(req)
        if req.raw_path != SUITEQL_PATH:
            return ns_error(404, "INVALID_URL" if not req.raw_path.startswith("/services/rest/")
                            else "NONEXISTENT_ID",
                            "Record type or service path not found: %s" % req.raw_path)
        denied = self.authenticate(req)
        if denied is not None:
            return denied
        if req.method != "POST":
            return ns_error(405, "INVALID_REQUEST", "The HTTP method %s is not allowed for this "
                            "resource. Use POST." % req.method)
        prefer = [p.strip().lower() for p in (req.header("Prefer") or "").split(",")]
        if "transient" not in prefer:
            return ns_error(400, "INVALID_HEADER", "Missing or invalid header: the SuiteQL "
                            "service requires the header 'Prefer: transient'.",
                            **{"o:errorHeader": "Prefer"})
        params = dict(urllib.parse.parse_qsl(req.query, keep_blank_values=True))
        try:
            limit = int(params.get("limit", str(MAX_LIMIT)))
            offset = int(params.get("offset", "0"))
        except ValueError:
            return ns_error(400, "INVALID_PARAMETER", "Invalid value for the query parameter "
                            "limit or offset: an integer is expected.")
        if not 1 <= limit <= MAX_LIMIT:
            return ns_error(400, "INVALID_PARAMETER", "Invalid value for the parameter limit: "
                            "it must be between 1 and %d." % MAX_LIMIT,
                            **{"o:errorQueryParam": "limit"})
        if offset < 0 or offset % limit:
            return ns_error(400, "INVALID_PARAMETER", "Invalid value for the parameter offset: "
                            "the offset must be a multiple of the limit.",
                            **{"o:errorQueryParam": "offset"})
        try:
            doc = req.json()
            q = doc["q"]
            bound = doc.get("params", [])
            if not isinstance(q, str) or not isinstance(bound, list) or \
                    set(doc) - {"q", "params"}:
                raise ValueError
        except (ValueError, KeyError, TypeError, AttributeError):
            return ns_error(400, "INVALID_CONTENT", "The request body must be a JSON object "
                            "with a string member q and an optional array params.",
                            **{"o:errorPath": "q"})
        delay = self.config["processing_delay"]
        if delay:
            self.server.stopping.wait(delay)
        try:
            names, rows = self.run_query(q, [str(p) if p is not None else None for p in bound])
        except SuiteQLError as e:
            return ns_error(400, "INVALID_PARAMETER", "Invalid search query. Detailed "
                            "unprocessed description follows. Search error occurred: %s" % e,
                            **{"o:errorQueryParam": "q"})
        fmt = self.config["date_format"]
        # at most 1000 pages of `limit` and at most 100,000 results of a query:
        # what lies beyond is not served; totalResults counts what can be
        rows = rows[:min(MAX_RESULTS, MAX_PAGES * limit)]
        page = rows[offset: offset + limit]
        items = []
        for row in page:
            rec: dict = {"links": []}
            for name, value in zip(names, row):
                if value is not None:
                    rec[name] = render(value, fmt)
            items.append(rec)
        base = req.base_url + SUITEQL_PATH
        links = []
        if offset > 0:
            links.append({"rel": "previous", "href": f"{base}?limit={limit}&offset={offset - limit}"})
            links.append({"rel": "first", "href": f"{base}?limit={limit}&offset=0"})
        if offset + limit < len(rows):
            links.append({"rel": "next", "href": f"{base}?limit={limit}&offset={offset + limit}"})
        last = max(0, (len(rows) - 1) // limit * limit)
        links.append({"rel": "last", "href": f"{base}?limit={limit}&offset={last}"})
        links.append({"rel": "self", "href": f"{base}?limit={limit}&offset={offset}"})
        return Response.json({"links": links, "count": len(items),
                              "hasMore": offset + limit < len(rows), "items": items,
                              "offset": offset, "totalResults": len(rows)},
                             200, "application/vnd.oracle.resource+json; type=collection")

    def error_response(self, req: Request, status: int, message: Optional[str] = None) -> Response:
        if status == 401:
            return self._reject(req, message or "fault")
        if status == 429:
            return ns_error(429, "CONCURRENCY_LIMIT_EXCEEDED",
                            message or "Concurrent request limit exceeded. Request blocked.")
        if status >= 500:
            return ns_error(status, "UNEXPECTED_ERROR", message or
                            "An unexpected error occurred. Error ID: %s" % req.request_id[:20])
        codes = {400: "INVALID_REQUEST", 403: "INSUFFICIENT_PERMISSION", 404: "NONEXISTENT_ID"}
        return ns_error(status, codes.get(status, "USER_ERROR"), message or "Request failed.")

    # -- control --------------------------------------------------------------

    def control(self, req: Request, name: str) -> Optional[Response]:
        if name.startswith("export/") and req.method == "GET":
            table = name[len("export/"):]
            if table not in TABLES:
                return Response.json({"error": f"unknown table {table}; known: {TABLES}"}, 404)
            db = sqlite3.connect(":memory:")
            db.deserialize(self.image)
            cur = db.execute('SELECT * FROM "%s" ORDER BY 1, 2' % table)
            names = [d[0] for d in cur.description]
            items = [{n: native(v) for n, v in zip(names, row)} for row in cur]
            db.close()
            return Response.json({"items": items})
        if name.startswith("oauth/"):
            return self.oauth.control(req, name, self._revoke_access_tokens)
        if name == "login_audit" and req.method == "GET":
            return Response.json({"entries": list(self.login_audit)})
        if name == "info" and req.method == "GET":
            cfg = self.config
            return Response.json({
                "account_id": cfg["account_id"], "consumer_key": cfg["consumer_key"],
                "consumer_secret": cfg["consumer_secret"], "token_id": cfg["token_id"],
                "token_secret": cfg["token_secret"], "bearer_tokens": cfg["bearer_tokens"],
                "special_orders": {"PO%d" % (1001 + i): what
                                   for i, what in self.ds.special_orders().items()}})
        return None

    def reset(self) -> None:
        self.oauth.reset()
        self._revoke_access_tokens()
        with self._lock:
            self._nonces.clear()
        self.login_audit.clear()

    def health(self) -> dict:
        return {"orders": len(self.ds), "account_id": self.config["account_id"]}


if __name__ == "__main__":
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--time-zone", default=DEFAULT_TIME_ZONE,
                        help="the time zone preference of the token's user, an IANA name "
                        "(default %s)" % DEFAULT_TIME_ZONE)
    sys.exit(main(lambda a: NetSuiteApp(a.seed, a.orders, a.time_zone), parser))

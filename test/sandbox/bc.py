#!/usr/bin/env python3
"""Microsoft Dynamics 365 Business Central API v2.0 sandbox.

This module owns the Business Central (BC) emulation used by unified_fdw's
tests: routes, native record rendering, the OData v4 ``$filter`` grammar
with BC's restrictions, server-driven paging, BC error bodies, and the
Entra ID client-credentials token endpoint.  Generic machinery (server,
request log, faults, config, dataset generator, CLI) lives in common.py.

Wire format reference: shared/reference/upstream-apis.md section 2.

Routes (``{api}`` = ``/v2.0/{tenant}/{environment}/api/v2.0`` online,
``/v2.0/{environment}/api/v2.0`` online without tenant, or
``/{serverInstance}/api/v2.0`` on-premises)::

    POST /{tenant}/oauth2/v2.0/token                      Entra client credentials,
                                                          authorization code, refresh token
    GET  /{tenant}/oauth2/v2.0/authorize                  Entra sign-in and consent (the
                                                          sandbox plays the browser; oauth_code.py)
    GET  {api}                                            service document
    GET  {api}/$metadata                                  EDMX (CSDL XML)
    GET  {api}/companies[(<id>)]
    GET  {api}/companies(<id>)/{purchaseOrders|purchaseOrderLines|vendors|items}
    GET  {api}/companies(<id>)/{set}(<id>)                single entity
    GET  {api}/companies(<id>)/{set}/$count               text/plain count
    GET  {api}/companies(<id>)/purchaseOrders(<id>)/purchaseOrderLines[(<id>)|/$count]

Control endpoints added to the common ones: ``GET /_sandbox/export/{set}
?company=<guid>``, ``POST /_sandbox/revoke``, ``GET /_sandbox/info``, and
``/_sandbox/oauth/...`` of the authorization server (oauth_code.py).

Behaviour that the reference marks UNCONFIRMED is decided here and listed
in README.md ("Assumptions").  The sandbox is read-only: writes get 405.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import collections
import datetime as dt
import functools
import hashlib
import json
import os
import re
import secrets
import sys
import threading
import time
import urllib.parse
import uuid
from array import array
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from typing import Any, Callable, Iterator, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from oauth_code import AuthorizationServer  # noqa: E402
from common import (ZERO_GUID, Buyer, PurchasingDataset,  # noqa: E402
                    BoundedCache, Request, Response, SandboxApp, ScrambledGuids, _mix64,
                    _salt64, add_common_arguments, decimal_text, json_string, main,
                    named_guid, odata_string)
from common import FilterToken as _Tok  # noqa: E402

# --------------------------------------------------------------------------
# Fixed identities
# --------------------------------------------------------------------------

COMPANY_MAIN_ID = "bb6d48b6-c7b2-4a38-9a93-ad5506407f12"
COMPANY_MAIN_NAME = "CRONUS USA, Inc."
COMPANY_SMALL_ID = "a1b2c3d4-0000-4000-8000-000000000002"
COMPANY_SMALL_NAME = "My Company"

DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"
DEFAULT_BASIC_USER = "sandbox-user"
DEFAULT_BASIC_PASSWORD = "sandbox-password"
BC_RESOURCE = "https://api.businesscentral.dynamics.com"
BC_SCOPE = BC_RESOURCE + "/.default"
# the embedding application's registration for the authorization code grant
# (a web app with a client secret and a redirect URI) and the delegated
# permission Business Central offers (Financials.ReadWrite.All)
APP_CLIENT_ID = "sandbox-app-id"
APP_CLIENT_SECRET = "sandbox-app-secret"
APP_REDIRECT_URI = "http://127.0.0.1/unified/callback"
DELEGATED_SCOPES = [BC_RESOURCE + "/Financials.ReadWrite.All", "offline_access", "openid",
                    "profile"]

MAX_PAGE_SIZE = 20000            # BC online: 20,000 entities per page
RECORD_CACHE = 8192              # rendered records kept per generated entity set
API_CONTENT_TYPE = ("application/json; odata.metadata=minimal; odata.streaming=true; "
                    "IEEE754Compatible=false; charset=utf-8")
API_CONTENT_TYPE_IEEE = API_CONTENT_TYPE.replace("IEEE754Compatible=false",
                                                 "IEEE754Compatible=true")
ERROR_CONTENT_TYPE = "application/json; charset=utf-8"
BLANK_DATE = "0001-01-01"

# --------------------------------------------------------------------------
# EDM schema of the four entity types (API v2.0 field names and order)
# --------------------------------------------------------------------------

STR, GUID, DATE, DTO = "str", "guid", "date", "dto"
DEC, INT, BOOL, ENUM = "dec", "int", "bool", "enum"
EDM_NAMES = {STR: "Edm.String", GUID: "Edm.Guid", DATE: "Edm.Date",
             DTO: "Edm.DateTimeOffset", DEC: "Edm.Decimal", INT: "Edm.Int32",
             BOOL: "Edm.Boolean"}


class EnumType:
    """A BC enum (``Microsoft.NAV.<name>``); ``members`` are the JSON values."""

    def __init__(self, name: str, members: list[str]):
        self.name = name
        self.qualified = "Microsoft.NAV." + name
        self.members = members
        self.ordinal = {m: k for k, m in enumerate(members)}
        # OData metadata spells non-identifier characters as _xHHHH_.
        self.edm_names = [re.sub(r"[^A-Za-z0-9_]", lambda m: "_x%04X_" % ord(m.group()), m)
                          for m in members]
        self.by_literal = dict(zip(members, members))
        self.by_literal.update(zip(self.edm_names, members))


ENUMS = {
    "purchaseOrderEntityBufferStatus": EnumType("purchaseOrderEntityBufferStatus",
                                                ["Draft", "In Review", "Open"]),
    "invoiceLineAggLineType": EnumType("invoiceLineAggLineType",
                                       ["Comment", "Account", "Item", "Resource", "Value",
                                        "Fixed Asset", "Charge"]),
    "vendorBlocked": EnumType("vendorBlocked", [" ", "Payment", "All"]),
    "itemType": EnumType("itemType", ["Inventory", "Service", "Non-Inventory"]),
}


class Prop:
    __slots__ = ("name", "kind", "enum")

    def __init__(self, name: str, kind: str, enum: Optional[str] = None):
        self.name = name
        self.kind = kind
        self.enum = ENUMS[enum] if enum else None

    @property
    def edm(self) -> str:
        return self.enum.qualified if self.enum else EDM_NAMES[self.kind]


class EntityType:
    def __init__(self, name: str, props: list[tuple], navigation: Optional[dict] = None):
        self.name = name                                   # e.g. purchaseOrder
        self.qualified = "Microsoft.NAV." + name
        self.props = [Prop(*p) for p in props]
        self.by_name = {p.name: p for p in self.props}
        self.navigation = navigation or {}                 # name -> entity set name


def _p(names: str, kind: str, enum: Optional[str] = None) -> list[tuple]:
    return [(n, kind, enum) for n in names.split()]


PURCHASE_ORDER = EntityType("purchaseOrder", [
    ("id", GUID), ("number", STR), ("orderDate", DATE), ("postingDate", DATE),
    ("vendorId", GUID), ("vendorNumber", STR), ("vendorName", STR), ("payToName", STR),
    ("payToVendorId", GUID), ("payToVendorNumber", STR), ("shipToName", STR),
    ("shipToContact", STR),
    *_p("buyFromAddressLine1 buyFromAddressLine2 buyFromCity buyFromCountry buyFromState "
        "buyFromPostCode payToAddressLine1 payToAddressLine2 payToCity payToCountry "
        "payToState payToPostCode shipToAddressLine1 shipToAddressLine2 shipToCity "
        "shipToCountry shipToState shipToPostCode shortcutDimension1Code "
        "shortcutDimension2Code", STR),
    ("currencyId", GUID), ("currencyCode", STR), ("pricesIncludeTax", BOOL),
    ("paymentTermsId", GUID), ("shipmentMethodId", GUID), ("purchaser", STR),
    ("requestedReceiptDate", DATE), ("discountAmount", DEC), ("discountAppliedBeforeTax", BOOL),
    ("totalAmountExcludingTax", DEC), ("totalTaxAmount", DEC), ("totalAmountIncludingTax", DEC),
    ("fullyReceived", BOOL), ("status", ENUM, "purchaseOrderEntityBufferStatus"),
    ("lastModifiedDateTime", DTO),
], navigation={"purchaseOrderLines": "purchaseOrderLines"})

PURCHASE_ORDER_LINE = EntityType("purchaseOrderLine", [
    ("id", GUID), ("documentId", GUID), ("sequence", INT), ("itemId", GUID), ("accountId", GUID),
    ("lineType", ENUM, "invoiceLineAggLineType"), ("lineObjectNumber", STR), ("description", STR),
    ("unitOfMeasureId", GUID), ("unitOfMeasureCode", STR), ("quantity", DEC),
    ("directUnitCost", DEC), ("discountAmount", DEC), ("discountPercent", DEC),
    ("discountAppliedBeforeTax", BOOL), ("amountExcludingTax", DEC), ("taxCode", STR),
    ("taxPercent", DEC), ("totalTaxAmount", DEC), ("amountIncludingTax", DEC),
    ("invoiceDiscountAllocation", DEC), ("netAmount", DEC), ("netTaxAmount", DEC),
    ("netAmountIncludingTax", DEC), ("expectedReceiptDate", DATE), ("receivedQuantity", DEC),
    ("invoicedQuantity", DEC), ("invoiceQuantity", DEC), ("receiveQuantity", DEC),
    ("itemVariantId", GUID), ("locationId", GUID),
])

VENDOR = EntityType("vendor", [
    ("id", GUID), ("number", STR), ("displayName", STR), ("addressLine1", STR),
    ("addressLine2", STR), ("city", STR), ("state", STR), ("country", STR), ("postalCode", STR),
    ("phoneNumber", STR), ("email", STR), ("website", STR), ("taxRegistrationNumber", STR),
    ("currencyId", GUID), ("currencyCode", STR), ("irs1099Code", STR), ("paymentTermsId", GUID),
    ("paymentMethodId", GUID), ("taxLiable", BOOL), ("blocked", ENUM, "vendorBlocked"),
    ("balance", DEC), ("lastModifiedDateTime", DTO),
])

ITEM = EntityType("item", [
    ("id", GUID), ("number", STR), ("displayName", STR), ("type", ENUM, "itemType"),
    ("itemCategoryId", GUID), ("itemCategoryCode", STR), ("blocked", BOOL), ("gtin", STR),
    ("inventory", DEC), ("unitPrice", DEC), ("priceIncludesTax", BOOL), ("unitCost", DEC),
    ("taxGroupId", GUID), ("taxGroupCode", STR), ("baseUnitOfMeasureId", GUID),
    ("baseUnitOfMeasureCode", STR), ("generalProductPostingGroupId", GUID),
    ("generalProductPostingGroupCode", STR), ("inventoryPostingGroupId", GUID),
    ("inventoryPostingGroupCode", STR), ("lastModifiedDateTime", DTO),
])

COMPANY = EntityType("company", [
    ("id", GUID), ("systemVersion", STR), ("timestamp", INT), ("name", STR),
    ("displayName", STR), ("businessProfileId", STR), ("systemCreatedAt", DTO),
    ("systemCreatedBy", GUID), ("systemModifiedAt", DTO), ("systemModifiedBy", GUID),
])

ENTITY_SETS = {"purchaseOrders": PURCHASE_ORDER, "purchaseOrderLines": PURCHASE_ORDER_LINE,
               "vendors": VENDOR, "items": ITEM}

# Collections BC serves only per document (an id or documentId filter needed).
DOCUMENT_LINE_SETS = {"purchaseOrderLines"}

# BC permission error text per entity set (for config "denied_entity_sets").
_TABLEDATA = {"purchaseOrders": "TableData 38 Purchase Header Read: Base Application",
              "purchaseOrderLines": "TableData 39 Purchase Line Read: Base Application",
              "vendors": "TableData 23 Vendor Read: Base Application",
              "items": "TableData 27 Item Read: Base Application"}


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------

class BcError(Exception):
    """A BC error response: ``{"error": {"code", "message"}}`` (+ CorrelationId)."""

    def __init__(self, status: int, code: str, message: str,
                 headers: Optional[list[tuple[str, str]]] = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or []


def bc_error_response(req: Request, status: int, code: str, message: str,
                      headers: Optional[list[tuple[str, str]]] = None) -> Response:
    """BC error body; the message ends with ``  CorrelationId:  <request id>.``"""
    body = {"error": {"code": code,
                      "message": f"{message}  CorrelationId:  {req.request_id}."}}
    return Response.json(body, status, ERROR_CONTENT_TYPE,
                         [("OData-Version", "4.0")] + list(headers or []))


def _syntax(message: str) -> BcError:
    # ODL parse/bind failures surface as BadRequest_NotFound in BC (see the
    # error code table in dynamics-error-codes.md: "Expression expected at
    # position ..." -> BadRequest_NotFound).
    return BcError(400, "BadRequest_NotFound", message)


def _unsupported(message: str) -> BcError:
    # Expressions ODL accepts but BC cannot turn into an AL filter.
    return BcError(400, "BadRequest", message)


# --------------------------------------------------------------------------
# Value normalisation (comparison semantics)
# --------------------------------------------------------------------------
# String comparisons are case-INSENSITIVE: BC runs on SQL Server with a
# case-insensitive collation (Latin1_General_100_CI_AS), so eq/ne/gt/lt and
# startswith/endswith/contains and $orderby all compare case-folded text here.
# This is an assumption (see README.md); it is the stricter test for a
# client, because e.g. "name ne 'acme'" then also drops 'ACME', which
# PostgreSQL would keep.  Ordering uses Python's code-point order of the
# case-folded text, not SQL Server's linguistic collation.

def _dto_key(text: str) -> str:
    """Sortable UTC key ``YYYY-MM-DDTHH:MM:SS.ffffff`` for our own Z-suffixed
    values (with or without a fraction)."""
    if len(text) == 20:                       # 2024-03-15T09:30:00Z
        return text[:19] + ".000000"
    frac = text[20:-1]
    return text[:19] + "." + (frac + "000000")[:6]


def _dto_literal_key(text: str) -> str:
    """Same key for a filter literal (any offset, any fraction length)."""
    m = re.match(r"^(.*?T\d{2}:\d{2}(?::\d{2})?)(\.\d+)?(Z|[+-]\d{2}:\d{2})$", text)
    if not m:
        raise ValueError(text)
    base, frac, zone = m.groups()
    if base.count(":") == 1:
        base += ":00"
    frac = ((frac or ".")[1:] + "000000")[:6]
    value = dt.datetime.fromisoformat(base + "." + frac + ("+00:00" if zone == "Z" else zone))
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _identity(v: Any) -> Any:
    return v


def _casefold(v: str) -> str:
    return v.casefold()


def _lower(v: str) -> str:
    return v.lower()


def value_normalizer(prop: Prop) -> Callable[[Any], Any]:
    """Record value -> comparable key, for filters and $orderby."""
    if prop.kind == STR:
        return _casefold
    if prop.kind == GUID:
        return _lower
    if prop.kind == DTO:
        return _dto_key
    if prop.kind == ENUM:
        return prop.enum.ordinal.__getitem__
    return _identity                      # date (ISO text), dec, int, bool


# --------------------------------------------------------------------------
# OData v4 $filter: tokenizer, parser, binder (BC dialect)
# --------------------------------------------------------------------------

_TOKEN_RES = [
    ("guid", re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
                        r"[0-9A-Fa-f]{12}(?![0-9A-Za-z_.\-])")),
    ("dto", re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,12})?)?"
                       r"(?:Z|[+-]\d{2}:\d{2})(?![0-9A-Za-z_.:])")),
    ("dto_nozone", re.compile(r"\d{4}-\d{2}-\d{2}T[0-9:.]+(?![0-9A-Za-z_:])")),
    ("date", re.compile(r"\d{4}-\d{2}-\d{2}(?![0-9A-Za-z_.:\-])")),
    ("num", re.compile(r"[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![0-9A-Za-z_.])")),
    ("ident", re.compile(r"[A-Za-z_$][A-Za-z0-9_]*(?:[./][A-Za-z_][A-Za-z0-9_]*)*")),
]
_CMP_OPS = {"eq", "ne", "gt", "ge", "lt", "le"}
_OP_KIND = {"eq": "Equal", "ne": "NotEqual", "gt": "GreaterThan", "ge": "GreaterThanOrEqual",
            "lt": "LessThan", "le": "LessThanOrEqual"}
_ARITH = {"add", "sub", "mul", "div", "divby", "mod", "has"}
_KEYWORDS = _CMP_OPS | _ARITH | {"and", "or", "not", "in"}
_BOOL_FUNCS = {"startswith", "endswith", "contains"}
_STR_FUNCS = {"tolower", "toupper", "substring"}
_KNOWN_ODATA_FUNCS = {"length", "indexof", "concat", "trim", "year", "month", "day", "hour",
                      "minute", "second", "fractionalseconds", "date", "time", "now",
                      "round", "floor", "ceiling", "cast", "isof", "matchesPattern",
                      "totaloffsetminutes", "maxdatetime", "mindatetime", "any", "all"}


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
            continue
        if ch in "(),":
            toks.append(_Tok(ch, ch, i, i + 1))
            i += 1
            continue
        if ch == "'":
            lit = odata_string(text, i)
            if lit is None:
                raise _syntax(f"There is an unterminated string literal at position {i} "
                              f"in '{text}'.")
            toks.append(_Tok("str", lit[0], i, lit[1]))
            i = lit[1]
            continue
        for kind, rx in _TOKEN_RES:
            m = rx.match(text, i)
            if m:
                if kind == "dto_nozone":
                    raise _syntax(f"The DateTimeOffset text '{m.group()}' should be in format "
                                  "'yyyy-mm-ddThh:mm:ss('.'s+)?(zzzzzz)?' and each field value "
                                  "is within valid range.")
                toks.append(_Tok(kind, m.group(), i, m.end()))
                i = m.end()
                break
        else:
            raise _syntax(f"Syntax error: character '{ch}' is not valid at position {i} "
                          f"in '{text}'.")
    toks.append(_Tok("end", None, n, n))
    return toks


class _Parser:
    """Recursive descent over OData v4 boolean expressions.

    Precedence (high to low): primary, ``not``, comparison / ``in``, ``and``,
    ``or``.  Nodes are tuples: ('or'|'and', a, b), ('not', a), ('cmp', op, l, r),
    ('in', l, [lits]), ('call', name, args), ('prop', name), ('lit', kind, value).
    Every node carries its position last.  ``enum_namespace`` is the prefix
    of the typed enum literals the service knows (``Namespace.Type'Member'``).
    """

    enum_namespace = "Microsoft.NAV."

    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    def _peek(self) -> _Tok:
        return self.toks[self.i]

    def _next(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def _is_word(self, t: _Tok, word: str) -> bool:
        return t.kind == "ident" and t.value == word

    def _expected(self, t: _Tok) -> BcError:
        if t.kind == "end":
            return _syntax(f"Expression expected at position {t.pos} in '{self.text}'.")
        return _syntax(f"Syntax error at position {t.end} in '{self.text}'.")

    def parse(self) -> tuple:
        if self._peek().kind == "end":
            raise _syntax(f"Expression expected at position 0 in '{self.text}'.")
        node = self._or()
        t = self._peek()
        if t.kind != "end":
            raise _syntax(f"Syntax error at position {t.end} in '{self.text}'.")
        return node

    def _or(self) -> tuple:
        node = self._and()
        while self._is_word(self._peek(), "or"):
            t = self._next()
            node = ("or", node, self._and(), t.pos)
        return node

    def _and(self) -> tuple:
        node = self._cmp()
        while self._is_word(self._peek(), "and"):
            t = self._next()
            node = ("and", node, self._cmp(), t.pos)
        return node

    def _cmp(self) -> tuple:
        left = self._unary()
        t = self._peek()
        if t.kind == "ident" and t.value in _CMP_OPS:
            self._next()
            return ("cmp", t.value, left, self._unary(), t.pos)
        if self._is_word(t, "in"):
            self._next()
            if self._next().kind != "(":
                raise _syntax(f"'(' expected at position {t.end} in '{self.text}'.")
            items = [self._primary()]
            while self._peek().kind == ",":
                self._next()
                items.append(self._primary())
            close = self._next()
            if close.kind != ")":
                raise _syntax(f"')' or ',' expected at position {close.pos} in '{self.text}'.")
            return ("in", left, items, t.pos)
        if t.kind == "ident" and t.value in _ARITH:
            raise _unsupported(f"The operator '{t.value}' is not supported in $filter.")
        return left

    def _unary(self) -> tuple:
        t = self._peek()
        if self._is_word(t, "not"):
            self._next()
            return ("not", self._unary(), t.pos)
        return self._primary()

    def _primary(self) -> tuple:
        t = self._next()
        if t.kind == "(":
            node = self._or()
            close = self._next()
            if close.kind != ")":
                raise _syntax(f"')' or operator expected at position {close.pos} "
                              f"in '{self.text}'.")
            return node
        if t.kind in ("str", "num", "date", "dto", "guid"):
            return ("lit", t.kind, t.value, t.pos)
        if t.kind == "ident":
            word = t.value
            nxt = self._peek()
            if nxt.kind == "str" and nxt.pos == t.end:           # Type'literal'
                self._next()
                if word.startswith(self.enum_namespace):
                    return ("lit", "enum", (word, nxt.value), t.pos)
                raise _syntax(f"Unrecognized literal '{word}'{nxt.value}'' at position {t.pos} "
                              f"in '{self.text}' (OData v4 has no typed '{word}' literals).")
            if word in ("true", "false"):
                return ("lit", "bool", word == "true", t.pos)
            if word == "null":
                return ("lit", "null", None, t.pos)
            if word in _KEYWORDS:
                raise self._expected(t)
            if nxt.kind == "(" and nxt.pos == t.end:             # function call
                self._next()
                args: list[tuple] = []
                if self._peek().kind != ")":
                    args.append(self._or())
                    while self._peek().kind == ",":
                        self._next()
                        args.append(self._or())
                close = self._next()
                if close.kind != ")":
                    raise _syntax(f"')' or ',' expected at position {close.pos} "
                                  f"in '{self.text}'.")
                return ("call", word, args, t.pos)
            return ("prop", word, t.pos)
        raise self._expected(t)


def _literal_edm(node: tuple) -> str:
    kind, value = node[1], node[2]
    if kind == "num":
        if re.fullmatch(r"[+-]?\d+", value):
            return "Edm.Int32" if -2**31 <= int(value) < 2**31 else "Edm.Int64"
        return "Edm.Double" if "e" in value.lower() else "Edm.Decimal"
    if kind == "enum":
        return value[0]
    return {"str": "Edm.String", "date": "Edm.Date", "dto": "Edm.DateTimeOffset",
            "guid": "Edm.Guid", "bool": "Edm.Boolean", "null": "null"}[kind]


class FilterCompiler:
    """Binds a parsed ``$filter`` to an entity type and compiles it into a
    predicate ``rec -> bool``, enforcing EDM types and BC's restrictions."""

    def __init__(self, etype: EntityType, text: str, schema_version: tuple[int, int]):
        self.etype = etype
        self.text = text
        self.nested_ok = schema_version >= (2, 1)
        self.ast = _Parser(text).parse()

    # -- entry point --------------------------------------------------------

    def compile(self) -> Callable[[dict], bool]:
        pred, _fields = self._bool(self.ast)
        return pred

    # -- helpers --------------------------------------------------------------

    def _prop(self, name: str) -> Prop:
        prop = self.etype.by_name.get(name)
        if prop is None:
            raise _syntax(f"Could not find a property named '{name}' on type "
                          f"'{self.etype.qualified}'.")
        return prop

    def _value(self, node: tuple, depth: int = 0) -> tuple[Prop, Callable[[dict], Any]]:
        """A field-based value expression -> (prop, getter returning raw value)."""
        if node[0] == "prop":
            prop = self._prop(node[1])
            name = prop.name
            return prop, itemgetter(name)
        if node[0] == "call" and node[1] in _STR_FUNCS:
            if depth > 0 and not self.nested_ok:
                raise _unsupported("Nested function calls in $filter are supported only with "
                                   "$schemaversion=2.1 or later.")
            fname, args = node[1], node[2]
            sig = {"tolower": "tolower(Edm.String Nullable=true)",
                   "toupper": "toupper(Edm.String Nullable=true)",
                   "substring": "substring(Edm.String Nullable=true, Edm.Int32); "
                                "substring(Edm.String Nullable=true, Edm.Int32, Edm.Int32)"}[fname]
            bad = _syntax(f"No function signature for the function with name '{fname}' matches "
                          f"the specified arguments. The function signatures considered are: "
                          f"{sig}.")
            if not args or not self._is_field_expr(args[0]):
                raise bad
            prop, get = self._value(args[0], depth + 1)
            if prop.kind != STR:
                raise bad
            if fname == "tolower":
                return prop, lambda r, g=get: g(r).lower()
            if fname == "toupper":
                return prop, lambda r, g=get: g(r).upper()
            ints = args[1:]
            if not 1 <= len(ints) <= 2 or any(a[0] != "lit" or a[1] != "num"
                                               or not re.fullmatch(r"\d+", a[2]) for a in ints):
                raise bad
            start = int(ints[0][2])
            if len(ints) == 2:
                end = start + int(ints[1][2])
                return prop, lambda r, g=get, s=start, e=end: g(r)[s:e]
            return prop, lambda r, g=get, s=start: g(r)[s:]
        raise _unsupported("Only a property, optionally wrapped in tolower(), toupper() or "
                           "substring(), can be compared in $filter.")

    def _is_field_expr(self, node: tuple) -> bool:
        if node[0] == "prop":
            return True
        return node[0] == "call" and node[1] in _STR_FUNCS and bool(node[2]) \
            and self._is_field_expr(node[2][0])

    def _literal(self, prop: Prop, node: tuple, op: str, left_edm: str) -> Any:
        """Check a literal against the property type; return its comparable key."""
        kind, value = node[1], node[2]
        if kind == "null":
            return None
        mismatch = _syntax(
            f"A binary operator with incompatible types was detected. Found operand types "
            f"'{left_edm}' and '{_literal_edm(node)}' for operator kind '{_OP_KIND.get(op, op)}'.")
        k = prop.kind
        if k == STR:
            if kind != "str":
                raise mismatch
            return value.casefold()
        if k == GUID:
            if kind != "guid":
                raise mismatch
            return value.lower()
        if k == DATE:
            if kind != "date":
                raise mismatch
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise _syntax(f"The Date text '{value}' is not a valid date.") from None
            return value
        if k == DTO:
            if kind != "dto":
                raise mismatch
            try:
                return _dto_literal_key(value)
            except ValueError:
                raise _syntax(f"The DateTimeOffset text '{value}' should be in format "
                              "'yyyy-mm-ddThh:mm:ss('.'s+)?(zzzzzz)?' and each field value is "
                              "within valid range.") from None
        if k in (DEC, INT):
            if kind != "num":
                raise mismatch
            try:
                return Decimal(value)
            except InvalidOperation:
                raise mismatch from None
        if k == BOOL:
            if kind != "bool":
                raise mismatch
            return value
        if k == ENUM:
            enum = prop.enum
            if kind == "enum":
                type_name, member = value
                if type_name not in (enum.qualified, "Microsoft.NAV." + enum.name):
                    raise mismatch
            elif kind == "str":
                member = value
            else:
                raise mismatch
            if member not in enum.by_literal:
                raise _syntax(f"The string '{member}' is not a valid enumeration type "
                              f"constant.")
            return enum.ordinal[enum.by_literal[member]]
        raise mismatch

    # -- boolean expressions ---------------------------------------------------

    def _bool(self, node: tuple) -> tuple[Callable[[dict], bool], set]:
        tag = node[0]
        if tag in ("and", "or"):
            lp, lf = self._bool(node[1])
            rp, rf = self._bool(node[2])
            fields = lf | rf
            if tag == "or":
                if len(fields) > 1:
                    raise _unsupported(
                        "The 'or' operator can only combine conditions on the same field; "
                        f"this filter combines {', '.join(sorted(fields))}. Use separate "
                        "requests, or filter on one field.")
                return (lambda r, a=lp, b=rp: a(r) or b(r)), fields
            return (lambda r, a=lp, b=rp: a(r) and b(r)), fields
        if tag == "not":
            child = node[1]
            if child[0] in ("prop", "lit") and not self._is_boolean_leaf(child):
                edm = self._prop(child[1]).edm if child[0] == "prop" else _literal_edm(child)
                raise _syntax("A unary operator with an incompatible type was detected. Found "
                              f"operand type '{edm}' for operator kind 'Not'.")
            p, f = self._bool(child)
            return (lambda r, a=p: not a(r)), f
        if tag == "cmp":
            return self._cmp(node)
        if tag == "in":
            return self._in(node)
        if tag == "call":
            return self._bool_call(node)
        if tag == "prop":
            prop = self._prop(node[1])
            if prop.kind != BOOL:
                raise _syntax("The $filter expression must evaluate to a single boolean value.")
            return (lambda r, n=prop.name: r[n] is True), {prop.name}
        if tag == "lit":
            if node[1] != "bool":
                raise _syntax("The $filter expression must evaluate to a single boolean value.")
            return (lambda r, v=node[2]: v), set()
        raise _syntax(f"Syntax error in '{self.text}'.")

    def _is_boolean_leaf(self, node: tuple) -> bool:
        if node[0] == "prop":
            return self._prop(node[1]).kind == BOOL
        return node[0] == "lit" and node[1] == "bool"

    def _cmp(self, node: tuple) -> tuple[Callable[[dict], bool], set]:
        _, op, left, right, _pos = node
        if left[0] == "not":                    # (not x) eq ...: type-check x first
            self._bool(left)
        lf, rf = self._is_field_expr(left), self._is_field_expr(right)
        # Boolean function results compared with true/false.
        if left[0] == "call" and left[1] in _BOOL_FUNCS and right[0] == "lit" \
                and right[1] == "bool" and op in ("eq", "ne"):
            pred, fields = self._bool_call(left)
            want = right[2] if op == "eq" else not right[2]
            return ((lambda r, p=pred: p(r)) if want else (lambda r, p=pred: not p(r))), fields
        if lf and rf:
            raise _unsupported("Comparing two fields in $filter is not supported; compare a "
                               "field with a literal value.")
        if not lf and rf:
            raise _unsupported("The field must be on the left side of a comparison in $filter.")
        if not lf:
            if left[0] == "call" and left[1] not in _STR_FUNCS | _BOOL_FUNCS:
                self._unknown_function(left)
            if left[0] == "lit" and right[0] == "lit":
                raise _unsupported("A $filter comparison must involve a field.")
            raise _unsupported("Only a property, optionally wrapped in tolower(), toupper() or "
                               "substring(), can be compared in $filter.")
        if right[0] == "call" and right[1] not in _STR_FUNCS | _BOOL_FUNCS:
            self._unknown_function(right)
        if right[0] != "lit":
            raise _unsupported("The right side of a comparison in $filter must be a literal.")
        prop, get = self._value(left)
        left_edm = "Edm.String" if left[0] == "call" else prop.edm
        lit = self._literal(prop, right, op, left_edm)
        name = prop.name
        if lit is None:                         # BC has no NULL values
            const = (op == "ne")
            return (lambda r, c=const: c), {name}
        norm = value_normalizer(prop)
        plain = left[0] == "prop"
        if plain:
            if prop.kind in (DEC, INT, BOOL, DATE):
                val = itemgetter(name)
            else:
                val = lambda r, n=name, f=norm: f(r[n])  # noqa: E731
        else:
            val = lambda r, g=get: g(r).casefold()  # noqa: E731 (string functions)
        if op == "eq":
            pred = lambda r, v=val, x=lit: v(r) == x  # noqa: E731
        elif op == "ne":
            pred = lambda r, v=val, x=lit: v(r) != x  # noqa: E731
        elif op == "gt":
            pred = lambda r, v=val, x=lit: v(r) > x  # noqa: E731
        elif op == "ge":
            pred = lambda r, v=val, x=lit: v(r) >= x  # noqa: E731
        elif op == "lt":
            pred = lambda r, v=val, x=lit: v(r) < x  # noqa: E731
        else:
            pred = lambda r, v=val, x=lit: v(r) <= x  # noqa: E731
        return pred, {name}

    def _in(self, node: tuple) -> tuple[Callable[[dict], bool], set]:
        _, left, items, _pos = node
        # "Note: This only works in $schemaversion=2.1." (use-filter-expressions-
        # in-odata-uris, "In a list of values")
        if not self.nested_ok:
            raise _unsupported("The 'in' operator in $filter is supported only with "
                               "$schemaversion=2.1 or later.")
        if not self._is_field_expr(left):
            raise _unsupported("The left side of 'in' must be a property.")
        prop, get = self._value(left)
        left_edm = "Edm.String" if left[0] == "call" else prop.edm
        values = set()
        for item in items:
            if item[0] != "lit":
                raise _unsupported("The list of 'in' must contain literal values only.")
            lit = self._literal(prop, item, "in", left_edm)
            if lit is not None:
                values.add(lit)
        norm = value_normalizer(prop)
        if left[0] == "prop":
            pred = lambda r, n=prop.name, f=norm, s=frozenset(values): f(r[n]) in s  # noqa: E731
        else:
            pred = lambda r, g=get, s=frozenset(values): g(r).casefold() in s  # noqa: E731
        return pred, {prop.name}

    def _unknown_function(self, node: tuple) -> None:
        name = node[1]
        if name in _KNOWN_ODATA_FUNCS:
            raise _unsupported(f"The function '{name}' is not supported in $filter.")
        raise _syntax(f"An unknown function with name '{name}' was found. This may also be a "
                      "function import or a key lookup on a navigation property, which is not "
                      "allowed.")

    def _bool_call(self, node: tuple) -> tuple[Callable[[dict], bool], set]:
        _, name, args, _pos = node
        if name not in _BOOL_FUNCS:
            if name in _STR_FUNCS:
                raise _syntax("The $filter expression must evaluate to a single boolean value.")
            self._unknown_function(node)
        bad = _syntax(f"No function signature for the function with name '{name}' matches the "
                      f"specified arguments. The function signatures considered are: "
                      f"{name}(Edm.String Nullable=true, Edm.String Nullable=true).")
        if len(args) != 2:
            raise bad
        subject, needle = args
        if not self._is_field_expr(subject):
            if needle[0] == "prop" or self._is_field_expr(needle):
                raise _unsupported(f"The field must be the first argument of {name}() in $filter.")
            raise bad
        prop, get = self._value(subject, depth=1 if subject[0] == "call" else 0)
        if prop.kind != STR or needle[0] != "lit" or needle[1] != "str":
            if needle[0] == "lit" and needle[1] == "null":
                return (lambda r: False), {prop.name}
            raise bad
        lit = needle[2].casefold()
        if subject[0] == "prop":
            val = lambda r, n=prop.name: r[n].casefold()  # noqa: E731
        else:
            val = lambda r, g=get: g(r).casefold()  # noqa: E731
        if name == "startswith":
            pred = lambda r, v=val, x=lit: v(r).startswith(x)  # noqa: E731
        elif name == "endswith":
            pred = lambda r, v=val, x=lit: v(r).endswith(x)  # noqa: E731
        else:
            pred = lambda r, v=val, x=lit: x in v(r)  # noqa: E731
        return pred, {prop.name}

    # -- the conjuncts a line collection needs ---------------------------------

    def conjuncts(self) -> list[tuple[tuple, set, Callable[[dict], bool]]]:
        """The top-level AND-ed conditions as (node, fields, predicate).  BC's
        API pages see a condition on one field as that field's AL filter
        (``GetFilter``), which document-line pages insist on (see
        ``BcApp._line_scope``)."""
        out: list[tuple[tuple, set, Callable[[dict], bool]]] = []

        def walk(node: tuple) -> None:
            if node[0] == "and":
                walk(node[1])
                walk(node[2])
            else:
                pred, fields = self._bool(node)
                out.append((node, fields, pred))

        walk(self.ast)
        return out

    # -- narrowing (index lookups for selective filters) -------------------------

    def equality_lookups(self) -> dict[str, set]:
        """For top-level AND-ed ``prop eq literal`` / ``prop in (...)`` on GUID or
        string properties: {property: set of raw literal values}.  Used only to
        narrow the candidate records; the full predicate is still applied."""
        out: dict[str, set] = {}

        def walk(node: tuple) -> None:
            if node[0] == "and":
                walk(node[1])
                walk(node[2])
            elif node[0] == "cmp" and node[1] == "eq" and node[2][0] == "prop" \
                    and node[3][0] == "lit" and node[3][1] in ("guid", "str"):
                vals = {node[3][2]}
                out[node[2][1]] = out[node[2][1]] & vals if node[2][1] in out else vals
            elif node[0] == "in" and node[1][0] == "prop" \
                    and all(i[0] == "lit" and i[1] in ("guid", "str") for i in node[2]):
                vals = {i[2] for i in node[2]}
                out[node[1][1]] = out[node[1][1]] & vals if node[1][1] in out else vals

        walk(self.ast)
        return out


# --------------------------------------------------------------------------
# Serialization (code-generated per entity type / $select / IEEE754 mode)
# --------------------------------------------------------------------------

_SERIALIZERS: dict[tuple, Callable[[dict], str]] = {}
_SER_LOCK = threading.Lock()


def _quoted_decimal(d: Decimal) -> str:
    return '"' + decimal_text(d) + '"'


def serializer(etype: EntityType, fields: Optional[tuple[str, ...]],
               ieee754: bool = False) -> Callable[[dict], str]:
    """Return ``f(record) -> JSON object text`` with ``@odata.etag`` first,
    then ``fields`` (default: all properties) in schema order.  Decimals are
    exact JSON numbers (or strings when IEEE754Compatible=true)."""
    key = (etype.name, fields, ieee754)
    fn = _SERIALIZERS.get(key)
    if fn is not None:
        return fn
    props = etype.props if fields is None else [etype.by_name[f] for f in fields]
    parts = []
    sep = ","                       # every property follows @odata.etag
    for p in props:
        k = json.dumps(p.name)
        acc = f"r[{k}]"
        if p.kind in (GUID, DATE, DTO):
            parts.append(repr(f'{sep}{k}:"') + f" + {acc} + " + repr('"'))
        elif p.kind in (STR, ENUM):
            parts.append(repr(f"{sep}{k}:") + f" + S({acc})")
        elif p.kind == DEC:
            parts.append(repr(f"{sep}{k}:") + f" + D({acc})")
        elif p.kind == INT:
            parts.append(repr(f"{sep}{k}:") + (f" + '\"' + str({acc}) + '\"'"
                                                if ieee754 and etype is COMPANY else
                                                f" + str({acc})"))
        elif p.kind == BOOL:
            parts.append(repr(f"{sep}{k}:") + f" + ('true' if {acc} else 'false')")
    src = ("def ser(r):\n    return ''.join(('{\"@odata.etag\":' + S(r['@odata.etag']), "
           + ", ".join(parts) + ", '}'))\n")
    env = {"S": json_string, "D": _quoted_decimal if ieee754 else decimal_text}
    exec(src, env)  # noqa: S102 - generated from our own schema only
    fn = env["ser"]
    with _SER_LOCK:
        _SERIALIZERS[key] = fn
    return fn


# --------------------------------------------------------------------------
# Rendering canonical data into BC records
# --------------------------------------------------------------------------

def _date(d: Optional[dt.date]) -> str:
    return d.isoformat() if d is not None else BLANK_DATE


def _dts(t: dt.datetime) -> str:
    """BC datetime text: UTC with Z; milliseconds only when non-zero."""
    ms = t.microsecond // 1000
    base = "%04d-%02d-%02dT%02d:%02d:%02d" % (t.year, t.month, t.day, t.hour, t.minute, t.second)
    return base + (".%03dZ" % ms if ms else "Z")


def _etag(salt: int, idx: int) -> str:
    """A BC-looking weak ETag: W/"<base64 of '<len>;<digits>;00;'>" (the
    record's row version; constant because the sandbox data never changes)."""
    digits = str(_mix64(salt ^ (idx * 0x9E3779B1)) % 10**19 + 10**19)
    inner = base64.b64encode(f"'20;{digits};00;'".encode()).decode()
    return f'W/"{inner}"'


_BLOCKED = {"none": " ", "payment": "Payment", "all": "All"}
_ITEM_TYPES = {"inventory": "Inventory", "service": "Service", "non_inventory": "Non-Inventory"}
_LINE_TYPES = {"item": "Item", "comment": "Comment", "account": "Account"}
_PO_STATUS = {"draft": "Draft", "pending_approval": "In Review", "open": "Open",
              "partially_received": "Open", "received": "Open", "closed": "Open",
              "rejected": "Draft", "cancelled": "Draft"}
_D0 = Decimal(0)


@functools.lru_cache(maxsize=4096)
def _named(kind: str, code: str) -> str:
    """GUID of a related setup record (currency, unit of measure...); the
    all-zero GUID when the code is blank, as BC does."""
    return named_guid("bc", kind, code) if code else ZERO_GUID


class EntitySet:
    """One company's entity set: ``size`` records addressed by index, kept in
    id order through ``rank``/``index`` (see common.ScrambledGuids).

    ``record(idx)`` returns the native record dict (shared, never mutate it);
    rendered records of generated sets are kept in an LRU of ``cache`` entries.
    """

    def __init__(self, name: str, etype: EntityType, size: int,
                 render: Callable[[int], dict], guids: Optional[ScrambledGuids] = None,
                 static_ids: Optional[list[str]] = None, cache: int = 0):
        self.name = name
        self.etype = etype
        self.size = size
        self._render = render
        self._guids = guids
        self._static = static_ids             # sorted ids when there are no ScrambledGuids
        if cache:
            self._cache = BoundedCache(cache)
            self.record = self._cached_record
        else:
            self.record = render

    def _cached_record(self, idx: int) -> dict:
        rec = self._cache.get(idx)
        if rec is None:
            rec = self._render(idx)
            self._cache.put(idx, rec)
        return rec

    def rank(self, idx: int) -> int:
        return self._guids.rank(idx) if self._guids else idx

    def index(self, rank: int) -> int:
        return self._guids.index(rank) if self._guids else rank

    def lookup(self, guid: str) -> Optional[int]:
        g = guid.lower()
        if self._guids:
            return self._guids.lookup(g)
        try:
            return self._static.index(g)
        except ValueError:
            return None

    def resume_rank(self, last_id: str) -> int:
        """First rank whose id sorts after ``last_id``."""
        if self._guids:
            return self._guids.rank_after_guid(last_id)
        return bisect.bisect_right(self._static, last_id.lower())


class Company:
    """A BC company: renders a PurchasingDataset into the four entity sets."""

    def __init__(self, company_id: str, name: str, display_name: str,
                 dataset: PurchasingDataset, lcy_code: str = ""):
        self.id = company_id
        self.name = name
        self.display_name = display_name
        self.ds = dataset
        self.lcy_code = lcy_code
        salt = f"{company_id}:{dataset.seed}"
        self.vendor_guids = ScrambledGuids(salt + ":vendors", len(dataset.vendors))
        self.item_guids = ScrambledGuids(salt + ":items", len(dataset.items))
        self.order_guids = ScrambledGuids(salt + ":orders", dataset.n_orders)
        self._line_guids: Optional[ScrambledGuids] = None
        self._salt = salt
        self._etag_salts = {k: _salt64("etag", salt, k) for k in ("v", "i", "o", "l")}
        self.vendor_records = [self._render_vendor(v) for v in dataset.vendors]
        self.item_records = [self._render_item(it) for it in dataset.items]
        self._order_blocks()
        self.sets = {
            "purchaseOrders": EntitySet("purchaseOrders", PURCHASE_ORDER, dataset.n_orders,
                                        self.order_record, self.order_guids,
                                        cache=RECORD_CACHE),
            "vendors": EntitySet("vendors", VENDOR, len(dataset.vendors),
                                 self.vendor_records.__getitem__, self.vendor_guids),
            "items": EntitySet("items", ITEM, len(dataset.items),
                               self.item_records.__getitem__, self.item_guids),
        }

    # Lines are created lazily: the line count needs the line offsets.
    @property
    def line_guids(self) -> ScrambledGuids:
        if self._line_guids is None:
            self._line_guids = ScrambledGuids(self._salt + ":lines", self.ds.total_lines)
        return self._line_guids

    def entity_set(self, name: str) -> EntitySet:
        if name == "purchaseOrderLines" and name not in self.sets:
            self.sets[name] = EntitySet("purchaseOrderLines", PURCHASE_ORDER_LINE,
                                        self.ds.total_lines, self.line_record, self.line_guids,
                                        cache=RECORD_CACHE)
        return self.sets[name]

    def order_number(self, seq: int) -> str:
        return str(106000 + seq)

    def order_index_of_number(self, number: str) -> Optional[int]:
        if not number.isdigit():
            return None
        i = int(number) - 106001
        return i if 0 <= i < self.ds.n_orders and self.order_number(i + 1) == number else None

    def lines_of_order(self, i: int) -> range:
        offs = self.ds.line_offsets
        return range(offs[i], offs[i + 1])

    # -- renderers ---------------------------------------------------------

    def _currency(self, code: str) -> tuple[str, str]:
        if not code:
            return ZERO_GUID, self.lcy_code
        return _named("currency", code), code

    def _render_vendor(self, v: Any) -> dict:
        cur_id, cur_code = self._currency(v.currency)
        return {
            "@odata.etag": _etag(self._etag_salts["v"], v.index),
            "id": self.vendor_guids.guid(v.index),
            "number": str(v.seq * 10000),
            "displayName": v.name,
            "addressLine1": v.address1, "addressLine2": v.address2, "city": v.city,
            "state": v.state, "country": v.country, "postalCode": v.postal_code,
            "phoneNumber": v.phone, "email": v.email, "website": v.website,
            "taxRegistrationNumber": v.tax_registration,
            "currencyId": cur_id, "currencyCode": cur_code,
            "irs1099Code": "MISC-07" if v.index % 11 == 4 else "",
            "paymentTermsId": _named("paymentTerms", v.payment_terms),
            "paymentMethodId": _named("paymentMethod", v.payment_method),
            "taxLiable": v.tax_liable,
            "blocked": _BLOCKED[v.blocked],
            "balance": v.balance,
            "lastModifiedDateTime": _dts(v.updated_at),
        }

    def _render_item(self, it: Any) -> dict:
        inventory_type = it.type == "inventory"
        return {
            "@odata.etag": _etag(self._etag_salts["i"], it.index),
            "id": self.item_guids.guid(it.index),
            "number": it.code,
            "displayName": it.name,
            "type": _ITEM_TYPES[it.type],
            "itemCategoryId": _named("itemCategory", it.category),
            "itemCategoryCode": it.category,
            "blocked": it.blocked,
            "gtin": it.gtin,
            "inventory": it.inventory,
            "unitPrice": it.unit_price,
            "priceIncludesTax": False,
            "unitCost": it.unit_cost,
            "taxGroupId": _named("taxGroup", "" if it.index % 5 == 0 else "TAXABLE"),
            "taxGroupCode": "" if it.index % 5 == 0 else "TAXABLE",
            "baseUnitOfMeasureId": _named("unitOfMeasure", it.uom),
            "baseUnitOfMeasureCode": it.uom,
            "generalProductPostingGroupId": _named(
                "genProdPostingGroup", "SERVICES" if it.type == "service" else "RETAIL"),
            "generalProductPostingGroupCode": "SERVICES" if it.type == "service" else "RETAIL",
            "inventoryPostingGroupId": _named("invPostingGroup",
                                              "RESALE" if inventory_type else ""),
            "inventoryPostingGroupCode": "RESALE" if inventory_type else "",
            "lastModifiedDateTime": _dts(it.updated_at),
        }

    def _order_blocks(self) -> None:
        """Precompute the vendor-derived parts of purchase order records."""
        self._buy_from = []
        self._pay_to = []
        for v, vr in zip(self.ds.vendors, self.vendor_records):
            self._buy_from.append({
                "vendorId": vr["id"], "vendorNumber": vr["number"], "vendorName": v.name,
                "buyFromAddressLine1": v.address1, "buyFromAddressLine2": v.address2,
                "buyFromCity": v.city, "buyFromCountry": v.country, "buyFromState": v.state,
                "buyFromPostCode": v.postal_code, "paymentTermsId": vr["paymentTermsId"]})
            self._pay_to.append({
                "payToName": v.name, "payToVendorId": vr["id"], "payToVendorNumber": vr["number"],
                "payToAddressLine1": v.address1, "payToAddressLine2": v.address2,
                "payToCity": v.city, "payToCountry": v.country, "payToState": v.state,
                "payToPostCode": v.postal_code})
        b = self.ds.buyer
        self._ship_to = {
            True: {"shipToAddressLine1": b.address1, "shipToAddressLine2": "",
                   "shipToCity": b.city, "shipToCountry": b.country, "shipToState": b.state,
                   "shipToPostCode": b.postal_code},
            False: {"shipToAddressLine1": "", "shipToAddressLine2": "", "shipToCity": "",
                    "shipToCountry": "", "shipToState": "", "shipToPostCode": ""}}
        self._currencies = {code: self._currency(code)
                            for code in {v.currency for v in self.ds.vendors}}

    def order_record(self, i: int) -> dict:
        o = self.ds.order(i)
        cur_id, cur_code = self._currencies[o.currency]
        rec = {
            "@odata.etag": _etag(self._etag_salts["o"], i),
            "id": self.order_guids.guid(i),
            "number": str(106000 + o.seq),
            "orderDate": o.order_date.isoformat(),
            "postingDate": o.posting_date.isoformat(),
            "shipToName": o.ship_to_name, "shipToContact": o.ship_to_contact,
            "shortcutDimension1Code": o.dimension1, "shortcutDimension2Code": o.dimension2,
            "currencyId": cur_id, "currencyCode": cur_code,
            "pricesIncludeTax": o.prices_include_tax,
            "shipmentMethodId": ZERO_GUID if o.seq % 4 else _named("shipmentMethod", "DHL"),
            "purchaser": o.purchaser,
            "requestedReceiptDate": _date(o.requested_receipt_date),
            "discountAmount": o.invoice_discount,
            "discountAppliedBeforeTax": True,
            "totalAmountExcludingTax": o.total_excl_tax,
            "totalTaxAmount": o.total_tax,
            "totalAmountIncludingTax": o.total_incl_tax,
            "fullyReceived": o.status in ("received", "closed"),
            "status": _PO_STATUS[o.status],
            "lastModifiedDateTime": _dts(o.updated_at),
        }
        rec.update(self._buy_from[o.vendor])
        rec.update(self._pay_to[o.pay_to_vendor])
        rec.update(self._ship_to[bool(o.ship_to_name)])
        return rec

    def line_record(self, j: int) -> dict:
        i, k = self.ds.locate_line(j)
        o = self.ds.order(i)
        ln = o.lines[k]
        item_id, number, uom_id = ZERO_GUID, "", ZERO_GUID
        account_id = ZERO_GUID
        if ln.kind == "item":
            ir = self.item_records[ln.item]
            item_id, number = ir["id"], ir["number"]
            uom_id = ir["baseUnitOfMeasureId"]
        elif ln.kind == "account":
            account_id, number = _named("account", ln.account), ln.account
        country = self.ds.vendors[o.vendor].country
        tax_code = "" if not ln.tax_percent else ("TAXABLE" if country == "US"
                                                  else "VAT" + decimal_text(ln.tax_percent))
        return {
            "@odata.etag": _etag(self._etag_salts["l"], j),
            "id": self.line_guids.guid(j),
            "documentId": self.order_guids.guid(i),
            "sequence": ln.line_no * 10000,
            "itemId": item_id,
            "accountId": account_id,
            "lineType": _LINE_TYPES[ln.kind],
            "lineObjectNumber": number,
            "description": ln.description,
            "unitOfMeasureId": uom_id,
            "unitOfMeasureCode": ln.uom,
            "quantity": ln.quantity,
            "directUnitCost": ln.unit_cost,
            "discountAmount": ln.discount_amount,
            "discountPercent": ln.discount_percent,
            "discountAppliedBeforeTax": True,
            "amountExcludingTax": ln.amount,
            "taxCode": tax_code,
            "taxPercent": ln.tax_percent,
            "totalTaxAmount": ln.tax_amount,
            "amountIncludingTax": ln.amount_including_tax,
            "invoiceDiscountAllocation": ln.invoice_discount_allocation,
            "netAmount": ln.net_amount,
            "netTaxAmount": ln.tax_amount,
            "netAmountIncludingTax": ln.amount_including_tax,
            "expectedReceiptDate": _date(ln.expected_receipt_date),
            "receivedQuantity": ln.received_quantity,
            "invoicedQuantity": ln.invoiced_quantity,
            "invoiceQuantity": ln.quantity - ln.invoiced_quantity,
            "receiveQuantity": ln.quantity - ln.received_quantity,
            "itemVariantId": ZERO_GUID,
            "locationId": ZERO_GUID,
        }

    def company_record(self, version: str = "24.0.16410.18056") -> dict:
        created = ("2023-01-05T10:00:00.123Z" if self.id == COMPANY_MAIN_ID
                   else "2024-02-29T23:59:59Z")
        return {
            "@odata.etag": _etag(_salt64("company", self.id), 0),
            "id": self.id, "systemVersion": version,
            "timestamp": int(hashlib.sha1(self.id.encode()).hexdigest()[:8], 16),
            "name": self.name, "displayName": self.display_name, "businessProfileId": "",
            "systemCreatedAt": created, "systemCreatedBy": ZERO_GUID,
            "systemModifiedAt": created, "systemModifiedBy": ZERO_GUID,
        }


# --------------------------------------------------------------------------
# Query options
# --------------------------------------------------------------------------

_SUPPORTED_OPTIONS = {"$filter", "$select", "$orderby", "$top", "$skip", "$count", "$expand",
                      "$schemaversion", "$format", "$skiptoken"}
_UNSUPPORTED_OPTIONS = {"$search", "$apply", "$compute", "$index", "$deltatoken", "$levels", "$id"}


class Query:
    """Parsed system query options of one request."""
    filter_text: Optional[str] = None
    predicate: Optional[Callable[[dict], bool]] = None
    lookups: dict
    select: Optional[tuple[str, ...]] = None
    orderby: Optional[list[tuple[Prop, bool]]] = None     # (prop, descending)
    orderby_text: str = ""
    top: Optional[int] = None
    skip: int = 0
    count: bool = False
    expand_lines: bool = False
    expand_select: Optional[tuple[str, ...]] = None         # $expand=lines($select=...)
    expand_predicate: Optional[Callable[[dict], bool]] = None  # $expand=lines($filter=...)
    conjuncts: list
    token: Optional[dict] = None
    schema_version: tuple[int, int] = (1, 0)

    def __init__(self) -> None:
        self.lookups = {}
        self.conjuncts = []


def parse_query(params: list[tuple[str, str]], etype: EntityType, single: bool = False) -> Query:
    q = Query()
    seen: dict[str, str] = {}
    for key, value in params:
        if not key.startswith("$"):
            continue                                 # custom query options are ignored
        if key in _UNSUPPORTED_OPTIONS:
            raise _unsupported(f"The query option '{key}' is not supported.")
        if key not in _SUPPORTED_OPTIONS:
            raise _syntax(f"The query parameter '{key}' is not supported.")
        if key in seen:
            raise _syntax(f"Query option '{key}' was specified more than once, but it must be "
                          "specified at most once.")
        seen[key] = value
    if single:
        for key in ("$filter", "$orderby", "$top", "$skip", "$count", "$skiptoken"):
            if key in seen:
                raise _unsupported(f"The query option '{key}' is not allowed on a single entity.")

    sv = seen.get("$schemaversion")
    if sv is not None:
        m = re.fullmatch(r"(\d+)\.(\d+)", sv.strip())
        if m:
            q.schema_version = (int(m.group(1)), int(m.group(2)))
        elif sv.strip().lower() in ("beta", "vnext"):
            q.schema_version = (99, 0)
        else:
            raise _unsupported(f"The value '{sv}' of $schemaversion is not valid.")
    fmt = seen.get("$format")
    if fmt is not None and fmt.split(";")[0].strip().lower() not in ("json", "application/json"):
        raise _unsupported(f"The format '{fmt}' is not supported; use json.")

    if "$filter" in seen:
        text = seen["$filter"]
        fc = FilterCompiler(etype, text, q.schema_version)
        q.filter_text = text
        q.predicate = fc.compile()
        q.lookups = fc.equality_lookups()
        q.conjuncts = fc.conjuncts()

    if "$select" in seen:
        q.select = _parse_select(seen["$select"], etype)

    if "$orderby" in seen:
        text = seen["$orderby"]
        items = []
        for part in text.split(","):
            words = part.split()
            if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
                raise _syntax(f"Syntax error in $orderby '{text}'.")
            if "(" in words[0]:
                raise _unsupported("Only properties can be used in $orderby.")
            prop = etype.by_name.get(words[0])
            if prop is None:
                raise _syntax(f"Could not find a property named '{words[0]}' on type "
                              f"'{etype.qualified}'.")
            items.append((prop, len(words) == 2 and words[1] == "desc"))
        q.orderby = items
        q.orderby_text = ",".join(f"{p.name} {'desc' if d else 'asc'}" for p, d in items)
        if len(items) == 1 and items[0][0].name == "id" and not items[0][1]:
            q.orderby = None                     # the default order already

    for opt in ("$top", "$skip"):
        if opt in seen:
            raw = seen[opt].strip()
            if not re.fullmatch(r"\d+", raw):
                raise _syntax(f"Invalid value '{seen[opt]}' for {opt} query option found. The "
                              f"{opt} query option requires a non-negative integer value.")
            setattr(q, opt[1:], int(raw))

    if "$count" in seen:
        raw = seen["$count"].strip()
        if raw not in ("true", "false"):
            raise _syntax(f"'{seen['$count']}' is not a valid count option.")
        q.count = raw == "true"

    if "$expand" in seen:
        for name, options in _split_expand(seen["$expand"]):
            if name not in etype.navigation:
                raise _syntax(f"Could not find a property named '{name}' on type "
                              f"'{etype.qualified}'.")
            target = ENTITY_SETS[etype.navigation[name]]
            for opt, value in options:
                if opt == "$select":
                    q.expand_select = _parse_select(value, target)
                elif opt == "$filter":
                    q.expand_predicate = FilterCompiler(target, value,
                                                        q.schema_version).compile()
                elif opt in _SUPPORTED_OPTIONS or opt in _UNSUPPORTED_OPTIONS:
                    raise _unsupported(f"The query option '{opt}' inside $expand is not "
                                       "supported by this sandbox.")
                else:
                    raise _syntax(f"The query parameter '{opt}' is not supported.")
            q.expand_lines = q.expand_lines or name == "purchaseOrderLines"

    if "$skiptoken" in seen:
        try:
            raw = seen["$skiptoken"]
            q.token = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
            if not isinstance(q.token, dict) or not isinstance(q.token.get("k"), str):
                raise ValueError
        except (ValueError, TypeError):
            raise _unsupported(f"The skip token value '{seen['$skiptoken']}' is not valid.") \
                from None
    return q


def _parse_select(text: str, etype: EntityType) -> Optional[tuple[str, ...]]:
    """A $select list -> property names in schema order (None for ``*``)."""
    names = [s.strip() for s in text.split(",")]
    if not names or any(not s for s in names):
        raise _syntax(f"Syntax error in $select '{text}'.")
    if "*" in names:
        return None
    chosen = []
    for s in names:
        if s not in etype.by_name:
            raise _syntax(f"Could not find a property named '{s}' on type "
                          f"'{etype.qualified}'.")
        if s not in chosen:
            chosen.append(s)
    order = {p.name: k for k, p in enumerate(etype.props)}
    return tuple(sorted(chosen, key=order.__getitem__))


def _split_expand(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """``a,b($select=x;$filter=y eq 'p;q')`` -> [(a, []), (b, [($select, x),
    ($filter, y eq 'p;q')])]: OData v4 expand items with their nested options
    (separated by ``;``, outside quoted literals and inner parentheses)."""
    items: list[tuple[str, list[tuple[str, str]]]] = []

    def split(s: str, sep: str) -> list[str]:
        parts, depth, quoted, start = [], 0, False, 0
        for i, ch in enumerate(s):
            if ch == "'":
                quoted = not quoted            # '' toggles twice: still quoted
            elif not quoted and ch == "(":
                depth += 1
            elif not quoted and ch == ")":
                depth -= 1
                if depth < 0:
                    raise _syntax(f"Syntax error in $expand '{text}'.")
            elif not quoted and depth == 0 and ch == sep:
                parts.append(s[start:i])
                start = i + 1
        if quoted or depth:
            raise _syntax(f"Syntax error in $expand '{text}'.")
        parts.append(s[start:])
        return parts

    for item in split(text, ","):
        item = item.strip()
        if not item:
            continue
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?", item, re.S)
        if not m:
            raise _syntax(f"Syntax error in $expand '{text}'.")
        options = []
        if m.group(2) is not None:
            for opt in split(m.group(2), ";"):
                name, eq, value = opt.strip().partition("=")
                if not eq or not name:
                    raise _syntax(f"Syntax error in $expand '{text}'.")
                if name in (o[0] for o in options):
                    raise _syntax(f"Query option '{name}' was specified more than once in "
                                  "$expand.")
                options.append((name.strip(), value))
        items.append((m.group(1), options))
    return items


def _encode_token(payload: dict) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# --------------------------------------------------------------------------
# Authentication: Entra ID client credentials + HTTP Basic
# --------------------------------------------------------------------------

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class TokenStore:
    """Issued access tokens: token -> (tenant, client_id, expires_at)."""

    MAX_TOKENS = 100_000

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, str, float]] = {}
        self._revoked: set[str] = set()
        self._lock = threading.Lock()

    def issue(self, tenant: str, client_id: str, ttl: int) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": "sandbox"}
        claims = {"aud": BC_RESOURCE, "iss": f"https://sts.windows.net/{tenant}/",
                  "iat": now, "nbf": now, "exp": now + ttl, "appid": client_id,
                  "tid": tenant, "roles": ["API.ReadWrite.All"], "ver": "1.0",
                  "jti": secrets.token_hex(8)}
        token = ".".join((_b64url(json.dumps(header).encode()),
                          _b64url(json.dumps(claims).encode()),
                          _b64url(secrets.token_bytes(256))))
        with self._lock:
            if len(self._tokens) >= self.MAX_TOKENS:
                cutoff = time.time()
                self._tokens = {t: v for t, v in self._tokens.items() if v[2] > cutoff}
                while len(self._tokens) >= self.MAX_TOKENS:
                    self._tokens.pop(next(iter(self._tokens)))
            self._tokens[token] = (tenant.lower(), client_id, time.time() + ttl)
        return token

    def check(self, token: str) -> tuple[str, Optional[str]]:
        """-> ('ok', tenant) | ('expired', tenant) | ('revoked', None) | ('unknown', None)."""
        with self._lock:
            info = self._tokens.get(token)
            if info is None:
                return ("revoked" if token in self._revoked else "unknown"), None
            if time.time() >= info[2]:
                return "expired", info[0]
            return "ok", info[0]

    def revoke_all(self) -> int:
        with self._lock:
            n = len(self._tokens)
            if len(self._revoked) < self.MAX_TOKENS:
                self._revoked.update(self._tokens)
            self._tokens.clear()
            return n


# --------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------

_API_RE = re.compile(r"^(.*?)/api/v2\.0(/.*)?$")
_TOKEN_RE = re.compile(r"^/([^/]+)/oauth2/v2\.0/token/?$")
_AUTHORIZE_RE = re.compile(r"^/([^/]+)/oauth2/v2\.0/authorize/?$")
_SEGMENT_RE = re.compile(r"^([A-Za-z_$][A-Za-z0-9_.$]*)(?:\((.*)\))?$")
_GUID_RE = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
                      r"[0-9A-Fa-f]{12}$")
_STATUS_CODES = {400: "BadRequest", 401: "Authentication_InvalidCredentials",
                 403: "Internal_ServerError", 404: "BadRequest_NotFound",
                 405: "BadRequest_MethodNotAllowed", 408: "Internal_RequestTimeout",
                 409: "Request_EntityChanged", 429: "Application_TooManyRequests",
                 500: "Internal_ServerError", 502: "Internal_ServerError",
                 503: "Internal_ServiceUnavailable", 504: "Internal_GatewayTimeout"}
_STATUS_MESSAGES = {
    400: "Bad Request - Error in query syntax.",
    401: "The server has rejected the client credentials.",
    403: "Sorry, the current permissions prevented the action. "
         "(TableData 38 Purchase Header Read: Base Application)",
    404: "The requested resource was not found.",
    408: "The operation has timed out.",
    429: "Too many requests reached. Actual (101). Maximum (100).",
    500: "An unexpected error occurred on the server.",
    503: "The service is temporarily unavailable. Please try again later.",
    504: "The request has exceeded the maximum execution time.",
}


class ApiContext:
    """Where an API request landed: URL prefix, tenant, kind of deployment."""

    def __init__(self, prefix: str, online: bool, tenant: Optional[str], environment: str):
        self.prefix = prefix            # raw path up to and including /api/v2.0
        self.online = online
        self.tenant = tenant
        self.environment = environment


class BcApp(SandboxApp):
    name = "dynamics365_bc"
    server_header = "Microsoft-HTTPAPI/2.0"
    json_content_type = API_CONTENT_TYPE

    def __init__(self, seed: int = 42, orders: int = 60, *,
                 client_id: str = DEFAULT_CLIENT_ID, client_secret: str = DEFAULT_CLIENT_SECRET,
                 basic_user: str = DEFAULT_BASIC_USER, basic_password: str = DEFAULT_BASIC_PASSWORD,
                 lcy_code: str = "", vendors: int = 25, items: int = 20,
                 response_cache_mb: int = 256, prerender: Optional[list[str]] = None,
                 prerender_page_size: int = 1000):
        self.config_defaults = {
            # seconds an access token lives (expires_in of the token response)
            "token_ttl": 3599,
            # server page size limit (BC online: 20000); Prefer can only lower it
            "max_page_size": MAX_PAGE_SIZE,
            # scheme://host[:port] used in @odata.nextLink/@odata.context; "" = Host header
            "next_link_base": "",
            # accepted credentials (change at run time to simulate rotation)
            "client_id": client_id, "client_secret": client_secret,
            "basic_user": basic_user, "basic_password": basic_password,
            # accept HTTP Basic on the online (/v2.0/...) endpoints too
            "online_basic_auth": False,
            # entity sets answered with 403 (missing permission set)
            "denied_entity_sets": [],
            # the app's record on BC's "Microsoft Entra Applications" page is
            # Enabled; when false Entra still issues tokens but BC refuses them
            "entra_app_enabled": True,
            # megabytes of identical collection responses kept (data is static;
            # repeated scans are then served at memory speed); 0 disables
            "response_cache_mb": response_cache_mb,
        }
        # --prerender: collection paths walked once at start-up (see serving)
        self.prerender_paths = prerender or []
        self.prerender_page_size = prerender_page_size
        self.prerender_state: dict = {"state": "off"} if not prerender else \
            {"state": "pending", "pages": 0}
        self.config_validators = {
            "token_ttl": lambda v: v > 0,
            "max_page_size": lambda v: 0 < v,
            "denied_entity_sets": lambda v: all(isinstance(s, str) for s in v),
        }
        main_ds = PurchasingDataset(seed=seed, orders=orders, vendors=vendors, items=items)
        small_ds = PurchasingDataset(seed=seed + 1000, orders=5, vendors=3, items=3, awkward=False,
                                     buyer=Buyer("My Company", "1 Test Road", "Redmond", "WA",
                                                 "98052", "US", "USD"))
        self.companies = {
            COMPANY_MAIN_ID: Company(COMPANY_MAIN_ID, COMPANY_MAIN_NAME, COMPANY_MAIN_NAME,
                                     main_ds, lcy_code),
            COMPANY_SMALL_ID: Company(COMPANY_SMALL_ID, COMPANY_SMALL_NAME, "My Company (Test)",
                                      small_ds, lcy_code),
        }
        company_records = sorted((c.company_record() for c in self.companies.values()),
                                 key=itemgetter("id"))
        self.companies_set = EntitySet("companies", COMPANY, len(company_records),
                                       company_records.__getitem__,
                                       static_ids=[r["id"] for r in company_records])
        self.tokens = TokenStore()
        # Entra: refresh tokens replace themselves on every use and live 90
        # days; one comes back only when offline_access was granted
        self.oauth = AuthorizationServer(
            client_id=APP_CLIENT_ID, client_secret=APP_CLIENT_SECRET, scopes=DELEGATED_SCOPES,
            redirect_uris=[APP_REDIRECT_URI], rotation="replace", refresh_ttl=90 * 86400,
            access_ttl=3599, refresh_needs_scope="offline_access",
            error=lambda req, status, err, text: self._entra_error(
                req, status, err, {"invalid_grant": 70000, "invalid_client": 7000215}.get(
                    err, 900144), text),
            issue_access_token=lambda req, client_id, scope, ttl: self.tokens.issue(
                _TOKEN_RE.match(req.path).group(1), client_id, ttl))
        self._ordered_cache = BoundedCache(8)
        self._count_cache = BoundedCache(64)
        self._responses: "collections.OrderedDict[tuple, Response]" = collections.OrderedDict()
        self._responses_bytes = 0
        self._responses_lock = threading.Lock()

    # -- hooks ------------------------------------------------------------

    def reset(self) -> None:
        self.tokens.revoke_all()
        self.oauth.reset()
        self._ordered_cache.clear()
        self._count_cache.clear()
        with self._responses_lock:
            self._responses.clear()
            self._responses_bytes = 0

    def health(self) -> dict:
        return {"companies": {cid: {"name": c.name, "purchaseOrders": c.ds.n_orders}
                              for cid, c in self.companies.items()},
                "prerender": dict(self.prerender_state)}

    def serving(self) -> None:
        if self.prerender_paths:
            threading.Thread(target=self._prerender, name="prerender", daemon=True).start()

    def _prerender(self) -> None:
        """Warm-up for benchmarks (``--prerender PATH``, repeatable): walks
        every page of each collection PATH (an online path with a tenant and
        optional query options, e.g.
        ``/v2.0/bench/production/api/v2.0/companies(<id>)/purchaseOrders``)
        through this server's own HTTP interface, as a client would, with
        ``Prefer: odata.maxpagesize=<--prerender-page-size>``, plain and
        gzip-encoded.  The paths are walked in step, page i of each in turn,
        so the records generated for one are still in the record cache for
        the next.  Each page then sits in the response cache, keyed by the
        exact request, so clients sending the same requests are served from
        memory; nothing else changes.  Progress is in /_sandbox/health
        (``prerender.state``: pending, running, done or failed)."""
        import http.client
        st = self.prerender_state
        started = time.monotonic()
        try:
            m = re.match(r"^/v2\.0/([^/]+)/[^/]+/api/", self.prerender_paths[0])
            if not m:
                raise ValueError("--prerender needs an online path /v2.0/<tenant>/<env>/api/...")
            port = self.server.port
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            form = urllib.parse.urlencode({
                "grant_type": "client_credentials", "client_id": self.config["client_id"],
                "client_secret": self.config["client_secret"], "scope": BC_SCOPE})
            conn.request("POST", f"/{m.group(1)}/oauth2/v2.0/token", form,
                         {"Content-Type": "application/x-www-form-urlencoded"})
            r = conn.getresponse()
            token = json.loads(r.read())["access_token"]
            st["state"] = "running"
            urls: list = list(self.prerender_paths)
            prefix = f"http://127.0.0.1:{port}"
            for _ in range(10_000_000):          # bounded: one iteration per page
                if not urls:
                    break
                url = urls.pop(0)
                headers = {"Authorization": "Bearer " + token, "Accept": "application/json",
                           "Prefer": f"odata.maxpagesize={self.prerender_page_size}"}
                conn.request("GET", url, headers=headers)
                r = conn.getresponse()
                body = r.read()
                if r.status != 200:
                    raise ValueError(f"HTTP {r.status} for {url}: {body[:200]!r}")
                conn.request("GET", url, headers=dict(headers, **{"Accept-Encoding": "gzip"}))
                conn.getresponse().read()
                nxt = json.loads(body).get("@odata.nextLink")
                if nxt is not None and not nxt.startswith(prefix):
                    raise ValueError(f"unexpected next link {nxt}")
                if nxt:
                    urls.append(nxt[len(prefix):])
                st["pages"] += 1
            st["state"] = "done"
        except Exception as e:  # noqa: BLE001 - reported through health
            st["state"] = "failed"
            st["error"] = f"{type(e).__name__}: {e}"
        st["seconds"] = round(time.monotonic() - started, 3)

    def error_response(self, req: Request, status: int, message: Optional[str] = None) -> Response:
        if _TOKEN_RE.match(req.path):
            err = {429: "temporarily_unavailable", 500: "server_error", 502: "server_error",
                   503: "temporarily_unavailable", 504: "temporarily_unavailable",
                   401: "invalid_client"}.get(status, "invalid_request")
            num = 50196 if status == 429 else (90033 if status >= 500 else 900144)
            return self._entra_error(req, status, err, num,
                                     message or "The service is temporarily unavailable.")
        code = _STATUS_CODES.get(status, "Unknown")
        text = message or _STATUS_MESSAGES.get(status, "An error occurred.")
        headers = []
        if status == 401:
            headers.append(("WWW-Authenticate", 'Bearer realm="", error="invalid_token"'))
        return bc_error_response(req, status, code, text, headers)

    def control(self, req: Request, name: str) -> Optional[Response]:
        if name.startswith("export/") and req.method == "GET":
            return self._export(req, name[len("export/"):])
        if name == "revoke" and req.method == "POST":
            return Response.json({"ok": True, "revoked": self.tokens.revoke_all()})
        if name == "info" and req.method == "GET":
            return Response.json(self._info())
        if name.startswith("oauth/"):
            return self.oauth.control(req, name, self.tokens.revoke_all)
        return None

    # -- entry point -------------------------------------------------------

    def handle(self, req: Request) -> Response:
        try:
            m = _TOKEN_RE.match(req.path)
            if m:
                return self._token(req, m.group(1))
            if _AUTHORIZE_RE.match(req.path) and req.method == "GET":
                return self.oauth.authorize(req)
            m = _API_RE.match(req.path)
            if not m:
                raise BcError(404, "BadRequest_ResourceNotFound",
                              f"No HTTP resource was found that matches the request URI "
                              f"'{req.base_url}{req.raw_path}'.")
            ctx = self._context(req, m.group(1))
            self._authenticate(req, ctx)
            if req.method not in ("GET", "HEAD"):
                raise BcError(405, "BadRequest_MethodNotAllowed",
                              f"'{req.method}' requests are not allowed by this read-only "
                              "sandbox.")
            return self._route(req, ctx, m.group(2) or "")
        except BcError as e:
            return bc_error_response(req, e.status, e.code, e.message, e.headers)

    def _context(self, req: Request, prefix: str) -> ApiContext:
        raw_prefix = req.raw_path[:req.raw_path.find("/api/v2.0") + len("/api/v2.0")]
        segs = [s for s in prefix.split("/") if s]
        if segs and segs[0] == "v2.0" and len(segs) in (2, 3):
            tenant = segs[1] if len(segs) == 3 else None
            return ApiContext(raw_prefix, True, tenant, segs[-1])
        if len(segs) == 1 and segs[0] != "v2.0":
            return ApiContext(raw_prefix, False, None, segs[0])
        raise BcError(404, "BadRequest_ResourceNotFound",
                      f"No HTTP resource was found that matches the request URI "
                      f"'{req.base_url}{req.raw_path}'.")

    # -- auth ----------------------------------------------------------------

    def _authenticate(self, req: Request, ctx: ApiContext) -> None:
        cfg = self.config
        auth = req.header("Authorization") or ""
        scheme, _, cred = auth.strip().partition(" ")
        scheme = scheme.lower()
        challenge = 'Bearer realm=""'
        if not ctx.online:
            challenge = 'Basic realm="", Bearer realm=""'
        if not auth:
            raise BcError(401, "Authentication_InvalidCredentials",
                          "The server has rejected the client credentials.",
                          [("WWW-Authenticate", challenge)])
        if scheme == "bearer":
            status, tenant = self.tokens.check(cred.strip())
            reason = {"expired": "The access token is expired",
                      "revoked": "The access token has been revoked",
                      "unknown": "The access token is invalid"}.get(status)
            if reason is None and ctx.tenant is not None and tenant != ctx.tenant.lower():
                reason = "The access token was issued for a different tenant"
            if reason:
                raise BcError(401, "Authentication_InvalidCredentials",
                              "The server has rejected the client credentials.",
                              [("WWW-Authenticate", f'Bearer realm="", error="invalid_token", '
                                                    f'error_description="{reason}"')])
            if not cfg["entra_app_enabled"]:
                # a valid token of an app BC does not (or no longer) admit
                raise BcError(401, "Authentication_InvalidCredentials",
                              "The server has rejected the client credentials.",
                              [("WWW-Authenticate", challenge)])
            return
        if scheme == "basic" and (not ctx.online or cfg["online_basic_auth"]):
            if req.basic_credentials() == (cfg["basic_user"], cfg["basic_password"]):
                return
        raise BcError(401, "Authentication_InvalidCredentials",
                      "The server has rejected the client credentials.",
                      [("WWW-Authenticate", challenge)])

    def _entra_error(self, req: Request, status: int, error: str, number: int,
                     text: str) -> Response:
        trace = req.request_id
        corr = req.header("client-request-id") or str(uuid.uuid4())
        stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        desc = (f"AADSTS{number}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}"
                f"\r\nTimestamp: {stamp}")
        body = {"error": error, "error_description": desc, "error_codes": [number],
                "timestamp": stamp, "trace_id": trace, "correlation_id": corr,
                "error_uri": f"https://login.microsoftonline.com/error?code={number}"}
        return Response.json(body, status, "application/json; charset=utf-8",
                             [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache"),
                              ("x-ms-request-id", trace)])

    def _token(self, req: Request, tenant: str) -> Response:
        cfg = self.config
        if req.method != "POST":
            return self._entra_error(req, 405, "invalid_request", 900561,
                                     "The endpoint only accepts POST requests.")
        form = req.token_form()
        for field in ("grant_type",):
            if not form.get(field):
                return self._entra_error(req, 400, "invalid_request", 900144,
                                         f"The request body must contain the following "
                                         f"parameter: '{field}'.")
        grant = form["grant_type"]
        if grant in ("authorization_code", "refresh_token"):
            return self.oauth.token(req, form)
        if grant != "client_credentials":
            return self._entra_error(req, 400, "unsupported_grant_type", 70003,
                                     f"The app requested an unsupported grant type '{grant}'.")
        client_id = form.get("client_id", "")
        if not client_id:
            return self._entra_error(req, 400, "invalid_request", 900144,
                                     "The request body must contain the following parameter: "
                                     "'client_id'.")
        if client_id != cfg["client_id"]:
            return self._entra_error(
                req, 400, "unauthorized_client", 700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant}'. This can happen if the application has not been installed by the "
                f"administrator of the tenant or consented to by any user in the tenant. You "
                f"may have sent your authentication request to the wrong tenant.")
        secret = form.get("client_secret")
        if not secret:
            return self._entra_error(req, 401, "invalid_client", 7000218,
                                     "The request body must contain the following parameter: "
                                     "'client_assertion' or 'client_secret'.")
        if secret != cfg["client_secret"]:
            return self._entra_error(
                req, 401, "invalid_client", 7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID, for a secret added to app "
                f"'{client_id}'.")
        scope = form.get("scope", "")
        if not scope:
            return self._entra_error(req, 400, "invalid_request", 900144,
                                     "The request body must contain the following parameter: "
                                     "'scope'.")
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            return self._entra_error(
                req, 400, "invalid_scope", 1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).")
        if scopes[0].lower() != self.token_scope(req).lower():
            resource = scopes[0][:-len("/.default")]
            return self._entra_error(
                req, 400, "invalid_resource", 500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{tenant}. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant. You "
                "might have sent your authentication request to the wrong tenant.")
        ttl = int(cfg["token_ttl"])
        token = self.tokens.issue(tenant, client_id, ttl)
        return Response.json({"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl,
                              "access_token": token}, 200, "application/json; charset=utf-8",
                             [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache"),
                              ("x-ms-request-id", req.request_id)])

    def token_scope(self, req: Request) -> str:
        """The one scope a client credentials grant may ask for: the API's
        application ID URI with ``/.default``."""
        return BC_SCOPE

    # -- routing ------------------------------------------------------------

    def _public_base(self, req: Request) -> str:
        return self.config["next_link_base"].rstrip("/") or req.base_url

    def _not_found_segment(self, seg: str) -> BcError:
        return BcError(404, "BadRequest_ResourceNotFound",
                       f"Resource not found for the segment '{seg}'.")

    def _parse_key(self, raw: Optional[str], seg: str) -> str:
        key = (raw or "").strip()
        if key.startswith("id="):
            key = key[3:].strip()
        if not _GUID_RE.match(key):
            raise BcError(400, "BadRequest_NotFound", "Bad Request - Error in query syntax.")
        return key.lower()

    def _route(self, req: Request, ctx: ApiContext, rest: str) -> Response:
        segs = [s for s in rest.split("/") if s]
        base = self._public_base(req) + ctx.prefix
        if not segs:
            return self._service_document(base)
        if segs == ["$metadata"]:
            return Response(200, _edmx().encode(), "application/xml; charset=utf-8",
                            [("OData-Version", "4.0")])
        m = _SEGMENT_RE.match(segs[0])
        if not m or m.group(1) != "companies":
            raise self._not_found_segment(segs[0])
        if m.group(2) is None:
            if len(segs) > 1:
                if segs[1] == "$count" and len(segs) == 2:
                    return self._count(req, self.companies_set, None)
                raise self._not_found_segment(segs[1])
            return self._collection(req, base, self.companies_set, None, "companies")
        cid = self._parse_key(m.group(2), segs[0])
        company = self.companies.get(cid)
        if company is None:
            raise BcError(404, "BadRequest_NotFound",
                          f"The company with id '{cid}' does not exist or you do not have "
                          "access to it.")
        cpath = f"companies({company.id})"
        if len(segs) == 1:
            return self._single(req, base, self.companies_set, company.id, "companies")

        m = _SEGMENT_RE.match(segs[1])
        if not m or m.group(1) not in ENTITY_SETS:
            raise self._not_found_segment(segs[1])
        set_name = m.group(1)
        denied = self.config["denied_entity_sets"]
        if set_name in denied:
            raise BcError(403, "Internal_ServerError",
                          "Sorry, the current permissions prevented the action. "
                          f"({_TABLEDATA[set_name]})")
        es = company.entity_set(set_name)
        ctx_path = f"{cpath}/{set_name}"
        rest2 = segs[2:]
        if m.group(2) is None:
            if rest2 not in ([], ["$count"]):
                raise self._not_found_segment(rest2[0])
            scope = None
            if set_name in DOCUMENT_LINE_SETS:
                scope = self._line_scope(req, company, es, count=bool(rest2))
            if not rest2:
                return self._collection(req, base, es, scope, ctx_path, company)
            return self._count(req, es, scope, company)
        key = self._parse_key(m.group(2), segs[1])
        if not rest2:
            return self._single(req, base, es, key, ctx_path, company)
        # navigation: purchaseOrders(<id>)/purchaseOrderLines[...]
        m3 = _SEGMENT_RE.match(rest2[0])
        if set_name != "purchaseOrders" or not m3 or m3.group(1) != "purchaseOrderLines" \
                or len(rest2) > 2:
            raise self._not_found_segment(rest2[0])
        if "purchaseOrderLines" in denied:
            raise BcError(403, "Internal_ServerError",
                          "Sorry, the current permissions prevented the action. "
                          f"({_TABLEDATA['purchaseOrderLines']})")
        oidx = es.lookup(key)
        if oidx is None:
            raise BcError(404, "BadRequest_NotFound",
                          f"The purchaseOrder does not exist. Identification fields and values: "
                          f"Id='{{{key.upper()}}}'")
        les = company.entity_set("purchaseOrderLines")
        scope = sorted(les.rank(j) for j in company.lines_of_order(oidx))
        nav_path = f"{ctx_path}({key})/purchaseOrderLines"
        if m3.group(2) is not None:
            lkey = self._parse_key(m3.group(2), rest2[0])
            lidx = les.lookup(lkey)
            if lidx is None or les.rank(lidx) not in set(scope) or len(rest2) > 1:
                raise BcError(404, "BadRequest_NotFound",
                              "The purchaseOrderLine does not exist.")
            return self._single(req, base, les, lkey, nav_path, company)
        if len(rest2) == 2:
            if rest2[1] != "$count":
                raise self._not_found_segment(rest2[1])
            return self._count(req, les, scope, company)
        return self._collection(req, base, les, scope, nav_path, company)

    def _line_scope(self, req: Request, company: Company, es: EntitySet,
                    count: bool = False) -> list[int]:
        """The lines a document-line collection serves, as BC's API page does
        (microsoft/BCApps, page 30067 "APIV2 - Purchase Order Lines",
        OnFindRecord, and codeunit 5497 "Graph Mgt - Purch Order Buffer",
        LoadLines): without a filter on ``id`` or ``documentId`` it is an
        error; an ``id`` filter must name one line (``Evaluate`` into a Guid)
        and loads that line's document; a ``documentId`` filter loads the
        lines of the FIRST purchase order it matches, by order number
        (``FindFirst`` on the buffer keyed by "No."), so ``documentId in (a,
        b)`` returns one document's lines.  The whole $filter is then applied
        to those lines.  Returns sorted ranks (the collection's scope)."""
        params = req.params
        if count:
            params = [(k, v) for k, v in params
                      if k in ("$filter", "$schemaversion") or not k.startswith("$")]
        q = parse_query(params, es.etype)
        id_conds = [c for c in q.conjuncts if c[1] == {"id"}]
        doc_conds = [c for c in q.conjuncts if c[1] == {"documentId"}]
        if not id_conds and not doc_conds:
            raise BcError(400, "Application_DialogException",
                          "You must specify an Id or a Document Id to get the lines.")
        orders = company.sets["purchaseOrders"]
        if id_conds:
            node = id_conds[0][0]
            guid = None
            if len(id_conds) == 1 and node[0] == "cmp" and node[1] == "eq" \
                    and node[2][0] == "prop" and node[3][0] == "lit" and node[3][1] == "guid":
                guid = node[3][2]
            elif len(id_conds) == 1 and node[0] == "in" and node[1][0] == "prop" \
                    and len(node[2]) == 1 and node[2][0][:2] == ("lit", "guid"):
                guid = node[2][0][2]
            if guid is None:
                raise BcError(400, "Application_DialogException",
                              "The value of the id filter can't be evaluated into type Guid.")
            lidx = es.lookup(guid)
            if lidx is None:
                return []
            order = company.ds.locate_line(lidx)[0]
        else:
            def matches(i: int) -> bool:
                rec = {"documentId": orders.record(i)["id"]}
                return all(pred(rec) for _n, _f, pred in doc_conds)
            cands = q.lookups.get("documentId")
            if cands is not None:
                idxs = (orders.lookup(g) for g in cands)
                hits = sorted(i for i in idxs if i is not None and matches(i))
            else:
                hits = [i for i in range(orders.size) if matches(i)]
            if not hits:
                return []
            order = hits[0]                  # lowest "No." (numbers follow the index)
        return sorted(es.rank(j) for j in company.lines_of_order(order))

    def _service_document(self, base: str) -> Response:
        body = {"@odata.context": base + "/$metadata",
                "value": [{"name": "companies", "kind": "EntitySet", "url": "companies"}]}
        return Response.json(body, 200, API_CONTENT_TYPE, [("OData-Version", "4.0")])

    # -- query execution ------------------------------------------------------

    @staticmethod
    def _ieee754(req: Request) -> bool:
        accept = (req.header("Accept") or "").replace(" ", "").lower()
        return "ieee754compatible=true" in accept

    def _page_size(self, req: Request) -> tuple[int, Optional[int]]:
        """(effective page size, honoured odata.maxpagesize or None)."""
        limit = int(self.config["max_page_size"])
        applied = None
        for pref in (req.header("Prefer") or "").split(","):
            name, _, value = pref.strip().partition("=")
            if name.strip().lower() == "odata.maxpagesize":
                try:
                    n = int(value.strip().strip('"'))
                except ValueError:
                    continue
                if n > 0:
                    applied = min(n, limit)
                    limit = applied
        return limit, applied

    def _candidates(self, company: Optional[Company], es: EntitySet, q: Query,
                    scope: Optional[list[int]]) -> Optional[list[int]]:
        """Sorted candidate ranks from the scope and index lookups (None = all)."""
        cands: Optional[set] = set(scope) if scope is not None else None

        def narrow(ranks: set) -> None:
            nonlocal cands
            cands = ranks if cands is None else cands & ranks

        for field, values in q.lookups.items():
            if field == "id":
                narrow({es.rank(i) for i in (es.lookup(v) for v in values) if i is not None})
            elif company is not None and es.name == "purchaseOrderLines" and field == "documentId":
                ranks = set()
                for v in values:
                    oi = company.sets["purchaseOrders"].lookup(v)
                    if oi is not None:
                        ranks.update(es.rank(j) for j in company.lines_of_order(oi))
                narrow(ranks)
            elif company is not None and es.name == "purchaseOrders" and field == "number":
                idxs = [company.order_index_of_number(v) for v in values]
                narrow({es.rank(i) for i in idxs if i is not None})
        return None if cands is None else sorted(cands)

    def _scan(self, es: EntitySet, cands: Optional[list[int]], start_rank: int,
              pred: Optional[Callable[[dict], bool]]) -> Iterator[tuple[int, dict]]:
        """Records in id order from ``start_rank`` that satisfy ``pred``."""
        if cands is None:
            ranks: Any = range(start_rank, es.size)
        else:
            ranks = cands[bisect.bisect_left(cands, start_rank):]
        index, record = es.index, es.record
        for rank in ranks:
            idx = index(rank)
            rec = record(idx)
            if pred is None or pred(rec):
                yield idx, rec

    def _cache_key(self, company: Optional[Company], es: EntitySet, q: Query,
                   scope: Optional[list[int]]) -> tuple:
        return (company.id if company else "", es.name, tuple(scope) if scope else None,
                q.filter_text, q.schema_version >= (2, 1))

    def _total(self, company: Optional[Company], es: EntitySet, q: Query,
               scope: Optional[list[int]]) -> int:
        if q.predicate is None and scope is None:
            return es.size
        key = self._cache_key(company, es, q, scope)
        n = self._count_cache.get(key)
        if n is None:
            cands = self._candidates(company, es, q, scope)
            n = sum(1 for _ in self._scan(es, cands, 0, q.predicate))
            self._count_cache.put(key, n)
        return n

    def _ordered(self, company: Optional[Company], es: EntitySet, q: Query,
                 scope: Optional[list[int]]) -> array:
        """All matching record indexes in $orderby order (ties: id order). Cached."""
        key = self._cache_key(company, es, q, scope) + (q.orderby_text,)
        order = self._ordered_cache.get(key)
        if order is not None:
            return order
        keys = [(p.name, value_normalizer(p)) for p, _d in q.orderby]
        cands = self._candidates(company, es, q, scope)
        entries = [tuple(f(rec[n]) for n, f in keys) + (idx,)
                   for idx, rec in self._scan(es, cands, 0, q.predicate)]
        for pos in range(len(keys) - 1, -1, -1):
            entries.sort(key=itemgetter(pos), reverse=q.orderby[pos][1])
        order = array("q", (e[-1] for e in entries))
        self._ordered_cache.put(key, order)
        return order

    def _collection(self, req: Request, base: str, es: EntitySet, scope: Optional[list[int]],
                    ctx_path: str, company: Optional[Company] = None) -> Response:
        """A collection page, from the response cache when the identical request
        (URL, Host, Prefer, Accept and page-size settings) was answered before."""
        cfg = self.config
        budget = int(cfg["response_cache_mb"]) * 1024 * 1024
        key = (req.raw_path, req.query, req.host, req.header("Prefer"), self._ieee754(req),
               cfg["max_page_size"], cfg["next_link_base"])
        if budget:
            with self._responses_lock:
                hit = self._responses.get(key)
                if hit is not None:
                    self._responses.move_to_end(key)
                    return Response(hit.status, hit.body, hit.content_type, hit.headers,
                                    hit.memo)
        resp = self._collection_page(req, base, es, scope, ctx_path, company)
        size = len(resp.body)
        if budget and size <= budget // 4:
            resp.memo = {}      # the gzip encoding is then computed once, shared by hits
            with self._responses_lock:
                self._responses[key] = resp
                self._responses_bytes += size
                while self._responses_bytes > budget:
                    _k, old = self._responses.popitem(last=False)
                    self._responses_bytes -= len(old.body)
        return Response(resp.status, resp.body, resp.content_type, resp.headers, resp.memo)

    def _collection_page(self, req: Request, base: str, es: EntitySet,
                         scope: Optional[list[int]], ctx_path: str,
                         company: Optional[Company] = None) -> Response:
        q = parse_query(req.params, es.etype)
        if q.expand_lines and company is None:
            q.expand_lines = False
        page_size, applied = self._page_size(req)
        token = q.token or {}
        served = int(token.get("n", 0))
        remaining = None if q.top is None else max(q.top - served, 0)
        limit = page_size if remaining is None else min(page_size, remaining)

        rows: list[tuple[int, dict]] = []
        more = False
        next_token: Optional[dict] = None
        if limit > 0:
            if q.orderby:
                order = self._ordered(company, es, q, scope)
                pos = int(token.get("p", q.skip))
                if token and (pos <= 0 or pos > len(order)
                              or es.record(order[pos - 1])["id"] != token["k"]):
                    raise _unsupported("The skip token is not valid for this request.")
                chunk = order[pos:pos + limit + 1]
                rows = [(idx, es.record(idx)) for idx in chunk[:limit]]
                more = len(chunk) > limit
                if more:
                    next_token = {"k": rows[-1][1]["id"], "p": pos + len(rows)}
            else:
                cands = self._candidates(company, es, q, scope)
                start = es.resume_rank(token["k"]) if token else 0
                skip = 0 if token else q.skip
                if skip and q.predicate is None:      # positional: no need to visit them
                    if cands is None:
                        start = min(skip, es.size)
                    else:
                        start = cands[skip] if skip < len(cands) else es.size
                    skip = 0
                it = self._scan(es, cands, start, q.predicate)
                for idx, rec in it:
                    if skip:
                        skip -= 1
                        continue
                    if len(rows) == limit:
                        more = True
                        break
                    rows.append((idx, rec))
                if more:
                    next_token = {"k": rows[-1][1]["id"]}
            if more and remaining is not None and remaining <= limit:
                more = False
        if more and next_token is not None:
            next_token["n"] = served + len(rows)

        ieee = self._ieee754(req)
        ser = serializer(es.etype, q.select, ieee)
        parts = []
        if q.expand_lines:
            for idx, rec in rows:
                parts.append(ser(rec)[:-1] + self._expanded_lines(company, idx, q, ieee) + "}")
        else:
            parts = [ser(rec) for _idx, rec in rows]

        context = f"{base}/$metadata#{ctx_path}"
        if q.select or q.expand_lines:
            sel = list(q.select) if q.select else ["*"]
            if q.expand_lines:
                sel.append("purchaseOrderLines(" + ",".join(q.expand_select or ()) + ")")
            context += "(" + ",".join(sel) + ")"
        out = ['{"@odata.context":', json_string(context)]
        if q.count:
            n = self._total(company, es, q, scope)
            out.append(',"@odata.count":' + ('"%d"' % n if ieee else str(n)))
        out.append(',"value":[')
        out.append(",".join(parts))
        out.append("]")
        if more and next_token is not None:
            out.append(',"@odata.nextLink":')
            out.append(json_string(self._next_link(req, _encode_token(next_token))))
        out.append("}")
        headers = [("OData-Version", "4.0")]
        if applied is not None:
            headers.append(("Preference-Applied", f"odata.maxpagesize={applied}"))
        return Response(200, "".join(out).encode("utf-8"),
                        API_CONTENT_TYPE_IEEE if ieee else API_CONTENT_TYPE, headers)

    @staticmethod
    def _expanded_lines(company: Company, idx: int, q: Query, ieee: bool) -> str:
        """``,"purchaseOrderLines":[...]`` for order idx: all its lines (the
        part's SubPageLink gives the lines page its Document Id filter), with
        the $expand's own $filter and $select; never paged."""
        les = company.entity_set("purchaseOrderLines")
        lser = serializer(PURCHASE_ORDER_LINE, q.expand_select, ieee)
        pred = q.expand_predicate
        recs = (les.record(j) for j in sorted(company.lines_of_order(idx), key=les.rank))
        return ',"purchaseOrderLines":[' + ",".join(
            lser(r) for r in recs if pred is None or pred(r)) + "]"

    def _next_link(self, req: Request, token: str) -> str:
        kept = []
        for piece in req.query.split("&"):
            if not piece:
                continue
            name = urllib.parse.unquote_plus(piece.split("=", 1)[0])
            if name in ("$skiptoken", "$skip"):
                continue
            kept.append(piece)
        kept.append("$skiptoken=" + token)
        return self._public_base(req) + req.raw_path + "?" + "&".join(kept)

    def _count(self, req: Request, es: EntitySet, scope: Optional[list[int]],
               company: Optional[Company] = None) -> Response:
        q = parse_query([(k, v) for k, v in req.params
                         if k in ("$filter", "$schemaversion") or not k.startswith("$")],
                        es.etype)
        n = self._total(company, es, q, scope)
        return Response.text(str(n), 200, "text/plain; charset=utf-8", [("OData-Version", "4.0")])

    def _single(self, req: Request, base: str, es: EntitySet, key: str, ctx_path: str,
                company: Optional[Company] = None) -> Response:
        q = parse_query(req.params, es.etype, single=True)
        idx = es.lookup(key)
        if idx is None:
            raise BcError(404, "BadRequest_NotFound",
                          f"The {es.etype.name} does not exist. Identification fields and values: "
                          f"Id='{{{key.upper()}}}'")
        ieee = self._ieee754(req)
        text = serializer(es.etype, q.select, ieee)(es.record(idx))
        if q.expand_lines and company is not None:
            text = text[:-1] + self._expanded_lines(company, idx, q, ieee) + "}"
        context = f"{base}/$metadata#{ctx_path}"
        if q.select:
            context += "(" + ",".join(q.select) + ")"
        body = '{"@odata.context":' + json_string(context + "/$entity") + "," + text[1:]
        return Response(200, body.encode("utf-8"),
                        API_CONTENT_TYPE_IEEE if ieee else API_CONTENT_TYPE,
                        [("OData-Version", "4.0")])

    # -- control -------------------------------------------------------------

    def export_records(self, company_id: str, set_name: str) -> Iterator[str]:
        """Serialized records of a whole entity set in id order (as served)."""
        if set_name == "companies":
            es = self.companies_set
        else:
            es = self.companies[company_id].entity_set(set_name)
        ser = serializer(es.etype, None)
        for rank in range(es.size):
            yield ser(es.record(es.index(rank)))

    def _export(self, req: Request, set_name: str) -> Response:
        params = dict(req.params)
        cid = params.get("company", COMPANY_MAIN_ID).lower()
        if cid not in self.companies:
            return Response.json({"error": f"unknown company {cid}"}, 404)
        if set_name not in ENTITY_SETS and set_name != "companies":
            return Response.json({"error": f"unknown entity set {set_name!r}; known: "
                                           f"{sorted(ENTITY_SETS) + ['companies']}"}, 404)

        def chunks() -> Iterator[bytes]:
            yield b'{"value":['
            buf: list[str] = []
            first = True
            for text in self.export_records(cid, set_name):
                buf.append(text)
                if len(buf) >= 1000:
                    yield (("" if first else ",") + ",".join(buf)).encode("utf-8")
                    first, buf = False, []
            if buf:
                yield (("" if first else ",") + ",".join(buf)).encode("utf-8")
            yield b"]}"

        return Response(200, chunks(), "application/json; charset=utf-8")

    def _info(self) -> dict:
        cfg = self.config
        out: dict[str, Any] = {
            "companies": [], "client_id": cfg["client_id"], "client_secret": cfg["client_secret"],
            "basic_user": cfg["basic_user"], "basic_password": cfg["basic_password"],
            "scope": BC_SCOPE, "max_page_size": cfg["max_page_size"],
        }
        for c in self.companies.values():
            specials = {}
            for i, what in c.ds.special_orders().items():
                specials[c.order_number(i + 1)] = {"id": c.order_guids.guid(i), "what": what}
            out["companies"].append({"id": c.id, "name": c.name, "orders": c.ds.n_orders,
                                     "lines": c.ds.total_lines, "vendors": len(c.ds.vendors),
                                     "items": len(c.ds.items), "special_orders": specials})
        return out


# --------------------------------------------------------------------------
# $metadata
# --------------------------------------------------------------------------

_EDMX_CACHE: list[str] = []


def _edmx() -> str:
    if _EDMX_CACHE:
        return _EDMX_CACHE[0]
    from xml.sax.saxutils import quoteattr
    out = ['<?xml version="1.0" encoding="utf-8"?>',
           '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">',
           "<edmx:DataServices>",
           '<Schema Namespace="Microsoft.NAV" xmlns="http://docs.oasis-open.org/odata/ns/edm">']
    for enum in ENUMS.values():
        out.append(f"<EnumType Name={quoteattr(enum.name)}>")
        for k, name in enumerate(enum.edm_names):
            out.append(f"<Member Name={quoteattr(name)} Value=\"{k}\"/>")
        out.append("</EnumType>")
    for et in (COMPANY, PURCHASE_ORDER, PURCHASE_ORDER_LINE, VENDOR, ITEM):
        out.append(f"<EntityType Name={quoteattr(et.name)}>")
        out.append('<Key><PropertyRef Name="id"/></Key>')
        for p in et.props:
            extra = ' Nullable="false"' if p.name == "id" else ""
            if p.kind == DEC:
                extra += ' Scale="Variable"'
            edm = "Edm.Int64" if et is COMPANY and p.name == "timestamp" else p.edm
            out.append(f"<Property Name={quoteattr(p.name)} Type={quoteattr(edm)}{extra}/>")
        for nav, target in et.navigation.items():
            out.append(f"<NavigationProperty Name={quoteattr(nav)} "
                       f"Type=\"Collection(Microsoft.NAV.{ENTITY_SETS[target].name})\" "
                       "ContainsTarget=\"true\"/>")
        if et is COMPANY:
            for set_name, t in ENTITY_SETS.items():
                out.append(f"<NavigationProperty Name={quoteattr(set_name)} "
                           f"Type=\"Collection(Microsoft.NAV.{t.name})\" ContainsTarget=\"true\"/>")
        out.append("</EntityType>")
    out.append('<EntityContainer Name="NAV">')
    out.append('<EntitySet Name="companies" EntityType="Microsoft.NAV.company"/>')
    out.append("</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>")
    _EDMX_CACHE.append("\n".join(out))
    return _EDMX_CACHE[0]


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Business Central API v2.0 sandbox for unified_fdw tests.")
    add_common_arguments(parser)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--basic-user", default=DEFAULT_BASIC_USER)
    parser.add_argument("--basic-password", default=DEFAULT_BASIC_PASSWORD)
    parser.add_argument("--lcy-code", default="",
                        help="currencyCode rendered for local-currency records "
                             "(default '': empty, as with a blank Currency Code)")
    parser.add_argument("--vendors", type=int, default=25)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--response-cache-mb", type=int, default=256,
                        help="default of the response_cache_mb setting (default 256)")
    parser.add_argument("--prerender", metavar="PATH", action="append",
                        help="benchmarks: at start-up, request every page of the collection "
                             "PATH once (plain and gzip) so that it is served from the "
                             "response cache; repeatable; progress in /_sandbox/health")
    parser.add_argument("--prerender-page-size", type=int, default=1000,
                        help="odata.maxpagesize of the pre-rendered pages (default 1000)")
    return parser


def make_app(args: argparse.Namespace) -> BcApp:
    return BcApp(seed=args.seed, orders=args.orders, client_id=args.client_id,
                 client_secret=args.client_secret, basic_user=args.basic_user,
                 basic_password=args.basic_password, lcy_code=args.lcy_code,
                 vendors=args.vendors, items=args.items,
                 response_cache_mb=args.response_cache_mb, prerender=args.prerender,
                 prerender_page_size=args.prerender_page_size)


if __name__ == "__main__":
    sys.exit(main(make_app, build_parser()))

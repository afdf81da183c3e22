#!/usr/bin/env python3
"""SAP S/4HANA OData V2 sandbox (API_PURCHASEORDER_PROCESS_SRV, API_BUSINESS_PARTNER).

This module owns the SAP emulation used by unified_fdw's tests: routes, the
rendering of the canonical dataset into A_PurchaseOrder, A_PurchaseOrderItem
and A_Supplier records (OData V2 verbose JSON or Atom XML), the strict V2
``$filter`` grammar with EDM type checks, ``$top``/``$skip``/``__next``
paging, ``$inlinecount``, SAP Gateway error bodies, the three ways in
(HTTP Basic, the ``APIKey`` header, OAuth 2.0 client credentials) and
``sap-client``.  Generic machinery (server, request log, faults, config,
dataset, CLI) lives in common.py.

Wire format reference: shared/reference/upstream-apis.md section 1.

Routes (``{root}`` = ``/sap/opu/odata/sap``)::

    POST /sap/bc/sec/oauth2/token                               client credentials
    GET  {root}/{service}/                                      service document
    GET  {root}/{service}/$metadata                             EDMX (V2, XML)
    GET  {root}/API_PURCHASEORDER_PROCESS_SRV/A_PurchaseOrder[('<key>')]
    GET  {root}/API_PURCHASEORDER_PROCESS_SRV/A_PurchaseOrderItem[(PurchaseOrder='..',PurchaseOrderItem='..')]
    GET  {root}/API_BUSINESS_PARTNER/A_Supplier[('<key>')]
    GET  {root}/.../{set}/$count                                text/plain

Control endpoints added to the common ones: ``GET /_sandbox/export/{set}``,
``POST /_sandbox/revoke``, ``GET /_sandbox/info``.  Behaviour the reference
marks UNCONFIRMED is decided here and listed in README.md ("SAP
assumptions").  The sandbox is read-only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import operator
import os
import re
import secrets
import sys
import threading
import time
import urllib.parse
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Callable, Iterator, Optional
from xml.sax.saxutils import escape as xml_escape, quoteattr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (BoundedCache, PurchasingDataset, Request, Response,  # noqa: E402
                    SandboxApp, add_common_arguments, json_string, main, odata_string)
from common import FilterToken as _Tok  # noqa: E402

ROOT = "/sap/opu/odata/sap"
TOKEN_PATH = "/sap/bc/sec/oauth2/token"
PO_SRV = "API_PURCHASEORDER_PROCESS_SRV"
BP_SRV = "API_BUSINESS_PARTNER"

DEFAULT_BASIC_USER = "sandbox-user"
DEFAULT_BASIC_PASSWORD = "sandbox-password"
DEFAULT_API_KEY = "sandbox-api-key"
DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"
DEFAULT_SAP_CLIENT = "100"
SYSTEM_ID = "S4H"

JSON_TYPE = "application/json; charset=utf-8"
ATOM_TYPE = "application/atom+xml; type=feed; charset=utf-8"
ATOM_ENTRY_TYPE = "application/atom+xml; type=entry; charset=utf-8"
XML_TYPE = "application/xml; charset=utf-8"
COMPANY_CODE = "1710"

# --------------------------------------------------------------------------
# EDM schema (V2 property names, from the real $metadata; a subset)
# --------------------------------------------------------------------------

S, DT, DTO, DEC, BOOL = "Edm.String", "Edm.DateTime", "Edm.DateTimeOffset", "Edm.Decimal", \
    "Edm.Boolean"


class EntityType:
    def __init__(self, service: str, name: str, set_name: str, keys: list[str],
                 props: list[tuple[str, str]], navigation: list[str]):
        self.service = service
        self.name = name                       # e.g. A_PurchaseOrderType
        self.qualified = f"{service}.{name}"
        self.set_name = set_name
        self.keys = keys
        self.props = props
        self.kind = dict(props)
        self.navigation = navigation


def _ps(kind: str, names: str) -> list[tuple[str, str]]:
    return [(n, kind) for n in names.split()]


PURCHASE_ORDER = EntityType(PO_SRV, "A_PurchaseOrderType", "A_PurchaseOrder", ["PurchaseOrder"], [
    *_ps(S, "PurchaseOrder CompanyCode PurchaseOrderType PurchasingDocumentDeletionCode "
            "PurchasingProcessingStatus CreatedByUser"),
    ("CreationDate", DT), ("LastChangeDateTime", DTO),
    *_ps(S, "Supplier PurchaseOrderSubtype Language PaymentTerms"),
    *_ps(DEC, "CashDiscount1Days CashDiscount2Days NetPaymentDays CashDiscount1Percent "
              "CashDiscount2Percent"),
    *_ps(S, "PurchasingOrganization PurchasingDocumentOrigin PurchasingGroup"),
    ("PurchaseOrderDate", DT), ("DocumentCurrency", S), ("ExchangeRate", S),
    ("ExchangeRateIsFixed", BOOL), ("ValidityStartDate", DT), ("ValidityEndDate", DT),
    *_ps(S, "SupplierQuotationExternalID PurchasingCollectiveNumber SupplierRespSalesPersonName "
            "SupplierPhoneNumber SupplyingSupplier SupplyingPlant IncotermsClassification "
            "CorrespncExternalReference CorrespncInternalReference InvoicingParty"),
    ("ReleaseIsNotCompleted", BOOL), ("PurchasingCompletenessStatus", BOOL),
    *_ps(S, "IncotermsVersion IncotermsLocation1 IncotermsLocation2 AddressName "
            "AddressCityName AddressPostalCode AddressStreetName AddressHouseNumber "
            "AddressRegion AddressCountry AddressPhoneNumber AddressFaxNumber "
            "AddressCorrespondenceLanguage"),
], ["to_PurchaseOrderItem", "to_PurchaseOrderNote"])

PURCHASE_ORDER_ITEM = EntityType(
    PO_SRV, "A_PurchaseOrderItemType", "A_PurchaseOrderItem", ["PurchaseOrder", "PurchaseOrderItem"], [
        *_ps(S, "PurchaseOrder PurchaseOrderItem PurchasingDocumentDeletionCode "
                "PurchaseOrderItemText Plant StorageLocation MaterialGroup PurchasingInfoRecord "
                "SupplierMaterialNumber"),
        ("OrderQuantity", DEC), *_ps(S, "PurchaseOrderQuantityUnit OrderPriceUnit"),
        *_ps(DEC, "OrderPriceUnitToOrderUnitNmrtr OrdPriceUnitToOrderUnitDnmntr"),
        ("DocumentCurrency", S), ("NetPriceAmount", DEC), ("NetPriceQuantity", DEC),
        ("TaxCode", S), ("PriceIsToBePrinted", BOOL),
        ("OverdelivTolrtdLmtRatioInPct", DEC), ("UnlimitedOverdeliveryIsAllowed", BOOL),
        ("UnderdelivTolrtdLmtRatioInPct", DEC), ("ValuationType", S),
        ("IsCompletelyDelivered", BOOL), ("IsFinallyInvoiced", BOOL),
        *_ps(S, "PurchaseOrderItemCategory AccountAssignmentCategory"),
        *_ps(BOOL, "GoodsReceiptIsExpected GoodsReceiptIsNonValuated InvoiceIsExpected "
                   "InvoiceIsGoodsReceiptBased"),
        *_ps(S, "PurchaseContract PurchaseContractItem Customer"),
        ("ItemNetWeight", DEC), ("ItemWeightUnit", S), ("TaxJurisdiction", S),
        ("IncotermsClassification", S),
        *_ps(S, "PurchaseRequisition PurchaseRequisitionItem"), ("IsReturnsItem", BOOL),
        *_ps(S, "RequisitionerName Material InternationalArticleNumber ManufacturerMaterial "
                "ProductType"),
    ], ["to_PurchaseOrder", "to_ScheduleLine", "to_AccountAssignment",
        "to_PurchaseOrderItemNote", "to_PurchaseOrderPricingElement"])

SUPPLIER = EntityType(BP_SRV, "A_SupplierType", "A_Supplier", ["Supplier"], [
    *_ps(S, "Supplier AlternativePayeeAccountNumber AuthorizationGroup CreatedByUser"),
    ("CreationDate", DT), ("Customer", S), ("PaymentIsBlockedForSupplier", BOOL),
    ("PostingIsBlocked", BOOL), ("PurchasingIsBlocked", BOOL),
    *_ps(S, "SupplierAccountGroup SupplierFullName SupplierName VATRegistration"),
    ("BirthDate", DT), ("ConcatenatedInternationalLocNo", S), ("DeletionIndicator", BOOL),
    *_ps(S, "FiscalAddress Industry InternationalLocationNumber1 IsNaturalPerson "
            "ResponsibleType SupplierCorporateGroup SupplierProcurementBlock TaxNumber1 "
            "TaxNumber2 TaxNumberResponsible TaxNumberType"),
], ["to_SupplierCompany", "to_SupplierPurchasingOrg", "to_SupplierText"])

SERVICES = {PO_SRV: {"A_PurchaseOrder": PURCHASE_ORDER, "A_PurchaseOrderItem": PURCHASE_ORDER_ITEM},
            BP_SRV: {"A_Supplier": SUPPLIER}}
ALL_SETS = {et.set_name: et for sets in SERVICES.values() for et in sets.values()}

# --------------------------------------------------------------------------
# Errors (SAP Gateway shape)
# --------------------------------------------------------------------------


class SapError(Exception):
    """An SAP Gateway error: status, T100-style code and message text."""

    def __init__(self, status: int, code: str, message: str,
                 headers: Optional[list[tuple[str, str]]] = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or []


def _filter_error(message: str) -> SapError:
    return SapError(400, "/IWBEP/CM_MGW_RT/022", message)


def _option_error(message: str) -> SapError:
    return SapError(400, "/IWBEP/CM_MGW_RT/025", message)


def transaction_id(req: Request) -> str:
    """SAP's transaction id: 32 upper-case hex digits (derived from the request id)."""
    return hashlib.md5(req.request_id.encode()).hexdigest().upper()


def wants_json(req: Request) -> bool:
    fmt = next((v for k, v in req.params if k == "$format"), None)
    if fmt is not None:
        return fmt.strip().lower() in ("json", "application/json")
    accept = (req.header("Accept") or "").lower()
    return "application/json" in accept


def sap_error_response(req: Request, status: int, code: str, message: str,
                       service: str = PO_SRV,
                       headers: Optional[list[tuple[str, str]]] = None) -> Response:
    tid = transaction_id(req)
    now = dt.datetime.now(dt.timezone.utc)
    stamp = now.strftime("%Y%m%d%H%M%S.") + "%07d" % (now.microsecond * 10)
    component = "LO-MD-BP" if service == BP_SRV else "MM-PUR-PO-BAPI"
    hdrs = [("dataserviceversion", "1.0")] + list(headers or [])
    if wants_json(req):
        body = {"error": {
            "code": code,
            "message": {"lang": "en", "value": message},
            "innererror": {
                "application": {"component_id": component, "service_namespace": "/SAP/",
                                "service_id": service, "service_version": "0001"},
                "transactionid": tid,
                "timestamp": stamp,
                "Error_Resolution": {
                    "SAP_Transaction": "For backend administrators: use ADT feed reader "
                                       "\"SAP Gateway Error Log\" or run transaction "
                                       "/IWFND/ERROR_LOG on SAP Gateway hub system and search "
                                       "for entries with the timestamp above for more details",
                    "SAP_Note": "See SAP Note 1797736 for error analysis "
                                "(https://service.sap.com/sap/support/notes/1797736)"},
                "errordetails": [{"code": code, "message": message, "propertyref": "",
                                  "severity": "error", "target": ""}]}}}
        return Response.json(body, status, JSON_TYPE, hdrs)
    xml = ('<?xml version="1.0" encoding="utf-8"?>'
           '<error xmlns="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata">'
           f"<code>{xml_escape(code)}</code><message xml:lang=\"en\">{xml_escape(message)}"
           f"</message><innererror><transactionid>{tid}</transactionid>"
           f"<timestamp>{stamp}</timestamp></innererror></error>")
    return Response(status, xml.encode("utf-8"), XML_TYPE, hdrs)


_LOGON_HTML = """<html><head><title>Logon Error Message</title></head><body>
<h1>Logon failed</h1><p>Logon failed. Check the user, the password and the client.</p>
</body></html>
"""

# --------------------------------------------------------------------------
# Values: wire text, Atom text, comparison keys
# --------------------------------------------------------------------------


def ordinal(s: str) -> bytes:
    """Case-sensitive ordinal comparison key (UTF-16 code units, as ABAP)."""
    return s.encode("utf-16-be")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _date_ms(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days * 86400000


def _instant_ms(t: dt.datetime) -> int:
    return (t - _EPOCH) // dt.timedelta(milliseconds=1)


def json_value(kind: str, v: Any) -> str:
    if v is None:
        return "null"
    if kind == S:
        return json_string(v)
    if kind == DT:
        return '"\\/Date(%d)\\/"' % v
    if kind == DTO:
        return '"\\/Date(%d+0000)\\/"' % v
    if kind == DEC:
        return '"' + format(v, "f") + '"'
    return "true" if v else "false"


def atom_value(kind: str, v: Any) -> str:
    if kind == DT:
        return (dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=v)).isoformat(
            timespec="seconds")
    if kind == DTO:
        return (dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=v)).isoformat(
            timespec="milliseconds") + "Z"
    if kind == DEC:
        return format(v, "f")
    if kind == BOOL:
        return "true" if v else "false"
    return v


# Fields whose ABAP domain has a conversion: the database holds the internal
# form, OData shows the external one.  ALPHA (document and partner numbers,
# CHAR10): a purely numeric value is stored right-aligned with leading zeros
# (external 17000, internal 0000017000), anything else as typed.  NUMC (item
# numbers, NUMC5): digits only, always zero-padded (10 is 00010).  Filters,
# functions and $orderby work on the internal form; literals compared with
# such a field get the input conversion (alpha_input).
CONVERSIONS: dict[str, tuple[str, int]] = {
    "PurchaseOrder": ("alpha", 10), "Supplier": ("alpha", 10),
    "InvoicingParty": ("alpha", 10), "PurchaseOrderItem": ("numc", 5)}

_DIGITS_RE = re.compile(r" *([0-9]+) *")


def alpha_input(v: str, length: int) -> str:
    """CONVERSION_EXIT_ALPHA_INPUT: digits (blanks around them allowed) are
    right-aligned and zero-padded to the field length; anything else is left
    as it is.  NUMC input is the same for digits."""
    m = _DIGITS_RE.fullmatch(v)
    if m and len(m.group(1)) <= length:
        return m.group(1).zfill(length)
    return v


def internal(prop: str, v: Any) -> Any:
    """The internal (database) form of a record value of prop."""
    conv = CONVERSIONS.get(prop)
    if conv is None or v is None:
        return v
    return alpha_input(v, conv[1])


def sort_key(et: EntityType, prop: str, v: Any) -> Any:
    """Comparable form of a record value (None sorts first); texts in their
    internal form (ALPHA numbers in numeric order, before letters)."""
    if v is None:
        return (0, b"")
    if et.kind[prop] == S:
        return (1, ordinal(internal(prop, v)))
    return (1, v)


# --------------------------------------------------------------------------
# OData V2 $filter: tokenizer, parser, type-checking compiler
# --------------------------------------------------------------------------

_NUM_RE = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[LlMmDdFf]?(?![A-Za-z0-9_.])")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*")
_TYPED = {"datetime": DT, "datetimeoffset": DTO, "guid": "Edm.Guid", "time": "Edm.Time",
          "binary": "Edm.Binary", "X": "Edm.Binary"}
_CMP = {"eq", "ne", "gt", "ge", "lt", "le"}
_ARITH = {"add", "sub", "mul", "div", "mod"}
_BOOL_FUNCS = {"substringof": (S, S), "startswith": (S, S), "endswith": (S, S)}
_STR_FUNCS = {"tolower", "toupper", "trim"}
_INT_FUNCS = {"length": S, "year": DT, "month": DT, "day": DT, "hour": DT, "minute": DT,
              "second": DT}
_KNOWN_FUNCS = set(_BOOL_FUNCS) | _STR_FUNCS | set(_INT_FUNCS) | {
    "indexof", "replace", "substring", "concat", "round", "floor", "ceiling", "isof", "cast"}


def _tokenize(text: str) -> list[_Tok]:
    toks, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t":
            i += 1
            continue
        if ch in "(),":
            toks.append(_Tok(ch, ch, i, i + 1))
            i += 1
            continue
        if ch == "'":
            lit = odata_string(text, i)
            if lit is None:
                raise _filter_error(f"Invalid token detected at position {i + 1}")
            toks.append(_Tok("lit", (S, lit[0]), i, lit[1]))
            i = lit[1]
            continue
        m = _NUM_RE.match(text, i)
        if m and (ch.isdigit() or ch == "-"):
            toks.append(_Tok("lit", _number(m.group(), i), i, m.end()))
            i = m.end()
            continue
        m = _IDENT_RE.match(text, i)
        if m:
            word = m.group()
            if word in _TYPED and m.end() < n and text[m.end()] == "'":
                k = text.find("'", m.end() + 1)
                if k < 0:
                    raise _filter_error(f"Invalid token detected at position {i + 1}")
                toks.append(_Tok("lit", _typed(word, text[m.end() + 1:k], i), i, k + 1))
                i = k + 1
                continue
            toks.append(_Tok("ident", word, i, m.end()))
            i = m.end()
            continue
        raise _filter_error(f"Invalid token detected at position {i + 1}")
    toks.append(_Tok("end", None, n, n))
    return toks


def _number(text: str, pos: int) -> tuple[str, Any]:
    suffix = text[-1] if text[-1] in "LlMmDdFf" else ""
    body = text[:-1] if suffix else text
    try:
        if suffix in ("M", "m"):
            return DEC, Decimal(body)
        if suffix in ("D", "d", "F", "f") or "." in body or "e" in body.lower():
            if suffix in ("L", "l"):
                raise ValueError
            return "Edm.Double", Decimal(body)
        value = int(body)
        if suffix in ("L", "l"):
            return "Edm.Int64", value
        return ("Edm.Int32" if -2**31 <= value < 2**31 else "Edm.Int64"), value
    except (ValueError, InvalidOperation):
        raise _filter_error(f"Invalid token detected at position {pos + 1}") from None


_DT_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?")


def _typed(word: str, value: str, pos: int) -> tuple[str, Any]:
    kind = _TYPED[word]
    if kind in (DT, DTO):
        m = _DT_RE.fullmatch(value) if kind == DT else \
            re.fullmatch(_DT_RE.pattern + r"(Z|[+-]\d{2}:\d{2})", value)
        if not m:
            raise _filter_error(f"Invalid {word} literal '{value}' at position {pos + 1}")
        y, mo, d, h, mi, s, frac = m.groups()[:7]
        try:
            t = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0),
                            int(((frac or "") + "000000")[:6]))
        except ValueError:
            raise _filter_error(f"Invalid {word} literal '{value}' at position {pos + 1}") \
                from None
        if kind == DTO and m.group(8) != "Z":
            z = m.group(8)
            t -= dt.timedelta(hours=int(z[1:3]), minutes=int(z[4:6])) * (1 if z[0] == "+" else -1)
        ms = (t - dt.datetime(1970, 1, 1)) // dt.timedelta(milliseconds=1)
        return kind, ms
    return kind, value


_LITERAL = object()         # the "property" slot of a literal node


class FilterCompiler:
    """Parses a V2 ``$filter`` and compiles it into ``rec -> bool``.

    Precedence (high to low): primary, ``not``, arithmetic (rejected),
    relational/equality, ``and``, ``or``.  Operand types are checked as SAP
    Gateway does: a comparison needs operands of one EDM type (Int32/Int64
    literals are promoted to Edm.Decimal; nothing is promoted to a string
    or a date), ``gt``/``lt``/... are not defined for booleans, ``null``
    only compares with ``eq``/``ne``.  Each node compiles to
    (type, getter).
    """

    def __init__(self, et: EntityType, text: str):
        self.et, self.text = et, text
        self.toks = _tokenize(text)
        self.i = 0

    def compile(self) -> Callable[[dict], bool]:
        if self.toks[0].kind == "end":
            raise _filter_error("Expression expected at position 1")
        kind, get, _prop = self._or()
        t = self.toks[self.i]
        if t.kind != "end":
            raise _filter_error(f"Invalid token detected at position {t.pos + 1}")
        if kind != BOOL:
            raise _filter_error("Filter expression must be of type Edm.Boolean")
        return lambda r: get(r) is True

    def _peek(self) -> _Tok:
        return self.toks[self.i]

    def _next(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def _word(self, w: str) -> bool:
        t = self._peek()
        return t.kind == "ident" and t.value == w

    def _need_bool(self, node: tuple, op: str, pos: int) -> Callable:
        if node[0] != BOOL:
            raise _filter_error(f"Invalid parametertype used at function '{op}' "
                                f"(Position: {pos + 1})")
        return node[1]

    def _chain(self, word: str, operand: Callable[[], tuple]) -> tuple:
        """operand (word operand)*: a left-associative "and" or "or"."""
        left = operand()
        while self._word(word):
            t = self._next()
            a = self._need_bool(left, word, t.pos)
            b = self._need_bool(operand(), word, t.pos)
            if word == "or":
                left = (BOOL, lambda r, a=a, b=b: a(r) is True or b(r) is True, None)
            else:
                left = (BOOL, lambda r, a=a, b=b: a(r) is True and b(r) is True, None)
        return left

    def _or(self) -> tuple:
        return self._chain("or", self._and)

    def _and(self) -> tuple:
        return self._chain("and", self._cmp)

    def _cmp(self) -> tuple:
        left = self._unary()
        t = self._peek()
        if t.kind == "ident" and t.value in _ARITH:
            raise _filter_error(f"Operator '{t.value}' is not supported (Position: {t.pos + 1})")
        if not (t.kind == "ident" and t.value in _CMP):
            return left
        self._next()
        right = self._unary()
        return self._compare(t.value, left, right, t.pos)

    def _compare(self, op: str, left: tuple, right: tuple, pos: int) -> tuple:
        lk, rk = left[0], right[0]
        bad = _filter_error(f"Invalid parametertype used at function '{op}' (Position: {pos + 1})")
        if lk == "null" or rk == "null":
            if op not in ("eq", "ne") or (lk == "null" and rk == "null"):
                raise bad
            get = left[1] if rk == "null" else right[1]
            return (BOOL, (lambda r, g=get: g(r) is None) if op == "eq"
                    else (lambda r, g=get: g(r) is not None), None)
        ints = ("Edm.Int32", "Edm.Int64")
        if lk == rk or (lk in ints and rk in ints):
            kind = lk
        elif lk == DEC and rk in ints or rk == DEC and lk in ints:
            kind = DEC
        else:
            raise bad
        if kind == BOOL and op not in ("eq", "ne"):
            raise bad
        if kind in ("Edm.Guid", "Edm.Time", "Edm.Binary", "Edm.Double"):
            raise bad
        lget, rget = left[1], right[1]
        # a literal compared with a converted field gets the input conversion
        # (SAP Gateway converts filter values of such properties); the field
        # itself already reads in its internal form
        for a, b in ((left, right), (right, left)):
            if b[2] is _LITERAL and a[2] in CONVERSIONS and kind == S:
                length = CONVERSIONS[a[2]][1]
                g = b[1]
                if b is left:
                    lget = lambda r, g=g, n=length: alpha_input(g(r), n)
                else:
                    rget = lambda r, g=g, n=length: alpha_input(g(r), n)
        conv = ordinal if kind == S else None
        fn = {"eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge,
              "lt": operator.lt, "le": operator.le}[op]

        def pred(r: dict, lget=lget, rget=rget, conv=conv, fn=fn, op=op) -> bool:
            a, b = lget(r), rget(r)
            if a is None or b is None:
                return (a is None and b is None) if op == "eq" else \
                    ((a is None) != (b is None)) if op == "ne" else False
            if conv is not None:
                a, b = conv(a), conv(b)
            return fn(a, b)
        return (BOOL, pred, None)

    def _unary(self) -> tuple:
        if self._word("not"):
            t = self._next()
            inner = self._need_bool(self._unary(), "not", t.pos)
            return (BOOL, lambda r, g=inner: not (g(r) is True), None)
        return self._primary()

    def _primary(self) -> tuple:
        t = self._next()
        if t.kind == "(":
            node = self._or()
            close = self._next()
            if close.kind != ")":
                raise _filter_error(f"Invalid token detected at position {close.pos + 1}")
            return node
        if t.kind == "lit":
            kind, value = t.value
            return (kind, lambda r, v=value: v, _LITERAL)
        if t.kind == "ident":
            word = t.value
            if word in ("true", "false"):
                return (BOOL, lambda r, v=(word == "true"): v, None)
            if word == "null":
                return ("null", lambda r: None, None)
            if self._peek().kind == "(" and self._peek().pos == t.end:
                return self._call(word, t.pos)
            if word in _CMP or word in _ARITH or word in ("and", "or", "not"):
                raise _filter_error(f"Invalid token detected at position {t.pos + 1}")
            if "/" in word:
                raise _filter_error(f"Navigation property path '{word}' is not supported "
                                    f"in $filter (Position: {t.pos + 1})")
            kind = self.et.kind.get(word)
            if kind is None:
                raise SapError(400, "/IWBEP/CM_MGW_RT/021",
                               f"Property {word} not found in type {self.et.name}")
            return (kind, lambda r, n=word: internal(n, r[n]), word)
        raise _filter_error(f"Invalid token detected at position {t.pos + 1}")

    def _call(self, name: str, pos: int) -> tuple:
        self._next()                                   # "("
        args: list[tuple] = []
        if self._peek().kind != ")":
            args.append(self._or())
            while self._peek().kind == ",":
                self._next()
                args.append(self._or())
        close = self._next()
        if close.kind != ")":
            raise _filter_error(f"Invalid token detected at position {close.pos + 1}")
        bad = _filter_error(f"Invalid parametertype used at function '{name}' "
                            f"(Position: {pos + 1})")
        if name in _BOOL_FUNCS:
            if len(args) != 2 or args[0][0] != S or args[1][0] != S:
                raise bad
            a, b = args[0][1], args[1][1]
            if name == "substringof":          # needle first
                f = lambda r, a=a, b=b: None if a(r) is None or b(r) is None else a(r) in b(r)
            elif name == "startswith":
                f = lambda r, a=a, b=b: None if a(r) is None or b(r) is None else \
                    a(r).startswith(b(r))
            else:
                f = lambda r, a=a, b=b: None if a(r) is None or b(r) is None else \
                    a(r).endswith(b(r))
            return (BOOL, f, None)
        if name in _STR_FUNCS:
            if len(args) != 1 or args[0][0] != S:
                raise bad
            g = args[0][1]
            op = {"tolower": str.lower, "toupper": str.upper, "trim": str.strip}[name]
            return (S, lambda r, g=g, op=op: None if g(r) is None else op(g(r)), None)
        if name in _INT_FUNCS:
            if len(args) != 1 or args[0][0] not in ((S,) if name == "length" else (DT, DTO)):
                raise bad
            g = args[0][1]
            if name == "length":
                return ("Edm.Int32", lambda r, g=g: None if g(r) is None else len(g(r)), None)

            def part(r: dict, g=g, name=name) -> Optional[int]:
                v = g(r)
                if v is None:
                    return None
                t = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=v)
                return getattr(t, name)
            return ("Edm.Int32", part, None)
        if name in _KNOWN_FUNCS:
            raise _filter_error(f"Function '{name}' is not supported (Position: {pos + 1})")
        raise _filter_error(f"Unknown function '{name}' (Position: {pos + 1})")


# --------------------------------------------------------------------------
# Query options
# --------------------------------------------------------------------------

_OPTIONS = {"$filter", "$select", "$orderby", "$top", "$skip", "$inlinecount", "$format",
            "$skiptoken", "$expand"}


class Query:
    def __init__(self) -> None:
        self.predicate: Optional[Callable[[dict], bool]] = None
        self.select: Optional[list[str]] = None
        self.orderby: list[tuple[str, bool]] = []
        self.top: Optional[int] = None
        self.skip = 0
        self.skiptoken: Optional[int] = None
        self.inlinecount = False


def parse_query(req: Request, et: EntityType, single: bool = False) -> Query:
    q = Query()
    seen: dict[str, str] = {}
    for key, value in req.params:
        if not key.startswith("$"):
            continue                               # sap-client, sap-language, custom options
        if key not in _OPTIONS:
            raise _option_error(f"System query option '{key}' is not supported")
        if key in seen:
            raise _option_error(f"System query option '{key}' is specified more than once")
        seen[key] = value
    if single:
        for key in ("$filter", "$orderby", "$top", "$skip", "$inlinecount", "$skiptoken"):
            if key in seen:
                raise _option_error(f"System query option '{key}' is not allowed for a single "
                                    "entity")
    fmt = seen.get("$format")
    if fmt is not None and fmt.strip().lower() not in ("json", "application/json", "xml",
                                                      "atom", "application/atom+xml"):
        raise _option_error(f"Format '{fmt}' is not supported")
    if "$expand" in seen:
        for nav in (s.strip() for s in seen["$expand"].split(",")):
            if nav not in et.navigation:
                raise SapError(400, "/IWBEP/CM_MGW_RT/021",
                               f"Property {nav} not found in type {et.name}")
        raise SapError(501, "/IWBEP/CM_MGW_RT/006", "$expand is not implemented by this "
                       "sandbox")
    if "$filter" in seen:
        q.predicate = FilterCompiler(et, seen["$filter"]).compile()
    if "$select" in seen:
        names = [s.strip() for s in seen["$select"].split(",")]
        if "*" not in names:
            for s in names:
                if s not in et.kind:
                    raise SapError(400, "/IWBEP/CM_MGW_RT/021",
                                   f"Property {s} not found in type {et.name}")
            q.select = [p for p, _k in et.props if p in names]
    if "$orderby" in seen:
        for part in seen["$orderby"].split(","):
            words = part.split()
            if not words or len(words) > 2 or (len(words) == 2
                                              and words[1] not in ("asc", "desc")):
                raise _option_error(f"Invalid $orderby expression '{seen['$orderby']}'")
            if words[0] not in et.kind:
                raise SapError(400, "/IWBEP/CM_MGW_RT/021",
                               f"Property {words[0]} not found in type {et.name}")
            q.orderby.append((words[0], len(words) == 2 and words[1] == "desc"))
    for opt in ("$top", "$skip", "$skiptoken"):
        if opt in seen:
            raw = seen[opt].strip()
            if not re.fullmatch(r"\d{1,9}", raw):
                raise _option_error(f"Invalid value '{seen[opt]}' for system query option "
                                    f"'{opt}'")
            setattr(q, opt[1:], int(raw))
    if "$inlinecount" in seen:
        v = seen["$inlinecount"].strip()
        if v not in ("allpages", "none"):
            raise _option_error(f"Invalid value '{v}' for system query option '$inlinecount'")
        q.inlinecount = v == "allpages"
    return q


# --------------------------------------------------------------------------
# Rendering the canonical dataset
# --------------------------------------------------------------------------

_STATUS = {"draft": "01", "pending_approval": "03", "open": "02", "partially_received": "05",
           "received": "05", "closed": "05", "rejected": "08", "cancelled": "02"}
_Q3 = Decimal("0.001")
_Q2 = Decimal("0.01")
_ORDER_BASE = 4500000000
_SUPPLIER_BASE = 17300000


def _blank(et: EntityType) -> dict:
    out: dict[str, Any] = {}
    for p, k in et.props:
        out[p] = "" if k == S else (False if k == BOOL else (Decimal(0) if k == DEC else None))
    return out


# Numbers where the ALPHA conversion shows (purely numeric numbers shorter
# than the field, stored with leading zeros; alphanumeric ones stored as
# typed).  Suppliers: by vendor index.  Purchase orders: the last orders of
# a dataset of at least _SPECIAL_PO_MIN orders (externally numbered
# documents), whose items are numbered 9, 10, 99, 100 (NUMC order differs
# from text order).
_SPECIAL_SUPPLIERS = {1: "17000", 2: "1700", 3: "9", 4: "17A", 5: "SUP-17", 6: "A1700"}
_SPECIAL_POS = ["17000", "1700", "170", "17A", "PO-1700"]
_SPECIAL_PO_MIN = 40
_SPECIAL_ITEMS = ["9", "10", "99", "100"]


class SapData:
    """The canonical dataset as SAP records (dicts of typed values), by index.

    Records are kept in their external form (as served).  The default order
    is the key order of the internal form: suppliers are sorted once; order
    index order is key order except for the externally numbered orders at
    the end (_SPECIAL_POS), which at(et, pos) places where their internal
    number sorts (before or after all regular 45000000nn numbers).
    """

    def __init__(self, ds: PurchasingDataset):
        self.ds = ds
        self.suppliers = sorted((self._supplier(v) for v in ds.vendors),
                                key=lambda r: ordinal(internal("Supplier", r["Supplier"])))
        self._po_cache = BoundedCache(4096)
        self._item_cache = BoundedCache(8192)
        n = ds.n_orders
        nspecial = len(_SPECIAL_POS) if n >= _SPECIAL_PO_MIN else 0
        self.regular_orders = n - nspecial
        # order index -> number for the special ones, and number -> index
        self.special_po = {n - nspecial + k: _SPECIAL_POS[k] for k in range(nspecial)}
        self.po_index = {v: i for i, v in self.special_po.items()}
        first = ordinal(internal("PurchaseOrder", str(_ORDER_BASE + 1)))
        key = lambda i: ordinal(internal("PurchaseOrder", self.po_number(i)))  # noqa: E731
        specials = sorted(self.special_po, key=key)
        self._po_before = [i for i in specials if key(i) < first]
        self._po_after = [i for i in specials if key(i) > first]
        self._lines_before: Optional[list[int]] = None
        self._lines_after: Optional[list[int]] = None

    def po_number(self, i: int) -> str:
        return self.special_po.get(i) or str(_ORDER_BASE + i + 1)

    def po_lookup(self, number: str) -> Optional[int]:
        """Order index of an (internal or external) number, or None."""
        ext = number.lstrip("0") if number.isdigit() else number
        if ext in self.po_index:
            return self.po_index[ext]
        if ext.isdigit() and 0 <= int(ext) - _ORDER_BASE - 1 < self.regular_orders:
            return int(ext) - _ORDER_BASE - 1
        return None

    def item_number(self, i: int, k: int) -> str:
        return _SPECIAL_ITEMS[k] if i in self.special_po else str((k + 1) * 10)

    def size(self, et: EntityType) -> int:
        if et is PURCHASE_ORDER:
            return self.ds.n_orders
        if et is PURCHASE_ORDER_ITEM:
            return self.ds.total_lines
        return len(self.suppliers)

    def _lines_of(self, orders: list[int]) -> list[int]:
        offs = self.ds.line_offsets
        return [j for i in orders for j in range(offs[i], offs[i + 1])]

    def at(self, et: EntityType, pos: int) -> int:
        """The index of the record at position pos of the key order."""
        if et is SUPPLIER or not self.special_po:
            return pos
        if et is PURCHASE_ORDER:
            before, after, middle = self._po_before, self._po_after, self.regular_orders
        else:
            if self._lines_before is None:
                self._lines_after = self._lines_of(self._po_after)
                self._lines_before = self._lines_of(self._po_before)
            before, after = self._lines_before, self._lines_after
            middle = self.ds.line_offsets[self.regular_orders]
        if pos < len(before):
            return before[pos]
        pos -= len(before)
        return pos if pos < middle else after[pos - middle]

    def visible(self, et: EntityType, idx: int) -> bool:
        """Whether a record exists (not deleted, not a spare order that was
        never inserted; POST /_sandbox/mutate)."""
        if et is SUPPLIER or not self.ds.mutated:
            return True
        if et is PURCHASE_ORDER:
            return not self.ds.order_hidden(idx)
        return not self.ds.line_hidden(*self.ds.locate_line(idx))

    def changed(self) -> None:
        """The dataset changed: suppliers are rendered again, cached orders
        and items dropped."""
        self.suppliers = sorted((self._supplier(v) for v in self.ds.vendors),
                                key=lambda r: ordinal(internal("Supplier", r["Supplier"])))
        self._po_cache.clear()
        self._item_cache.clear()

    def record(self, et: EntityType, idx: int) -> dict:
        if et is SUPPLIER:
            return self.suppliers[idx]
        cache = self._po_cache if et is PURCHASE_ORDER else self._item_cache
        rec = cache.get(idx)
        if rec is None:
            rec = self._order(idx) if et is PURCHASE_ORDER else self._item(idx)
            cache.put(idx, rec)
        return rec

    def records(self, et: EntityType, start: int = 0, stop: Optional[int] = None
                ) -> Iterator[dict]:
        """Records at key-order positions start..stop."""
        stop = self.size(et) if stop is None else min(stop, self.size(et))
        for pos in range(start, stop):
            idx = self.at(et, pos)
            if self.visible(et, idx):
                yield self.record(et, idx)

    @staticmethod
    def supplier_number(v_index: int) -> str:
        return _SPECIAL_SUPPLIERS.get(v_index) or str(_SUPPLIER_BASE + v_index + 1)

    def _supplier(self, v: Any) -> dict:
        r = _blank(SUPPLIER)
        r.update({
            "Supplier": self.supplier_number(v.index),
            "CreatedByUser": "CB9980000010",
            "CreationDate": _date_ms(v.created_at.date()),
            "PaymentIsBlockedForSupplier": v.blocked in ("payment", "all"),
            "PostingIsBlocked": v.blocked == "all",
            "PurchasingIsBlocked": v.blocked == "all",
            "SupplierAccountGroup": "SUPL",
            "SupplierFullName": v.name,
            "SupplierName": v.name,
            "VATRegistration": v.tax_registration,
            "IsNaturalPerson": "",
            "TaxNumber1": v.tax_registration,
        })
        return r

    def _order(self, i: int) -> dict:
        o = self.ds.order(i)
        v = self.ds.vendors[o.vendor]
        currency = o.currency or self.ds.buyer.currency
        r = _blank(PURCHASE_ORDER)
        r.update({
            "PurchaseOrder": self.po_number(i),
            "CompanyCode": COMPANY_CODE,
            "PurchaseOrderType": "NB",
            "PurchasingDocumentDeletionCode": "L" if o.status == "cancelled" else "",
            "PurchasingProcessingStatus": _STATUS[o.status],
            "CreatedByUser": "CB9980000010",
            "CreationDate": _date_ms(o.created_at.date()),
            # a document never changed after creation has no change stamp
            "LastChangeDateTime": None if i == 9 and not self.ds.changes.get(("o", i))
                                  else _instant_ms(o.updated_at),
            "Supplier": self.supplier_number(o.vendor),
            "Language": "EN",
            "PaymentTerms": "0001",
            "NetPaymentDays": Decimal(30),
            "PurchasingOrganization": COMPANY_CODE,
            "PurchasingDocumentOrigin": "9",
            "PurchasingGroup": "001",
            "PurchaseOrderDate": _date_ms(o.order_date),
            "DocumentCurrency": currency,
            "ExchangeRate": "1.00000",
            "InvoicingParty": self.supplier_number(o.pay_to_vendor),
            "PurchasingCompletenessStatus": False,
            "ReleaseIsNotCompleted": o.status == "pending_approval",
            "AddressName": v.name,
            "AddressCityName": v.city,
            "AddressPostalCode": v.postal_code,
            "AddressStreetName": v.address1,
            "AddressRegion": v.state,
            "AddressCountry": v.country,
            "AddressPhoneNumber": v.phone,
            "AddressCorrespondenceLanguage": "EN",
        })
        return r

    def _item(self, j: int) -> dict:
        i, k = self.ds.locate_line(j)
        o = self.ds.order(i)
        ln = o.lines[k]
        it = self.ds.items[ln.item] if ln.item is not None else None
        r = _blank(PURCHASE_ORDER_ITEM)
        full = o.status in ("received", "closed")
        r.update({
            "PurchaseOrder": self.po_number(i),
            "PurchaseOrderItem": self.item_number(i, k),
            "PurchaseOrderItemText": ln.description,
            "Plant": COMPANY_CODE,
            "StorageLocation": "171A" if it is not None and it.type == "inventory" else "",
            "MaterialGroup": "L001" if it is not None else "",
            "OrderQuantity": ln.quantity.quantize(_Q3, ROUND_HALF_UP),
            "PurchaseOrderQuantityUnit": ln.uom,
            "OrderPriceUnit": ln.uom,
            "OrderPriceUnitToOrderUnitNmrtr": Decimal(1),
            "OrdPriceUnitToOrderUnitDnmntr": Decimal(1),
            "DocumentCurrency": o.currency or self.ds.buyer.currency,
            "NetPriceAmount": ln.unit_cost.quantize(_Q2, ROUND_HALF_UP),
            "NetPriceQuantity": Decimal(1),
            "TaxCode": "I1" if ln.tax_percent else "I0",
            "IsCompletelyDelivered": full,
            "IsFinallyInvoiced": o.status == "closed",
            "PurchaseOrderItemCategory": "0",
            "AccountAssignmentCategory": "K" if ln.kind == "account" else "",
            "GoodsReceiptIsExpected": ln.kind == "item",
            "InvoiceIsExpected": ln.kind != "comment",
            "InvoiceIsGoodsReceiptBased": ln.kind == "item",
            "IsReturnsItem": ln.quantity < 0,
            "Material": it.code if it is not None else "",
            "ProductType": "" if it is None else ("2" if it.type == "service" else "1"),
        })
        return r


# --------------------------------------------------------------------------
# Serialisation
# --------------------------------------------------------------------------

def entity_path(et: EntityType, r: dict) -> str:
    if len(et.keys) == 1:
        return f"{et.set_name}('{r[et.keys[0]]}')"
    return et.set_name + "(" + ",".join(f"{k}='{r[k]}'" for k in et.keys) + ")"


def json_record(et: EntityType, r: dict, base: str, select: Optional[list[str]]) -> str:
    uri = f"{base}/{et.service}/{entity_path(et, r)}"
    parts = ['{"__metadata":{"id":', json_string(uri), ',"uri":', json_string(uri),
             ',"type":', json_string(et.qualified), "}"]
    for p, k in et.props:
        if select is None or p in select:
            parts.append("," + json_string(p) + ":" + json_value(k, r[p]))
    if select is None:
        for nav in et.navigation:
            parts.append(',"%s":{"__deferred":{"uri":%s}}' % (nav, json_string(uri + "/" + nav)))
    parts.append("}")
    return "".join(parts)


def atom_entry(et: EntityType, r: dict, base: str, select: Optional[list[str]]) -> str:
    uri = f"{base}/{et.service}/{entity_path(et, r)}"
    props = []
    for p, k in et.props:
        if select is not None and p not in select:
            continue
        v = r[p]
        typ = "" if k == S else f" m:type={quoteattr(k)}"
        if v is None:
            props.append(f"<d:{p}{typ} m:null=\"true\"/>")
        else:
            props.append(f"<d:{p}{typ}>{xml_escape(atom_value(k, v))}</d:{p}>")
    return (f"<entry><id>{xml_escape(uri)}</id><title type=\"text\">"
            f"{xml_escape(entity_path(et, r))}</title><updated>"
            f"{dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}</updated>"
            f"<category term={quoteattr(et.qualified)} "
            "scheme=\"http://schemas.microsoft.com/ado/2007/08/dataservices/scheme\"/>"
            f"<link href={quoteattr(entity_path(et, r))} rel=\"self\"/>"
            "<content type=\"application/xml\"><m:properties>" + "".join(props) +
            "</m:properties></content></entry>")


_ATOM_NS = ('xmlns="http://www.w3.org/2005/Atom" '
            'xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" '
            'xmlns:d="http://schemas.microsoft.com/ado/2007/08/dataservices"')


def edmx(service: str) -> str:
    out = ['<?xml version="1.0" encoding="utf-8"?>',
           '<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" '
           'xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" '
           'xmlns:sap="http://www.sap.com/Protocols/SAPData">',
           '<edmx:DataServices m:DataServiceVersion="2.0">',
           f'<Schema Namespace="{service}" xml:lang="en" sap:schema-version="1" '
           'xmlns="http://schemas.microsoft.com/ado/2008/09/edm">']
    for et in SERVICES[service].values():
        out.append(f'<EntityType Name="{et.name}" sap:content-version="1"><Key>'
                   + "".join(f'<PropertyRef Name="{k}"/>' for k in et.keys) + "</Key>")
        for p, k in et.props:
            facet = ' Precision="0" sap:display-format="Date"' if k == DT else \
                (' Precision="7"' if k == DTO else (' Precision="13" Scale="3"' if k == DEC
                                                    else ""))
            null = ' Nullable="false"' if p in et.keys else ""
            out.append(f'<Property Name="{p}" Type="{k}"{null}{facet}/>')
        out.append("</EntityType>")
    out.append(f'<EntityContainer Name="{service}_Entities" m:IsDefaultEntityContainer="true">')
    for et in SERVICES[service].values():
        out.append(f'<EntitySet Name="{et.set_name}" EntityType="{et.qualified}"/>')
    out.append("</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>")
    return "\n".join(out)


# --------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------

class TokenStore:
    def __init__(self) -> None:
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            if len(self._tokens) > 10000:
                now = time.time()
                self._tokens = {t: e for t, e in self._tokens.items() if e > now}
            self._tokens[token] = time.time() + ttl
        return token

    def valid(self, token: str) -> bool:
        with self._lock:
            exp = self._tokens.get(token)
        return exp is not None and time.time() < exp

    def revoke_all(self) -> int:
        with self._lock:
            n = len(self._tokens)
            self._tokens.clear()
            return n


_SET_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\((.*)\))?$")


class SapApp(SandboxApp):
    name = "sap_s4hana"
    server_header = "SAP NetWeaver Application Server 7.58 / AS Java 7.58"

    def __init__(self, seed: int = 42, orders: int = 60, *, vendors: int = 25, items: int = 20,
                 basic_user: str = DEFAULT_BASIC_USER, basic_password: str = DEFAULT_BASIC_PASSWORD,
                 api_key: str = DEFAULT_API_KEY, client_id: str = DEFAULT_CLIENT_ID,
                 client_secret: str = DEFAULT_CLIENT_SECRET, sap_client: str = DEFAULT_SAP_CLIENT,
                 spare_orders: int = 0):
        if spare_orders and orders + spare_orders >= _SPECIAL_PO_MIN:
            raise ValueError(f"--spare-orders needs fewer than {_SPECIAL_PO_MIN} orders in all "
                             "(the externally numbered orders sit at the end)")
        self.config_defaults = {
            # records per page when the request has no $top (then with __next)
            "server_page_size": 1000,
            # largest $top served in one page; more is capped, with __next
            "max_top": 5000,
            # accepted credentials (change at run time to simulate rotation)
            "basic_user": basic_user, "basic_password": basic_password,
            "api_key": api_key, "client_id": client_id, "client_secret": client_secret,
            # the client (Mandant) the users exist in; another sap-client fails logon
            "sap_client": sap_client,
            # lifetime (s) of access tokens
            "token_ttl": 3600,
            # entity sets answered with 403 (missing authorization)
            "denied_entity_sets": [],
        }
        self.config_validators = {
            "server_page_size": lambda v: v > 0, "max_top": lambda v: v > 0,
            "token_ttl": lambda v: v > 0,
            "sap_client": lambda v: bool(re.fullmatch(r"\d{3}", v)),
            "denied_entity_sets": lambda v: all(isinstance(s, str) for s in v),
        }
        self.data = SapData(PurchasingDataset(seed=seed, orders=orders, vendors=vendors,
                                              items=items, spare_orders=spare_orders))
        self.tokens = TokenStore()

    def reset(self) -> None:
        self.tokens.revoke_all()

    def mutate(self, spec: dict, at: dt.datetime) -> list[dict]:
        with self.data.ds.mutate_lock:
            done = self.data.ds.mutate(spec["ops"], at)
            self.data.changed()
        for d in done:
            if "order" in d:
                d["id"] = self.data.po_number(d["order"])
        return done

    def health(self) -> dict:
        return {"A_PurchaseOrder": self.data.ds.visible_orders()}

    # -- errors ----------------------------------------------------------

    def error_response(self, req: Request, status: int, message: Optional[str] = None
                       ) -> Response:
        if req.path.rstrip("/") == TOKEN_PATH:
            return Response.json({"error": "server_error" if status >= 500 else
                                  "temporarily_unavailable" if status == 429 else
                                  "invalid_request",
                                  "error_description": message or "Request failed"}, status)
        text = message or {
            400: "The request is invalid", 401: "Logon failed", 403: "No authorization", 404: "Resource not found",
            429: "Too many requests", 500: "In the context of Data Services an unknown "
                 "internal server error occurred",
            503: "Service temporarily unavailable"}.get(status, "Error")
        code = "/IWFND/MED/170" if status in (500, 503) else "/IWBEP/CM_MGW_RT/001"
        service = BP_SRV if f"/{BP_SRV}/" in req.path else PO_SRV
        return sap_error_response(req, status, code, text, service)

    # -- control ---------------------------------------------------------

    def control(self, req: Request, name: str) -> Optional[Response]:
        if name.startswith("export/") and req.method == "GET":
            et = ALL_SETS.get(name[len("export/"):])
            if et is None:
                return Response.json({"error": f"unknown entity set; known: "
                                               f"{sorted(ALL_SETS)}"}, 404)
            base = req.base_url + ROOT

            def chunks() -> Iterator[bytes]:
                yield b'{"value":['
                for n, r in enumerate(self.data.records(et)):
                    yield ((b"," if n else b"") + json_record(et, r, base, None).encode())
                yield b"]}"
            return Response(200, chunks(), JSON_TYPE)
        if name == "revoke" and req.method == "POST":
            return Response.json({"ok": True, "revoked": self.tokens.revoke_all()})
        if name == "info" and req.method == "GET":
            cfg = self.config
            ds = self.data.ds
            return Response.json({
                "orders": ds.n_orders, "items": ds.total_lines, "suppliers": len(ds.vendors),
                "basic_user": cfg["basic_user"], "basic_password": cfg["basic_password"],
                "api_key": cfg["api_key"], "client_id": cfg["client_id"],
                "client_secret": cfg["client_secret"], "sap_client": cfg["sap_client"],
                "special_orders": {self.data.po_number(i): what
                                   for i, what in ds.special_orders().items()}})
        return None

    # -- entry point -------------------------------------------------------

    def handle(self, req: Request) -> Response:
        if req.path.rstrip("/") == TOKEN_PATH:
            return self._token(req)
        if not req.path.startswith(ROOT + "/"):
            return Response(404, b"<html><body><h1>404 Not found</h1></body></html>",
                            "text/html; charset=utf-8")
        rest = req.path[len(ROOT) + 1:]
        service, _, tail = rest.partition("/")
        service = service.split(";")[0]
        auth = self._authenticate(req)
        if auth is not None:
            return auth
        try:
            if service not in SERVICES:
                raise SapError(404, "/IWFND/MED/170",
                               f"No service found for namespace '/SAP/', name '{service}', "
                               "version '0001'")
            if req.method not in ("GET", "HEAD"):
                # writes need the CSRF handshake first, which this read-only sandbox never
                # completes (reference 1.10)
                raise SapError(403, "/IWFND/CM_CONSUMER/101", "CSRF token validation failed",
                               [("x-csrf-token", "Required")])
            return self._route(req, service, tail)
        except SapError as e:
            return sap_error_response(req, e.status, e.code, e.message, service, e.headers)

    # -- authentication ------------------------------------------------------

    def _authenticate(self, req: Request) -> Optional[Response]:
        cfg = self.config
        client = next((v for k, v in req.params if k == "sap-client"), None)
        realm = f'Basic realm="SAP NetWeaver Application Server [{SYSTEM_ID}/{cfg["sap_client"]}]"'
        logon_failed = Response(401, _LOGON_HTML.encode(), "text/html; charset=utf-8",
                                [("WWW-Authenticate", realm),
                                 ("sap-server", "true")])
        if client is not None and client != cfg["sap_client"]:
            return logon_failed                       # no such user in that client
        key = req.header("APIKey")
        if key is not None:
            if key == cfg["api_key"]:
                return None
            return Response.json({"fault": {"faultstring": "Invalid ApiKey",
                                            "detail": {"errorcode":
                                                       "oauth.v2.InvalidApiKey"}}},
                                 401, JSON_TYPE)
        auth = (req.header("Authorization") or "").strip()
        scheme, _, cred = auth.partition(" ")
        if scheme.lower() == "basic":
            user, password = req.basic_credentials() or ("", None)
            if user.upper() == cfg["basic_user"].upper() and password == cfg["basic_password"]:
                return None
            return logon_failed
        if scheme.lower() == "bearer":
            if self.tokens.valid(cred.strip()):
                return None
            return Response(401, _LOGON_HTML.encode(), "text/html; charset=utf-8",
                            [("WWW-Authenticate", 'Bearer realm="SAP NetWeaver Application '
                              f'Server [{SYSTEM_ID}/{cfg["sap_client"]}]", error="invalid_token"')])
        return logon_failed

    def _token(self, req: Request) -> Response:
        cfg = self.config
        if req.method != "POST":
            return Response.json({"error": "invalid_request",
                                  "error_description": "Only POST is supported"}, 405)
        form = req.token_form()
        if form.get("grant_type") != "client_credentials":
            return Response.json({"error": "unsupported_grant_type",
                                  "error_description": "Grant type is not supported"}, 400)
        if form.get("client_id") != cfg["client_id"] or \
                form.get("client_secret") != cfg["client_secret"]:
            return Response.json({"error": "invalid_client",
                                  "error_description": "Client authentication failed"}, 401,
                                 JSON_TYPE, [("WWW-Authenticate", 'Basic realm="OAuth 2.0"')])
        ttl = int(cfg["token_ttl"])
        return Response.json({"access_token": self.tokens.issue(ttl), "token_type": "Bearer",
                              "expires_in": ttl, "scope": "API_PURCHASEORDER_PROCESS_SRV_0001 "
                              "API_BUSINESS_PARTNER_0001"}, 200, JSON_TYPE,
                             [("Cache-Control", "no-store"), ("Pragma", "no-cache")])

    # -- routing -------------------------------------------------------------

    def _route(self, req: Request, service: str, tail: str) -> Response:
        base = req.base_url + ROOT
        segs = [s for s in tail.split("/") if s]
        json_wanted = wants_json(req)
        if not segs:
            sets = list(SERVICES[service])
            if json_wanted:
                return Response.json({"d": {"EntitySets": sets}}, 200, JSON_TYPE,
                                     [("dataserviceversion", "1.0")])
            xml = ('<?xml version="1.0" encoding="utf-8"?><app:service '
                   'xmlns:app="http://www.w3.org/2007/app" '
                   'xmlns:atom="http://www.w3.org/2005/Atom"><app:workspace>'
                   + "".join(f'<app:collection href="{s}"><atom:title>{s}</atom:title>'
                             "</app:collection>" for s in sets)
                   + "</app:workspace></app:service>")
            return Response(200, xml.encode(), "application/atomsvc+xml; charset=utf-8")
        if segs == ["$metadata"]:
            return Response(200, edmx(service).encode(), XML_TYPE,
                            [("dataserviceversion", "2.0")])
        m = _SET_RE.match(segs[0])
        et = SERVICES[service].get(m.group(1)) if m else None
        if et is None:
            raise SapError(404, "/IWBEP/CM_MGW_RT/021",
                           f"Resource not found for segment '{segs[0]}'")
        if et.set_name in self.config["denied_entity_sets"]:
            raise SapError(403, "/IWBEP/CM_MGW_RT/003",
                           f"No authorization to access entity set {et.set_name}")
        if m.group(2) is not None:
            if len(segs) > 1:
                raise SapError(404, "/IWBEP/CM_MGW_RT/021",
                               f"Resource not found for segment '{segs[1]}'")
            return self._single(req, et, m.group(2), base, json_wanted)
        if len(segs) == 2 and segs[1] == "$count":
            q = parse_query(req, et)
            n = self._count(et, q)
            return Response.text(str(n), 200, "text/plain; charset=utf-8")
        if len(segs) > 1:
            raise SapError(404, "/IWBEP/CM_MGW_RT/021",
                           f"Resource not found for segment '{segs[1]}'")
        return self._collection(req, et, base, json_wanted)

    def _key(self, et: EntityType, raw: str) -> dict:
        if len(et.keys) == 1 and re.fullmatch(r"'[^']*'", raw):
            return {et.keys[0]: raw[1:-1]}
        out = {}
        for part in raw.split(","):
            name, _, value = part.partition("=")
            if name.strip() not in et.keys or not re.fullmatch(r"'[^']*'", value.strip()):
                raise SapError(400, "/IWBEP/CM_MGW_RT/020", "The key predicate is not valid")
            out[name.strip()] = value.strip()[1:-1]
        if set(out) != set(et.keys):
            raise SapError(400, "/IWBEP/CM_MGW_RT/020", "The key predicate is not valid")
        return out

    def _single(self, req: Request, et: EntityType, raw: str, base: str, json_wanted: bool
                ) -> Response:
        q = parse_query(req, et, single=True)
        key = self._key(et, raw)
        rec = None
        # key values get the input conversion like filter literals
        key = {k: alpha_input(v, CONVERSIONS[k][1]) if k in CONVERSIONS else v
               for k, v in key.items()}
        if et is SUPPLIER:
            rec = next((r for r in self.data.suppliers
                        if internal("Supplier", r["Supplier"]) == key["Supplier"]), None)
        else:
            i = self.data.po_lookup(key["PurchaseOrder"])
            if i is not None and et is PURCHASE_ORDER:
                rec = self.data.record(et, i)
            elif i is not None:
                for k in range(self.data.ds.line_count(i)):
                    if internal("PurchaseOrderItem", self.data.item_number(i, k)) == \
                            key["PurchaseOrderItem"]:
                        rec = self.data.record(et, self.data.ds.line_offsets[i] + k)
        if rec is None:
            raise SapError(404, "/IWBEP/CM_MGW_RT/003" if et is not SUPPLIER else "CVI_API/023",
                           "Resource not found for the segment '%s'" % entity_path(
                               et, {**{k: "" for k in et.keys}, **key}))
        if json_wanted:
            return Response(200, ('{"d":' + json_record(et, rec, base, q.select) + "}").encode(),
                            JSON_TYPE, [("dataserviceversion", "2.0")])
        body = ('<?xml version="1.0" encoding="utf-8"?>'
                + atom_entry(et, rec, base, q.select).replace("<entry>", f"<entry {_ATOM_NS} "
                                                              f"xml:base=\"{base}/{et.service}/\">",
                                                              1))
        return Response(200, body.encode(), ATOM_ENTRY_TYPE, [("dataserviceversion", "2.0")])

    def _matching(self, et: EntityType, q: Query) -> Optional[list[int]]:
        """Indexes of the matching records in the requested order, or None
        for all records in key order (paged by position, no scan)."""
        if q.predicate is None and not q.orderby and not self.data.ds.mutated:
            return None
        idxs = [i for i in (self.data.at(et, p) for p in range(self.data.size(et)))
                if self.data.visible(et, i)
                and (q.predicate is None or q.predicate(self.data.record(et, i)))]
        for prop, desc in reversed(q.orderby):
            idxs.sort(key=lambda i: sort_key(et, prop, self.data.record(et, i)[prop]),
                      reverse=desc)
        return idxs

    def _count(self, et: EntityType, q: Query) -> int:
        m = self._matching(et, q)
        return self.data.size(et) if m is None else len(m)

    def _collection(self, req: Request, et: EntityType, base: str, json_wanted: bool
                    ) -> Response:
        cfg = self.config
        q = parse_query(req, et)
        matching = self._matching(et, q)
        total = self.data.size(et) if matching is None else len(matching)
        start = q.skiptoken if q.skiptoken is not None else q.skip
        cap = int(cfg["max_top"]) if q.top is not None else int(cfg["server_page_size"])
        take = cap if q.top is None else min(q.top, cap)
        stop = min(start + take, total)
        positions = range(start, max(stop, start))
        if matching is None:
            rows = [self.data.record(et, self.data.at(et, p)) for p in positions]
        else:
            rows = [self.data.record(et, matching[p]) for p in positions]
        delivered = len(rows)
        next_link = None
        if start + delivered < total and (q.top is None or q.top > delivered):
            next_link = self._next_link(req, start + delivered,
                                        None if q.top is None else q.top - delivered)
        headers = [("dataserviceversion", "2.0")]
        if json_wanted:
            out = ['{"d":{']
            if q.inlinecount:
                out.append('"__count":"%d",' % total)
            out.append('"results":[')
            out.append(",".join(json_record(et, r, base, q.select) for r in rows))
            out.append("]")
            if next_link:
                out.append(',"__next":' + json_string(next_link))
            out.append("}}")
            resp = Response(200, "".join(out).encode("utf-8"), JSON_TYPE, headers)
            resp.records = delivered
            return resp
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        out = ['<?xml version="1.0" encoding="utf-8"?>',
               f'<feed {_ATOM_NS} xml:base="{base}/{et.service}/">',
               f"<id>{xml_escape(base)}/{et.service}/{et.set_name}</id>",
               f'<title type="text">{et.set_name}</title><updated>{now}</updated>',
               f'<link href="{et.set_name}" rel="self" title="{et.set_name}"/>']
        if q.inlinecount:
            out.append(f"<m:count>{total}</m:count>")
        out.extend(atom_entry(et, r, base, q.select) for r in rows)
        if next_link:
            out.append(f"<link href={quoteattr(next_link)} rel=\"next\"/>")
        out.append("</feed>")
        return Response(200, "".join(out).encode("utf-8"), ATOM_TYPE, headers)

    @staticmethod
    def _next_link(req: Request, position: int, remaining_top: Optional[int]) -> str:
        """The request's own query options (byte for byte) without $skip,
        $top and $skiptoken, plus $top for what is still owed and
        $skiptoken = the absolute position to continue from."""
        kept = []
        for piece in req.query.split("&"):
            name = urllib.parse.unquote_plus(piece.split("=", 1)[0])
            if piece and name not in ("$skip", "$top", "$skiptoken"):
                kept.append(piece)
        if remaining_top is not None:
            kept.append(f"$top={remaining_top}")
        kept.append(f"$skiptoken={position}")
        return req.base_url + req.raw_path + "?" + "&".join(kept)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="SAP S/4HANA OData V2 sandbox for unified_fdw.")
    add_common_arguments(parser)
    parser.add_argument("--vendors", type=int, default=25)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--basic-user", default=DEFAULT_BASIC_USER)
    parser.add_argument("--basic-password", default=DEFAULT_BASIC_PASSWORD)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--sap-client", default=DEFAULT_SAP_CLIENT)
    return parser


def make_app(args: argparse.Namespace) -> SapApp:
    return SapApp(seed=args.seed, orders=args.orders, vendors=args.vendors, items=args.items,
                  basic_user=args.basic_user, basic_password=args.basic_password,
                  api_key=args.api_key, client_id=args.client_id,
                  client_secret=args.client_secret, sap_client=args.sap_client,
                  spare_orders=args.spare_orders)


if __name__ == "__main__":
    sys.exit(main(make_app, build_parser()))

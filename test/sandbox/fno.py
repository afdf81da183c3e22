#!/usr/bin/env python3
"""Microsoft Dynamics 365 Finance & Operations (OData v4 data entities) sandbox.

This module owns the Finance & Operations (F&O) emulation used by
unified_fdw's tests: the ``/data`` service with the public data entities
``PurchaseOrderHeadersV2``, ``PurchaseOrderLinesV2``, ``VendorsV2`` and
``ReleasedProductsV2``, their composite keys with ``dataAreaId`` (the legal
entity), ``cross-company=true``, F&O's ``$filter`` (enum literals
``Microsoft.Dynamics.DataEntities.PurchStatus'Backorder'``, ``*`` in a string
``eq`` literal as a wildcard, no ``in``/``has``, no string functions),
server-driven paging through ``@odata.nextLink`` with ``Prefer:
odata.maxpagesize`` (at most 10,000), the empty date ``1900-01-01T12:00:00Z``,
OData error bodies, and the Microsoft Entra client-credentials token endpoint
(scope ``{environment URL}/.default``).  Generic machinery (server, log,
faults, config, dataset, CLI) lives in common.py; the OData v4 expression
parser and the Entra token endpoint are Business Central's (bc.py), which
run the same Microsoft stacks.  Every rule is listed, with the Microsoft
document it comes from, in FIDELITY.md ("Finance & Operations").

Routes::

    POST /{tenant}/oauth2/v2.0/token                 Entra client credentials
    GET  /data/                                      service document
    GET  /data/{EntitySet}[?...]                     collection
    GET  /data/{EntitySet}/$count                    text/plain count
    GET  /data/{EntitySet}(dataAreaId='usmf',...)    one entity by its whole key

Control endpoints added to the common ones: ``GET /_sandbox/export/{set}``
(every record of both legal entities, key order) and ``GET /_sandbox/info``.
The sandbox is read-only: writes get 405.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import sys
import urllib.parse
from functools import cmp_to_key
from typing import Any, Callable, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bc  # noqa: E402
from common import (Buyer, PurchasingDataset, Request, Response,  # noqa: E402
                    SandboxApp, add_common_arguments, dumps, main)

# --------------------------------------------------------------------------
# Fixed identities
# --------------------------------------------------------------------------

DEFAULT_COMPANY = "usmf"          # the application user's default legal entity
OTHER_COMPANY = "demf"
DEFAULT_CLIENT_ID = "sandbox-fno-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-fno-client-secret"
NAMESPACE = "Microsoft.Dynamics.DataEntities."
MAX_PAGE_SIZE = 10000             # "server driven paging with a maximum page size of 10,000"
EMPTY_DATE = "1900-01-01T12:00:00Z"
API_CONTENT_TYPE = "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8"
ERROR_CONTENT_TYPE = "application/json; charset=utf-8"

# Vendors whose names hold the wildcard character (index -> name); orders
# carry their vendor's name as PurchaseOrderName.
STAR_VENDORS = {23: "Star*Parts Ltd", 24: "Starlight Parts Ltd"}

# --------------------------------------------------------------------------
# EDM schema (public entity names, field names from the entities' metadata)
# --------------------------------------------------------------------------

STR, DTO, DEC, INT, ENUM = bc.STR, bc.DTO, bc.DEC, bc.INT, bc.ENUM


def _enum(name: str, members: list[str]) -> bc.EnumType:
    e = bc.EnumType(name, members)
    e.qualified = NAMESPACE + name
    return e


ENUMS = {e.name: e for e in (
    _enum("PurchStatus", ["None", "Backorder", "Received", "Invoiced", "Canceled"]),
    _enum("VersioningDocumentState", ["Draft", "InReview", "Rejected", "Approved",
                                      "InExternalReview", "Finalized", "Confirmed"]),
    _enum("CustVendorBlocked", ["No", "Invoice", "All", "Payment", "Requisition", "Never"]),
    _enum("EcoResProductType", ["Item", "Service"]),
    _enum("EcoResProductSubtype", ["ProductMaster", "Product", "ProductVariant"]),
    _enum("NoYes", ["No", "Yes"]),
)}


class Entity:
    """One public data entity: EDM type, entity set name and key fields."""

    def __init__(self, set_name: str, type_name: str, key: list[str], props: list[tuple]):
        self.set_name = set_name
        self.key = key
        self.etype = bc.EntityType(type_name, [(n, k) for n, k, *_ in props])
        self.etype.qualified = NAMESPACE + type_name
        for n, _k, *e in props:
            if e:
                self.etype.by_name[n].enum = ENUMS[e[0]]
        self.props = [n for n, *_ in props]


HEADERS = Entity("PurchaseOrderHeadersV2", "PurchaseOrderHeaderV2",
                 ["dataAreaId", "PurchaseOrderNumber"], [
                     ("dataAreaId", STR), ("PurchaseOrderNumber", STR),
                     ("PurchaseOrderName", STR), ("OrderVendorAccountNumber", STR),
                     ("InvoiceVendorAccountNumber", STR), ("AccountingDate", DTO),
                     ("RequestedDeliveryDate", DTO), ("CurrencyCode", STR),
                     ("PurchaseOrderStatus", ENUM, "PurchStatus"),
                     ("DocumentApprovalStatus", ENUM, "VersioningDocumentState"),
                     ("OrdererPersonnelNumber", STR), ("DeliveryAddressName", STR),
                     ("IsChangeManagementActive", ENUM, "NoYes"),
                     ("VendorOrderReference", STR), ("PaymentTermsName", STR)])
LINES = Entity("PurchaseOrderLinesV2", "PurchaseOrderLineV2",
               ["dataAreaId", "PurchaseOrderNumber", "LineNumber"], [
                   ("dataAreaId", STR), ("PurchaseOrderNumber", STR), ("LineNumber", INT),
                   ("ItemNumber", STR), ("LineDescription", STR),
                   ("OrderedPurchaseQuantity", DEC), ("PurchasePrice", DEC),
                   ("LineAmount", DEC), ("LineDiscountPercentage", DEC),
                   ("PurchaseUnitSymbol", STR), ("ProcurementCategoryName", STR),
                   ("PurchaseOrderLineStatus", ENUM, "PurchStatus"),
                   ("RequestedDeliveryDate", DTO)])
VENDORS = Entity("VendorsV2", "VendorV2", ["dataAreaId", "VendorAccountNumber"], [
    ("dataAreaId", STR), ("VendorAccountNumber", STR), ("VendorOrganizationName", STR),
    ("VendorGroupId", STR), ("CurrencyCode", STR), ("PrimaryEmailAddress", STR),
    ("PrimaryPhoneNumber", STR), ("OnHoldStatus", ENUM, "CustVendorBlocked"),
    ("AddressCountryRegionId", STR), ("AddressCity", STR), ("PaymentTermsName", STR)])
PRODUCTS = Entity("ReleasedProductsV2", "ReleasedProductV2", ["dataAreaId", "ItemNumber"], [
    ("dataAreaId", STR), ("ItemNumber", STR), ("ProductNumber", STR), ("SearchName", STR),
    ("ProductType", ENUM, "EcoResProductType"),
    ("ProductSubType", ENUM, "EcoResProductSubtype"), ("PurchaseUnitSymbol", STR),
    ("InventoryUnitSymbol", STR), ("PurchasePrice", DEC), ("SalesPrice", DEC),
    ("ItemModelGroupId", STR), ("ProductGroupId", STR)])

ENTITIES = {e.set_name: e for e in (HEADERS, LINES, VENDORS, PRODUCTS)}

# --------------------------------------------------------------------------
# Errors: the OData JSON error body of ASP.NET Web API OData
# --------------------------------------------------------------------------


class FnoError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[list] = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


def fno_error_response(req: Request, status: int, message: str,
                       headers: Optional[list] = None) -> Response:
    body = {"error": {"code": "", "message": message,
                      "innererror": {"message": message,
                                     "type": "Microsoft.OData.ODataException",
                                     "stacktrace": ""}}}
    return Response.json(body, status, ERROR_CONTENT_TYPE,
                         [("OData-Version", "4.0"), ("ms-dyn-aid", req.request_id)]
                         + list(headers or []))


def _invalid(message: str) -> FnoError:
    return FnoError(400, "The query specified in the URI is not valid. " + message)


# --------------------------------------------------------------------------
# $filter: BC's OData v4 parser with F&O's binder
# --------------------------------------------------------------------------

class _Parser(bc._Parser):
    enum_namespace = NAMESPACE


def _wildcard(pattern: str) -> re.Pattern:
    """``*`` in a string literal: any run of characters (X++ query range
    syntax, which F&O's OData filters turn into); compared case-insensitively."""
    return re.compile(".*".join(re.escape(p) for p in pattern.casefold().split("*")),
                      re.DOTALL)


class FilterCompiler(bc.FilterCompiler):
    """F&O's rules over the OData v4 grammar: ``or`` may join any fields;
    ``in``, ``has`` and every function are rejected; enum fields take only
    typed enum literals and only ``eq``/``ne``; ``*`` in a string literal
    compared with ``eq``/``ne`` is a wildcard; text compares case-insensitively."""

    def __init__(self, etype: bc.EntityType, text: str):
        self.etype = etype
        self.text = text
        self.nested_ok = False
        self.ast = _Parser(text).parse()

    def _bool(self, node: tuple):
        if node[0] == "or":
            lp, lf = self._bool(node[1])
            rp, rf = self._bool(node[2])
            return (lambda r, a=lp, b=rp: a(r) or b(r)), lf | rf
        return super()._bool(node)

    def _in(self, node: tuple):
        raise FnoError(400, "The query specified in the URI is not valid. "
                       "The operator 'in' is not supported.")

    def _bool_call(self, node: tuple):
        raise _invalid(f"The function '{node[1]}' is not supported.")

    def _value(self, node: tuple, depth: int = 0):
        if node[0] != "prop":
            raise _invalid("Only a property can be compared in $filter.")
        return super()._value(node, depth)

    def _literal(self, prop, node: tuple, op: str, left_edm: str) -> Any:
        if prop.kind == ENUM and node[1] != "null":
            if node[1] != "enum" or node[2][0] != prop.enum.qualified:
                raise _invalid("A binary operator with incompatible types was detected. Found "
                               f"operand types '{left_edm}' and '{bc._literal_edm(node)}' for "
                               f"operator kind '{bc._OP_KIND.get(op, op)}'.")
        return super()._literal(prop, node, op, left_edm)

    def _cmp(self, node: tuple):
        _, op, left, right, _pos = node
        if left[0] == "prop" and right[0] == "lit":
            prop = self._prop(left[1])
            if prop.kind == ENUM and op not in ("eq", "ne"):
                raise _invalid(f"The operator '{op}' is not supported for enumeration "
                               f"property '{prop.name}'; use eq or ne.")
            if prop.kind == STR and right[1] == "str" and "*" in right[2] \
                    and op in ("eq", "ne"):
                rx = _wildcard(right[2])
                hit = (lambda r, n=prop.name, x=rx: x.fullmatch(r[n].casefold()) is not None)
                if op == "eq":
                    return hit, {prop.name}
                return (lambda r, h=hit: not h(r)), {prop.name}
        return super()._cmp(node)


# --------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------

def _day(d) -> str:
    """An F&O date field: Edm.DateTimeOffset at 12:00 UTC; none is 1900-01-01."""
    return d.isoformat() + "T12:00:00Z" if d is not None else EMPTY_DATE


# canonical status -> (PurchaseOrderStatus, DocumentApprovalStatus)
_STATUS = {"draft": ("Backorder", "Draft"), "pending_approval": ("Backorder", "InReview"),
           "open": ("Backorder", "Approved"), "partially_received": ("Backorder", "Confirmed"),
           "received": ("Received", "Confirmed"), "closed": ("Invoiced", "Finalized"),
           "rejected": ("Backorder", "Rejected"), "cancelled": ("Canceled", "Approved")}
_ON_HOLD = {"none": "No", "payment": "Payment", "all": "All"}


def _etag(*parts: Any) -> str:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).hexdigest()
    return 'W/"' + base64.b64encode(f"1,{int(digest, 16)}".encode()).decode() + '"'


class LegalEntity:
    """One company (``dataAreaId``): a PurchasingDataset rendered as F&O records."""

    def __init__(self, area: str, ds: PurchasingDataset, empty_date_every: int):
        self.area = area
        self.ds = ds
        cur = ds.buyer.currency
        vendors = []
        for v in ds.vendors:
            name = STAR_VENDORS.get(v.index, v.name) if ds.awkward else v.name
            vendors.append({
                "@odata.etag": _etag(area, "v", v.index), "dataAreaId": area,
                "VendorAccountNumber": self.vendor_account(v.index),
                "VendorOrganizationName": name, "VendorGroupId": "10",
                "CurrencyCode": v.currency or cur, "PrimaryEmailAddress": v.email,
                "PrimaryPhoneNumber": v.phone,
                "OnHoldStatus": "Never" if v.blocked == "none" and v.index % 5 == 4
                else _ON_HOLD[v.blocked],
                "AddressCountryRegionId": v.country, "AddressCity": v.city,
                "PaymentTermsName": v.payment_terms})
        self.vendor_names = [r["VendorOrganizationName"] for r in vendors]
        products = [{
            "@odata.etag": _etag(area, "i", it.index), "dataAreaId": area,
            "ItemNumber": it.code, "ProductNumber": it.code, "SearchName": it.name,
            "ProductType": "Service" if it.type == "service" else "Item",
            "ProductSubType": "Product", "PurchaseUnitSymbol": it.uom,
            "InventoryUnitSymbol": it.uom, "PurchasePrice": it.unit_cost,
            "SalesPrice": it.unit_price,
            "ItemModelGroupId": {"inventory": "FIFO", "service": "SRV",
                                 "non_inventory": "NOSTOCK"}[it.type],
            "ProductGroupId": it.category}
            for it in sorted(ds.items, key=lambda it: it.code.casefold())]
        headers, lines = [], []
        for o in ds.iter_orders():
            number = self.order_number(o.seq)
            status, approval = _STATUS[o.status]
            headers.append({
                "@odata.etag": _etag(area, "o", o.index), "dataAreaId": area,
                "PurchaseOrderNumber": number,
                "PurchaseOrderName": self.vendor_names[o.vendor],
                "OrderVendorAccountNumber": self.vendor_account(o.vendor),
                "InvoiceVendorAccountNumber": self.vendor_account(o.pay_to_vendor),
                "AccountingDate": EMPTY_DATE if o.index % empty_date_every == 3
                else _day(o.order_date),
                "RequestedDeliveryDate": _day(o.requested_receipt_date),
                "CurrencyCode": o.currency or cur, "PurchaseOrderStatus": status,
                "DocumentApprovalStatus": approval, "OrdererPersonnelNumber": o.purchaser,
                "DeliveryAddressName": o.ship_to_name,
                "IsChangeManagementActive": "Yes" if o.seq % 3 == 0 else "No",
                "VendorOrderReference": "", "PaymentTermsName": ds.vendors[o.vendor].payment_terms})
            for ln in o.lines:
                lines.append({
                    "@odata.etag": _etag(area, "l", o.index, ln.line_no), "dataAreaId": area,
                    "PurchaseOrderNumber": number, "LineNumber": ln.line_no,
                    "ItemNumber": ds.items[ln.item].code if ln.item is not None else "",
                    "LineDescription": ln.description,
                    "OrderedPurchaseQuantity": ln.quantity, "PurchasePrice": ln.unit_cost,
                    "LineAmount": ln.amount, "LineDiscountPercentage": ln.discount_percent,
                    "PurchaseUnitSymbol": ln.uom,
                    "ProcurementCategoryName": "" if ln.item is not None else "Services",
                    "PurchaseOrderLineStatus": status,
                    "RequestedDeliveryDate": _day(ln.expected_receipt_date)})
        self.records = {HEADERS.set_name: headers, LINES.set_name: lines,
                        VENDORS.set_name: vendors, PRODUCTS.set_name: products}

    @staticmethod
    def vendor_account(index: int) -> str:
        return "V%04d" % (index + 1)

    @staticmethod
    def order_number(seq: int) -> str:
        return "%06d" % seq


# --------------------------------------------------------------------------
# Query options
# --------------------------------------------------------------------------

_SUPPORTED = {"$filter", "$count", "$orderby", "$skip", "$top", "$expand", "$select", "$format"}
_KEY_RE = re.compile(r"^([A-Za-z][A-Za-z0-9]*)\((.*)\)$")


def _sort_key(prop) -> Callable[[Any], Any]:
    norm = bc.value_normalizer(prop)
    return lambda v, f=norm: f(v)


class Query:
    def __init__(self, entity: Entity, params: list[tuple[str, str]]):
        etype = entity.etype
        self.predicate: Optional[Callable[[dict], bool]] = None
        self.select: Optional[list[str]] = None
        self.orderby: list[tuple[Any, bool]] = []
        self.top: Optional[int] = None
        self.skip = 0
        self.count = False
        self.cross_company = False
        seen: dict[str, str] = {}
        for key, value in params:
            if key.lower() == "cross-company":
                if value.lower() not in ("true", "false"):
                    raise FnoError(400, f"The value '{value}' of cross-company is not valid; "
                                   "use true or false.")
                self.cross_company = value.lower() == "true"
                continue
            if not key.startswith("$"):
                continue
            if key not in _SUPPORTED:
                raise _invalid(f"The query parameter '{key}' is not supported.")
            if key in seen:
                raise _invalid(f"Query option '{key}' was specified more than once, but it "
                               "must be specified at most once.")
            seen[key] = value
        if "$filter" in seen:
            self.predicate = FilterCompiler(etype, seen["$filter"]).compile()
        if "$select" in seen:
            names = [s.strip() for s in seen["$select"].split(",")]
            for n in names:
                if n != "*" and n not in etype.by_name:
                    raise _invalid(f"Could not find a property named '{n}' on type "
                                   f"'{etype.qualified}'.")
            self.select = None if "*" in names else names
        if "$expand" in seen:
            raise _invalid(f"Could not find a property named '{seen['$expand'].split('(')[0]}'"
                           f" on type '{etype.qualified}'.")
        fmt = seen.get("$format")
        if fmt is not None and fmt.split(";")[0].strip().lower() not in ("json",
                                                                          "application/json"):
            raise _invalid(f"The format '{fmt}' is not supported.")
        if "$orderby" in seen:
            for part in seen["$orderby"].split(","):
                words = part.split()
                if not words or len(words) > 2 or (len(words) == 2
                                                   and words[1] not in ("asc", "desc")):
                    raise _invalid(f"Syntax error in $orderby '{seen['$orderby']}'.")
                prop = etype.by_name.get(words[0])
                if prop is None:
                    raise _invalid(f"Could not find a property named '{words[0]}' on type "
                                   f"'{etype.qualified}'.")
                self.orderby.append((prop, len(words) == 2 and words[1] == "desc"))
        for opt in ("$top", "$skip"):
            if opt in seen:
                if not re.fullmatch(r"\d+", seen[opt].strip()):
                    raise _invalid(f"Invalid value '{seen[opt]}' for {opt} query option found. "
                                   f"The {opt} query option requires a non-negative integer "
                                   "value.")
                setattr(self, opt[1:], int(seen[opt]))
        if "$count" in seen:
            if seen["$count"] not in ("true", "false"):
                raise _invalid(f"'{seen['$count']}' is not a valid count option.")
            self.count = seen["$count"] == "true"


def _page_size(req: Request, cap: int) -> tuple[int, bool]:
    """``Prefer: odata.maxpagesize=N`` (lowers the server's page size, never
    raises it) -> (page size, whether the preference was applied)."""
    for pref in (req.header("Prefer") or "").split(","):
        name, _, value = pref.strip().partition("=")
        if name.strip().lower() == "odata.maxpagesize":
            value = value.strip().strip('"')
            if re.fullmatch(r"\d+", value) and int(value) > 0:
                return min(int(value), cap), True
    return cap, False


# --------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"^/([^/]+)/oauth2/v2\.0/token/?$")
_STATUS_MESSAGES = {400: "Bad Request.", 401: "Unauthorized.", 403: "Forbidden.",
                    404: "Not Found.", 429: "Too many requests. Retry after some time.",
                    500: "An error has occurred.", 502: "Bad Gateway.",
                    503: "The service is unavailable.", 504: "Gateway Timeout."}


class FnoApp(SandboxApp):
    name = "dynamics365_fo"
    server_header = "Microsoft-IIS/10.0"
    json_content_type = API_CONTENT_TYPE

    # Entra ID is the same service for every Microsoft API (bc.py).
    _entra_error = bc.BcApp._entra_error
    _token = bc.BcApp._token

    def __init__(self, seed: int = 42, orders: int = 60, *, vendors: int = 25, items: int = 20,
                 client_id: str = DEFAULT_CLIENT_ID, client_secret: str = DEFAULT_CLIENT_SECRET):
        self.config_defaults = {
            "token_ttl": 3599,
            "max_page_size": MAX_PAGE_SIZE,
            "client_id": client_id, "client_secret": client_secret,
            # the app is registered on F&O's "Microsoft Entra applications" page
            # (mapped to a user); when false, tokens are issued but refused
            "entra_app_enabled": True,
            # "" = the request's Host; e.g. to check that clients refuse foreign links
            "next_link_base": "",
        }
        self.config_validators = {"token_ttl": lambda v: v > 0,
                                  "max_page_size": lambda v: 0 < v <= MAX_PAGE_SIZE}
        self.entities = {
            DEFAULT_COMPANY: LegalEntity(DEFAULT_COMPANY, PurchasingDataset(
                seed=seed, orders=orders, vendors=vendors, items=items), 7),
            OTHER_COMPANY: LegalEntity(OTHER_COMPANY, PurchasingDataset(
                seed=seed + 1000, orders=5, vendors=3, items=3, awkward=False,
                buyer=Buyer("Contoso Europe", "Hauptstraße 1", "Frankfurt", "", "60311", "DE",
                            "EUR")), 3),
        }
        self.tokens = bc.TokenStore()

    def token_scope(self, req: Request) -> str:
        return req.base_url + "/.default"

    def reset(self) -> None:
        self.tokens.revoke_all()

    def health(self) -> dict:
        return {"legal_entities": {a: len(e.ds) for a, e in self.entities.items()}}

    def error_response(self, req: Request, status: int, message: Optional[str] = None) -> Response:
        if _TOKEN_RE.match(req.path):
            return self._entra_error(req, status, "temporarily_unavailable"
                                     if status in (429, 503) else "server_error",
                                     50196 if status == 429 else 90033,
                                     message or "The service is temporarily unavailable.")
        return fno_error_response(req, status, message or _STATUS_MESSAGES.get(status,
                                                                                "An error has "
                                                                                "occurred."))

    def control(self, req: Request, name: str) -> Optional[Response]:
        if name.startswith("export/") and req.method == "GET":
            ent = ENTITIES.get(name[len("export/"):])
            if ent is None:
                return Response.json({"error": f"unknown entity set {name[7:]!r}"}, 404)
            return Response.json({"value": self._rows(ent, True)})
        if name == "info" and req.method == "GET":
            return Response.json({
                "default_company": DEFAULT_COMPANY, "companies": sorted(self.entities),
                "client_id": self.config["client_id"], "scope": self.token_scope(req),
                "empty_date": EMPTY_DATE, "star_vendors": STAR_VENDORS,
                "counts": {a: {s: len(r) for s, r in e.records.items()}
                           for a, e in self.entities.items()}})
        return None

    # -- entry point -------------------------------------------------------

    def handle(self, req: Request) -> Response:
        m = _TOKEN_RE.match(req.path)
        if m:
            return self._token(req, m.group(1))
        try:
            if not (req.path == "/data" or req.path.startswith("/data/")):
                raise FnoError(404, "No HTTP resource was found that matches the request URI "
                               f"'{req.base_url}{req.raw_path}'.")
            self._authenticate(req)
            if req.method not in ("GET", "HEAD"):
                raise FnoError(405, f"The requested resource does not support http method "
                               f"'{req.method}'.")
            return self._route(req, req.path[len("/data"):].strip("/"))
        except bc.BcError as e:            # the shared parser's syntax errors
            return fno_error_response(req, e.status,
                                      "The query specified in the URI is not valid. " + e.message)
        except FnoError as e:
            return fno_error_response(req, e.status, e.message, e.headers)

    def _authenticate(self, req: Request) -> None:
        scheme, _, cred = (req.header("Authorization") or "").strip().partition(" ")
        reason = None
        if scheme.lower() != "bearer":
            reason = "no bearer token"
        else:
            status, _tenant = self.tokens.check(cred.strip())
            if status != "ok":
                reason = f"token {status}"
            elif not self.config["entra_app_enabled"]:
                reason = "application not registered in Microsoft Entra applications"
        if reason:
            raise FnoError(401, "Unauthorized.",
                           [("WWW-Authenticate", f'Bearer error="invalid_token", '
                                                 f'error_description="{reason}"')])

    def _route(self, req: Request, rest: str) -> Response:
        if rest == "":
            return Response.json({"@odata.context": f"{self._base(req)}/data/$metadata",
                                  "value": [{"name": n, "kind": "EntitySet", "url": n}
                                            for n in ENTITIES]}, 200, API_CONTENT_TYPE,
                                 [("OData-Version", "4.0"), ("ms-dyn-aid", req.request_id)])
        segs = rest.split("/")
        m = _KEY_RE.match(segs[0])
        name = m.group(1) if m else segs[0]
        ent = ENTITIES.get(name)
        if ent is None or len(segs) > 2 or (len(segs) == 2 and (segs[1] != "$count" or m)):
            raise FnoError(404, f"Resource not found for the segment '{segs[-1]}'.")
        q = Query(ent, req.params)
        if m:
            return self._single(req, ent, q, m.group(2))
        rows = self._rows(ent, q.cross_company)
        if q.predicate:
            rows = [r for r in rows if q.predicate(r)]
        if len(segs) == 2:
            return Response.text(str(len(rows)), 200, "text/plain; charset=utf-8",
                                 [("OData-Version", "4.0"), ("ms-dyn-aid", req.request_id)])
        return self._collection(req, ent, q, rows)

    def _rows(self, ent: Entity, cross_company: bool) -> list[dict]:
        areas = sorted(self.entities) if cross_company else [DEFAULT_COMPANY]
        return [r for a in areas for r in self.entities[a].records[ent.set_name]]

    def _base(self, req: Request) -> str:
        return self.config["next_link_base"].rstrip("/") or req.base_url

    def _single(self, req: Request, ent: Entity, q: Query, raw: str) -> Response:
        """``Set(dataAreaId='usmf',PurchaseOrderNumber='000001')``: every key
        field is needed; another company's record needs cross-company=true."""
        key: dict[str, Any] = {}
        for part in raw.split(","):
            n, eq, v = part.partition("=")
            n, v = n.strip(), urllib.parse.unquote(v.strip())
            if not eq or n not in ent.key or n in key:
                raise _invalid(f"The key in the request URI is not valid for resource "
                               f"'{ent.etype.qualified}'. Ensure that the names and number "
                               "of key values match the declared keys for the resource.")
            prop = ent.etype.by_name[n]
            if prop.kind == INT and re.fullmatch(r"-?\d+", v):
                key[n] = int(v)
            elif prop.kind == STR and len(v) >= 2 and v[0] == v[-1] == "'":
                key[n] = v[1:-1].replace("''", "'")
            else:
                raise _invalid(f"Bad Request - Error in query syntax: the key value {v} of "
                               f"'{n}' is not of type '{prop.edm}'.")
        if set(key) != set(ent.key):
            raise _invalid(f"The key in the request URI is not valid for resource "
                           f"'{ent.etype.qualified}'. Ensure that the names and number of key "
                           "values match the declared keys for the resource.")
        for r in self._rows(ent, q.cross_company):
            if all((r[k].casefold() == key[k].casefold()) if isinstance(key[k], str)
                   else r[k] == key[k] for k in ent.key):
                body = self._project(r, q.select)
                body = '{"@odata.context":' + dumps(
                    f"{self._base(req)}/data/$metadata#{ent.set_name}/$entity") + "," + body[1:]
                return Response(200, body, API_CONTENT_TYPE,
                                [("OData-Version", "4.0"), ("ms-dyn-aid", req.request_id)])
        raise FnoError(404, "No resources were found matching the key in the request URI.")

    @staticmethod
    def _project(rec: dict, select: Optional[list[str]]) -> str:
        if select is None:
            return dumps(rec)
        return dumps({"@odata.etag": rec["@odata.etag"], **{n: rec[n] for n in select}})

    def _collection(self, req: Request, ent: Entity, q: Query, rows: list[dict]) -> Response:
        if q.orderby:
            keys = [(p.name, _sort_key(p), d) for p, d in q.orderby]

            def cmp(a: dict, b: dict) -> int:
                for name, f, desc in keys:
                    x, y = f(a[name]), f(b[name])
                    if x != y:
                        return (1 if x < y else -1) if desc else (-1 if x < y else 1)
                return 0
            rows = sorted(rows, key=cmp_to_key(cmp))     # stable: key order breaks ties
        total = len(rows)
        window = rows[q.skip:]
        if q.top is not None:
            window = window[:q.top]
        size, applied = _page_size(req, int(self.config["max_page_size"]))
        page = window[:size]
        parts = [f'"@odata.context":{dumps(self._base(req) + "/data/$metadata#" + ent.set_name)}']
        if q.count:
            parts.append(f'"@odata.count":{total}')
        parts.append('"value":[' + ",".join(self._project(r, q.select) for r in page) + "]")
        if len(window) > size:
            parts.append('"@odata.nextLink":' + dumps(self._next_link(req, q, len(page))))
        headers = [("OData-Version", "4.0"), ("ms-dyn-aid", req.request_id)]
        if applied:
            headers.append(("Preference-Applied", f"odata.maxpagesize={size}"))
        return Response(200, "{" + ",".join(parts) + "}", API_CONTENT_TYPE, headers)

    def _next_link(self, req: Request, q: Query, served: int) -> str:
        """The request's own options with ``$skip`` moved past the page and
        ``$top`` reduced by it (ASP.NET Web API OData's next-page link)."""
        kept = [p for p in req.query.split("&") if p and
                urllib.parse.unquote(p.split("=", 1)[0]) not in ("$skip", "$top")]
        kept.append(f"$skip={q.skip + served}")
        if q.top is not None:
            kept.append(f"$top={q.top - served}")
        return f"{self._base(req)}{req.raw_path}?" + "&".join(kept)


if __name__ == "__main__":
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--vendors", type=int, default=25)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    sys.exit(main(lambda a: FnoApp(a.seed, a.orders, vendors=a.vendors, items=a.items,
                                   client_id=a.client_id, client_secret=a.client_secret),
                  parser))

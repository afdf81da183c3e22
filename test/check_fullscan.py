#!/usr/bin/env python3
"""Compares a full scan of a unified table with the sandbox's own export.

The expected rows are computed here, independently of the extension, from
the native records the sandbox serves (GET /_sandbox/export/...) and the
mapping of DESIGN.md section 3.  The actual rows come from psql as one
row_to_json() object per line (run with TimeZone=UTC).

usage: check_fullscan.py SYSTEM SANDBOX_URL TABLE ACTUAL_FILE   (SYSTEM: bc, sap, netsuite, fno)
Prints one line per table and exits 1 on any difference.
"""
import datetime
import decimal
import json
import sys
import urllib.request
import zoneinfo

BC_COMPANY = "bb6d48b6-c7b2-4a38-9a93-ad5506407f12"
BC_BLANKS = ("", "0001-01-01", "0001-01-01T00:00:00Z", "00000000-0000-0000-0000-000000000000")


def loads(text):
    return json.loads(text, parse_float=decimal.Decimal, parse_int=decimal.Decimal)


def bc_value(v):
    """Business Central has no NULL: blanks mean "no value"."""
    return None if v is None or (isinstance(v, str) and v in BC_BLANKS) else v


def bc_rows(table, records):
    po_status = {"Draft": "draft", "In Review": "pending_approval", "Open": "open"}
    item_type = {"Inventory": "inventory", "Service": "service", "Non-Inventory": "non_inventory"}
    out = []
    for r in records:
        g = lambda k: bc_value(r.get(k))
        if table == "purchase_orders":
            row = {"id": g("id"), "number": g("number"), "status": po_status.get(g("status")),
                   "vendor_id": g("vendorId"), "vendor_name": g("vendorName"),
                   "order_date": g("orderDate"), "currency": g("currencyCode"),
                   "total_amount": g("totalAmountIncludingTax"), "company_id": BC_COMPANY,
                   "created_at": None, "updated_at": g("lastModifiedDateTime")}
        elif table == "purchase_order_lines":
            row = {"id": g("id"), "purchase_order_id": g("documentId"), "line_number": g("sequence"),
                   "item_id": g("itemId"), "description": g("description"), "quantity": g("quantity"),
                   "unit_price": g("directUnitCost"), "amount": g("amountExcludingTax"),
                   "unit_of_measure": g("unitOfMeasureCode"), "received_quantity": g("receivedQuantity")}
        elif table == "vendors":
            row = {"id": g("id"), "number": g("number"), "name": g("displayName"), "email": g("email"),
                   "phone": g("phoneNumber"), "currency": g("currencyCode"),
                   "status": "active" if r.get("blocked") == " " else "blocked",
                   "updated_at": g("lastModifiedDateTime")}
        elif table == "items":
            row = {"id": g("id"), "number": g("number"), "name": g("displayName"),
                   "type": item_type.get(g("type")), "unit_of_measure": g("baseUnitOfMeasureCode"),
                   "unit_cost": g("unitCost"), "updated_at": g("lastModifiedDateTime")}
        else:
            raise SystemExit(f"unknown table {table}")
        row["raw"] = r
        out.append(row)
    return out


SAP_STATUS = {"01": "draft", "02": "open", "03": "pending_approval", "05": "open", "08": "rejected"}
SAP_ENTITY = {"purchase_orders": "A_PurchaseOrder", "purchase_order_lines": "A_PurchaseOrderItem",
              "vendors": "A_Supplier"}


def sap_date(v, date_only):
    """OData V2 "/Date(ms)/" or "/Date(ms+hhmm)/" (UTC milliseconds) as ISO text."""
    if v is None:
        return None
    ms = int(v[len("/Date("):].split(")")[0].split("+")[0])
    t = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(milliseconds=ms)
    return t.date().isoformat() if date_only else t.isoformat()


def sap_rows(table, records):
    """SAP has no NULL text: an empty string means "no value"; decimals arrive as strings."""
    out = []
    for r in records:
        g = lambda k: None if r.get(k) in (None, "") else r[k]
        num = lambda k: None if g(k) is None else decimal.Decimal(g(k))
        if table == "purchase_orders":
            row = {"id": g("PurchaseOrder"), "number": g("PurchaseOrder"),
                   "status": SAP_STATUS.get(g("PurchasingProcessingStatus")),
                   "vendor_id": g("Supplier"), "vendor_name": g("AddressName"),
                   "order_date": sap_date(g("PurchaseOrderDate"), True), "currency": g("DocumentCurrency"),
                   "total_amount": None, "company_id": g("CompanyCode"),
                   "created_at": sap_date(g("CreationDate"), False),
                   "updated_at": sap_date(g("LastChangeDateTime"), False)}
        elif table == "purchase_order_lines":
            row = {"id": f"{r['PurchaseOrder']}/{r['PurchaseOrderItem']}", "purchase_order_id": g("PurchaseOrder"),
                   "line_number": int(r["PurchaseOrderItem"]), "item_id": g("Material"),
                   "description": g("PurchaseOrderItemText"), "quantity": num("OrderQuantity"),
                   "unit_price": num("NetPriceAmount"), "amount": None,
                   "unit_of_measure": g("PurchaseOrderQuantityUnit"), "received_quantity": None}
        elif table == "vendors":
            row = {"id": g("Supplier"), "number": g("Supplier"), "name": g("SupplierName"), "email": None,
                   "phone": None, "currency": None,
                   "status": "blocked" if r["PostingIsBlocked"] or r["PurchasingIsBlocked"] else "active",
                   "updated_at": None}
        else:
            raise SystemExit(f"unknown SAP table {table}")
        row["raw"] = r
        out.append(row)
    return out


BC_ENTITY = {"purchase_orders": "purchaseOrders", "purchase_order_lines": "purchaseOrderLines",
             "vendors": "vendors", "items": "items"}


NS_PO_STATUS = {"A": "pending_approval", "B": "open", "C": "rejected", "D": "partially_received",
                "E": "partially_received", "F": "received", "G": "closed", "H": "closed"}
NS_ITEM_TYPE = {"InvtPart": "inventory", "Service": "service", "NonInvtPart": "non_inventory"}


def ns_export(url, table):
    with urllib.request.urlopen(f"{url}/_sandbox/export/{table}") as f:
        return loads(f.read().decode())["items"]


def ns_instant(v, tz):
    """What a NetSuite instant reads as.  NetSuite serves it as wall-clock
    time in the token user's time zone (an Oracle DATE); the hour a
    fall-back repeats cannot be told apart, and reads as its second pass
    (the offset after the change), as PostgreSQL reads such a time."""
    if v is None:
        return None
    t = datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
    wall = t.astimezone(tz).replace(tzinfo=None)
    return wall.replace(tzinfo=tz, fold=1).astimezone(datetime.timezone.utc).isoformat()


def ns_rows(url, table):
    """NetSuite: the native tables joined here as DESIGN.md section 3 says;
    NULL stays NULL, ids are text, numbers exact; instants as ns_instant
    reads them in the account's time zone (the sandbox's config)."""
    s = lambda v: None if v is None else str(v)  # noqa: E731
    with urllib.request.urlopen(f"{url}/_sandbox/config") as f:
        name = json.loads(f.read().decode())["config"]["time_zone"]
    tz = datetime.timezone.utc if name == "UTC" else zoneinfo.ZoneInfo(name)
    symbol = {c["id"]: c["symbol"] for c in ns_export(url, "currency")}
    out = []
    if table == "purchase_orders":
        names = {v["id"]: v["companyname"] for v in ns_export(url, "vendor")}
        for t in ns_export(url, "transaction"):
            if t["type"] != "PurchOrd":
                continue
            out.append({"id": s(t["id"]), "number": t["tranid"], "status": NS_PO_STATUS.get(t["status"]),
                        "vendor_id": s(t["entity"]), "vendor_name": names.get(t["entity"]),
                        "order_date": t["trandate"], "currency": symbol.get(t["currency"]),
                        "total_amount": num(t["foreigntotal"]), "company_id": s(t["subsidiary"]),
                        "created_at": ns_instant(t["createddate"], tz),
                        "updated_at": ns_instant(t["lastmodifieddate"], tz)})
    elif table == "purchase_order_lines":
        pos = {t["id"] for t in ns_export(url, "transaction") if t["type"] == "PurchOrd"}
        units = {u["internalid"]: u["unitname"] for u in ns_export(url, "unitstypeuom")}
        for tl in ns_export(url, "transactionline"):
            if tl["transaction"] not in pos or tl["mainline"] != "F":
                continue
            out.append({"id": f"{tl['transaction']}/{tl['id']}", "purchase_order_id": s(tl["transaction"]),
                        "line_number": num(tl["linesequencenumber"]), "item_id": s(tl["item"]),
                        "description": tl["memo"], "quantity": num(tl["quantity"]),
                        "unit_price": num(tl["rate"]), "amount": num(tl["foreignamount"]),
                        "unit_of_measure": units.get(tl["units"]),
                        "received_quantity": num(tl["quantityshiprecv"])})
    elif table == "vendors":
        for v in ns_export(url, "vendor"):
            out.append({"id": s(v["id"]), "number": v["entityid"], "name": v["companyname"],
                        "email": v["email"], "phone": v["phone"], "currency": symbol.get(v["currency"]),
                        "status": "blocked" if v["isinactive"] == "T" else "active",
                        "updated_at": ns_instant(v["lastmodifieddate"], tz)})
    elif table == "items":
        units = {u["internalid"]: u["unitname"] for u in ns_export(url, "unitstypeuom")}
        for i in ns_export(url, "item"):
            out.append({"id": s(i["id"]), "number": i["itemid"], "name": i["displayname"],
                        "type": NS_ITEM_TYPE.get(i["itemtype"]), "unit_of_measure": units.get(i["purchaseunit"]),
                        "unit_cost": num(i["cost"]), "updated_at": ns_instant(i["lastmodifieddate"], tz)})
    else:
        raise SystemExit(f"unknown table {table}")
    return out


FNO_ENTITY = {"purchase_orders": "PurchaseOrderHeadersV2", "purchase_order_lines": "PurchaseOrderLinesV2",
              "vendors": "VendorsV2", "items": "ReleasedProductsV2"}
FNO_EMPTY_DATE = "1900-01-01T12:00:00Z"


def fno_status(order_status, approval):
    """DESIGN.md section 3: the document status decides for cancelled, invoiced
    and received orders; otherwise the approval status."""
    by_status = {"Canceled": "cancelled", "Invoiced": "closed", "Received": "received"}
    by_approval = {"Draft": "draft", "InReview": "pending_approval", "InExternalReview": "pending_approval",
                   "Rejected": "rejected", "Approved": "open", "Confirmed": "open", "Finalized": "closed"}
    return by_status.get(order_status) or by_approval.get(approval)


def fno_rows(table, records):
    """Finance & Operations has no NULL: "" and the empty date 1900-01-01 mean
    "no value"; every id is prefixed by its legal entity (dataAreaId);
    every company is read (cross-company)."""
    out = []
    for r in records:
        g = lambda k: None if r.get(k) in (None, "", FNO_EMPTY_DATE) else r[k]  # noqa: E731
        key = lambda *ks: None if any(g(k) is None for k in ks) else "/".join(str(r[k]) for k in ks)  # noqa: E731
        if table == "purchase_orders":
            row = {"id": key("dataAreaId", "PurchaseOrderNumber"), "number": g("PurchaseOrderNumber"),
                   "status": fno_status(r["PurchaseOrderStatus"], r["DocumentApprovalStatus"]),
                   "vendor_id": key("dataAreaId", "OrderVendorAccountNumber"),
                   "vendor_name": g("PurchaseOrderName"),
                   "order_date": g("AccountingDate") and g("AccountingDate")[:10],
                   "currency": g("CurrencyCode"), "total_amount": None, "company_id": g("dataAreaId"),
                   "created_at": None, "updated_at": None}
        elif table == "purchase_order_lines":
            row = {"id": key("dataAreaId", "PurchaseOrderNumber", "LineNumber"),
                   "purchase_order_id": key("dataAreaId", "PurchaseOrderNumber"),
                   "line_number": num(g("LineNumber")), "item_id": key("dataAreaId", "ItemNumber"),
                   "description": g("LineDescription"), "quantity": num(g("OrderedPurchaseQuantity")),
                   "unit_price": num(g("PurchasePrice")), "amount": num(g("LineAmount")),
                   "unit_of_measure": g("PurchaseUnitSymbol"), "received_quantity": None}
        elif table == "vendors":
            row = {"id": key("dataAreaId", "VendorAccountNumber"), "number": g("VendorAccountNumber"),
                   "name": g("VendorOrganizationName"), "email": g("PrimaryEmailAddress"),
                   "phone": g("PrimaryPhoneNumber"), "currency": g("CurrencyCode"),
                   "status": "active" if r["OnHoldStatus"] in ("No", "Never") else "blocked",
                   "updated_at": None}
        elif table == "items":
            row = {"id": key("dataAreaId", "ItemNumber"), "number": g("ItemNumber"), "name": g("SearchName"),
                   "type": {"Item": "inventory", "Service": "service"}.get(r["ProductType"]),
                   "unit_of_measure": g("PurchaseUnitSymbol"), "unit_cost": num(g("PurchasePrice")),
                   "updated_at": None}
        else:
            raise SystemExit(f"unknown table {table}")
        row["raw"] = r
        out.append(row)
    return out


def num(v):
    return None if v is None else decimal.Decimal(str(v))


def ns_raw_ok(row):
    """raw is the SuiteQL row: "links": [] and every other value a string."""
    raw = row.get("raw")
    return (isinstance(raw, dict) and raw.get("links") == [] and raw.get("id", raw.get("transaction")) is not None
            and all(isinstance(v, str) for k, v in raw.items() if k != "links"))


def expected(system, url, table):
    if system == "sap":
        with urllib.request.urlopen(f"{url}/_sandbox/export/{SAP_ENTITY[table]}") as f:
            return sap_rows(table, loads(f.read().decode())["value"])
    if system == "netsuite":
        return ns_rows(url, table)
    if system == "fno":
        with urllib.request.urlopen(f"{url}/_sandbox/export/{FNO_ENTITY[table]}") as f:
            return fno_rows(table, loads(f.read().decode())["value"])
    if system != "bc":
        raise SystemExit(f"unknown system {system}")
    with urllib.request.urlopen(f"{url}/_sandbox/export/{BC_ENTITY[table]}?company={BC_COMPANY}") as f:
        records = loads(f.read().decode())["value"]
    return bc_rows(table, records)


def normalise(column, v):
    """Comparable form: instants as aware datetimes, numbers as Decimal."""
    if v is None:
        return None
    if column in ("created_at", "updated_at"):
        return datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
    if isinstance(v, (int, float)):
        return decimal.Decimal(v)
    return v


def main():
    system, url, table, actual_file = sys.argv[1:5]
    want = {r["id"]: r for r in expected(system, url, table)}
    with open(actual_file, encoding="utf-8") as f:
        got_rows = [loads(line) for line in f if line.strip()]
    got = {r["id"]: r for r in got_rows}
    problems = []
    if len(got_rows) != len(got):
        problems.append(f"{len(got_rows) - len(got)} duplicate ids in the scan")
    for k in sorted(set(want) - set(got), key=str)[:5]:
        problems.append(f"missing row {k}")
    for k in sorted(set(got) - set(want), key=str)[:5]:
        problems.append(f"unexpected row {k}")
    for k in sorted(set(want) & set(got), key=str):
        for col, v in want[k].items():
            if normalise(col, v) != normalise(col, got[k].get(col)):
                problems.append(f"row {k} column {col}: expected {v!r}, got {got[k].get(col)!r}")
        if system == "netsuite" and not ns_raw_ok(got[k]):
            problems.append(f"row {k} column raw: not a SuiteQL row: {got[k].get('raw')!r}")
        if len(problems) > 10:
            break
    if problems:
        print(f"{table}: {len(got)} rows scanned, {len(want)} expected; differences:")
        for p in problems[:10]:
            print("  " + p)
        sys.exit(1)
    print(f"{table}: all {len(want)} rows equal the sandbox's export")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Self-test of the sandbox Finance & Operations (fno.py), stdlib unittest only.

Checks the rules listed in FIDELITY.md ("Finance & Operations"): the Entra
scope of the environment, cross-company, composite keys, typed enum literals
(plain strings rejected), '*' as a wildcard in string equality, no 'in' and
no string functions, the empty date 1900-01-01, server-driven paging with
Prefer: odata.maxpagesize (at most 10,000) and its next links, $count, and
the OData error body.  Every test is bounded by socket timeouts and a watchdog.
"""

from __future__ import annotations

import faulthandler
import http.client
import json
import os
import sys
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402
import fno  # noqa: E402

WATCHDOG_SECONDS = 60
TIMEOUT = 10.0
NS = fno.NAMESPACE


class FnoCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.app = fno.FnoApp(seed=42, orders=60)
        cls.server = common.SandboxServer(cls.app).start()
        cls.base = f"http://127.0.0.1:{cls.server.port}"

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()

    def setUp(self) -> None:
        faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
        self.assertEqual(self.raw("POST", "/_sandbox/reset")[0], 200)
        self.token = self.get_token()

    def tearDown(self) -> None:
        faulthandler.cancel_dump_traceback_later()

    def raw(self, method: str, target: str, headers: dict | None = None, body: bytes = b""):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=TIMEOUT)
        try:
            conn.request(method, target, body=body or None, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.headers, r.read()
        finally:
            conn.close()

    def get_token(self, scope: str | None = None, secret: str = fno.DEFAULT_CLIENT_SECRET):
        form = urllib.parse.urlencode({"grant_type": "client_credentials",
                                       "client_id": fno.DEFAULT_CLIENT_ID,
                                       "client_secret": secret,
                                       "scope": scope or self.base + "/.default"})
        status, _h, body = self.raw("POST", "/tenant-1/oauth2/v2.0/token",
                                    {"Content-Type": "application/x-www-form-urlencoded"},
                                    form.encode())
        doc = json.loads(body)
        return doc.get("access_token") if status == 200 else (status, doc)

    def get(self, path: str, params: dict | None = None, prefer: str | None = None,
            token: str | None = None):
        target = "/data/" + path
        if params:
            target += "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote,
                                                   safe="$*',()=")
        return self.get_target(target, prefer, token)

    def get_target(self, target: str, prefer: str | None = None, token: str | None = None):
        h = {"Authorization": "Bearer " + (token or self.token)}
        if prefer:
            h["Prefer"] = prefer
        status, hdrs, body = self.raw("GET", target, h)
        return status, hdrs, json.loads(body) if body[:1] in (b"{", b"[") else body.decode()

    def values(self, path: str, params: dict | None = None) -> list[dict]:
        status, _h, doc = self.get(path, params)
        self.assertEqual(status, 200, doc)
        return doc["value"]

    def assert_error(self, status, doc, want: int, fragment: str) -> None:
        self.assertEqual(status, want, doc)
        self.assertEqual(doc["error"]["code"], "")
        self.assertIn(fragment, doc["error"]["message"])
        self.assertEqual(doc["error"]["innererror"]["message"], doc["error"]["message"])

    # -- authentication ------------------------------------------------------

    def test_token_scope_is_the_environment(self):
        status, doc = self.get_token(scope="https://api.businesscentral.dynamics.com/.default")
        self.assertEqual(status, 400)
        self.assertEqual(doc["error"], "invalid_resource")
        status, doc = self.get_token(secret="wrong")
        self.assertEqual((status, doc["error"]), (401, "invalid_client"))

    def test_unauthenticated_and_unregistered(self):
        status, hdrs, _ = self.raw("GET", "/data/VendorsV2")
        self.assertEqual(status, 401)
        self.assertIn("Bearer", hdrs["WWW-Authenticate"])
        status, _h, _ = self.get("VendorsV2", token="not-a-token")
        self.assertEqual(status, 401)
        self.raw("POST", "/_sandbox/config", {"Content-Type": "application/json"},
                 b'{"entra_app_enabled": false}')
        self.assertEqual(self.get("VendorsV2")[0], 401)

    # -- companies and keys ---------------------------------------------------

    def test_cross_company(self):
        default = self.values("PurchaseOrderHeadersV2", {"$select": "dataAreaId"})
        self.assertEqual({r["dataAreaId"] for r in default}, {"usmf"})
        self.assertEqual(len(default), 60)
        every = self.values("PurchaseOrderHeadersV2",
                            {"$select": "dataAreaId,PurchaseOrderNumber",
                             "cross-company": "true"})
        self.assertEqual(len(every), 65)
        self.assertEqual([r["dataAreaId"] for r in every[:5]], ["demf"] * 5)
        # a company filter without cross-company sees only the default company
        self.assertEqual(self.values("VendorsV2", {"$filter": "dataAreaId eq 'demf'"}), [])
        self.assertEqual(len(self.values("VendorsV2", {"$filter": "dataAreaId eq 'demf'",
                                                       "cross-company": "true"})), 3)
        status, _h, doc = self.get("VendorsV2", {"cross-company": "yes"})
        self.assertEqual(status, 400, doc)

    def test_composite_keys(self):
        target = "PurchaseOrderHeadersV2(dataAreaId='demf',PurchaseOrderNumber='000002')"
        status, _h, doc = self.get(target)
        self.assertEqual(status, 404, doc)
        status, _h, doc = self.get(target, {"cross-company": "true"})
        self.assertEqual(status, 200, doc)
        self.assertEqual((doc["dataAreaId"], doc["PurchaseOrderNumber"]), ("demf", "000002"))
        status, _h, usmf = self.get(
            "PurchaseOrderHeadersV2(dataAreaId='usmf',PurchaseOrderNumber='000002')")
        self.assertEqual(status, 200)
        self.assertNotEqual(usmf["OrderVendorAccountNumber"] + usmf["PurchaseOrderName"],
                            doc["OrderVendorAccountNumber"] + doc["PurchaseOrderName"])
        status, _h, doc = self.get("PurchaseOrderHeadersV2('000002')")
        self.assert_error(status, doc, 400, "key in the request URI is not valid")
        status, _h, doc = self.get("PurchaseOrderLinesV2(dataAreaId='usmf',"
                                   "PurchaseOrderNumber='000001',LineNumber=1)")
        self.assertEqual((status, doc["LineNumber"]), (200, 1))

    # -- $filter ---------------------------------------------------------------

    def test_enum_literals(self):
        status, _h, doc = self.get("VendorsV2", {"$filter": "OnHoldStatus eq 'No'"})
        self.assert_error(status, doc, 400, "incompatible types")
        rows = self.values("VendorsV2",
                           {"$filter": f"OnHoldStatus eq {NS}CustVendorBlocked'All'"})
        self.assertTrue(rows)
        self.assertEqual({r["OnHoldStatus"] for r in rows}, {"All"})
        status, _h, doc = self.get("VendorsV2", {"$filter": f"OnHoldStatus eq {NS}NoYes'No'"})
        self.assert_error(status, doc, 400, "incompatible types")
        status, _h, doc = self.get("VendorsV2",
                                   {"$filter": f"OnHoldStatus gt {NS}CustVendorBlocked'No'"})
        self.assert_error(status, doc, 400, "use eq or ne")
        status, _h, doc = self.get("VendorsV2",
                                   {"$filter": f"OnHoldStatus eq {NS}CustVendorBlocked'Maybe'"})
        self.assertEqual(status, 400, doc)
        rows = self.values("PurchaseOrderHeadersV2", {
            "$filter": f"PurchaseOrderStatus ne {NS}PurchStatus'Backorder'"})
        self.assertTrue(rows)
        self.assertNotIn("Backorder", {r["PurchaseOrderStatus"] for r in rows})

    def test_star_is_a_wildcard(self):
        rows = self.values("VendorsV2", {"$filter": "VendorOrganizationName eq 'Star*Parts Ltd'"})
        self.assertEqual(sorted(r["VendorOrganizationName"] for r in rows),
                         ["Star*Parts Ltd", "Starlight Parts Ltd"])
        rows = self.values("VendorsV2", {"$filter": "VendorOrganizationName eq '*SUPPLIES'"})
        self.assertEqual({r["VendorOrganizationName"].casefold() for r in rows},
                         {"acme supplies", "back\\slash supplies", "100% pure supplies"})
        rows = self.values("VendorsV2", {"$filter": "VendorOrganizationName ne 'Star*'"})
        self.assertFalse([r for r in rows if r["VendorOrganizationName"].startswith("Star")])

    def test_text_compares_case_insensitively(self):
        rows = self.values("VendorsV2", {"$filter": "VendorOrganizationName eq 'acme supplies'"})
        self.assertEqual(len(rows), 2)

    def test_unsupported_operators_and_functions(self):
        for f in ("VendorAccountNumber in ('V0001','V0002')",
                  "startswith(VendorAccountNumber,'V')",
                  "contains(VendorOrganizationName,'Parts')",
                  "tolower(VendorAccountNumber) eq 'v0001'"):
            status, _h, doc = self.get("VendorsV2", {"$filter": f})
            self.assertEqual(status, 400, f)
            self.assertIn("not", doc["error"]["message"])
        rows = self.values("VendorsV2", {"$filter": "VendorAccountNumber eq 'V0001' or "
                                                    "VendorAccountNumber eq 'V0002' or "
                                                    f"OnHoldStatus eq {NS}CustVendorBlocked'All'"})
        self.assertTrue({"V0001", "V0002"} < {r["VendorAccountNumber"] for r in rows})

    def test_empty_date_and_datetimeoffset(self):
        rows = self.values("PurchaseOrderHeadersV2",
                           {"$filter": "AccountingDate lt 2024-01-01T00:00:00Z"})
        self.assertIn(fno.EMPTY_DATE, {r["AccountingDate"] for r in rows})
        self.assertTrue(all(r["AccountingDate"] < "2024" for r in rows))
        status, _h, doc = self.get("PurchaseOrderHeadersV2",
                                   {"$filter": "AccountingDate lt 2024-01-01"})
        self.assert_error(status, doc, 400, "incompatible types")

    # -- paging ------------------------------------------------------------------

    def test_next_links_cover_every_row_once(self):
        first = "/data/PurchaseOrderLinesV2?cross-company=true&$select=dataAreaId," \
                "PurchaseOrderNumber,LineNumber"
        status, hdrs, doc = self.get_target(first, prefer="odata.maxpagesize=7")
        self.assertEqual(hdrs["Preference-Applied"], "odata.maxpagesize=7")
        seen, pages = [], 0
        while True:
            self.assertEqual(status, 200, doc)
            self.assertLessEqual(len(doc["value"]), 7)
            seen += [(r["dataAreaId"], r["PurchaseOrderNumber"], r["LineNumber"])
                     for r in doc["value"]]
            pages += 1
            link = doc.get("@odata.nextLink")
            if not link or pages > 100:
                break
            self.assertTrue(link.startswith(self.base + "/data/PurchaseOrderLinesV2?"), link)
            status, hdrs, doc = self.get_target(link[len(self.base):],
                                                prefer="odata.maxpagesize=7")
        export = json.loads(self.raw("GET", "/_sandbox/export/PurchaseOrderLinesV2")[2])["value"]
        self.assertEqual(seen, [(r["dataAreaId"], r["PurchaseOrderNumber"], r["LineNumber"])
                                for r in export])
        self.assertEqual(len(seen), len(set(seen)))

    def test_page_size_cap_top_and_skip(self):
        status, hdrs, doc = self.get("VendorsV2", prefer="odata.maxpagesize=20000")
        self.assertEqual(hdrs["Preference-Applied"], "odata.maxpagesize=10000")
        self.assertEqual(len(doc["value"]), 25)
        self.raw("POST", "/_sandbox/config", {"Content-Type": "application/json"},
                 b'{"max_page_size": 4}')
        status, _h, doc = self.get("VendorsV2", {"$top": "10", "$skip": "3", "$count": "true"})
        self.assertEqual([r["VendorAccountNumber"] for r in doc["value"]],
                         ["V0004", "V0005", "V0006", "V0007"])
        self.assertEqual(doc["@odata.count"], 25)
        numbers = [r["VendorAccountNumber"] for r in doc["value"]]
        while "@odata.nextLink" in doc:
            status, _h, doc = self.get_target(doc["@odata.nextLink"][len(self.base):])
            numbers += [r["VendorAccountNumber"] for r in doc["value"]]
        self.assertEqual(numbers, ["V%04d" % k for k in range(4, 14)])
        status, _h, text = self.get("VendorsV2/$count", {"cross-company": "true"})
        self.assertEqual((status, text), (200, "28"))

    def test_orderby_and_errors(self):
        rows = self.values("ReleasedProductsV2", {"$orderby": "PurchasePrice desc",
                                                  "$select": "ItemNumber,PurchasePrice"})
        prices = [r["PurchasePrice"] for r in rows]
        self.assertEqual(prices, sorted(prices, reverse=True))
        status, _h, doc = self.get("VendorsV2", {"$select": "Nope"})
        self.assert_error(status, doc, 400, "Could not find a property named 'Nope'")
        status, _h, doc = self.get("Nonexistent")
        self.assertEqual(status, 404, doc)
        status, _h, doc = self.get("VendorsV2", {"$filter": "VendorAccountNumber eq"})
        self.assert_error(status, doc, 400, "The query specified in the URI is not valid")


if __name__ == "__main__":
    unittest.main()

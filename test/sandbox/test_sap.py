#!/usr/bin/env python3
"""Self-test of the SAP S/4HANA sandbox (stdlib unittest only).

Starts sap.py in-process on a free loopback port and checks it against
shared/reference/upstream-apis.md section 1: JSON only when asked for (Atom
otherwise), the verbose JSON envelope and encodings (decimals as strings,
/Date()/ values), $top/$skip/__next paging (no record lost or repeated),
$inlinecount, the strict V2 $filter grammar with type checks and SAP's error
JSON, case-sensitive ordinal comparison, sap-client, Basic/APIKey/OAuth.

Expected results are computed here from the exported records, not with the
sandbox's filter code.  Run: python3 test/sandbox/test_sap.py
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import unittest
import urllib.parse
import xml.dom.minidom

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402
import sap  # noqa: E402
import test_sandboxes  # noqa: E402

PO = "/sap/opu/odata/sap/API_PURCHASEORDER_PROCESS_SRV"
BP = "/sap/opu/odata/sap/API_BUSINESS_PARTNER"
BASIC = "Basic " + base64.b64encode(b"sandbox-user:sandbox-password").decode()
JSON = {"Authorization": BASIC, "Accept": "application/json"}
DATE_RE = re.compile(r"^/Date\(-?\d+\)/$")
DTO_RE = re.compile(r"^/Date\(-?\d+\+0000\)/$")


class SapCase(test_sandboxes.SandboxCase):
    """The shared server, reset and HTTP helpers of the BC self-test, on the
    SAP sandbox (60 orders, seed 42)."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.app = sap.SapApp(seed=42, orders=60)
        cls.server = common.SandboxServer(cls.app).start()
        cls.port = cls.server.port
        cls.exports: dict = {}

    def get(self, path: str, headers: dict | None = None, **params: str):
        if params:
            path += "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote,
                                                 safe="$,()'")
        return self.request("GET", path, JSON if headers is None else headers)

    def page(self, path: str, **params: str) -> dict:
        status, h, raw = self.get(path, **params)
        self.assertEqual(status, 200, raw[:500])
        self.assertTrue(h["Content-Type"].startswith("application/json"))
        return json.loads(raw)["d"]

    def export(self, set_name: str) -> list[dict]:
        if set_name not in self.exports:
            status, _h, raw = self.request("GET", f"/_sandbox/export/{set_name}")
            self.assertEqual(status, 200)
            type(self).exports[set_name] = json.loads(raw)["value"]
        return self.exports[set_name]

    def follow(self, path: str, **params: str) -> tuple[list[dict], int]:
        """All records of a request, following __next; (records, requests)."""
        d = self.page(path, **params)
        out, n = list(d["results"]), 1
        while "__next" in d:
            prefix = f"http://127.0.0.1:{self.port}"
            self.assertTrue(d["__next"].startswith(prefix + path + "?"), d["__next"])
            self.assertIn("$skiptoken=", d["__next"])
            status, _h, raw = self.request("GET", d["__next"][len(prefix):], JSON)
            self.assertEqual(status, 200, raw[:300])
            d = json.loads(raw)["d"]
            out.extend(d["results"])
            n += 1
            self.assertLess(n, 1000)
        return out, n

    def assert_sap_error(self, resp, status: int, contains: str = "") -> dict:
        code, h, raw = resp
        self.assertEqual(code, status, raw[:500])
        err = json.loads(raw)["error"]
        self.assertEqual(set(err), {"code", "message", "innererror"})
        self.assertEqual(err["message"]["lang"], "en")
        self.assertIn(contains, err["message"]["value"])
        self.assertRegex(err["innererror"]["transactionid"], r"^[0-9A-F]{32}$")
        self.assertEqual(err["innererror"]["errordetails"][0]["message"], err["message"]["value"])
        return err


class EnvelopeTests(SapCase):
    def test_json_only_when_asked(self):
        status, h, raw = self.get(PO + "/A_PurchaseOrder", {"Authorization": BASIC}, **{"$top": "2"})
        self.assertEqual(status, 200)
        self.assertTrue(h["Content-Type"].startswith("application/atom+xml"))
        doc = xml.dom.minidom.parseString(raw)
        self.assertEqual(len(doc.getElementsByTagName("entry")), 2)
        d = self.page(PO + "/A_PurchaseOrder", **{"$top": "2", "$format": "json"})
        self.assertEqual(len(d["results"]), 2)

    def test_encodings(self):
        d = self.page(PO + "/A_PurchaseOrder", **{"$top": "20", "$inlinecount": "allpages"})
        self.assertEqual(d["__count"], "60")
        for r in d["results"]:
            self.assertEqual(set(r["__metadata"]), {"id", "uri", "type"})
            self.assertEqual(r["__metadata"]["type"], "API_PURCHASEORDER_PROCESS_SRV.A_PurchaseOrderType")
            self.assertRegex(r["PurchaseOrderDate"], DATE_RE)
            self.assertRegex(r["CreationDate"], DATE_RE)
            self.assertTrue(r["LastChangeDateTime"] is None or DTO_RE.match(r["LastChangeDateTime"]))
            self.assertIsInstance(r["NetPaymentDays"], str)
            self.assertIsInstance(r["ExchangeRateIsFixed"], bool)
            self.assertIn("__deferred", r["to_PurchaseOrderItem"])
        _s, _h, raw = self.get(PO + "/A_PurchaseOrder", **{"$top": "1"})
        self.assertIn(b'"\\/Date(', raw)                  # the wire escapes the slashes
        items = self.page(PO + "/A_PurchaseOrderItem", **{"$top": "5", "$select":
                                                          "PurchaseOrderItem,OrderQuantity"})
        for r in items["results"]:
            self.assertEqual(set(r), {"__metadata", "PurchaseOrderItem", "OrderQuantity"})
            self.assertRegex(r["OrderQuantity"], r"^-?\d+\.\d{3}$")
            self.assertRegex(r["PurchaseOrderItem"], r"^[1-9]\d*$")   # no leading zeros

    def test_single_entities_and_count(self):
        d = self.page(PO + "/A_PurchaseOrder('4500000003')")
        self.assertEqual(d["PurchaseOrder"], "4500000003")
        d = self.page(PO + "/A_PurchaseOrderItem(PurchaseOrder='4500000021',PurchaseOrderItem='40')")
        self.assertEqual(d["PurchaseOrderItem"], "40")
        self.assert_sap_error(self.get(PO + "/A_PurchaseOrder('4599999999')"), 404)
        status, _h, raw = self.get(PO + "/A_PurchaseOrderItem/$count")
        self.assertEqual((status, raw.decode()), (200, str(len(self.export("A_PurchaseOrderItem")))))
        status, h, raw = self.get(PO + "/$metadata")
        self.assertEqual(status, 200)
        xml.dom.minidom.parseString(raw)


class PagingTests(SapCase):
    def test_top_skip_and_next_equal_the_export(self):
        for set_name, path in (("A_PurchaseOrder", PO), ("A_PurchaseOrderItem", PO),
                               ("A_Supplier", BP)):
            want = self.export(set_name)
            got, skip = [], 0
            while True:
                rows = self.page(f"{path}/{set_name}", **{"$top": "7", "$skip": str(skip)})["results"]
                self.assertNotIn("__next", rows)
                got.extend(rows)
                skip += 7
                if len(rows) < 7:
                    break
            self.assertEqual(got, want, set_name)
        self.app.config.update({"server_page_size": 11, "max_top": 13})
        want = self.export("A_PurchaseOrderItem")
        got, n = self.follow(PO + "/A_PurchaseOrderItem")              # no $top: 11 per page
        self.assertEqual((got, n), (want, -(-len(want) // 11)))
        got, n = self.follow(PO + "/A_PurchaseOrderItem", **{"$top": "50", "$skip": "3"})
        self.assertEqual((got, n), (want[3:53], 4))                   # capped at 13, __next
        d = self.page(PO + "/A_PurchaseOrderItem", **{"$top": "13"})
        self.assertNotIn("__next", d)                                 # nothing owed

    def test_next_keeps_the_options(self):
        self.app.config.update({"max_top": 5})
        d = self.page(PO + "/A_PurchaseOrder", **{"$top": "12", "$skip": "2", "$select": "PurchaseOrder",
                                                  "$filter": "CompanyCode eq '1710'",
                                                  "sap-client": "100"})
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(d["__next"]).query)
        self.assertEqual(q["$top"], ["7"])
        self.assertEqual(q["$skiptoken"], ["7"])
        self.assertEqual(q["sap-client"], ["100"])
        self.assertEqual(q["$filter"], ["CompanyCode eq '1710'"])
        self.assertNotIn("$skip", q)


class DefaultLimitTests(SapCase):
    """The default limits on a dataset with more than 5000 items."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.app = sap.SapApp(seed=42, orders=2100)
        cls.server = common.SandboxServer(cls.app).start()
        cls.port = cls.server.port
        cls.exports = {}

    def test_1000_without_top_and_5000_at_most(self):
        n = len(self.export("A_PurchaseOrderItem"))
        self.assertGreater(n, 5000)
        d = self.page(PO + "/A_PurchaseOrderItem", **{"$select": "PurchaseOrder"})
        self.assertEqual(len(d["results"]), 1000)
        self.assertTrue(d["__next"].endswith("?$select=PurchaseOrder&$skiptoken=1000"), d["__next"])
        d = self.page(PO + "/A_PurchaseOrderItem", **{"$select": "PurchaseOrder", "$top": "6000"})
        self.assertEqual(len(d["results"]), 5000)
        self.assertTrue(d["__next"].endswith("&$top=1000&$skiptoken=5000"), d["__next"])
        d = self.page(PO + "/A_PurchaseOrderItem", **{"$select": "PurchaseOrder", "$top": "5000",
                                                      "$skip": "5000"})
        self.assertEqual(len(d["results"]), min(5000, n - 5000))
        self.assertNotIn("__next", d)


class FilterTests(SapCase):
    def ids(self, expr: str, **params) -> list[str]:
        rows = self.page(PO + "/A_PurchaseOrder", **{"$filter": expr, "$top": "5000"}, **params)
        return [r["PurchaseOrder"] for r in rows["results"]]

    def test_accepted_filters(self):
        po = self.export("A_PurchaseOrder")

        def want(pred):
            return [r["PurchaseOrder"] for r in po if pred(r)]
        ms = lambda v: int(v[6:].split(")")[0].split("+")[0])        # noqa: E731
        self.assertEqual(self.ids("AddressName eq 'Acme Supplies'"),
                         want(lambda r: r["AddressName"] == "Acme Supplies"))
        self.assertNotEqual(self.ids("AddressName eq 'Acme Supplies'"),
                            self.ids("AddressName eq 'ACME SUPPLIES'"))   # case-sensitive
        self.assertEqual(self.ids("AddressName lt 'a'"),                  # ordinal: 'Z' < 'a'
                         want(lambda r: r["AddressName"].encode("utf-16-be") < b"\x00a"))
        self.assertEqual(self.ids("substringof('Supplies', AddressName) and DocumentCurrency ne 'EUR'"),
                         want(lambda r: "Supplies" in r["AddressName"] and r["DocumentCurrency"] != "EUR"))
        self.assertEqual(self.ids("startswith(AddressName,'O''Brien') eq true"),
                         want(lambda r: r["AddressName"].startswith("O'Brien")))
        self.assertEqual(self.ids("PurchaseOrderDate ge datetime'2024-02-29T00:00:00' and "
                                  "PurchaseOrderDate lt datetime'2024-03-01T00:00'"),
                         want(lambda r: 1709164800000 <= ms(r["PurchaseOrderDate"]) < 1709251200000))
        self.assertEqual(self.ids("LastChangeDateTime eq datetimeoffset'2024-03-15T09:30:00Z' or "
                                  "LastChangeDateTime eq null"),
                         want(lambda r: r["LastChangeDateTime"] is None
                              or ms(r["LastChangeDateTime"]) == 1710495000000))
        self.assertEqual(self.ids("NetPaymentDays eq 30M and not (PurchasingProcessingStatus eq '02')"),
                         want(lambda r: r["PurchasingProcessingStatus"] != "02"))
        self.assertEqual(self.ids("year(PurchaseOrderDate) eq 2023"),
                         want(lambda r: ms(r["PurchaseOrderDate"]) < 1704067200000))
        items = self.page(PO + "/A_PurchaseOrderItem", **{"$filter": "PurchaseOrderItem gt '9'",
                                                          "$inlinecount": "allpages", "$top": "0"})
        # NUMC: '9' is 00009, so 10 and 100 are greater, 9 is not
        self.assertEqual(items["__count"], str(sum(
            int(r["PurchaseOrderItem"]) > 9 for r in self.export("A_PurchaseOrderItem"))))

    def test_rejected_filters(self):
        for expr, text in [
            ("PurchaseOrder eq 4500000001", "Invalid parametertype used at function 'eq'"),
            ("PurchaseOrderDate ge '2024-01-01'", "Invalid parametertype used at function 'ge'"),
            ("PurchaseOrderDate ge datetimeoffset'2024-01-01T00:00:00Z'", "function 'ge'"),
            ("LastChangeDateTime gt datetime'2024-01-01T00:00:00'", "function 'gt'"),
            ("PurchaseOrderDate ge datetime'2024-01-01T00:00:00Z'", "Invalid datetime literal"),
            ("NetPaymentDays eq 30.5", "function 'eq'"),
            ("ExchangeRateIsFixed gt false", "function 'gt'"),
            ("contains(AddressName,'x')", "Unknown function 'contains'"),
            ("AddressName eq 'x' and", "Invalid token detected at position 23"),
            ("(AddressName eq 'x'", "Invalid token"),
            ("AddressName eq 'x", "Invalid token"),
            ("NetPaymentDays add 1 eq 31", "Operator 'add' is not supported"),
            ("AddressName", "must be of type Edm.Boolean"),
        ]:
            with self.subTest(expr=expr):
                self.assert_sap_error(self.get(PO + "/A_PurchaseOrder", **{"$filter": expr}), 400, text)
        self.assert_sap_error(self.get(PO + "/A_PurchaseOrder", **{"$filter": "Nope eq 'x'"}), 400,
                              "Property Nope not found in type A_PurchaseOrderType")
        self.assert_sap_error(self.get(PO + "/A_PurchaseOrder", **{"$select": "PurchaseOrder,Nope"}),
                              400, "Property Nope not found")
        self.assert_sap_error(self.get(PO + "/A_PurchaseOrder", **{"$orderby": "Nope desc"}),
                              400, "Property Nope not found")
        self.assert_sap_error(self.get(PO + "/A_PurchaseOrder", **{"$top": "-1"}), 400, "$top")
        self.assert_sap_error(self.get(PO + "/A_PurchaseOrder", **{"$count": "true"}), 400,
                              "'$count' is not supported")
        self.assert_sap_error(self.get(PO + "/A_PurchaseOrder", **{"$inlinecount": "yes"}), 400,
                              "$inlinecount")
        status, h, raw = self.get(PO + "/A_PurchaseOrder", {"Authorization": BASIC},
                                  **{"$filter": "Nope eq 1"})
        self.assertEqual((status, h["Content-Type"]), (400, sap.XML_TYPE))
        self.assertIn(b"<transactionid>", raw)

    def test_orderby_is_ordinal(self):
        d = self.page(BP + "/A_Supplier", **{"$orderby": "SupplierName desc,Supplier",
                                             "$select": "Supplier,SupplierName", "$top": "100"})
        names = [r["SupplierName"] for r in d["results"]]
        self.assertEqual(names, sorted(names, key=lambda s: s.encode("utf-16-be"), reverse=True))


def alpha(v: str, length: int) -> str:
    """ALPHA input conversion, written out again: digits right-aligned with zeros."""
    return v.zfill(length) if v and all(c in "0123456789" for c in v) else v


class ConversionTests(SapCase):
    """PurchaseOrder and Supplier (ALPHA, CHAR10) and PurchaseOrderItem (NUMC5)
    are compared, matched and sorted in their internal, zero-padded form;
    literals of comparisons get the input conversion; output is external."""

    def sup_ids(self, expr: str) -> list[str]:
        d = self.page(BP + "/A_Supplier", **{"$filter": expr, "$top": "100",
                                             "$select": "Supplier"})
        return sorted(r["Supplier"] for r in d["results"])

    def test_data_has_padding_cases(self):
        sups = {r["Supplier"] for r in self.export("A_Supplier")}
        self.assertTrue({"17000", "1700", "9", "17A", "SUP-17"} <= sups, sups)
        pos = {r["PurchaseOrder"] for r in self.export("A_PurchaseOrder")}
        self.assertTrue({"17000", "1700", "170", "17A", "PO-1700"} <= pos, pos)
        items = {r["PurchaseOrderItem"] for r in self.export("A_PurchaseOrderItem")}
        self.assertTrue({"9", "10", "100"} <= items, items)

    def test_output_is_external(self):
        for r in self.export("A_Supplier") + self.export("A_PurchaseOrder"):
            for f in ("Supplier", "PurchaseOrder"):
                if f in r:
                    self.assertFalse(r[f].startswith("0"), r[f])

    def test_patterns_match_the_internal_form(self):
        sups = [r["Supplier"] for r in self.export("A_Supplier")]
        # startswith sees 0000017000: only the alphanumeric 17A starts with 17
        self.assertEqual(self.sup_ids("startswith(Supplier,'17') eq true"),
                         sorted(s for s in sups if alpha(s, 10).startswith("17")))
        self.assertEqual(self.sup_ids("startswith(Supplier,'17') eq true"), ["17A"])
        self.assertEqual(self.sup_ids("startswith(Supplier,'00000') eq true"),
                         ["1700", "17000", "9"])
        self.assertEqual(self.sup_ids("substringof('17',Supplier) eq true"),
                         sorted(s for s in sups if "17" in alpha(s, 10)))
        self.assertEqual(self.sup_ids("startswith(Supplier,'000000000') eq true"), ["9"])
        self.assertEqual(self.sup_ids("length(Supplier) eq 10 and Supplier lt '20'"),
                         sorted(s for s in sups if s.isdigit() and int(s) < 20))

    def test_comparisons_convert_the_literal(self):
        self.assertEqual(self.sup_ids("Supplier eq '17000'"), ["17000"])
        self.assertEqual(self.sup_ids("Supplier eq '0000017000'"), ["17000"])
        self.assertEqual(self.sup_ids("Supplier eq ' 9 '"), ["9"])
        self.assertEqual(self.sup_ids("Supplier eq '17A'"), ["17A"])
        sups = [r["Supplier"] for r in self.export("A_Supplier")]
        self.assertEqual(self.sup_ids("Supplier ne '9'"), sorted(s for s in sups if s != "9"))
        # ranges follow the padded form: numeric order for digits, digits before letters
        self.assertEqual(self.sup_ids("Supplier gt '1700' and Supplier lt '17300005'"),
                         sorted(s for s in sups if s.isdigit() and 1700 < int(s) < 17300005))
        self.assertEqual(self.sup_ids("Supplier ge 'A'"),
                         sorted(s for s in sups if alpha(s, 10) >= "A"))
        d = self.page(PO + "/A_PurchaseOrder", **{"$filter": "PurchaseOrder lt '4500000001'",
                                                  "$select": "PurchaseOrder"})
        self.assertEqual(sorted(r["PurchaseOrder"] for r in d["results"]),
                         ["170", "1700", "17000", "17A"])
        d = self.page(PO + "/A_PurchaseOrderItem", **{"$filter": "PurchaseOrder eq '1700'",
                                                      "$select": "PurchaseOrderItem"})
        self.assertEqual([r["PurchaseOrderItem"] for r in d["results"]],
                         ["9", "10", "99", "100"][:len(d["results"])])
        self.assertTrue(d["results"])

    def test_orderby_and_default_order_are_internal(self):
        want = sorted((r["Supplier"] for r in self.export("A_Supplier")),
                      key=lambda s: alpha(s, 10))
        d = self.page(BP + "/A_Supplier", **{"$orderby": "Supplier", "$top": "100",
                                             "$select": "Supplier"})
        self.assertEqual([r["Supplier"] for r in d["results"]], want)
        self.assertEqual([r["Supplier"] for r in self.export("A_Supplier")], want)
        self.assertEqual(want[:3], ["9", "1700", "17000"])
        pos = [r["PurchaseOrder"] for r in self.export("A_PurchaseOrder")]
        self.assertEqual(pos, sorted(pos, key=lambda s: alpha(s, 10)))
        self.assertEqual(pos[:4] + pos[-1:], ["170", "1700", "17000", "17A", "PO-1700"])
        got, _n = self.follow(PO + "/A_PurchaseOrder", **{"$select": "PurchaseOrder",
                                                          "$orderby": "PurchaseOrder desc"})
        self.assertEqual([r["PurchaseOrder"] for r in got], pos[::-1])
        items = [(r["PurchaseOrder"], r["PurchaseOrderItem"])
                 for r in self.export("A_PurchaseOrderItem")]
        self.assertEqual(items, sorted(items, key=lambda t: (alpha(t[0], 10), alpha(t[1], 5))))
        # paging in the default order loses and repeats nothing
        got, n = self.follow(PO + "/A_PurchaseOrderItem", **{"$select":
                                                             "PurchaseOrder,PurchaseOrderItem"})
        self.assertEqual([(r["PurchaseOrder"], r["PurchaseOrderItem"]) for r in got], items)

    def test_keys_get_the_input_conversion(self):
        self.assertEqual(self.page(BP + "/A_Supplier('0000017000')")["Supplier"], "17000")
        self.assertEqual(self.page(PO + "/A_PurchaseOrder('1700')")["PurchaseOrder"], "1700")
        d = self.page(PO + "/A_PurchaseOrderItem(PurchaseOrder='PO-1700',PurchaseOrderItem='00009')")
        self.assertEqual(d["PurchaseOrderItem"], "9")
        self.assert_sap_error(self.get(PO + "/A_PurchaseOrderItem(PurchaseOrder='1700',"
                                            "PurchaseOrderItem='20')"), 404)


class AuthTests(SapCase):
    def test_basic_apikey_and_sap_client(self):
        path = BP + "/A_Supplier?$top=1"
        self.assertEqual(self.request("GET", path, {"Accept": "application/json"})[0], 401)
        bad = "Basic " + base64.b64encode(b"sandbox-user:wrong").decode()
        status, h, raw = self.request("GET", path, {"Authorization": bad})
        self.assertEqual(status, 401)
        self.assertIn("SAP NetWeaver Application Server", h["WWW-Authenticate"])
        self.assertEqual(self.request("GET", path + "&sap-client=100", JSON)[0], 200)
        self.assertEqual(self.request("GET", path + "&sap-client=200", JSON)[0], 401)
        self.assertEqual(self.request("GET", path, {"APIKey": "sandbox-api-key"})[0], 200)
        status, _h, raw = self.request("GET", path, {"APIKey": "nope"})
        self.assertEqual((status, json.loads(raw)["fault"]["detail"]["errorcode"]),
                         (401, "oauth.v2.InvalidApiKey"))

    def test_oauth_client_credentials(self):
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        body = "grant_type=client_credentials&client_id=sandbox-client-id&client_secret="
        status, _h, raw = self.request("POST", sap.TOKEN_PATH, form, body + "wrong")
        self.assertEqual((status, json.loads(raw)["error"]), (401, "invalid_client"))
        status, _h, raw = self.request("POST", sap.TOKEN_PATH, form, "grant_type=password")
        self.assertEqual((status, json.loads(raw)["error"]), (400, "unsupported_grant_type"))
        basic = "Basic " + base64.b64encode(b"sandbox-client-id:sandbox-client-secret").decode()
        status, _h, raw = self.request("POST", sap.TOKEN_PATH, {**form, "Authorization": basic},
                                       "grant_type=client_credentials")
        self.assertEqual(status, 200)                     # client_secret_basic
        status, _h, raw = self.request("POST", sap.TOKEN_PATH, form, body + "sandbox-client-secret")
        tok = json.loads(raw)
        self.assertEqual((status, tok["token_type"]), (200, "Bearer"))
        bearer = {"Authorization": "Bearer " + tok["access_token"], "Accept": "application/json"}
        self.assertEqual(self.request("GET", BP + "/A_Supplier?$top=1", bearer)[0], 200)
        self.request("POST", "/_sandbox/revoke")
        self.assertEqual(self.request("GET", BP + "/A_Supplier?$top=1", bearer)[0], 401)

    def test_writes_need_csrf_and_faults_use_sap_shape(self):
        status, h, _raw = self.request("POST", PO + "/A_PurchaseOrder", JSON, b"{}")
        self.assertEqual((status, h["x-csrf-token"]), (403, "Required"))
        self.request("POST", "/_sandbox/faults", {"Content-Type": "application/json"},
                     json.dumps({"match": "A_Supplier", "status": 503}))
        self.assert_sap_error(self.get(BP + "/A_Supplier"), 503)
        self.assertEqual(self.get(BP + "/A_Supplier")[0], 200)


if __name__ == "__main__":
    unittest.main()

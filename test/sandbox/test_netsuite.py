#!/usr/bin/env python3
"""Self-test of the sandbox NetSuite (netsuite.py), stdlib unittest only.

Checks the SuiteQL service against shared/reference/upstream-apis.md
section 3: TBA signatures (signed here with an independent RFC 5849
signer), replayed nonces, wrong realms, stale timestamps, the paging rules,
display formats versus TO_CHAR, omitted NULLs, lower-case keys, bound
parameters, the concurrency limit and the fault switches.
Every test is bounded by socket timeouts and a watchdog.
"""

from __future__ import annotations

import base64
import faulthandler
import hashlib
import hmac
import http.client
import json
import os
import secrets
import sys
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402
import netsuite  # noqa: E402

WATCHDOG_SECONDS = 60
TIMEOUT = 10.0
PATH = netsuite.SUITEQL_PATH


def pct(s: str) -> str:
    out = []
    for b in s.encode("utf-8"):
        c = chr(b)
        out.append(c if c.isalnum() and b < 128 or c in "-._~" else "%%%02X" % b)
    return "".join(out)


def sign(method: str, host: str, path_query: str, realm: str = netsuite.DEFAULT_ACCOUNT_ID,
         nonce: str | None = None, timestamp: int | None = None,
         token_secret: str = netsuite.DEFAULT_TOKEN_SECRET) -> str:
    path, _, query = path_query.partition("?")
    oauth = {"oauth_consumer_key": netsuite.DEFAULT_CONSUMER_KEY,
             "oauth_token": netsuite.DEFAULT_TOKEN_ID,
             "oauth_nonce": nonce or secrets.token_hex(16),
             "oauth_timestamp": str(timestamp if timestamp is not None else int(time.time())),
             "oauth_signature_method": "HMAC-SHA256", "oauth_version": "1.0"}
    pairs = [tuple(p.split("=", 1)) for p in query.split("&") if p]
    pairs = [(urllib.parse.unquote_plus(n), urllib.parse.unquote_plus(v)) for n, v in pairs]
    norm = "&".join("%s=%s" % nv for nv in sorted((pct(n), pct(v)) for n, v in pairs + list(oauth.items())))
    base = "&".join([method, pct(f"http://{host}{path}"), pct(norm)])
    key = pct(netsuite.DEFAULT_CONSUMER_SECRET) + "&" + pct(token_secret)
    sig = base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha256).digest()).decode()
    oauth["oauth_signature"] = sig
    return "OAuth realm=\"%s\", " % realm + ", ".join('%s="%s"' % (k, pct(v)) for k, v in oauth.items())


class NetSuiteCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.app = netsuite.NetSuiteApp(seed=42, orders=60)
        cls.server = common.SandboxServer(cls.app).start()
        cls.host = f"127.0.0.1:{cls.server.port}"

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()

    def setUp(self) -> None:
        faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
        self.assertEqual(self.raw("POST", "/_sandbox/reset")[0], 200)

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

    def suiteql(self, q: str, limit: int = 1000, offset: int = 0, params=None, headers=None,
                auth: str | None = None, query: str | None = None):
        target = PATH + "?" + (query if query is not None else f"limit={limit}&offset={offset}")
        h = {"Prefer": "transient", "Content-Type": "application/json",
             "Authorization": auth or sign("POST", self.host, target)}
        h.update(headers or {})
        doc = {"q": q} if params is None else {"q": q, "params": params}
        status, hdrs, body = self.raw("POST", target, h, json.dumps(doc).encode())
        return status, hdrs, json.loads(body)

    def control(self, method: str, name: str, obj=None):
        status, _h, body = self.raw(method, "/_sandbox/" + name, {"Content-Type": "application/json"},
                                    json.dumps(obj).encode() if obj is not None else b"")
        return status, json.loads(body)

    def assert_ns_error(self, status, doc, want_status: int, code: str) -> dict:
        self.assertEqual(status, want_status, doc)
        self.assertEqual(doc["status"], want_status)
        self.assertEqual(doc["o:errorDetails"][0]["o:errorCode"], code, doc)
        return doc["o:errorDetails"][0]


class AuthTests(NetSuiteCase):
    Q = "SELECT id FROM vendor ORDER BY id"

    def test_signed_request_accepted(self):
        status, _h, doc = self.suiteql(self.Q)
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["totalResults"], 25)

    def test_replayed_nonce_rejected(self):
        target = PATH + "?limit=5&offset=0"
        auth = sign("POST", self.host, target)
        self.assertEqual(self.suiteql(self.Q, 5, auth=auth)[0], 200)
        status, _h, doc = self.suiteql(self.Q, 5, auth=auth)
        self.assert_ns_error(status, doc, 401, "INVALID_LOGIN")
        self.assertEqual(self.control("GET", "login_audit")[1]["entries"][-1]["reason"], "nonce already used")

    def test_rejections(self):
        target = PATH + "?limit=5&offset=0"
        cases = {
            "bad signature": sign("POST", self.host, PATH + "?limit=5&offset=5"),
            "wrong realm": sign("POST", self.host, target, realm="1234567_sb1"),
            "stale timestamp": sign("POST", self.host, target, timestamp=int(time.time()) - 3600),
            "wrong secret": sign("POST", self.host, target, token_secret="nope"),
            "bearer": "Bearer nope",
            "none": "Basic dTpw",
        }
        for name, auth in cases.items():
            with self.subTest(name):
                status, _h, doc = self.suiteql(self.Q, 5, auth=auth)
                self.assert_ns_error(status, doc, 401, "INVALID_LOGIN")

    def test_bearer(self):
        status, _h, _doc = self.suiteql(self.Q, auth="Bearer " + netsuite.DEFAULT_BEARER)
        self.assertEqual(status, 200)

    def test_query_parameters_are_signed_decoded(self):
        # an encoded space and a "+" in a query parameter: signed decoded, re-encoded
        query = "limit=5&offset=0&x=a%20b%2Bc"
        status, _h, doc = self.suiteql(self.Q, query=query, auth=sign("POST", self.host, PATH + "?" + query))
        self.assertEqual(status, 200, doc)


class ProtocolTests(NetSuiteCase):
    def test_prefer_transient_required(self):
        status, _h, doc = self.suiteql("SELECT id FROM item", headers={"Prefer": "respond-async"})
        self.assertEqual(self.assert_ns_error(status, doc, 400, "INVALID_HEADER")["o:errorHeader"], "Prefer")

    def test_limit_and_offset(self):
        for query, param in (("limit=1001&offset=0", "limit"), ("limit=0&offset=0", "limit"),
                             ("limit=10&offset=5", "offset")):
            with self.subTest(query):
                status, _h, doc = self.suiteql("SELECT id FROM item ORDER BY id", query=query)
                detail = self.assert_ns_error(status, doc, 400, "INVALID_PARAMETER")
                self.assertEqual(detail["o:errorQueryParam"], param)

    def test_paging_covers_every_row_once(self):
        ids, offset = [], 0
        for _ in range(100):
            status, _h, doc = self.suiteql("SELECT t.id FROM transaction t WHERE t.type = 'PurchOrd' ORDER BY t.id",
                                           7, offset)
            self.assertEqual(status, 200, doc)
            self.assertEqual(doc["count"], len(doc["items"]))
            ids += [r["id"] for r in doc["items"]]
            if not doc["hasMore"]:
                break
            offset += 7
        self.assertEqual(len(ids), 60)
        self.assertEqual(len(set(ids)), 60)

    def test_rows_are_strings_lowercase_nulls_omitted(self):
        status, _h, doc = self.suiteql("SELECT id AS ID, companyName, email, isinactive FROM vendor ORDER BY id")
        self.assertEqual(status, 200)
        for row in doc["items"]:
            self.assertEqual(row["links"], [])
            self.assertTrue(all(k == k.lower() for k in row), row)
            self.assertTrue(all(isinstance(v, str) for k, v in row.items() if k != "links"), row)
        nameless = [r for r in doc["items"] if "companyname" not in r]
        self.assertEqual(len(nameless), 1)          # the vendor with an empty name
        self.assertNotIn("email", nameless[0])

    def test_dates_display_format_unless_to_char(self):
        q = ("SELECT trandate, TO_CHAR(trandate, 'YYYY-MM-DD') AS d, lastmodifieddate, "
             "TO_CHAR(lastmodifieddate, 'YYYY-MM-DD\"T\"HH24:MI:SS') AS m "
             "FROM transaction WHERE tranid = ?")
        status, _h, doc = self.suiteql(q, params=["PO1001"])
        self.assertEqual(status, 200, doc)
        row = doc["items"][0]
        self.assertEqual(row["trandate"], "2/29/2024")
        self.assertEqual(row["d"], "2024-02-29")
        self.assertEqual(row["m"], "2024-03-18T10:39:36")    # wall clock, Pacific daylight time
        self.assertEqual(row["lastmodifieddate"], "3/18/2024")
        self.control("POST", "config", {"date_format": "DD.MM.YYYY", "time_zone": "UTC"})
        row = self.suiteql(q, params=["PO1001"])[2]["items"][0]
        self.assertEqual((row["trandate"], row["d"], row["m"]),
                         ("29.02.2024", "2024-02-29", "2024-03-18T17:39:36"))

    def test_time_zone_elements_on_a_date_are_ora_01821(self):
        # NetSuite's date/time fields are Oracle DATEs: no time zone to print
        for col in ("lastmodifieddate", "createddate", "trandate"):
            for fmt in ("YYYY-MM-DD\"T\"HH24:MI:SSTZH:TZM", "HH24 TZR"):
                with self.subTest(col=col, fmt=fmt):
                    status, _h, doc = self.suiteql(f"SELECT TO_CHAR({col}, '{fmt}') AS x FROM transaction")
                    self.assert_ns_error(status, doc, 400, "INVALID_PARAMETER")
                    detail = doc["o:errorDetails"][0]
                    self.assertIn("ORA-01821: date format not recognized", detail["detail"])
                    self.assertEqual(detail.get("o:errorQueryParam"), "q")

    def test_wall_clock_comparisons_across_dst(self):
        # orders 31..37 sit at the 2024 US daylight-saving changes (netsuite.DST_ORDERS)
        ids = {i: 5000 + 3 * i for i in netsuite.DST_ORDERS}
        q = ("SELECT id, TO_CHAR(lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') AS m FROM transaction "
             "WHERE lastmodifieddate >= TO_DATE(?, 'YYYY-MM-DD HH24:MI:SS') "
             "AND lastmodifieddate < TO_DATE(?, 'YYYY-MM-DD HH24:MI:SS') AND type = 'PurchOrd' ORDER BY id")
        got = self.suiteql(q, params=["2024-11-03 01:30:00", "2024-11-03 01:30:01"])[2]["items"]
        # both passes of 01:30 read the same wall clock
        self.assertEqual([(int(r["id"]), r["m"]) for r in got],
                         [(ids[34], "2024-11-03 01:30:00"), (ids[35], "2024-11-03 01:30:00")])
        got = self.suiteql(q, params=["2024-03-10 02:00:00", "2024-03-10 03:00:01"])[2]["items"]
        self.assertEqual([(int(r["id"]), r["m"]) for r in got], [(ids[31], "2024-03-10 03:00:00")])
        self.control("POST", "config", {"time_zone": "UTC"})
        got = self.suiteql(q, params=["2024-11-03 08:30:00", "2024-11-03 09:30:01"])[2]["items"]
        self.assertEqual([int(r["id"]) for r in got], [ids[34], ids[35]])
        for bad in ("2024-13-01 00:00:00", "2024-11-03T01:30:00", "2024-11-03"):
            with self.subTest(bad):
                status, _h, doc = self.suiteql(q, params=[bad, "2025-01-01 00:00:00"])
                self.assert_ns_error(status, doc, 400, "INVALID_PARAMETER")

    def test_at_most_1000_pages_and_100000_results(self):
        # "a maximum of 1000 pages" of `limit` results: with limit 1 only
        # the first 1000 rows of a query can be read, and nothing says more exist
        q = ("SELECT a.id, b.id AS b FROM transactionline a, transactionline b "
             "ORDER BY a.transaction, a.id, b.transaction, b.id")
        total = self.suiteql(q, limit=1000)[2]["totalResults"]
        self.assertGreater(total, 1000)
        status, _h, doc = self.suiteql(q, limit=1, offset=999)
        self.assertEqual((status, doc["count"], doc["hasMore"], doc["totalResults"]), (200, 1, False, 1000))
        status, _h, doc = self.suiteql(q, limit=1, offset=1000)
        self.assertEqual((status, doc["count"], doc["hasMore"], doc["items"]), (200, 0, False, []))
        self.assertEqual(netsuite.MAX_RESULTS, 100_000)

    def test_builtin_df_joins_and_params(self):
        q = ("SELECT t.tranid, BUILTIN.DF(t.entity) AS vendorname, cur.symbol, BUILTIN.DF(t.status) AS s "
             "FROM transaction t LEFT OUTER JOIN currency cur ON cur.id = t.currency "
             "WHERE t.type = ? AND t.tranid IN (?, ?) ORDER BY t.id")
        status, _h, doc = self.suiteql(q, params=["PurchOrd", "PO1003", "PO1004"])
        self.assertEqual(status, 200, doc)
        self.assertEqual([(r["tranid"], r["vendorname"], r["symbol"]) for r in doc["items"]],
                         [("PO1003", "O'Brien & Sons", "USD"), ("PO1004", "Müller Industriebedarf GmbH", "EUR")])
        quoted = self.suiteql("SELECT id FROM vendor WHERE companyname = 'O''Brien & Sons'")[2]
        self.assertEqual(quoted["totalResults"], 1)

    def test_invalid_query(self):
        for q in ("SELECT nosuchcolumn FROM vendor", "DELETE FROM vendor", "SELECT 1; SELECT 2",
                  "SELECT TO_CHAR(trandate, 'YYYY-MM-DD HH24 TZH') FROM transaction",
                  "SELECT id FROM transaction WHERE trandate > TO_DATE('2024', 'YYYY-MM-DD')"):
            with self.subTest(q):
                status, _h, doc = self.suiteql(q)
                self.assert_ns_error(status, doc, 400, "INVALID_PARAMETER")

    def test_concurrency_limit(self):
        self.control("POST", "config", {"concurrency_limit": 1, "processing_delay": 1.0})
        results = []
        threads = [threading.Thread(target=lambda: results.append(self.suiteql("SELECT id FROM item ORDER BY id")))
                   for _ in range(2)]
        for t in threads:
            t.start()
            time.sleep(0.2)
        for t in threads:
            t.join(TIMEOUT)
        self.assertEqual(sorted(r[0] for r in results), [200, 429])
        doc = [r[2] for r in results if r[0] == 429][0]
        self.assert_ns_error(429, doc, 429, "CONCURRENCY_LIMIT_EXCEEDED")
        self.assertEqual(doc["o:errorCode"], "USER_ERROR")

    def test_fault_switch(self):
        self.control("POST", "faults", {"status": 500, "times": 1, "match": "suiteql"})
        status, _h, doc = self.suiteql("SELECT id FROM item ORDER BY id")
        self.assert_ns_error(status, doc, 500, "UNEXPECTED_ERROR")
        self.assertEqual(self.suiteql("SELECT id FROM item ORDER BY id")[0], 200)

    def test_export(self):
        status, doc = self.control("GET", "export/transaction")
        self.assertEqual(status, 200)
        types = {r["type"] for r in doc["items"]}
        self.assertEqual(types, {"PurchOrd", "VendBill"})
        self.assertRegex(doc["items"][0]["lastmodifieddate"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/env python3
"""Writes seed inputs for the page fuzz target from real sandbox pages.

    python3 test/fuzz/seeds.py OUTDIR BC_URL SAP_URL NETSUITE_URL

Fetches small pages (2 and 3 records) of every table of every system from
the sandboxes (test/sandbox/*.py, started e.g. by test/lib.sh
ufdw_start_sandbox), the way unified_fdw asks for them, and writes each as
OUTDIR/<system>-<table>-<n>: a selector byte for the system (0 Business
Central, 1 SAP, 2 NetSuite, the order of ufdw_fuzz.c), one for the table
(its index in connectors/model.json), then the body.  The committed corpus
(test/fuzz/corpus/page) was made from these with bash test/fuzz/run --merge.
"""
import base64
import json
import os
import sys
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "sandbox"))
import test_netsuite  # noqa: E402  (its TBA signing)

ROOT = os.path.join(HERE, "..", "..")
TENANT = "7a3b1c2d-0000-4a5b-9c8d-112233445566"
COMPANY = "bb6d48b6-c7b2-4a38-9a93-ad5506407f12"


def load(name):
    with open(os.path.join(ROOT, "connectors", name)) as f:
        return json.load(f)


def get(url, headers):
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def post(url, headers, body):
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def main():
    out, bc, sap, ns = sys.argv[1:5]
    os.makedirs(out, exist_ok=True)
    tables = [t["name"] if isinstance(t, dict) and "name" in t else t
              for t in load("model.json")["tables"]]
    if isinstance(load("model.json")["tables"], dict):
        tables = list(load("model.json")["tables"].keys())

    def write(system, table, n, body):
        with open(os.path.join(out, "%s-%s-%d" % (system, table, n)), "wb") as f:
            f.write(bytes([{"bc": 0, "sap": 1, "netsuite": 2}[system], tables.index(table)]) + body)

    token = json.loads(post("%s/%s/oauth2/v2.0/token" % (bc, TENANT),
                            {"Content-Type": "application/x-www-form-urlencoded"},
                            urllib.parse.urlencode({
                                "grant_type": "client_credentials",
                                "client_id": "sandbox-client-id",
                                "client_secret": "sandbox-client-secret",
                                "scope": "https://api.businesscentral.dynamics.com/.default"}
                            ).encode()))["access_token"]
    for table, spec in load("dynamics365_bc.json")["tables"].items():
        for n in (2, 3):
            write("bc", table, n, get("%s/v2.0/%s/production/api/v2.0/companies(%s)/%s?$top=%d&$count=true"
                                      % (bc, TENANT, COMPANY, spec["entity"], n),
                                      {"Authorization": "Bearer " + token}))
    basic = "Basic " + base64.b64encode(b"sandbox-user:sandbox-password").decode()
    for table, spec in load("sap_s4hana.json")["tables"].items():
        for n in (2, 3):
            write("sap", table, n, get("%s/sap/opu/odata/sap/%s?$top=%d&$format=json&$inlinecount=allpages"
                                       % (sap, spec["entity"], n),
                                       {"Authorization": basic, "Accept": "application/json"}))
    host = urllib.parse.urlparse(ns).netloc
    for table, spec in load("netsuite.json")["tables"].items():
        fields = []
        for col in spec["columns"].values():
            for f in ([col["field"]] if "field" in col else col.get("fields", [])):
                name = f["name"] if isinstance(f, dict) else f
                expr = f.get("expr") if isinstance(f, dict) else col.get("expr")
                item = "%s AS %s" % (expr, name) if expr else name
                if item not in fields:
                    fields.append(item)
        q = "SELECT %s FROM %s%s" % (", ".join(fields), spec["entity"],
                                     " WHERE " + spec["where"] if spec.get("where") else "")
        for n in (2, 3):
            target = "/services/rest/query/v1/suiteql?limit=%d&offset=0" % n
            write("netsuite", table, n, post(ns + target, {
                "Prefer": "transient", "Content-Type": "application/json",
                "Authorization": test_netsuite.sign("POST", host, target)},
                json.dumps({"q": q}).encode()))


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Full-scan time with and without requests in flight ahead of the rows being
# returned.  Every page request is delayed by the sandbox (a `delay` fault),
# standing in for an upstream that takes a while per page, so the overlap
# shows up as wall-clock time.
#
# SAP (OData V2, offset paging): max_concurrency 1, 2, 4, 8.  With 1 the
# next page is requested once the current one is parsed (one request in
# flight); with N the scan keeps N requests in flight.
# Business Central (next links): one request in flight, whatever
# max_concurrency says; there is no option to turn its next-page prefetch
# off, so it is shown with the same delay for comparison.
#
#   bash test/bench/prefetch.sh [orders [page_size [delay_seconds]]]
#
# Not part of test/run (a benchmark, not a timed test).  Prints the best of
# three scans for each setting.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
ufdw_stage "$0" "$@"
trap ufdw_cleanup EXIT

ORDERS=${1:-2000}
PAGE_SIZE=${2:-100}
DELAY=${3:-0.05}
ufdw_install_deps
ufdw_build
ufdw_workdir
ufdw_start_cluster
SAP_PORT=$(ufdw_free_port)
ufdw_start_sandbox sap "$SAP_PORT" --orders "$ORDERS"
BC_PORT=$(ufdw_free_port)
ufdw_start_sandbox bc "$BC_PORT" --orders "$ORDERS"
SAP="http://127.0.0.1:$SAP_PORT"
BC="http://127.0.0.1:$BC_PORT"

psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE EXTENSION unified_fdw;
CREATE SERVER sap FOREIGN DATA WRAPPER unified_fdw OPTIONS (
  system 'sap_s4hana', instance_url '$SAP', allow_insecure 'true', page_size '$PAGE_SIZE');
CREATE USER MAPPING FOR CURRENT_USER SERVER sap OPTIONS (
  username 'sandbox-user', password 'sandbox-password');
CREATE SCHEMA sap;
IMPORT FOREIGN SCHEMA unified LIMIT TO (purchase_orders) FROM SERVER sap INTO sap;
$(ufdw_bc_server_sql "$BC" "$PAGE_SIZE" bench)
SQL

# sandbox_post URL PATH JSON
sandbox_post() { curl -fsS -X POST "$1$2" -H 'Content-Type: application/json' -d "$3" >/dev/null; }

# data_requests URL MATCH: page requests in the sandbox's log since it was cleared
data_requests() {
    curl -fsS "$1/_sandbox/requests?limit=20000" | python3 -c '
import json, sys
print(sum(1 for r in json.load(sys.stdin)["requests"] if sys.argv[1] in r["path"]))' "$2"
}

# scan_seconds SCHEMA: best of three full scans in one backend (after a
# warm-up scan that also fetches the OAuth token and opens the connection)
scan_seconds() {
    psql -X -qAt -v ON_ERROR_STOP=1 <<SQL
SELECT count(*) FROM $1.purchase_orders \\g /dev/null
CREATE TEMP TABLE t (s numeric);
SELECT clock_timestamp() AS t0 \\gset
SELECT count(*) AS n FROM $1.purchase_orders \\gset
INSERT INTO t SELECT extract(epoch FROM clock_timestamp() - :'t0');
SELECT clock_timestamp() AS t0 \\gset
SELECT count(*) FROM $1.purchase_orders \\g /dev/null
INSERT INTO t SELECT extract(epoch FROM clock_timestamp() - :'t0');
SELECT clock_timestamp() AS t0 \\gset
SELECT count(*) FROM $1.purchase_orders \\g /dev/null
INSERT INTO t SELECT extract(epoch FROM clock_timestamp() - :'t0');
SELECT round(min(s), 2) || CASE WHEN :n = $ORDERS THEN '' ELSE ' (wrong row count: ' || :n || ')' END FROM t;
SQL
}

PAGES=$(( (ORDERS + PAGE_SIZE - 1) / PAGE_SIZE ))
printf '\n%d orders, pages of %d (%d pages), %s s delay per page request\n' \
    "$ORDERS" "$PAGE_SIZE" "$PAGES" "$DELAY"
printf 'sum of the delays alone (a client that waits for each page in turn): %.2f s\n\n' \
    "$(python3 -c "print($PAGES * $DELAY)")"
printf '%-18s %16s %10s %12s %10s\n' system max_concurrency seconds "requests/scan" speed-up

sandbox_post "$SAP" /_sandbox/faults "{\"match\": \"A_PurchaseOrder?\", \"delay\": $DELAY, \"times\": -1}"
base=""
for n in 1 2 4 8; do
    psql -X -q -v ON_ERROR_STOP=1 -c "ALTER SERVER sap OPTIONS (SET max_concurrency '$n')" 2>/dev/null \
        || psql -X -q -v ON_ERROR_STOP=1 -c "ALTER SERVER sap OPTIONS (ADD max_concurrency '$n')"
    curl -fsS -X DELETE "$SAP/_sandbox/requests" >/dev/null
    s=$(scan_seconds sap)
    reqs=$(( $(data_requests "$SAP" A_PurchaseOrder) / 4 ))
    base=${base:-$s}
    printf '%-18s %16s %10s %12s %9.1fx\n' "SAP (offset)" "$n" "$s" "$reqs" \
        "$(python3 -c "print($base / $s)")"
done

sandbox_post "$BC" /_sandbox/faults "{\"match\": \"purchaseOrders\", \"delay\": $DELAY, \"times\": -1}"
curl -fsS -X DELETE "$BC/_sandbox/requests" >/dev/null
s=$(scan_seconds bc)
reqs=$(( $(data_requests "$BC" purchaseOrders) / 4 ))
printf '%-18s %16s %10s %12s %10s\n' "BC (next links)" "- (1 in flight)" "$s" "$reqs" "-"

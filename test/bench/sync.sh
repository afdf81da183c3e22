#!/usr/bin/env bash
# Scheduled syncs (docs/sql.md, "Syncs") against the sandbox Business
# Central:
#
# 1. the initial sync of N purchase orders (CALL unified.sync_now) against
#    CREATE TABLE AS SELECT * FROM the foreign table, best of three each, in
#    the same cluster (target: the sync at most 1.3 times the CTAS);
# 2. an incremental run after 1 % of the orders changed upstream (orders and
#    their lines synced): seconds, requests and records transferred, from
#    the sandbox's request log.
#
#   bash test/bench/sync.sh [orders [page_size]]      (default 100000 1000)
#
# Not part of test/run (a benchmark, not a timed test).  Prints the figures
# that docs/benchmarks.md quotes.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
ufdw_stage "$0" "$@"
trap ufdw_cleanup EXIT

ORDERS=${1:-100000}
PAGE_SIZE=${2:-1000}
CHANGED=$(( ORDERS / 100 ))
ufdw_install_deps
ufdw_build
ufdw_workdir
ufdw_start_cluster
BC_PORT=$(ufdw_free_port)
ufdw_start_sandbox bc "$BC_PORT" --orders "$ORDERS"
BC="http://127.0.0.1:$BC_PORT"

psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
CREATE EXTENSION unified_fdw;
SET client_min_messages = warning;
SELECT unified.connect('dynamics365_bc', '$BC/v2.0/bench/production',
  '{"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}', 'bench',
  '{"company_id": "bb6d48b6-c7b2-4a38-9a93-ad5506407f12",
    "token_url": "$BC/bench/oauth2/v2.0/token", "allow_insecure": true, "page_size": $PAGE_SIZE}');
SELECT count(*) FROM bench.purchase_orders;   -- warm-up: the sandbox renders every record once
SQL

# log_figures: "requests records" in the sandbox's log since it was cleared
log_figures() {
    curl -fsS "$BC/_sandbox/requests?limit=20000" | python3 -c '
import json, sys
rs = [r for r in json.load(sys.stdin)["requests"] if "/api/" in r["path"]]
print(len(rs), sum(r["records"] or 0 for r in rs))'
}
clear_log() { curl -fsS -X DELETE "$BC/_sandbox/requests" >/dev/null; }

ctas=()
sync=()
for i in 1 2 3; do
    ctas+=("$(psql -X -qAt -v ON_ERROR_STOP=1 <<'SQL'
DROP TABLE IF EXISTS ctas;
SELECT clock_timestamp() AS t0 \gset
CREATE TABLE ctas AS SELECT * FROM bench.purchase_orders;
SELECT round(extract(epoch FROM clock_timestamp() - :'t0')::numeric, 3);
SQL
)")
    sync+=("$(psql -X -qAt -v ON_ERROR_STOP=1 <<'SQL'
SET client_min_messages = warning;
SELECT unified.drop_synced_data('bench') \g /dev/null
SELECT unified.start_sync('bench', '{purchase_orders}') \g /dev/null
SELECT clock_timestamp() AS t0 \gset
CALL unified.sync_now('bench', '{purchase_orders}') \g /dev/null
SELECT round(extract(epoch FROM clock_timestamp() - :'t0')::numeric, 3)
       || CASE WHEN count(*) = (SELECT count(*) FROM ctas) THEN '' ELSE ' (wrong row count)' END
  FROM bench_sync.purchase_orders;
SQL
)")
done
best() { printf '%s\n' "$@" | sort -n | head -1; }
CTAS=$(best "${ctas[@]}")
SYNC=$(best "${sync[@]}")
printf '\n%d purchase orders, pages of %d\n' "$ORDERS" "$PAGE_SIZE"
printf 'CREATE TABLE AS SELECT * FROM the foreign table: %s s (runs: %s)\n' "$CTAS" "${ctas[*]}"
printf 'initial sync (CALL unified.sync_now):            %s s (runs: %s)\n' "$SYNC" "${sync[*]}"
python3 -c "import sys; print('ratio sync / CTAS: %.2f (target <= 1.3)' % (float(sys.argv[2]) / float(sys.argv[1])))" \
    "$CTAS" "$SYNC"

# the lines too, then 1 % of the orders change upstream: half a header change,
# half a line quantity change (which moves the order's stamp)
psql -X -qAt -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SET client_min_messages = warning;
SELECT unified.start_sync('bench');
CALL unified.sync_now('bench');
SQL
python3 - "$BC" "$ORDERS" "$CHANGED" <<'PY'
import json, sys, urllib.request
url, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
step = n // k
ops = []
for j in range(k):
    i = j * step
    ops.append({"op": "update_order", "order": i} if j % 2 == 0 else
               {"op": "update_line", "order": i, "line": 1, "quantity": 3})
req = urllib.request.Request(url + "/_sandbox/mutate", json.dumps({"ops": ops}).encode(),
                             {"Content-Type": "application/json"})
urllib.request.urlopen(req, timeout=600).read()
PY
clear_log
RUN=$(psql -X -qAt -v ON_ERROR_STOP=1 -c "CALL unified.sync_now('bench', reconcile => false)")
read -r REQS RECS <<<"$(log_figures)"
IFS='|' read -r INS UPD DEL CREQS SECS FAILED <<<"$RUN"
printf '\nincremental run after %d of %d orders changed (orders, lines, vendors, items):\n' "$CHANGED" "$ORDERS"
printf '  %s s, %s requests (sandbox log: %s), %s records transferred; %s inserted, %s updated, %s marked deleted, %s failed\n' \
    "$SECS" "$CREQS" "$REQS" "$RECS" "$INS" "$UPD" "$DEL" "$FAILED"
psql -X -q -v ON_ERROR_STOP=1 -c "SELECT table_name, kind, inserted, updated, requests, seconds
  FROM unified.sync_runs WHERE id > (SELECT max(id) - 4 FROM unified.sync_runs) ORDER BY id"
clear_log
RUN=$(psql -X -qAt -v ON_ERROR_STOP=1 -c "CALL unified.sync_now('bench', reconcile => false)")
read -r REQS RECS <<<"$(log_figures)"
IFS='|' read -r INS UPD DEL CREQS SECS FAILED <<<"$RUN"
printf 'incremental run with nothing changed: %s s, %s requests, %s records transferred\n' "$SECS" "$REQS" "$RECS"

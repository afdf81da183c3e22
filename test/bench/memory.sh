#!/usr/bin/env bash
# Backend memory of long scans.
#
#   bash test/bench/memory.sh [page_size]
#       peak backend memory of full scans of 10k and 100k Business Central
#       purchase orders: the growth of the backend's peak resident set
#       (VmHWM) during each scan; with one page held at a time the two are
#       close.
#   bash test/bench/memory.sh pages [max_pages [systems]]
#       memory of one scan after 10, 100, 1000, ... up to max_pages (default
#       10000) pages of 10 records, read in a cursor that stays open: the
#       scan's own memory contexts (unified_fdw scan, page, filter and
#       request contexts, from pg_backend_memory_contexts), all of the
#       backend's contexts, and its resident set.  systems (default
#       "sap bc netsuite"): SAP ($top/$skip URLs, 4 requests in flight),
#       Business Central (next links), NetSuite (a SuiteQL body per page).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
ufdw_stage "$0" "$@"
trap ufdw_cleanup EXIT

MODE=bc
[ "${1:-}" = pages ] && { MODE=pages; shift; }
PAGE_SIZE=${1:-1000}
MAX_PAGES=${1:-10000}
SYSTEMS=${2:-sap bc netsuite}
ufdw_install_deps
ufdw_build
ufdw_workdir
ufdw_start_cluster

if [ "$MODE" = pages ]; then
    ORDERS=$((MAX_PAGES * 10))
    sql="CREATE EXTENSION unified_fdw;"
    for sys in $SYSTEMS; do
        port=$(ufdw_free_port)
        ufdw_log "$sys sandbox with $ORDERS purchase orders"
        case $sys in
        sap)
            ufdw_start_sandbox sap "$port" --orders "$ORDERS"
            sql+="
CREATE SERVER sap FOREIGN DATA WRAPPER unified_fdw OPTIONS (system 'sap_s4hana',
  instance_url 'http://127.0.0.1:$port', allow_insecure 'true', page_size '10',
  max_concurrency '4', max_pages '1000000');
CREATE USER MAPPING FOR CURRENT_USER SERVER sap OPTIONS (username 'sandbox-user',
  password 'sandbox-password');
CREATE SCHEMA sap; IMPORT FOREIGN SCHEMA unified FROM SERVER sap INTO sap;" ;;
        bc)
            ufdw_start_sandbox bc "$port" --orders "$ORDERS"
            sql+="
$(ufdw_bc_server_sql "http://127.0.0.1:$port" 10 bench)
ALTER SERVER bc OPTIONS (ADD max_pages '1000000');" ;;
        netsuite)
            ufdw_start_sandbox netsuite "$port" --orders "$ORDERS"
            sql+="
CREATE SERVER netsuite FOREIGN DATA WRAPPER unified_fdw OPTIONS (system 'netsuite',
  instance_url 'http://127.0.0.1:$port', account_id '1234567_SB1', allow_insecure 'true',
  page_size '10', max_pages '1000000');
CREATE USER MAPPING FOR CURRENT_USER SERVER netsuite OPTIONS (
  consumer_key 'sandbox-consumer-key', consumer_secret 'sandbox-consumer-secret',
  token_id 'sandbox-token-id', token_secret 'sandbox token/secret+1');
CREATE SCHEMA netsuite; IMPORT FOREIGN SCHEMA unified FROM SERVER netsuite INTO netsuite;" ;;
        esac
    done
    psql -X -q -v ON_ERROR_STOP=1 <<<"$sql"
    printf '\n%-9s %7s %9s %13s %15s %10s %8s\n' system pages records "scan cxt B" "backend cxt B" "RSS kB" seconds
    for sys in $SYSTEMS; do
        # one backend per system; the figures after each count of pages
        # come from the same scan, its cursor still open
        {
            echo "BEGIN;"
            echo "DECLARE c CURSOR FOR SELECT id, raw FROM $sys.purchase_orders;"
            echo "SELECT clock_timestamp() AS t0 \\gset"
            done_pages=0
            for p in 10 100 1000 10000 100000; do
                [ "$p" -gt "$MAX_PAGES" ] && break
                echo "MOVE $(( (p - done_pages) * 10 )) FROM c;"
                done_pages=$p
                cat <<SQL
SELECT format('%-9s %7s %9s %13s %15s %10s %8s', '$sys', $p, $p * 10,
  (SELECT sum(total_bytes) FROM pg_backend_memory_contexts WHERE name LIKE 'unified_fdw %'),
  (SELECT sum(total_bytes) FROM pg_backend_memory_contexts),
  substring(pg_read_file('/proc/self/status') FROM 'VmRSS:\\s+(\\d+)'),
  round(extract(epoch FROM clock_timestamp() - :'t0')::numeric, 1));
SQL
            done
            echo "COMMIT;"
        } | psql -X -At -q -v ON_ERROR_STOP=1
    done
    exit 0
fi

BC_PORT=$(ufdw_free_port)
ufdw_log "sandbox with 100000 purchase orders"
ufdw_start_sandbox bc "$BC_PORT" --orders 100000
BC="http://127.0.0.1:$BC_PORT"

psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE EXTENSION unified_fdw;
$(ufdw_bc_server_sql "$BC" "$PAGE_SIZE" bench)
SQL

printf '\n%-10s %10s %12s %16s %10s\n' rows page_size seconds "peak growth kB" rows/s
for n in 10000 100000; do
    # a fresh backend per size: warm it up (catalog caches, connector files,
    # the OAuth token), then read its peak resident set before and after
    psql -X -At -v ON_ERROR_STOP=1 -v n="$n" -v page="$PAGE_SIZE" <<'SQL'
SELECT count(*) FROM (SELECT * FROM bc.purchase_orders LIMIT 10) s \g /dev/null
SELECT substring(pg_read_file('/proc/self/status') FROM 'VmHWM:\s+(\d+)')::bigint AS hwm0,
       clock_timestamp() AS t0 \gset
SELECT count(*), sum(total_amount), max(length(raw::text))
  FROM (SELECT * FROM bc.purchase_orders LIMIT :n) s \g /dev/null
SELECT format('%-10s %10s %12s %16s %10s', :n, :page,
              round(extract(epoch FROM clock_timestamp() - :'t0')::numeric, 2),
              substring(pg_read_file('/proc/self/status') FROM 'VmHWM:\s+(\d+)')::bigint - :hwm0,
              round(:n / extract(epoch FROM clock_timestamp() - :'t0')::numeric));
SQL
done

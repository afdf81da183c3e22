#!/usr/bin/env bash
# Peak backend memory of full scans of 10k and 100k Business Central purchase
# orders.  Prints the growth of the backend's peak resident set (VmHWM)
# during each scan; with one page held at a time the two are close.
#
#   bash test/bench/memory.sh [page_size]
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
ufdw_stage "$0" "$@"
trap ufdw_cleanup EXIT

PAGE_SIZE=${1:-1000}
ufdw_install_deps
ufdw_build
ufdw_workdir
ufdw_start_cluster
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

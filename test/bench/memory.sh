#!/usr/bin/env bash
# Peak backend memory of full scans of 10k and 100k Business Central purchase
# orders.  Prints the growth of the backend's peak resident set (VmHWM)
# during each scan; with one page held at a time the two are close.
#
#   bash test/bench/memory.sh [page_size]
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
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
CREATE SERVER bc FOREIGN DATA WRAPPER unified_fdw OPTIONS (
  system 'dynamics365_bc', instance_url '$BC/v2.0/bench/production',
  company_id 'bb6d48b6-c7b2-4a38-9a93-ad5506407f12',
  token_url '$BC/bench/oauth2/v2.0/token', allow_insecure 'true', page_size '$PAGE_SIZE');
CREATE USER MAPPING FOR CURRENT_USER SERVER bc OPTIONS (
  client_id 'sandbox-client-id', client_secret 'sandbox-client-secret');
CREATE SCHEMA bc;
IMPORT FOREIGN SCHEMA unified FROM SERVER bc INTO bc;
SQL

hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

printf '\n%-10s %10s %12s %14s %10s\n' rows page_size seconds "peak growth" rows/s
for n in 10000 100000; do
    # one fresh backend per measurement; it reports its pid, then waits on
    # a fifo so the peak can be read after the scan, before it exits
    fifo="$UFDW_WORK/fifo.$n"
    mkfifo "$fifo"
    out="$UFDW_WORK/out.$n"
    ( psql -X -At -v ON_ERROR_STOP=1 <"$fifo" >"$out" ) &
    exec 9>"$fifo"
    echo "SELECT pg_backend_pid();" >&9
    for _ in $(seq 1 100); do [ -s "$out" ] && break; sleep 0.05; done
    pid=$(head -1 "$out")
    # warm up the backend (catalog caches, the connector files, the token)
    echo "SELECT count(*) FROM (SELECT * FROM bc.purchase_orders LIMIT 10) s;" >&9
    sleep 1
    before=$(hwm_kb "$pid")
    start=$(date +%s.%N)
    echo "SELECT count(*), sum(total_amount), max(raw::text) FROM (SELECT * FROM bc.purchase_orders LIMIT $n) s;" >&9
    echo "SELECT 'done';" >&9
    until grep -q '^done$' "$out"; do sleep 0.02; done
    end=$(date +%s.%N)
    after=$(hwm_kb "$pid")
    exec 9>&-
    wait
    awk -v n="$n" -v p="$PAGE_SIZE" -v s="$start" -v e="$end" -v g="$((after - before))" \
        'BEGIN { printf "%-10s %10s %12.2f %11s kB %10.0f\n", n, p, e - s, g, n / (e - s) }'
done

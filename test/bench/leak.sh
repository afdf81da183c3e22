#!/usr/bin/env bash
# Leak check: N scans (default 10000) that fail on page 2 (malformed JSON),
# each inside a subtransaction (plpgsql EXCEPTION block = savepoint), in one
# backend.  Prints the backend's resident memory, the total of its memory
# contexts and its open file descriptors after a warm-up and at the end;
# with nothing leaking they stay flat.
#
#   bash test/bench/leak.sh [iterations]
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
ufdw_stage "$0" "$@"
trap ufdw_cleanup EXIT

N=${1:-10000}
WARM=$((N / 10))
ufdw_install_deps
ufdw_build
ufdw_workdir
ufdw_start_cluster
BC_PORT=$(ufdw_free_port)
ufdw_start_sandbox bc "$BC_PORT" --orders 60
BC="http://127.0.0.1:$BC_PORT"
# page 2 of every scan is malformed
curl -fsS -XPOST "$BC/_sandbox/faults" \
    -d '{"match": "skiptoken", "malformed": true, "times": -1}' >/dev/null

psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE EXTENSION unified_fdw;
$(ufdw_bc_server_sql "$BC" "20" leak)
CREATE FUNCTION failing_scans(n int) RETURNS int LANGUAGE plpgsql AS \$\$
DECLARE failed int := 0;
BEGIN
  FOR i IN 1..n LOOP
    BEGIN
      PERFORM count(*) FROM bc.purchase_orders;
    EXCEPTION WHEN fdw_invalid_data_type THEN
      failed := failed + 1;
    END;
  END LOOP;
  RETURN failed;
END \$\$;
SQL

# one backend; it waits on a fifo between steps so /proc can be read
fifo="$UFDW_WORK/fifo"
out="$UFDW_WORK/out"
mkfifo "$fifo"
( psql -X -At -v ON_ERROR_STOP=1 <"$fifo" >"$out" 2>&1 ) &
psql_pid=$!
exec 9>"$fifo"
echo "SELECT 'pid', pg_backend_pid();" >&9
for _ in $(seq 1 100); do grep -q '^pid|' "$out" && break; sleep 0.05; done
pid=$(sed -n 's/^pid|//p' "$out")

step() {  # step LABEL ITERATIONS
    local t0 t1
    t0=$(date +%s.%N)
    echo "SELECT 'failed', failed_scans FROM (SELECT failing_scans($2) AS failed_scans) s;" >&9
    echo "SELECT 'ctx', sum(total_bytes) FROM pg_backend_memory_contexts;" >&9
    echo "SELECT 'mark', '$1';" >&9
    until grep -q "^mark|$1\$" "$out"; do sleep 0.05; done
    t1=$(date +%s.%N)
    local failed ctx rss fds
    failed=$(grep '^failed|' "$out" | tail -1 | cut -d'|' -f2)
    ctx=$(grep '^ctx|' "$out" | tail -1 | cut -d'|' -f2)
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    fds=$(ls "/proc/$pid/fd" | wc -l)
    printf '%-8s %10s %8s %10.1f %12s %12s %6s\n' "$1" "$2" "$failed" "$(echo "$t1 - $t0" | bc)" \
        "$rss" "$ctx" "$fds"
}
printf '\n%-8s %10s %8s %10s %12s %12s %6s\n' step scans failed seconds "rss kB" "contexts B" fds
step warmup "$WARM"
step run "$((N - WARM))"
exec 9>&-
wait "$psql_pid"
grep -i "warning\|leak" "$out" || echo "no WARNING in the session"

#!/usr/bin/env bash
# Throughput of unified_fdw against the physical limit and against what a
# PostgreSQL user would build instead (issue 8; docs/benchmarks.md).
#
#   bash test/bench/throughput.sh                  10k, 100k and 1M purchase orders
#   bash test/bench/throughput.sh 10000 100000     other sizes
#   UFDW_BENCH_NO_DOCS=1 ...                       print only, leave docs/ alone
#
# Starts a throwaway cluster and, per system and size, a sandbox whose
# pages are pre-rendered (served from memory, so it is not the
# bottleneck), then measures, in the same run and on the same pages:
#   fetch      curl fetching the full scan's pages sequentially (one
#              connection), plain (the sandbox's raw serving rate) and gzip
#              (what unified_fdw asks for)
#   parse      PostgreSQL's JSON parser on the same bodies (json_parse.c),
#              and jansson trees for reference
#   heap       a scan of a local heap table holding the same rows
#   unified    SELECT * FROM <server>.purchase_orders
#   plpython   a PL/Python function paging with urllib + json
#   copy_jq    COPY ... FROM PROGRAM 'curl | jq' into a temporary table,
#              then the same query on it
# A scan is "SELECT * FROM source" run to completion inside the server
# with its rows discarded (EXPLAIN ANALYZE, TIMING OFF), so the cost of
# sending rows to a client is the same (none) for every source.  Each
# figure is the best of 3 runs (1 run at 1M rows).  Then, once: selective
# queries against the minimum possible, time to first row of LIMIT 10, and
# the fixed overhead of a one-row query.  Results go to stdout and, unless
# UFDW_BENCH_NO_DOCS is set, into docs/benchmarks.md and docs/benchmarks.png.
#
# Nothing is asserted: the targets are reported next to the figures.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
ufdw_stage "$0" "$@"
trap ufdw_cleanup EXIT

SIZES=${*:-10000 100000 1000000}
PAGE_SIZE=${UFDW_BENCH_PAGE_SIZE:-1000}
# systems with a connector; each has test/bench/system_<name>.sh
SYSTEMS=${UFDW_BENCH_SYSTEMS:-bc}
COMMAND="bash test/bench/throughput.sh${*:+ $*}"
# the unified model's columns of purchase_orders, without raw
TYPED="id, number, status, vendor_id, vendor_name, order_date, currency, total_amount, company_id, created_at, updated_at"
BENCH=$UFDW_ROOT/test/bench
for sys in $SYSTEMS; do . "$BENCH/system_$sys.sh"; done

# -- set-up -------------------------------------------------------------------

# plpython3u from Debian; copied into a relocated PostgreSQL (PG_CONFIG
# pointing elsewhere than /usr/lib/postgresql) next to its other modules.
bench_install_deps() {
    UFDW_PACKAGES="$UFDW_PACKAGES postgresql-plpython3-$UFDW_PG_MAJOR jq gnuplot-nox"
    ufdw_install_deps
    local lib share deb=/usr/lib/postgresql/$UFDW_PG_MAJOR/lib
    lib=$("$PG_CONFIG" --pkglibdir)
    share=$("$PG_CONFIG" --sharedir)/extension
    if [ ! -f "$lib/plpython3.so" ]; then
        ufdw_log "copying plpython3u into $lib"
        ufdw_as_root cp "$deb/plpython3.so" "$lib/"
        ufdw_as_root cp /usr/share/postgresql/$UFDW_PG_MAJOR/extension/plpython3u* "$share/"
    fi
}

bench_build_parser() {
    gcc -O2 -Wall -Werror -I"$("$PG_CONFIG" --includedir-server)" -o "$UFDW_WORK/json_parse" \
        "$BENCH/json_parse.c" -L"$("$PG_CONFIG" --pkglibdir)" -lpgcommon -lpgport -ljansson
}

# -- helpers --------------------------------------------------------------------

RESULTS=""            # TSV: system, size, measure, value (seconds unless named)
record() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.4f", b - a }'; }
min() { printf '%s\n' "$@" | sort -g | head -1; }
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }

# Waits (at most 30 min) until the sandbox has pre-rendered its pages.
bench_wait_prerender() {
    local state
    for _ in $(seq 1 3600); do
        state=$(curl -fsS "$SB_URL/_sandbox/health" | jq -c .prerender)
        case $state in
            *'"done"'*) ufdw_log "sandbox pre-rendered: $state"; return 0 ;;
            *'"failed"'*) echo "pre-render failed: $state" >&2; return 1 ;;
        esac
        sleep 0.5
    done
    echo "pre-render did not finish" >&2
    return 1
}

# bench_scan SOURCE [SETUP_SQL]: in a fresh session, warm up with SETUP_SQL
# (catalogs, connector, token), then run SELECT * FROM SOURCE to the end;
# prints "seconds peak_kB growth_kB" and leaves EXPLAIN's text in $UFDW_WORK/explain.
bench_scan() {
    psql -X -At -v ON_ERROR_STOP=1 -v explain="$UFDW_WORK/explain" <<SQL
${2:-}
SELECT substring(pg_read_file('/proc/self/status') FROM 'VmHWM:\s+(\d+)')::bigint AS hwm0,
       clock_timestamp() AS t0 \gset
EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF) SELECT * FROM $1 \g :explain
SELECT extract(epoch FROM clock_timestamp() - :'t0')::numeric(12,4),
       substring(pg_read_file('/proc/self/status') FROM 'VmHWM:\s+(\d+)')::bigint,
       substring(pg_read_file('/proc/self/status') FROM 'VmHWM:\s+(\d+)')::bigint - :hwm0;
SQL
}

# first_request QUERY: the URL (path?query) of QUERY's first upstream request.
first_request() {
    q "EXPLAIN (VERBOSE, COSTS OFF) $1" |
        sed -n 's|^ *Upstream Request: GET https\{0,1\}://[^/]*\(/.*\)$|\1|p' | head -1
}

# upstream COUNTER: the "Upstream COUNTER" figure of the last EXPLAIN.
upstream() { sed -n "s/^ *Upstream $1: \([0-9.]*\).*/\1/p" "$UFDW_WORK/explain" | head -1; }

# curl_pages CONFIG [CURL_OPTS...]: fetches the pages listed in CONFIG in one
# curl process (one connection), sequentially; prints the seconds.
curl_pages() {
    local cfg=$1 t0
    shift
    t0=$(now)
    curl -fsS -K "$cfg" "$@" >/dev/null
    since "$t0"
}

# -- the measurements ---------------------------------------------------------------

# bench_size SYSTEM N: everything measured on N records of SYSTEM.
bench_size() {
    local sys=$1 n=$2 s="${1}_$2" reps=3 i t out hdrs=() line
    [ "$n" -gt 100000 ] && reps=1
    ufdw_log "$sys: sandbox with $n purchase orders, pages of $PAGE_SIZE"
    # the server exists before the sandbox does, so that the requests of
    # both scans (SELECT * and the model columns without raw) can be read
    # from EXPLAIN VERBOSE (no network I/O) and pre-rendered
    local t0 full typed
    "${sys}_prepare"
    "${sys}_server_sql" "$s" "$PAGE_SIZE" | psql -X -q -v ON_ERROR_STOP=1
    full=$(first_request "SELECT * FROM $s.purchase_orders")
    typed=$(first_request "SELECT $TYPED FROM $s.purchase_orders")
    t0=$(now)
    "${sys}_start" "$n" "$full" "$typed"
    record "$sys" "$n" prerender "$(since "$t0")"
    local pages="$UFDW_WORK/pages" urls="$UFDW_WORK/urls"
    rm -rf "$pages"
    mkdir -p "$pages/typed"
    "${sys}_page_urls" "$full" >"$urls"
    "${sys}_page_urls" "$typed" >"$urls.typed"
    while IFS= read -r line; do hdrs+=(-H "$line"); done < <("${sys}_curl_headers")
    awk '{ printf "url = \"%s\"\noutput = \"/dev/null\"\n", $0 }' "$urls" >"$UFDW_WORK/fetch.cfg"
    awk '{ printf "url = \"%s\"\noutput = \"/dev/null\"\n", $0 }' "$urls.typed" \
        >"$UFDW_WORK/fetch-typed.cfg"
    awk -v d="$pages" '{ printf "url = \"%s\"\noutput = \"%s/%06d.json\"\n", $0, d, NR }' \
        "$urls" >"$UFDW_WORK/save.cfg"
    awk -v d="$pages/typed" '{ printf "url = \"%s\"\noutput = \"%s/%06d.json\"\n", $0, d, NR }' \
        "$urls.typed" >>"$UFDW_WORK/save.cfg"

    ufdw_log "$sys $n: fetch ($(wc -l <"$urls") pages) and parse"
    local plain=() gz=() gzt=() pg=() pgt=() pgnull=()
    for i in $(seq 1 "$reps"); do
        plain+=("$(curl_pages "$UFDW_WORK/fetch.cfg" "${hdrs[@]}")")
        gz+=("$(curl_pages "$UFDW_WORK/fetch.cfg" --compressed "${hdrs[@]}")")
        gzt+=("$(curl_pages "$UFDW_WORK/fetch-typed.cfg" --compressed "${hdrs[@]}")")
    done
    curl -fsS -K "$UFDW_WORK/save.cfg" --compressed "${hdrs[@]}"
    record "$sys" "$n" fetch_plain "$(min "${plain[@]}")"
    record "$sys" "$n" fetch_gzip "$(min "${gz[@]}")"
    record "$sys" "$n" typed_fetch_gzip "$(min "${gzt[@]}")"
    record "$sys" "$n" page_bytes "$(cat "$pages"/*.json | wc -c)"
    record "$sys" "$n" typed_page_bytes "$(cat "$pages"/typed/*.json | wc -c)"
    for i in $(seq 1 "$reps"); do
        pg+=("$("$UFDW_WORK/json_parse" pg "$pages"/*.json | cut -d' ' -f2)")
        pgt+=("$("$UFDW_WORK/json_parse" pg "$pages"/typed/*.json | cut -d' ' -f2)")
        pgnull+=("$("$UFDW_WORK/json_parse" pgnull "$pages"/*.json | cut -d' ' -f2)")
    done
    record "$sys" "$n" parse_pg "$(min "${pg[@]}")"
    record "$sys" "$n" typed_parse_pg "$(min "${pgt[@]}")"
    record "$sys" "$n" parse_pgnull "$(min "${pgnull[@]}")"
    out=$("$UFDW_WORK/json_parse" jansson "$pages"/*.json)
    record "$sys" "$n" parse_jansson "$(echo "$out" | cut -d' ' -f2)"
    [ "$(echo "$out" | cut -d' ' -f4)" = "$n" ] || { echo "parsed $out, expected $n records" >&2; return 1; }
    rm -rf "$pages"

    ufdw_log "$sys $n: unified_fdw full scan"
    local fdw=() peak=0 growth=0
    for i in $(seq 1 "$reps"); do
        read -r t p g < <(bench_scan "$s.purchase_orders" \
            "SELECT * FROM $s.purchase_orders LIMIT 1 \\g /dev/null" | tr '|' ' ')
        fdw+=("$t")
        [ "$p" -gt "$peak" ] && peak=$p
        [ "$g" -gt "$growth" ] && growth=$g
    done
    record "$sys" "$n" unified "$(min "${fdw[@]}")"
    record "$sys" "$n" peak_kb "$peak"
    record "$sys" "$n" growth_kb "$growth"
    record "$sys" "$n" unified_requests "$(upstream Requests)"
    record "$sys" "$n" unified_bytes "$(upstream Bytes)"
    [ "$(upstream Records)" = "$n" ] || { echo "unified_fdw read $(upstream Records) records" >&2; return 1; }
    local typed_t=()
    for i in $(seq 1 "$reps"); do
        typed_t+=("$(bench_scan "(SELECT $TYPED FROM $s.purchase_orders) t" \
            "SELECT $TYPED FROM $s.purchase_orders LIMIT 1 \\g /dev/null" | cut -d'|' -f1)")
    done
    record "$sys" "$n" typed_unified "$(min "${typed_t[@]}")"

    ufdw_log "$sys $n: local heap table"
    q "CREATE TABLE heap_$s AS SELECT * FROM $s.purchase_orders" >/dev/null
    q "VACUUM ANALYZE heap_$s"
    local heap=()
    for i in $(seq 1 "$reps"); do
        heap+=("$(bench_scan "heap_$s" "SELECT 1 FROM heap_$s LIMIT 1 \\g /dev/null" | cut -d'|' -f1)")
    done
    record "$sys" "$n" heap "$(min "${heap[@]}")"

    ufdw_log "$sys $n: PL/Python peer"
    local plpy=()
    for i in $(seq 1 "$reps"); do
        plpy+=("$(bench_scan "$("${sys}_plpy_call" "$PAGE_SIZE")" | cut -d'|' -f1)")
    done
    record "$sys" "$n" plpython "$(min "${plpy[@]}")"

    ufdw_log "$sys $n: COPY FROM PROGRAM curl | jq peer"
    local copy=() prog
    prog=$("${sys}_copy_program" "$PAGE_SIZE")
    for i in $(seq 1 "$reps"); do
        t=$(psql -X -q -At -v ON_ERROR_STOP=1 <<SQL
SELECT clock_timestamp() AS t0 \gset
CREATE TEMP TABLE copy_peer (LIKE heap_$s);
COPY copy_peer FROM PROGRAM \$prog\$$prog\$prog\$ WITH (FORMAT text, NULL '');
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT * FROM copy_peer \g /dev/null
SELECT extract(epoch FROM clock_timestamp() - :'t0')::numeric(12,4), count(*) FROM copy_peer;
SQL
)
        [ "${t#*|}" = "$n" ] || { echo "COPY peer loaded ${t#*|} rows, expected $n" >&2; return 1; }
        copy+=("${t%|*}")
    done
    record "$sys" "$n" copy_jq "$(min "${copy[@]}")"

    # the peers return the same rows (the PL/Python peer's numbers go
    # through float, as json.loads makes them, so sums are compared rounded)
    if [ "$n" = "${SIZES%% *}" ]; then
        local a b
        a=$(q "SELECT count(*), count(DISTINCT id), round(sum(total_amount), -3), count(raw) FROM heap_$s")
        b=$(q "SELECT count(*), count(DISTINCT id), round(sum(total_amount), -3), count(raw) FROM $("${sys}_plpy_call" "$PAGE_SIZE")")
        [ "$a" = "$b" ] || { echo "PL/Python peer differs: $b, unified_fdw: $a" >&2; return 1; }
    fi
}

# bench_latency SYSTEM N: selective queries, LIMIT 10, one-row overhead, on
# the sandbox of size N (still running).
bench_latency() {
    local sys=$1 n=$2 s="${1}_$2" name where ideal hdrs=() line
    while IFS= read -r line; do hdrs+=(-H "$line"); done < <("${sys}_curl_headers" | grep -v '^Prefer')
    local number
    number=$(q "SELECT number FROM heap_$s ORDER BY id OFFSET $((n / 2)) LIMIT 1")
    ufdw_log "$sys $n: selective queries"
    while IFS='|' read -r name where; do
        q "EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF)
           SELECT number, vendor_name, total_amount FROM $s.purchase_orders $where" >"$UFDW_WORK/explain"
        record "$sys" "$n" "sel_${name}_requests" "$(upstream Requests)"
        record "$sys" "$n" "sel_${name}_records" "$(upstream Records)"
        record "$sys" "$n" "sel_${name}_bytes" "$(upstream Bytes)"
        record "$sys" "$n" "sel_${name}_rows" \
            "$(q "SELECT count(*) FROM (SELECT 1 FROM heap_$s $where) r")"
        # the minimum: the ideal native request, paged like unified_fdw pages
        ideal=$("${sys}_ideal" "$name" "$number")
        local url="$("${sys}_collection_url")?$ideal" reqs=0 recs=0 bytes=0 body="$UFDW_WORK/ideal.json" size
        for _ in $(seq 1 100000); do
            size=$(curl -fsS -o "$body" -w '%{size_download}' "${hdrs[@]}" \
                -H "Prefer: odata.maxpagesize=$PAGE_SIZE" "$url")
            reqs=$((reqs + 1)); bytes=$((bytes + size))
            recs=$((recs + $(jq '.value | length' "$body")))
            url=$(jq -r '."@odata.nextLink" // empty' "$body")
            [ -n "$url" ] || break
        done
        record "$sys" "$n" "sel_${name}_min_requests" "$reqs"
        record "$sys" "$n" "sel_${name}_min_records" "$recs"
        record "$sys" "$n" "sel_${name}_min_bytes" "$bytes"
    done <<CASES
by_number|WHERE number = '$number'
status_open|WHERE status = 'open'
date_range|WHERE order_date >= date '2024-06-01' AND order_date < date '2024-07-01'
limit10|LIMIT 10
CASES

    ufdw_log "$sys $n: time to first row of LIMIT 10"
    local first
    first=$(psql -X -At -v ON_ERROR_STOP=1 <<SQL | sed -n 's/.*Foreign Scan.*actual time=\([0-9]*\.[0-9]*\)\.\..*/\1/p' | sort -g | head -1
SELECT * FROM $s.purchase_orders LIMIT 1 \g /dev/null
EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM $s.purchase_orders LIMIT 10;
EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM $s.purchase_orders LIMIT 10;
EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM $s.purchase_orders LIMIT 10;
SQL
)
    record "$sys" "$n" limit10_first_row_ms "$first"
    # the upstream's own latency for that first page (gzip, as unified_fdw asks)
    local first_url cfg="$UFDW_WORK/latency.cfg"
    first_url=$(head -1 "$UFDW_WORK/urls")
    for _ in $(seq 1 20); do printf 'url = "%s"\noutput = "/dev/null"\n' "$first_url"; done >"$cfg"
    record "$sys" "$n" limit10_upstream_ms "$(curl -fsS -K "$cfg" --compressed "${hdrs[@]}" \
        -H "Prefer: odata.maxpagesize=$PAGE_SIZE" -w '%{time_total}\n' | sort -g | head -1 |
        awk '{ printf "%.3f", $1 * 1000 }')"

    ufdw_log "$sys $n: one-row query overhead"
    "${sys}_server_sql" "${s}_one" 1 | psql -X -q -v ON_ERROR_STOP=1
    echo "SELECT * FROM ${s}_one.purchase_orders LIMIT 1;" >"$UFDW_WORK/one.sql"
    echo "SELECT 1;" >"$UFDW_WORK/select1.sql"
    pgbench -n -t 20 -f "$UFDW_WORK/one.sql" >/dev/null 2>&1    # warm the sandbox's cache
    local fdw_ms base_ms up_ms
    fdw_ms=$(pgbench -n -t 300 -f "$UFDW_WORK/one.sql" 2>/dev/null | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
    base_ms=$(pgbench -n -t 300 -f "$UFDW_WORK/select1.sql" 2>/dev/null | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
    q "EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF) SELECT * FROM ${s}_one.purchase_orders LIMIT 1" >"$UFDW_WORK/explain"
    record "$sys" "$n" one_row_requests "$(upstream Requests)"
    for _ in $(seq 1 300); do printf 'url = "%s"\noutput = "/dev/null"\n' "$("${sys}_collection_url")"; done >"$cfg"
    up_ms=$(curl -fsS -K "$cfg" --compressed "${hdrs[@]}" -H "Prefer: odata.maxpagesize=1" \
        -w '%{time_total}\n' | awk '{ s += $1 } END { printf "%.3f", s / NR * 1000 }')
    record "$sys" "$n" one_row_ms "$fdw_ms"
    record "$sys" "$n" select1_ms "$base_ms"
    record "$sys" "$n" one_row_upstream_ms "$up_ms"
}

# -- main ---------------------------------------------------------------------------

started=$(now)
bench_install_deps
ufdw_build
ufdw_workdir
RESULTS=$UFDW_WORK/results.tsv
: >"$RESULTS"
bench_build_parser
ufdw_start_cluster
psql -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION unified_fdw" -c "CREATE EXTENSION plpython3u"
for sys in $SYSTEMS; do "${sys}_plpy_sql" | psql -X -q -v ON_ERROR_STOP=1; done

# selective and latency figures are taken at 100k (or the largest size below)
LAT_SIZE=$(printf '%s\n' $SIZES | sort -n | awk '$1 <= 100000 { s = $1 } END { print s ? s : 0 }')
[ "$LAT_SIZE" = 0 ] && LAT_SIZE=${SIZES%% *}
for sys in $SYSTEMS; do
    for n in $SIZES; do
        bench_size "$sys" "$n"
        [ "$n" = "$LAT_SIZE" ] && bench_latency "$sys" "$n"
        kill "$SB_PID" 2>/dev/null || true
        wait "$SB_PID" 2>/dev/null || true
        q "DROP TABLE heap_${sys}_$n" >/dev/null
    done
done

record all 0 total_seconds "$(since "$started")"
docs=$UFDW_ORIGIN/docs
[ -n "${UFDW_BENCH_NO_DOCS:-}" ] && docs=""
python3 "$BENCH/report.py" "$RESULTS" "$COMMAND" "$PAGE_SIZE" ${docs:+"$docs"}

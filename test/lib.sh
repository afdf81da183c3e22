# test/lib.sh: shared by test/run, test/demo and the benchmarks.
#
# Installs what the build and tests need, builds and installs the
# extension, starts a throwaway PostgreSQL cluster on a free port and the
# sandbox upstream servers on loopback, and tears everything down again.
# Source it; every function is prefixed ufdw_.  Nothing here touches any
# address but loopback.

UFDW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UFDW_PG_MAJOR=${UFDW_PG_MAJOR:-15}
UFDW_PACKAGES="build-essential pkg-config postgresql-$UFDW_PG_MAJOR postgresql-server-dev-$UFDW_PG_MAJOR libcurl4-openssl-dev libjansson-dev libipc-run-perl python3 curl postgresql-$UFDW_PG_MAJOR-cron clang-14 libclang-rt-14-dev llvm-14 valgrind"
# the drivers stage of test/run: pgjdbc with a JDK to compile its probe, psqlODBC with pyodbc
UFDW_DRIVER_PACKAGES="default-jdk-headless libpostgresql-jdbc-java odbc-postgresql unixodbc python3-pyodbc"
UFDW_WORK=""             # temporary directory of this run
UFDW_ORIGIN=${UFDW_ORIGIN:-$UFDW_ROOT}  # the user's checkout (UFDW_ROOT may be its staged copy)
# the staged copy is removed by the process that ufdw_stage started, not by
# the scripts it runs in turn (test/run runs test/fuzz/run and test/valgrind)
[ -n "${UFDW_STAGED:-}" ] && [ -z "${UFDW_STAGE_OWNER:-}" ] && export UFDW_STAGE_OWNER=$$
UFDW_PIDS=()             # sandbox processes to stop
UFDW_PGBIN=""
# PG_CONFIG selects the PostgreSQL installation (a relocated copy works too)
export PG_CONFIG=${PG_CONFIG:-pg_config}
export PGHOST PGPORT PGUSER PGDATABASE

ufdw_log() { printf '==> %s\n' "$*" >&2; }

# ufdw_stage "$0" "$@": first thing every entry script does.  Copies the
# checkout (without .git and build output) into a new directory under /tmp,
# readable by everyone on purpose, and re-runs the script from there, with the
# working directory set to the copy.  The server and the other helpers run as
# the cluster's owner (postgres when we are root), which cannot enter a home
# directory of mode 700; and make cannot build in a path containing a space.
# Nothing in the user's checkout changes mode.  UFDW_ORIGIN names the checkout
# (for results meant to land there: benchmark docs, fuzz inputs); the copy is
# removed when the re-run script ends (kept with UFDW_KEEP=1).
# UFDW_STAGE=no runs in place (then ufdw_check_owner_access tells whether the
# owner can read the checkout).
ufdw_stage() {
    local script=$1 rel stage
    shift
    if [ -n "${UFDW_STAGED:-}" ]; then
        cd "$UFDW_ROOT"
        return 0
    fi
    export UFDW_ORIGIN=$UFDW_ROOT
    [ "${UFDW_STAGE:-}" = no ] && return 0
    rel=$(realpath --relative-to="$UFDW_ROOT" "$(realpath "$script")")
    stage=$(mktemp -d /tmp/unified_fdw-src.XXXXXX)
    tar -C "$UFDW_ROOT" --exclude=./.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
        --exclude=./results --exclude=./tmp_check --exclude=./log -cf - . | tar -C "$stage" -xf -
    chmod -R u+rwX,go+rX,go-w "$stage"
    cd "$stage"
    UFDW_STAGED=$stage exec bash "$stage/$rel" "$@"
}

# Runs a command as root (directly, or through sudo).
ufdw_as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Runs a command as the cluster's owner: postgres when we are root
# (initdb refuses root), else ourselves.
ufdw_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ufdw_install_deps() {
    local missing=()
    for p in $UFDW_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        ufdw_log "installing Debian packages: ${missing[*]}"
        ufdw_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        ufdw_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    UFDW_PGBIN=$("$PG_CONFIG" --bindir)
    # Debian's pg_config lives in /usr/bin; the server binaries do not
    [ -x "$UFDW_PGBIN/initdb" ] || UFDW_PGBIN=/usr/lib/postgresql/$UFDW_PG_MAJOR/bin
    export PATH="$UFDW_PGBIN:$PATH"
}

ufdw_build() {
    ufdw_log "building and installing unified_fdw"
    make -C "$UFDW_ROOT" -s clean >/dev/null
    make -C "$UFDW_ROOT" -s >/dev/null
    if [ -w "$("$PG_CONFIG" --pkglibdir)" ]; then
        make -C "$UFDW_ROOT" -s install >/dev/null
    else
        ufdw_as_root make -C "$UFDW_ROOT" -s install PG_CONFIG="$PG_CONFIG" >/dev/null
    fi
    # the backend must never bind to PostgreSQL's json_object (STYLE.md)
    if nm -u "$UFDW_ROOT/unified_fdw.so" | grep -qw json_object; then
        echo "unified_fdw.so references json_object" >&2
        return 1
    fi
}

# A temporary directory owned by the cluster's owner; removed by ufdw_cleanup.
ufdw_workdir() {
    UFDW_WORK=$(mktemp -d /tmp/unified_fdw.XXXXXX)
    chmod 755 "$UFDW_WORK"
    [ "$(id -u)" -eq 0 ] && chown postgres "$UFDW_WORK"
    return 0
}

# ufdw_check_owner_access: fails, saying what and why, unless the cluster's
# owner can read the whole tree the suites use: the server reads connector
# fixtures, and the TAP tests (prove, the sandboxes they start, PostgreSQL's
# test modules) run as the owner.
ufdw_check_owner_access() {
    local owner bad
    owner=$(ufdw_as_owner id -un)
    bad=$(ufdw_as_owner find "$UFDW_ROOT" -path "$UFDW_ROOT/.git" -prune -o \
        ! -readable -print -quit 2>&1) && [ -z "$bad" ] && return 0
    {
        echo "the cluster's OS user \"$owner\" cannot read the checkout the suites run from:"
        echo "  ${bad:-$UFDW_ROOT}"
        echo "The server reads connector files from it and the TAP tests run from it as \"$owner\"."
        echo "Run without UFDW_STAGE=no (the scripts then work from a readable copy under /tmp),"
        echo "or place the checkout where \"$owner\" can read it."
    } >&2
    return 1
}

ufdw_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ufdw_init_cluster [INITDB ARGS...]: a new cluster in $UFDW_WORK/data,
# with pg_cron preloaded for database postgres (scheduled syncs), its jobs
# connecting through the cluster's socket directory; UFDW_PG_CRON=no leaves
# it out (test/valgrind).
ufdw_init_cluster() {
    ufdw_as_owner "$UFDW_PGBIN/initdb" -D "$UFDW_WORK/data" -A trust -U postgres "$@" \
        >"$UFDW_WORK/initdb.log" 2>&1 || return 1
    if [ "${UFDW_PG_CRON:-yes}" != no ]; then
        printf "%s\n" "shared_preload_libraries = 'pg_cron'" "cron.database_name = 'postgres'" \
            "cron.host = '$UFDW_WORK'" | ufdw_as_owner tee -a "$UFDW_WORK/data/postgresql.conf" >/dev/null
    fi
}

# ufdw_start_cluster [LAUNCHER...]: starts a cluster in $UFDW_WORK/data
# listening on a Unix socket in $UFDW_WORK only.  With a LAUNCHER (test/valgrind
# passes valgrind and its options) the postmaster runs as
# "LAUNCHER postgres ..." in the background instead of through pg_ctl, and is
# waited for (up to UFDW_START_WAIT seconds, default 300) with pg_isready;
# pg_ctl stop still works, as the launcher keeps the postmaster's pid, and
# ufdw_cleanup also signals the launcher.
ufdw_start_cluster() {
    PGPORT=$(ufdw_free_port)
    PGHOST=$UFDW_WORK
    PGUSER=postgres
    PGDATABASE=postgres
    ufdw_log "starting PostgreSQL $UFDW_PG_MAJOR on port $PGPORT${1:+ under $1}"
    ufdw_init_cluster
    if [ $# -eq 0 ]; then
        ufdw_as_owner "$UFDW_PGBIN/pg_ctl" -D "$UFDW_WORK/data" -w -l "$UFDW_WORK/postgres.log" \
            -o "-p $PGPORT -k $UFDW_WORK -c listen_addresses='' ${UFDW_PG_OPTS:-}" start >/dev/null
        return
    fi
    # shellcheck disable=SC2086 # UFDW_PG_OPTS holds plain words
    ufdw_as_owner "$@" "$UFDW_PGBIN/postgres" -D "$UFDW_WORK/data" -p "$PGPORT" \
        -k "$UFDW_WORK" -c listen_addresses= ${UFDW_PG_OPTS:-} \
        >>"$UFDW_WORK/postgres.log" 2>&1 </dev/null &
    UFDW_PIDS+=($!)    # stops a postmaster that never wrote postmaster.pid
    for _ in $(seq 1 $((${UFDW_START_WAIT:-300} * 2))); do
        "$UFDW_PGBIN/pg_isready" -q -h "$PGHOST" -p "$PGPORT" && return 0
        kill -0 $! 2>/dev/null || break
        sleep 0.5
    done
    echo "the postmaster did not start; its log:" >&2
    tail -50 "$UFDW_WORK/postgres.log" >&2
    return 1
}

# ufdw_start_sandbox NAME PORT [ARGS...]: starts test/sandbox/NAME.py on
# 127.0.0.1:PORT and waits until it answers.
ufdw_start_sandbox() {
    local name=$1 port=$2
    shift 2
    python3 "$UFDW_ROOT/test/sandbox/$name.py" --host 127.0.0.1 --port "$port" "$@" \
        >"$UFDW_WORK/sandbox-$name.log" 2>&1 &
    UFDW_PIDS+=($!)
    for _ in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:$port/_sandbox/health" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    echo "sandbox $name did not start; its log:" >&2
    cat "$UFDW_WORK/sandbox-$name.log" >&2
    return 1
}

# Starts the Business Central, SAP, NetSuite and Finance & Operations
# sandboxes (60 purchase orders each) on free loopback ports and exports what
# the regression suites read: UFDW_BC_URL, UFDW_SAP_URL, UFDW_NETSUITE_URL,
# UFDW_FNO_URL and UFDW_FIXTURES.
ufdw_start_sandboxes() {
    UFDW_BC_URL="http://127.0.0.1:$(ufdw_free_port)"
    UFDW_SAP_URL="http://127.0.0.1:$(ufdw_free_port)"
    UFDW_NETSUITE_URL="http://127.0.0.1:$(ufdw_free_port)"
    UFDW_FNO_URL="http://127.0.0.1:$(ufdw_free_port)"
    UFDW_FIXTURES="$UFDW_ROOT/test/fixtures/connectors"
    export UFDW_BC_URL UFDW_SAP_URL UFDW_NETSUITE_URL UFDW_FNO_URL UFDW_FIXTURES
    ufdw_start_sandbox bc "${UFDW_BC_URL##*:}" --orders 60 &&
        ufdw_start_sandbox sap "${UFDW_SAP_URL##*:}" --orders 60 &&
        ufdw_start_sandbox netsuite "${UFDW_NETSUITE_URL##*:}" --orders 60 &&
        ufdw_start_sandbox fno "${UFDW_FNO_URL##*:}" --orders 60
}

# ufdw_bc_server_sql URL PAGE_SIZE TENANT: SQL for server bc on the BC
# sandbox at URL (OAuth client credentials), its user mapping, and schema bc
# with every table imported.
ufdw_bc_server_sql() {
    cat <<SQL
CREATE SERVER bc FOREIGN DATA WRAPPER unified_fdw OPTIONS (
  system 'dynamics365_bc', instance_url '$1/v2.0/$3/production',
  company_id 'bb6d48b6-c7b2-4a38-9a93-ad5506407f12',
  token_url '$1/$3/oauth2/v2.0/token', allow_insecure 'true', page_size '$2');
CREATE USER MAPPING FOR CURRENT_USER SERVER bc OPTIONS (
  client_id 'sandbox-client-id', client_secret 'sandbox-client-secret');
CREATE SCHEMA bc;
IMPORT FOREIGN SCHEMA unified FROM SERVER bc INTO bc;
SQL
}

ufdw_cleanup() {
    local pid
    for pid in "${UFDW_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    UFDW_PIDS=()
    if [ -n "$UFDW_WORK" ] && [ -d "$UFDW_WORK/data" ]; then
        ufdw_as_owner "$UFDW_PGBIN/pg_ctl" -D "$UFDW_WORK/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    if [ -n "$UFDW_WORK" ] && [ -z "${UFDW_KEEP:-}" ]; then
        rm -rf "$UFDW_WORK"
    fi
    if [ "${UFDW_STAGE_OWNER:-}" = "$$" ]; then
        cd /
        if [ -z "${UFDW_KEEP:-}" ]; then rm -rf "$UFDW_STAGED"
        else ufdw_log "kept: the staged checkout $UFDW_STAGED${UFDW_WORK:+ and $UFDW_WORK}"; fi
        UFDW_STAGE_OWNER=""    # once, should the trap run again
    fi
}

# test/bench/system_bc.sh: Business Central in test/bench/throughput.sh.
#
# Every system the benchmark covers provides these functions (prefix = the
# system's short name, listed in throughput.sh's UFDW_BENCH_SYSTEMS):
#
#   bc_prepare           choose the sandbox's address: set SB_URL
#   bc_start N PATH...   start the sandbox with N purchase orders, the pages
#                        of the collection PATHs (path?query) pre-rendered;
#                        set SB_PID
#   bc_server_sql S P    SQL creating server S (page size P), its user
#                        mapping, schema S and the imported tables
#   bc_collection_url    print the URL of the purchase orders collection
#   bc_token             print a bearer token for curl
#   bc_curl_headers      print curl's -H arguments, one per line
#   bc_page_urls PATH    print the URLs of the pages of PATH, in order
#                        (from the sandbox's request log of the warm-up)
#   bc_plpy_call P       SQL calling the PL/Python peer (page size P)
#   bc_copy_program P    the shell command COPY ... FROM PROGRAM runs
#   bc_ideal Q           print the native query string that is the minimum
#                        for selective case Q (see throughput.sh)
#
# Source it after test/lib.sh; it uses ufdw_* and the variables it sets.

BC_COMPANY=bb6d48b6-c7b2-4a38-9a93-ad5506407f12
BC_TENANT=bench
BC_CLIENT_ID=sandbox-client-id
BC_CLIENT_SECRET=sandbox-client-secret
BC_SCOPE=https://api.businesscentral.dynamics.com/.default
BC_PATH="/v2.0/$BC_TENANT/production/api/v2.0/companies($BC_COMPANY)/purchaseOrders"

bc_prepare() { SB_URL="http://127.0.0.1:$(ufdw_free_port)"; }

bc_start() {
    local n=$1 args=() p
    shift
    for p in "$@"; do args+=(--prerender "$p"); done
    # the cache holds every page (plain; gzip on the side): ~1.5 kB per order
    ufdw_start_sandbox bc "${SB_URL##*:}" --orders "$n" "${args[@]}" \
        --prerender-page-size "$PAGE_SIZE" --response-cache-mb $((n / 400 + 64))
    SB_PID=${UFDW_PIDS[-1]}
    bench_wait_prerender
}

bc_server_sql() {
    local s=$1 page=$2
    cat <<SQL
CREATE SERVER $s FOREIGN DATA WRAPPER unified_fdw OPTIONS (
  system 'dynamics365_bc', instance_url '$SB_URL/v2.0/$BC_TENANT/production',
  company_id '$BC_COMPANY', token_url '$SB_URL/$BC_TENANT/oauth2/v2.0/token',
  allow_insecure 'true', page_size '$page');
CREATE USER MAPPING FOR CURRENT_USER SERVER $s OPTIONS (
  client_id '$BC_CLIENT_ID', client_secret '$BC_CLIENT_SECRET');
CREATE SCHEMA $s;
IMPORT FOREIGN SCHEMA unified LIMIT TO (purchase_orders) FROM SERVER $s INTO $s;
SQL
}

bc_collection_url() { echo "$SB_URL$BC_PATH"; }

bc_token() {
    curl -fsS "$SB_URL/$BC_TENANT/oauth2/v2.0/token" \
        --data-urlencode grant_type=client_credentials --data-urlencode "client_id=$BC_CLIENT_ID" \
        --data-urlencode "client_secret=$BC_CLIENT_SECRET" --data-urlencode "scope=$BC_SCOPE" |
        jq -r .access_token
}

bc_curl_headers() {
    printf '%s\n' "Authorization: Bearer $(bc_token)" "Accept: application/json" \
        "Prefer: odata.maxpagesize=$PAGE_SIZE"
}

bc_page_urls() {
    local path=${1%%\?*} query=""
    [[ $1 == *\?* ]] && query=${1#*\?}
    # the first page, then the pages whose query is the first's plus a skip token
    curl -fsS "$SB_URL/_sandbox/requests?limit=20000" |
        jq -r --arg p "$path" --arg q "$query" '.requests[]
               | select(.method == "GET" and .path == $p and (.query == $q
                        or (.query | startswith((if $q == "" then "" else $q + "&" end)
                                                       + "$skiptoken="))))
               | .path + (if .query != "" then "?" + .query else "" end)' |
        awk -v base="$SB_URL" '!seen[$0]++ { print base $0 }'
}

# The PL/Python peer: what a PostgreSQL user would write with urllib and
# json (plain json.loads, as users do), mapping to the unified model.
bc_plpy_sql() {
    cat <<'SQL'
CREATE FUNCTION bench_bc_purchase_orders(collection_url text, token_url text,
    client_id text, client_secret text, company text, page_size int)
RETURNS TABLE (id text, number text, status text, vendor_id text, vendor_name text,
    order_date date, currency text, total_amount numeric, company_id text,
    created_at timestamptz, updated_at timestamptz, raw jsonb)
LANGUAGE plpython3u AS $py$
import json
import urllib.parse
import urllib.request

form = urllib.parse.urlencode({
    "grant_type": "client_credentials", "client_id": client_id,
    "client_secret": client_secret,
    "scope": "https://api.businesscentral.dynamics.com/.default"}).encode()
with urllib.request.urlopen(urllib.request.Request(token_url, data=form), timeout=60) as r:
    token = json.load(r)["access_token"]
headers = {"Authorization": "Bearer " + token, "Accept": "application/json",
           "Prefer": "odata.maxpagesize=%d" % page_size}
status_map = {"Draft": "draft", "In Review": "pending_approval", "Open": "open"}
blank = ("", "0001-01-01", "0001-01-01T00:00:00Z", "00000000-0000-0000-0000-000000000000")

def v(x):
    return None if x in blank else x

url = collection_url
while url:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as r:
        page = json.load(r)
    for rec in page["value"]:
        yield (rec["id"], v(rec["number"]), status_map.get(rec["status"], rec["status"]),
               v(rec["vendorId"]), v(rec["vendorName"]), v(rec["orderDate"]),
               v(rec["currencyCode"]), rec["totalAmountIncludingTax"], company, None,
               v(rec["lastModifiedDateTime"]), json.dumps(rec))
    url = page.get("@odata.nextLink")
$py$;
SQL
}

bc_plpy_call() {
    printf "bench_bc_purchase_orders('%s', '%s', '%s', '%s', '%s', %d)" \
        "$SB_URL$BC_PATH" "$SB_URL/$BC_TENANT/oauth2/v2.0/token" "$BC_CLIENT_ID" \
        "$BC_CLIENT_SECRET" "$BC_COMPANY" "$1"
}

bc_copy_program() {
    printf "bash %s '%s' '%s' '%s' '%s' '%s' %d" "$UFDW_ROOT/test/bench/bc_jq_export.sh" \
        "$SB_URL$BC_PATH" "$SB_URL/$BC_TENANT/oauth2/v2.0/token" "$BC_CLIENT_ID" \
        "$BC_CLIENT_SECRET" "$BC_COMPANY" "$1"
}

# The native query that would answer a selective case with the fewest
# requests, records and bytes (throughput.sh names the cases).
bc_ideal() {
    case $1 in
        by_number) echo "\$filter=number%20eq%20'$2'&\$select=number,vendorName,totalAmountIncludingTax" ;;
        status_open) echo "\$filter=status%20eq%20'Open'&\$select=number,vendorName,totalAmountIncludingTax,status" ;;
        date_range) echo "\$filter=orderDate%20ge%202024-06-01%20and%20orderDate%20lt%202024-07-01&\$select=number,vendorName,totalAmountIncludingTax,orderDate" ;;
        limit10) echo "\$top=10&\$select=number,vendorName,totalAmountIncludingTax" ;;
    esac
}

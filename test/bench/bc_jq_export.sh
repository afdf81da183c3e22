#!/usr/bin/env bash
# The COPY peer of test/bench/throughput.sh: what a PostgreSQL user would
# run as COPY ... FROM PROGRAM: curl + jq paging through Business Central's
# purchaseOrders, writing the unified purchase_orders columns as COPY text
# (tab-separated, empty = NULL, raw as JSON) on stdout.
#
#   bc_jq_export.sh COLLECTION_URL TOKEN_URL CLIENT_ID CLIENT_SECRET COMPANY PAGE_SIZE
set -euo pipefail
url=$1 token_url=$2 client_id=$3 client_secret=$4 company=$5 page_size=$6
page=$(mktemp)
trap 'rm -f "$page"' EXIT

token=$(curl -fsS "$token_url" --data-urlencode grant_type=client_credentials \
    --data-urlencode "client_id=$client_id" --data-urlencode "client_secret=$client_secret" \
    --data-urlencode scope=https://api.businesscentral.dynamics.com/.default | jq -r .access_token)

for _ in $(seq 1 100000); do       # bounded: one iteration per page
    curl -fsS -o "$page" -H "Authorization: Bearer $token" -H "Accept: application/json" \
        -H "Prefer: odata.maxpagesize=$page_size" "$url"
    jq -r --arg company "$company" '
        def v: if . == "" or . == "0001-01-01" or . == "0001-01-01T00:00:00Z"
                  or . == "00000000-0000-0000-0000-000000000000" then null else . end;
        .value[] | [.id, (.number | v),
                    ({"Draft": "draft", "In Review": "pending_approval", "Open": "open"}[.status] // .status),
                    (.vendorId | v), (.vendorName | v), (.orderDate | v), (.currencyCode | v),
                    .totalAmountIncludingTax, $company, null, (.lastModifiedDateTime | v),
                    tojson] | @tsv' "$page"
    url=$(jq -r '."@odata.nextLink" // empty' "$page")
    [ -n "$url" ] || break
done

--
-- Scans of the sandbox Business Central (test/run starts it on a free
-- port, in UFDW_BC_URL, with 60 generated purchase orders).
--
\getenv bc UFDW_BC_URL
SET unified_regress.bc = :'bc';
\set instance_url :bc '/v2.0/regress-tenant/production'
\set token_url :bc '/regress-tenant/oauth2/v2.0/token'
CREATE SERVER bc FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url :'instance_url',
           company_id 'bb6d48b6-c7b2-4a38-9a93-ad5506407f12',
           token_url :'token_url', allow_insecure 'true', page_size '7');
CREATE USER MAPPING FOR CURRENT_USER SERVER bc
  OPTIONS (client_id 'sandbox-client-id', client_secret 'sandbox-client-secret');
CREATE SCHEMA bc;
IMPORT FOREIGN SCHEMA unified FROM SERVER bc INTO bc;
SET TimeZone = 'UTC';

-- explain_upstream(): EXPLAIN ANALYZE VERBOSE with the sandbox's URL shown as <bc>
\set ECHO none
\i sql/upstream_helpers.psql
\set ECHO all

SELECT count(*) FROM bc.purchase_orders;
SELECT status, count(*) FROM bc.purchase_orders GROUP BY status ORDER BY status;
SELECT number, status, vendor_name, order_date, currency, total_amount, created_at, updated_at
  FROM bc.purchase_orders ORDER BY number LIMIT 8;
SELECT DISTINCT company_id FROM bc.purchase_orders;

-- exact decimals, including zero, negative and huge amounts
SELECT min(total_amount), max(total_amount), sum(total_amount), max(scale(total_amount))
  FROM bc.purchase_orders;
-- leap day and month ends arrive as they are
SELECT order_date, count(*) FROM bc.purchase_orders
 WHERE order_date IN ('2024-02-29', '2023-12-31', '2024-01-31', '2024-04-30')
 GROUP BY order_date ORDER BY order_date;
-- blanks ("", 0001-01-01, the zero GUID) are NULL; nothing else is
SELECT count(*) FILTER (WHERE currency IS NULL) AS no_currency,
       count(*) FILTER (WHERE vendor_id IS NULL) AS no_vendor,
       count(*) FILTER (WHERE order_date IS NULL) AS no_date,
       count(*) FILTER (WHERE currency = '') AS empty_currency
  FROM bc.purchase_orders;

-- awkward names: quotes, &, %, non-ASCII, names differing only by case
SELECT number, name, status, currency FROM bc.vendors ORDER BY number;
SELECT type, count(*), min(unit_cost), max(unit_cost) FROM bc.items GROUP BY type ORDER BY type;

-- lines and a join between two upstream tables
SELECT count(*), count(item_id), sum(quantity), sum(amount), min(line_number), max(line_number)
  FROM bc.purchase_order_lines;
SELECT o.number, count(*) AS lines, sum(l.amount) AS amount
  FROM bc.purchase_orders o JOIN bc.purchase_order_lines l ON l.purchase_order_id = o.id
 GROUP BY o.number ORDER BY o.number LIMIT 5;
-- Business Central serves lines only per document: they come through their
-- orders (purchaseOrders?$expand=purchaseOrderLines), page_size / 4 orders a
-- page; with page_size 40, ten orders a page, six pages for the 60 orders
ALTER FOREIGN TABLE bc.purchase_order_lines OPTIONS (ADD page_size '40');
SELECT explain_upstream('SELECT id, quantity FROM bc.purchase_order_lines');
SELECT count(*), count(DISTINCT purchase_order_id), count(DISTINCT id) FROM bc.purchase_order_lines;
ALTER FOREIGN TABLE bc.purchase_order_lines OPTIONS (DROP page_size);

-- raw holds the native record
SELECT raw->>'number' = number AS same_number, raw ? '@odata.etag' AS has_etag,
       jsonb_typeof(raw->'totalAmountIncludingTax') AS amount_type
  FROM bc.purchase_orders ORDER BY number LIMIT 2;

-- what was sent: only the needed fields, page after page
SELECT explain_upstream($$SELECT number, total_amount FROM bc.purchase_orders WHERE status = 'open'$$);
-- a LIMIT stops fetching pages
SELECT explain_upstream('SELECT number FROM bc.purchase_orders LIMIT 3');

-- a cursor closed early, a rescan, a subtransaction that fails mid-scan
BEGIN;
DECLARE c CURSOR FOR SELECT number FROM bc.purchase_orders ORDER BY number;
FETCH 2 FROM c;
CLOSE c;
COMMIT;
SELECT count(*) FROM bc.items i1 WHERE EXISTS
  (SELECT 1 FROM bc.items i2 WHERE i2.number = i1.number AND i2.type = i1.type);
BEGIN;
SAVEPOINT s;
SELECT (total_amount / 0) FROM bc.purchase_orders;
ROLLBACK TO SAVEPOINT s;
SELECT count(*) FROM bc.vendors;
COMMIT;

--
-- Scans of the sandbox SAP S/4HANA (test/run starts it on a free port, in
-- UFDW_SAP_URL, with 60 generated purchase orders).
--
\getenv sap UFDW_SAP_URL
SET unified_regress.sap = :'sap';
CREATE SERVER sap FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'sap_s4hana', instance_url :'sap', sap_client '100',
           allow_insecure 'true', page_size '7');
CREATE USER MAPPING FOR CURRENT_USER SERVER sap
  OPTIONS (username 'sandbox-user', password 'sandbox-password');
CREATE SCHEMA sap;
IMPORT FOREIGN SCHEMA unified FROM SERVER sap INTO sap;
SET TimeZone = 'UTC';

-- SAP has no items table in v1: it is not imported
SELECT foreign_table_name FROM information_schema.foreign_tables
 WHERE foreign_table_schema = 'sap' ORDER BY 1;
SELECT system, name, auth_methods, required_options, tables
  FROM unified.systems WHERE system = 'sap_s4hana';

-- explain_upstream(): EXPLAIN ANALYZE VERBOSE with the sandbox's URL shown as <sap>
\set ECHO none
\i sql/upstream_helpers.psql
\set ECHO all

SELECT count(*) FROM sap.purchase_orders;
-- PurchasingProcessingStatus: 01 draft, 02 open, 03 pending_approval, 05 open, 08 rejected
SELECT status, raw->>'PurchasingProcessingStatus' AS native, count(*)
  FROM sap.purchase_orders GROUP BY 1, 2 ORDER BY 1, 2;
SELECT id, number, status, vendor_id, vendor_name, order_date, currency, total_amount,
       company_id, created_at, updated_at
  FROM sap.purchase_orders ORDER BY number LIMIT 12;
-- /Date(ms)/ dates: leap day and month ends; CreationDate is midnight UTC
SELECT order_date, count(*) FROM sap.purchase_orders
 WHERE order_date IN ('2024-02-29', '2023-12-31', '2024-01-31', '2024-04-30')
 GROUP BY order_date ORDER BY order_date;
SELECT count(*) FILTER (WHERE created_at::time <> '00:00') AS created_not_midnight,
       count(*) FILTER (WHERE updated_at IS NULL) AS never_changed,
       count(*) FILTER (WHERE updated_at::text LIKE '%.%') AS updated_with_ms,
       count(*) FILTER (WHERE total_amount IS NOT NULL) AS with_total
  FROM sap.purchase_orders;
-- instants keep their milliseconds, whatever the session time zone
SET TimeZone = 'America/New_York';
SELECT number, updated_at FROM sap.purchase_orders WHERE number IN ('4500000011', '4500000015')
 ORDER BY number;
SET TimeZone = 'UTC';
-- an empty AddressName is NULL, not ''
SELECT number, vendor_id, vendor_name IS NULL AS no_name, raw->>'AddressName' AS native
  FROM sap.purchase_orders WHERE number = '4500000024';

-- suppliers: blocked when posting or purchasing is blocked; a payment block alone is not
SELECT id, number, name, email, phone, currency, status, updated_at,
       raw->'PaymentIsBlockedForSupplier' AS payment_blocked
  FROM sap.vendors ORDER BY id;

-- items: id PurchaseOrder/PurchaseOrderItem, line_number from the item number,
-- decimals from strings, no amount or received quantity in the V2 item
SELECT id, purchase_order_id, line_number, item_id, description, quantity, unit_price, amount,
       unit_of_measure, received_quantity
  FROM sap.purchase_order_lines WHERE purchase_order_id IN ('4500000008', '4500000009',
       '4500000017', '4500000020', '4500000021')
 ORDER BY purchase_order_id, line_number;
SELECT count(*), count(DISTINCT id), count(item_id), sum(quantity), min(line_number),
       max(line_number), max(scale(quantity)), max(scale(unit_price))
  FROM sap.purchase_order_lines;
SELECT o.number, count(*) AS lines, sum(l.quantity * l.unit_price) AS net
  FROM sap.purchase_orders o JOIN sap.purchase_order_lines l ON l.purchase_order_id = o.id
 GROUP BY o.number ORDER BY o.number LIMIT 5;

-- raw holds the native record: __metadata, strings for decimals, /Date()/ text
SELECT raw->'__metadata'->>'type' AS type, raw->>'CreationDate' AS creation_date,
       raw->>'NetPaymentDays' AS net_payment_days, jsonb_typeof(raw->'ExchangeRateIsFixed') AS flag,
       raw ? 'to_PurchaseOrderItem' AS has_navigation
  FROM sap.purchase_orders ORDER BY number LIMIT 1;

-- what was sent: $select of the needed fields, $top/$skip pages, sap-client, JSON asked for
SELECT explain_upstream($$SELECT number, vendor_name FROM sap.purchase_orders WHERE status = 'open'$$);
SELECT explain_upstream('SELECT id, line_number FROM sap.purchase_order_lines LIMIT 10');
SELECT explain_upstream('SELECT count(*) FROM sap.vendors');

-- Conversion exits: PurchaseOrder and Supplier (ALPHA, CHAR10) and PurchaseOrderItem
-- (NUMC5) are compared, matched and sorted by SAP in their internal zero-padded form
-- (supplier 17000 is 0000017000 inside, so startswith(Supplier,'17') misses it).
-- A prefix is sent as substringof (a superset, re-checked here); ranges and text
-- order stay local, so the LIMIT is not sent either ($top stays the page size 7)
SELECT explain_upstream($$SELECT number, vendor_id, status FROM sap.purchase_orders
  WHERE vendor_id LIKE '17%' ORDER BY status NULLS LAST, id DESC LIMIT 1 OFFSET 3$$);
SELECT number, vendor_id, status FROM sap.purchase_orders
 WHERE vendor_id LIKE '17%' ORDER BY status NULLS LAST, id DESC LIMIT 1 OFFSET 3;
SET unified_fdw.pushdown = off;
SELECT number, vendor_id, status FROM sap.purchase_orders
 WHERE vendor_id LIKE '17%' ORDER BY status NULLS LAST, id DESC LIMIT 1 OFFSET 3;
RESET unified_fdw.pushdown;
SELECT number, vendor_id FROM sap.purchase_orders
 WHERE number LIKE '170%' OR vendor_id LIKE '170%' ORDER BY number;
SELECT explain_upstream($$SELECT number FROM sap.purchase_orders WHERE number LIKE '%7A'$$);
SELECT explain_upstream($$SELECT id, name FROM sap.vendors WHERE number LIKE '%17%' AND id >= '17' ORDER BY id$$);
SELECT id, name FROM sap.vendors WHERE number LIKE '%17%' AND id >= '17' ORDER BY id;
-- equality and IN are sent as they are: SAP converts the literal too ('9' finds
-- 0000000009); a value longer than the field can never match and is left out
SELECT explain_upstream($$SELECT id FROM sap.vendors WHERE id IN ('17000', '9', 'SUP-17', '12345678901')$$);
SELECT id FROM sap.vendors WHERE id IN ('17000', '9', 'SUP-17', '12345678901') ORDER BY id;
SELECT explain_upstream($$SELECT id FROM sap.vendors WHERE id = '0000017000'$$);
-- the length counts characters: ten letters Æ fit CHAR10, eleven do not
SELECT explain_upstream($$SELECT id FROM sap.vendors WHERE id IN ('17A', 'ÆÆÆÆÆÆÆÆÆÆ', 'ÆÆÆÆÆÆÆÆÆÆÆ')$$);
-- line_number (NUMC5 read as an integer): padded literals, exact, so a LIMIT goes
-- too, and so does ORDER BY line_number (NUMC sorts like the number)
SELECT explain_upstream($$SELECT id, line_number FROM sap.purchase_order_lines
  WHERE line_number BETWEEN 9 AND 10 LIMIT 3$$);
SELECT explain_upstream($$SELECT line_number FROM sap.purchase_order_lines
  WHERE line_number > 50 ORDER BY line_number DESC LIMIT 3$$);
SELECT id, line_number FROM sap.purchase_order_lines
 WHERE line_number BETWEEN 9 AND 10 AND purchase_order_id IN ('1700', 'PO-1700') ORDER BY id;
SELECT explain_upstream($$SELECT id FROM sap.purchase_order_lines
  WHERE line_number IN (9, 100, 100000, -1) AND line_number <> 100$$);
SELECT id, line_number FROM sap.purchase_order_lines
 WHERE line_number > 50 ORDER BY line_number, id;

-- items is not provided: importing it or reading a hand-made table is a clear error
IMPORT FOREIGN SCHEMA unified LIMIT TO (items) FROM SERVER sap INTO sap;
CREATE FOREIGN TABLE sap.items (id text, name text) SERVER sap OPTIONS ("table" 'items');
SELECT * FROM sap.items;
DROP FOREIGN TABLE sap.items;

-- the other ways in: the APIKey header, and OAuth 2.0 client credentials with the
-- default token endpoint (<instance_url>/sap/bc/sec/oauth2/token)
CREATE SERVER sap_key FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'sap_s4hana', instance_url :'sap', allow_insecure 'true');
CREATE USER MAPPING FOR CURRENT_USER SERVER sap_key OPTIONS (api_key 'sandbox-api-key');
CREATE FOREIGN TABLE sap_key_vendors (id text, name text, status text)
  SERVER sap_key OPTIONS ("table" 'vendors');
SELECT count(*), count(*) FILTER (WHERE status = 'blocked') AS blocked FROM sap_key_vendors;
SELECT explain_upstream('SELECT id FROM sap_key_vendors');
CREATE SERVER sap_oauth FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'sap_s4hana', instance_url :'sap', sap_client '100', allow_insecure 'true',
           page_size '100000');
CREATE USER MAPPING FOR CURRENT_USER SERVER sap_oauth
  OPTIONS (client_id 'sandbox-client-id', client_secret 'sandbox-client-secret');
CREATE FOREIGN TABLE sap_oauth_lines (id text, quantity numeric)
  SERVER sap_oauth OPTIONS ("table" 'purchase_order_lines');
SELECT count(*), sum(quantity) FROM sap_oauth_lines;
-- page_size is capped at SAP's 5000
SELECT explain_upstream('SELECT id FROM sap_oauth_lines');

DROP SERVER sap_key, sap_oauth CASCADE;

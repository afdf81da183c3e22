--
-- OData V2 values at the edges, served through the sandbox SAP's fault switch
-- (a 200 with a hand-written page): /Date()/ far in the past and future
-- (SAP's 9999-12-31 "unlimited"), before 1970, with an offset, out of range
-- and malformed; JSON null and "".
--
\getenv sap UFDW_SAP_URL
CREATE SERVER sap_values FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'sap_s4hana', instance_url :'sap', allow_insecure 'true');
CREATE USER MAPPING FOR CURRENT_USER SERVER sap_values
  OPTIONS (username 'sandbox-user', password 'sandbox-password');
CREATE FOREIGN TABLE sap_values_orders (number text, status text, vendor_name text,
  order_date date, created_at timestamptz, updated_at timestamptz)
  SERVER sap_values OPTIONS ("table" 'purchase_orders');
CREATE FOREIGN TABLE sap_values_vendors (id text, status text)
  SERVER sap_values OPTIONS ("table" 'vendors');
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

-- the next requests get the pages of test/fixtures/sap_pages.json instead of
-- the real ones, one each, in order
\! curl -fsS -o /dev/null -H 'Content-Type: application/json' -d @test/fixtures/sap_pages.json "$UFDW_SAP_URL/_sandbox/faults"

-- 9999-12-31, 0001-01-01, before 1970, offsets, the range's ends; "" and null;
-- unknown and empty status codes
SELECT * FROM sap_values_orders;

-- out of range and malformed values are errors naming the column and value
SELECT * FROM sap_values_orders;
SELECT * FROM sap_values_orders;
SELECT * FROM sap_values_orders;
SELECT * FROM sap_values_orders;
-- a V4-style page (no "d") is not an OData V2 page
SELECT * FROM sap_values_orders;

-- blocked flags: any true blocks; missing or null flags count as false
SELECT * FROM sap_values_vendors;

\! curl -fsS -o /dev/null -X POST "$UFDW_SAP_URL/_sandbox/reset"
DROP SERVER sap_values CASCADE;

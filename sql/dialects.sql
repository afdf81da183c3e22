--
-- Rendering for the OData V2 (SAP) and SuiteQL (NetSuite) dialects,
-- through test connectors in test/connectors/ (EXPLAIN sends nothing).
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set dir :abs_srcdir '/test/connectors'
SET unified_fdw.extra_connector_dir = :'dir';
SET TimeZone = 'Europe/Berlin';
CREATE SERVER v2 FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'test_odata_v2', instance_url 'https://sap.example.com');
CREATE USER MAPPING FOR CURRENT_USER SERVER v2 OPTIONS (username 'u', password 'p');
CREATE SCHEMA v2;
IMPORT FOREIGN SCHEMA unified FROM SERVER v2 INTO v2;
CREATE SERVER sq FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'test_suiteql', instance_url 'https://1234567.suitetalk.api.netsuite.com');
CREATE USER MAPPING FOR CURRENT_USER SERVER sq OPTIONS (token 't');
CREATE SCHEMA sq;
IMPORT FOREIGN SCHEMA unified FROM SERVER sq INTO sq;

\i sql/upstream_helpers.psql
-- the native request of a query, query options percent-decoded
CREATE FUNCTION rendered(query text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
  line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || query
  LOOP
    IF line ~ 'Upstream Request' THEN
      RETURN NEXT '  ' || decode_url(substring(line from '\?(.*)$'));
    ELSIF line ~ 'Upstream Body' THEN
      RETURN NEXT '  ' || substring(line from 'Upstream Body: (.*)$');
    ELSIF line ~ 'Sort Key' THEN
      RETURN NEXT '  (sorted locally)';
    END IF;
  END LOOP;
END
$$;

-- OData V2: one unified status from several codes becomes an "or" on the field
SELECT rendered($$SELECT number FROM v2.purchase_orders WHERE status = 'open'$$);
SELECT rendered($$SELECT number FROM v2.purchase_orders WHERE status IN ('draft', 'rejected') LIMIT 5$$);
-- Edm.DateTime literals (UTC, no zone) for a date column and for an instant;
-- datetimeoffset for LastChangeDateTime
SELECT rendered($$SELECT number FROM v2.purchase_orders WHERE order_date >= '2024-01-01' AND created_at < '2024-03-01 10:00:00+01'$$);
SELECT rendered($$SELECT number FROM v2.purchase_orders WHERE updated_at BETWEEN '2024-03-15 10:30:00.25+01' AND '2024-03-16'$$);
-- decimals with M, integers bare, strings quoted; "or" across fields is fine in V2
SELECT rendered($$SELECT id FROM v2.purchase_order_lines WHERE quantity > 1.5 OR line_number = 10$$);
SELECT rendered($$SELECT id FROM v2.purchase_order_lines WHERE quantity NOT IN (1, 2) AND unit_price <> 0$$);
SELECT rendered($$SELECT id FROM v2.purchase_order_lines WHERE unit_of_measure = 'PC' AND description LIKE 'O''Brien & %'$$);
SELECT rendered($$SELECT id FROM v2.purchase_order_lines WHERE description LIKE '%100\% #1%' OR description IS NULL$$);
SELECT rendered($$SELECT number FROM v2.purchase_orders WHERE currency IS NOT NULL AND vendor_id IN ('17300001', '17300002')$$);
-- a column without native_type (vendor_name) and a concatenated id stay local
SELECT rendered($$SELECT number FROM v2.purchase_orders WHERE vendor_name = 'x'$$);
SELECT rendered($$SELECT quantity FROM v2.purchase_order_lines WHERE id = '4500000001/10'$$);
-- sort and limit: $top is what the LIMIT needs; V2 may send JSON null, so
-- only columns a condition makes non-NULL are sorted upstream
SELECT rendered($$SELECT updated_at FROM v2.purchase_orders WHERE updated_at > '2024-01-01' AND order_date IS NOT NULL ORDER BY updated_at DESC, order_date LIMIT 3 OFFSET 1$$);
SELECT rendered($$SELECT quantity FROM v2.purchase_order_lines WHERE quantity >= 0 ORDER BY quantity LIMIT 10$$);
SELECT rendered($$SELECT quantity FROM v2.purchase_order_lines ORDER BY quantity LIMIT 10$$);

-- SuiteQL: values are bound parameters; NULLs are real
SELECT rendered($$SELECT number FROM sq.purchase_orders WHERE status = 'closed' AND order_date >= '2024-01-01'$$);
SELECT rendered($$SELECT number FROM sq.purchase_orders WHERE number = 'PO''7' OR number LIKE 'PO\_1%'$$);
SELECT rendered($$SELECT number FROM sq.purchase_orders WHERE total_amount NOT IN (1, 2.5) AND company_id IS NULL$$);
SELECT rendered($$SELECT number FROM sq.purchase_orders WHERE NOT (total_amount > 100 AND order_date < '2024-01-01')$$);
SELECT rendered($$SELECT number FROM sq.purchase_orders WHERE NOT (total_amount > 100 AND total_amount IS NOT NULL)$$);
-- an OR that cannot be sent leaves no bound values behind
SELECT rendered($$SELECT number FROM sq.purchase_orders WHERE (total_amount > 5 OR updated_at > '2024-01-01') AND order_date >= '2024-01-01'$$);
SELECT rendered($$SELECT number FROM sq.purchase_orders WHERE total_amount IN (1, 2) OR NOT (number = 'x')$$);
-- instants are not sent (the account's time zone is unknown); ILIKE neither
SELECT rendered($$SELECT number FROM sq.purchase_orders WHERE updated_at > '2024-01-01' AND number ILIKE 'po%'$$);
-- an OR that is the only condition sent (the ILIKE is not) stays one term
-- after the connector's fixed WHERE
SELECT rendered($$SELECT number FROM sq.purchase_orders WHERE (total_amount > 5 OR number = 'x') AND number ILIKE 'po%'$$);
-- NULLs sort as in PostgreSQL: ORDER BY with its default NULLS placement is sent
SELECT rendered($$SELECT order_date FROM sq.purchase_orders ORDER BY order_date, total_amount DESC LIMIT 5$$);
SELECT rendered($$SELECT order_date FROM sq.purchase_orders ORDER BY order_date NULLS FIRST LIMIT 5$$);
SELECT rendered($$SELECT order_date FROM sq.purchase_orders WHERE total_amount > 0 LIMIT 1500$$);

--
-- Capabilities: what differs between two systems that speak the same
-- dialect is declared in their connector files, and the generic code
-- renders by it.  The same queries over Business Central (dynamics365_bc)
-- and over test/connectors/test_odata_v4.json, an OData v4 connector that
-- declares the opposite of each of Business Central's capabilities
-- (EXPLAIN sends nothing).
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set dir :abs_srcdir '/test/connectors'
SET unified_fdw.extra_connector_dir = :'dir';
CREATE SERVER cap_bc FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url 'https://127.0.0.1:1/v2.0/t/production',
           company_id 'bb6d48b6-c7b2-4a38-9a93-ad5506407f12');
CREATE USER MAPPING FOR CURRENT_USER SERVER cap_bc OPTIONS (token 't');
CREATE SCHEMA cap_bc;
IMPORT FOREIGN SCHEMA unified LIMIT TO (purchase_orders) FROM SERVER cap_bc INTO cap_bc;
CREATE SERVER cap_v4 FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'test_odata_v4', instance_url 'https://127.0.0.1:1', legal_entity 'usmf');
CREATE USER MAPPING FOR CURRENT_USER SERVER cap_v4 OPTIONS (token 't');
CREATE SCHEMA cap_v4;
IMPORT FOREIGN SCHEMA unified FROM SERVER cap_v4 INTO cap_v4;

\i sql/upstream_helpers.psql
-- the native request of query over both servers: query options
-- percent-decoded, the service root left out, and the headers named
CREATE FUNCTION both_rendered(query text, headers text DEFAULT 'Prefer')
RETURNS TABLE (server text, request text)
LANGUAGE plpgsql AS $$
DECLARE
  line text;
  s text;
BEGIN
  FOREACH s IN ARRAY ARRAY['cap_bc', 'cap_v4']
  LOOP
    FOR line IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || replace(query, 'srv.', s || '.')
    LOOP
      server := s;
      IF line ~ 'Upstream Request' THEN
        request := '?' || decode_url(substring(line from '\?(.*)$'));
        RETURN NEXT;
      ELSIF line ~ ('Upstream Header: (' || headers || ')') THEN
        request := substring(line from 'Upstream Header: (.*)$');
        RETURN NEXT;
      ELSIF line ~ 'Sort Key' THEN
        request := '(sorted locally)';
        RETURN NEXT;
      END IF;
    END LOOP;
  END LOOP;
END
$$;

-- paging.kind: nextlink (Prefer: odata.maxpagesize, no $top) against
-- offset ($top and $skip; a sort ends with the key so pages never overlap)
SELECT * FROM both_rendered($$SELECT number FROM srv.purchase_orders$$);
SELECT * FROM both_rendered($$SELECT number FROM srv.purchase_orders ORDER BY total_amount DESC NULLS FIRST LIMIT 3$$);

-- enum_type: a typed enumeration literal against a plain string
SELECT * FROM both_rendered($$SELECT number FROM srv.purchase_orders WHERE status = 'open'$$);
SELECT * FROM both_rendered($$SELECT number FROM srv.purchase_orders WHERE status IN ('received', 'closed')$$);

-- in_operator: "in" against an "or" of equalities
SELECT * FROM both_rendered($$SELECT number FROM srv.purchase_orders WHERE currency IN ('EUR', 'USD')$$);

-- text: Business Central compares without case (a superset: the LIMIT
-- stays local); a case-sensitive, binary, blank-significant upstream makes
-- equality exact (the LIMIT is sent as $top) unless the literal holds a
-- character that acts as a wildcard there (eq_wildcards "*")
SELECT * FROM both_rendered($$SELECT number FROM srv.purchase_orders WHERE vendor_name = 'Fabrikam' LIMIT 5$$);
SELECT * FROM both_rendered($$SELECT number FROM srv.purchase_orders WHERE vendor_name = 'Fab*' LIMIT 5$$);
SELECT * FROM both_rendered($$SELECT number FROM srv.purchase_orders WHERE vendor_name IN ('Fabrikam', 'Contoso') LIMIT 5$$);
SELECT * FROM both_rendered($$SELECT number FROM srv.purchase_orders WHERE vendor_name IN ('Fabrikam', 'C*') LIMIT 5$$);
-- ILIKE only where text compares without case
SELECT * FROM both_rendered($$SELECT number FROM srv.purchase_orders WHERE vendor_name ILIKE 'fab%'$$);

-- or_across_fields: Business Central's "or" joins conditions on one field
SELECT * FROM both_rendered($$SELECT number FROM srv.purchase_orders WHERE currency = 'EUR' OR total_amount > 100$$);

-- null_values: each connector's empty date (0001-01-01, 1900-01-01) is
-- excluded from exactly the ranges it falls in, so the filter stays exact
-- and the LIMIT is sent
SELECT * FROM both_rendered($$SELECT number FROM srv.purchase_orders WHERE order_date >= '1800-01-01' LIMIT 5$$);
SELECT * FROM both_rendered($$SELECT number FROM srv.purchase_orders WHERE order_date > '1950-01-01' LIMIT 5$$);
SELECT * FROM both_rendered($$SELECT number FROM srv.purchase_orders WHERE order_date < '1950-01-01' LIMIT 5$$);
SELECT * FROM both_rendered($$SELECT number FROM srv.purchase_orders WHERE order_date IS NULL$$);

-- null_order: a NULL sorts below every value (low: NULLS FIRST ascending)
-- or above it (high: PostgreSQL's default)
SELECT * FROM both_rendered($$SELECT number FROM srv.purchase_orders ORDER BY order_date LIMIT 3$$);
SELECT * FROM both_rendered($$SELECT number FROM srv.purchase_orders ORDER BY order_date NULLS FIRST LIMIT 3$$);

-- count: an upstream that cannot count is not asked for a remote estimate
-- (no request at all: one to this address would fail, not being public)
ALTER FOREIGN TABLE cap_v4.purchase_orders OPTIONS (ADD use_remote_estimate 'true');
SELECT count(*) > 0 AS planned FROM both_rendered($$SELECT number FROM srv.purchase_orders WHERE currency = 'EUR'$$) WHERE server = 'cap_v4';

-- the validator is driven by the connector file: the system's own options
-- (options.declared) with their kind, pattern and the file's own advice,
-- defaults, and an instance host derived from an option
CREATE SERVER cap_bad FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'test_odata_v4', instance_url 'https://127.0.0.1:1');
CREATE SERVER cap_bad FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'test_odata_v4', instance_url 'https://127.0.0.1:1', legal_entity 'USMF1');
CREATE SERVER cap_bad FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'test_odata_v4', instance_url 'https://127.0.0.1:1', legal_entity 'US MF');
CREATE SERVER cap_bad FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'test_odata_v4', instance_url 'https://127.0.0.1:1', legal_entity 'usmf',
           company_id 'bb6d48b6-c7b2-4a38-9a93-ad5506407f12');
CREATE SERVER cap_bad FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'test_odata_v4', instance_url 'https://demf.erp.test', legal_entity 'usmf');
CREATE SERVER cap_ok FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'test_odata_v4', instance_url 'https://USMF.erp.test', legal_entity 'usmf');
DROP SERVER cap_ok;
-- Business Central declares company_id, not legal_entity
ALTER SERVER cap_bc OPTIONS (ADD legal_entity 'usmf');
-- a declared default fills a template ({environment|upper})
SELECT * FROM both_rendered($$SELECT number FROM srv.purchase_orders LIMIT 1$$, 'X-Env') WHERE request ~ 'X-Env';
ALTER SERVER cap_v4 OPTIONS (ADD environment 'test');
SELECT * FROM both_rendered($$SELECT number FROM srv.purchase_orders LIMIT 1$$, 'X-Env') WHERE request ~ 'X-Env';

DROP SERVER cap_bc, cap_v4 CASCADE;

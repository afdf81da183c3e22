-- Planner costs as server options (fdw_startup_cost, fdw_tuple_cost, as in
-- postgres_fdw), page_size read in one place, and the destination address
-- check on IPv6 forms that reach IPv4 space.  No network I/O but the
-- refused connections (the address check runs before connecting).
\set VERBOSITY default
CREATE SERVER c FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url 'https://erp.invalid/bc', company_id 'c1');
CREATE FOREIGN TABLE cv (id text, name text) SERVER c OPTIONS ("table" 'vendors');
-- defaults: a request costs 1000 (one page of 1000 rows here), a row 0.05
EXPLAIN SELECT id FROM cv;
ALTER SERVER c OPTIONS (ADD fdw_startup_cost '10', ADD fdw_tuple_cost '0.5');
EXPLAIN SELECT id FROM cv;
-- each page after the first costs a request too: 10 pages of 100
ALTER SERVER c OPTIONS (ADD page_size '100');
EXPLAIN SELECT id FROM cv;
-- the table's page_size overrides the server's, in the plan as in the scan
ALTER FOREIGN TABLE cv OPTIONS (ADD page_size '500');
EXPLAIN SELECT id FROM cv;
EXPLAIN (VERBOSE) SELECT id FROM cv;
ALTER SERVER c OPTIONS (SET fdw_startup_cost '0', SET fdw_tuple_cost '1e-3');
EXPLAIN SELECT id FROM cv;
-- invalid values name the option; costs belong to the server
ALTER SERVER c OPTIONS (SET fdw_startup_cost '-1');
ALTER SERVER c OPTIONS (SET fdw_startup_cost 'cheap');
ALTER SERVER c OPTIONS (SET fdw_tuple_cost 'NaN');
ALTER SERVER c OPTIONS (SET fdw_tuple_cost 'Infinity');
ALTER SERVER c OPTIONS (SET fdw_tuple_cost '');
ALTER FOREIGN TABLE cv OPTIONS (ADD fdw_tuple_cost '1');
DROP SERVER c CASCADE;

-- Destinations: without allow_insecure, an address that is not public is
-- refused (42501) before anything is sent, also when an IPv6 address
-- embeds it: IPv4-mapped, IPv4-translated (SIIT), IPv4-compatible, NAT64
-- (well-known and local-use prefixes) and 6to4; and IPv4 ranges beyond
-- the private ones.
CREATE FUNCTION pg_temp.try_address(host text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  msg text; det text; st text;
BEGIN
  EXECUTE format('CREATE SERVER a FOREIGN DATA WRAPPER unified_fdw OPTIONS (system %L, '
                 'instance_url %L, company_id %L, connect_timeout %L, max_retries %L)',
                 'dynamics365_bc', 'https://' || host || ':9/bc', 'c1', '1', '0');
  CREATE USER MAPPING FOR CURRENT_USER SERVER a
    OPTIONS (username 'u', password 'sandbox-password');
  CREATE FOREIGN TABLE av (id text) SERVER a OPTIONS ("table" 'vendors');
  BEGIN
    PERFORM count(*) FROM av;
    msg := 'no error';
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    msg := st || ': ' || msg || ' / ' || coalesce(det, '');
  END;
  DROP SERVER a CASCADE;
  RETURN msg;
END $$;
SET client_min_messages = warning;
SELECT h, left(pg_temp.try_address(h), 200) AS result
  FROM unnest(ARRAY['[::ffff:127.0.0.1]', '[::ffff:10.1.2.3]', '[::ffff:0:7f00:1]',
                    '[::7f00:1]', '[::1]', '[64:ff9b::7f00:1]', '[64:ff9b::a9fe:a9fe]',
                    '[64:ff9b::c0a8:101]', '[64:ff9b:1::1]', '[2002:7f00:1::1]',
                    '[2002:a00:1::1]', '[fd00::1]', '[fe80::1]', '[ff02::1]',
                    '198.18.0.1', '192.0.0.8', '224.0.0.1', '255.255.255.255']) AS h;
RESET client_min_messages;

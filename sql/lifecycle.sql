--
-- Connection lifecycle against the sandbox Business Central: inputs are
-- checked before anything is created, the credentials are checked live,
-- a failure leaves nothing behind, and status, disconnect and credits.
--
\getenv bc UFDW_BC_URL
SET unified_regress.bc = :'bc';
\set instance_url :bc '/v2.0/lifecycle-tenant/production'
\set good '{"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}'
SELECT format('{"company_id": "bb6d48b6-c7b2-4a38-9a93-ad5506407f12", "token_url": "%s/lifecycle-tenant/oauth2/v2.0/token", "allow_insecure": true}',
              :'bc') AS opts \gset

-- Everything a connect could leave behind (objects named lc*, dynamics365_bc*).
CREATE FUNCTION leftovers(OUT servers bigint, OUT mappings bigint, OUT schemas bigint,
                          OUT connections bigint, OUT credits_used integer)
LANGUAGE sql AS $$
  SELECT (SELECT count(*) FROM pg_foreign_server
           WHERE srvname LIKE 'lc%' OR srvname LIKE 'dynamics365_bc%'),
         (SELECT count(*) FROM pg_user_mappings
           WHERE srvname LIKE 'lc%' OR srvname LIKE 'dynamics365_bc%'),
         (SELECT count(*) FROM pg_namespace
           WHERE nspname LIKE 'lc%' OR nspname LIKE 'dynamics365_bc%'),
         (SELECT count(*) FROM unified.connections),
         (SELECT used FROM unified.credits)
$$;

-- The error a statement raises, one field per column (shown with \x);
-- request ids become <uuid>, the sandbox URL <bc>, and the test's own
-- statement text (which holds the secret) is left out of the context.
CREATE FUNCTION error_of(query text, OUT state text, OUT message text, OUT detail text,
                         OUT hint text, OUT context text, OUT secret_shown boolean)
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE query;
  state := 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
    detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT, context = PG_EXCEPTION_CONTEXT;
  detail := regexp_replace(detail,
    '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<uuid>', 'g');
  context := replace(array_to_string(array(
      SELECT l FROM unnest(string_to_array(context, E'\n')) l
       WHERE l !~ '^(SQL statement|PL/pgSQL function)'), E'\n'),
    current_setting('unified_regress.bc'), '<bc>');
  secret_shown := concat(message, detail, hint, context) LIKE '%canary%';
END
$$;

SELECT * FROM unified.credits;
SELECT * FROM leftovers();

-- bad inputs: rejected before anything is created, values never echoed
SELECT unified.connect('sap_r3', :'instance_url', :'good', 'lc_bad', :'opts');
SELECT unified.connect('dynamics365_bc', NULL, :'good', 'lc_bad', :'opts');
SELECT unified.connect('dynamics365_bc', :'instance_url', NULL, 'lc_bad', :'opts');
SELECT unified.connect('dynamics365_bc', :'instance_url', '{"client_id": "canary-id"}', 'lc_bad', :'opts');
SELECT unified.connect('dynamics365_bc', :'instance_url',
  '{"client_id": "x", "client_secret": "canary-1", "tenant_id": "t"}', 'lc_bad', :'opts');
SELECT unified.connect('dynamics365_bc', :'instance_url', '{"api_key": "canary-key"}', 'lc_bad', :'opts');
SELECT unified.connect('dynamics365_bc', :'instance_url',
  '{"client_id": "x", "client_secret": "canary-3", "username": "u", "password": "canary-4"}', 'lc_bad', :'opts');
SELECT unified.connect('dynamics365_bc', :'instance_url', '{}', 'lc_bad', :'opts');
-- a credential given as a server file: never both ways, an absolute path,
-- a file that exists (its content is never shown)
SELECT unified.connect('dynamics365_bc', :'instance_url',
  '{"client_id": "x", "client_secret": "canary-5", "client_secret_file": "/nonexistent/s"}', 'lc_bad', :'opts');
SELECT unified.connect('dynamics365_bc', :'instance_url',
  '{"client_id": "x", "client_secret_file": "relative/s"}', 'lc_bad', :'opts');
SELECT unified.connect('dynamics365_bc', :'instance_url',
  '{"client_id": "x", "client_secret_file": "/nonexistent/s"}', 'lc_bad', :'opts');
SELECT unified.connect('dynamics365_bc', :'instance_url', '["canary"]', 'lc_bad', :'opts');
SELECT unified.connect('dynamics365_bc', :'instance_url', '{"client_id": "x", "client_secret": {"v": 1}}', 'lc_bad', :'opts');
SELECT unified.connect('dynamics365_bc', :'instance_url', '{"client_id": "x"}',
  'lc_bad', '{"client_secret": "canary-2", "company_id": "c"}');
SELECT unified.connect('dynamics365_bc', :'instance_url', :'good', 'lc_bad',
  :'opts'::jsonb || '{"system": "netsuite"}');
SELECT unified.connect('dynamics365_bc', :'instance_url', :'good', 'lc_bad',
  :'opts'::jsonb || '{"colour": "blue"}');
SELECT unified.connect('dynamics365_bc', :'instance_url', :'good', 'lc_bad',
  :'opts'::jsonb || '{"page_size": "lots"}');
SELECT unified.connect('dynamics365_bc', :'instance_url', :'good', 'lc_bad',
  :'opts'::jsonb - 'company_id');
SELECT unified.connect('dynamics365_bc', :'instance_url', :'good', 'lc_bad',
  :'opts'::jsonb - 'allow_insecure');
SELECT unified.connect('dynamics365_bc', 'https://user:canary@example.com/v2.0/t/production',
  :'good', 'lc_bad', :'opts');
SELECT unified.connect('dynamics365_bc', :'instance_url', :'good', 'Bad-Name', :'opts');
SELECT unified.connect('dynamics365_bc', :'instance_url', :'good', 'pg_bc', :'opts');
SELECT unified.connect('dynamics365_bc', :'instance_url', :'good', 'public', :'opts');
SELECT * FROM leftovers();

-- the live check: wrong secret, unknown company; nothing is left behind
\x on
SELECT * FROM error_of(format(
  'SELECT unified.connect(%L, %L, %L, %L, %L)', 'dynamics365_bc', :'instance_url',
  '{"client_id": "sandbox-client-id", "client_secret": "canary-wrong-secret"}', 'lc_bad', :'opts'));
SELECT * FROM error_of(format(
  'SELECT unified.connect(%L, %L, %L, %L, %L)', 'dynamics365_bc', :'instance_url', :'good',
  'lc_bad', :'opts'::jsonb || '{"company_id": "11111111-2222-4333-8444-555555555555"}'));
\x off
SELECT * FROM leftovers();

-- a good connection: each step is reported
SELECT name, system, instance_url = :'instance_url' AS url_kept, owner, status,
       disconnected_at IS NULL AS connected, created_at = last_success_at AS checked_now
  FROM unified.connect('dynamics365_bc', :'instance_url', :'good', 'lc_one', :'opts');
SELECT * FROM leftovers();
SELECT count(*) AS orders FROM lc_one.purchase_orders;
SELECT count(*) AS vendors FROM lc_one.vendors WHERE status = 'active';
SELECT srvname, array_to_string(array(SELECT option_name FROM pg_options_to_table(srvoptions)
         ORDER BY 1), ', ') AS server_options
  FROM pg_foreign_server WHERE srvname = 'lc_one';
SELECT array_to_string(array(SELECT option_name FROM pg_options_to_table(umoptions)
         ORDER BY 1), ', ') AS mapping_options
  FROM pg_user_mappings WHERE srvname = 'lc_one';
-- names are never reused
SELECT unified.connect('dynamics365_bc', :'instance_url', :'good', 'lc_one', :'opts');
-- no name: the system id
SELECT name FROM unified.connect('dynamics365_bc', :'instance_url', :'good', NULL, :'opts');

-- status, live: the upstream answers
SELECT name, system, status, disconnected_at IS NULL AS connected
  FROM unified.status();
SELECT name, status, last_http_status, last_request_id ~ '^[0-9a-f-]{36}$' AS has_request_id,
       requests > 0 AS counted, last_error
  FROM unified.status('lc_one', live => true);
SELECT count(*) FROM unified.status('nonexistent');

-- the same call for NetSuite (token-based authentication, four fields)
\getenv ns UFDW_NETSUITE_URL
SELECT unified.connect('netsuite', :'ns', '{"consumer_key": "k", "token_id": "t"}', 'lc_ns',
  '{"account_id": "1234567_SB1", "allow_insecure": true}');
SELECT name, system, status FROM unified.connect('netsuite', :'ns',
  '{"consumer_key": "sandbox-consumer-key", "consumer_secret": "sandbox-consumer-secret",
    "token_id": "sandbox-token-id", "token_secret": "sandbox token/secret+1"}', 'lc_ns',
  '{"account_id": "1234567_SB1", "allow_insecure": true}');
SELECT count(*) AS ns_orders FROM lc_ns.purchase_orders;
SELECT name, status FROM unified.disconnect('lc_ns');

-- and for SAP S/4HANA (HTTP Basic; SAP provides every table but items)
\getenv sap UFDW_SAP_URL
SELECT name, system, status FROM unified.connect('sap_s4hana', :'sap',
  '{"username": "sandbox-user", "password": "sandbox-password"}', 'lc_sap',
  '{"sap_client": "100", "allow_insecure": true}');
SELECT count(*) AS sap_orders FROM lc_sap.purchase_orders;
SELECT name, status FROM unified.disconnect('lc_sap');

-- the pool runs out
SET unified_fdw.connection_credits = 2;
SELECT * FROM unified.credits;
SELECT unified.connect('dynamics365_bc', :'instance_url', :'good', 'lc_two', :'opts');
SELECT * FROM leftovers();
RESET unified_fdw.connection_credits;

-- disconnect: credentials gone, schema, foreign tables and local data kept
CREATE TABLE lc_one.snapshot AS SELECT number FROM lc_one.purchase_orders LIMIT 3;
SELECT name, status, disconnected_at IS NOT NULL AS disconnected
  FROM unified.disconnect('lc_one');
\x on
SELECT * FROM error_of('SELECT count(*) FROM lc_one.vendors');
\x off
SELECT count(*) AS kept_rows FROM lc_one.snapshot;
SELECT relname, relkind FROM pg_class WHERE relnamespace = 'lc_one'::regnamespace ORDER BY 1;
SELECT count(*) AS mappings FROM pg_user_mappings WHERE srvname = 'lc_one';
SELECT name, status, disconnected_at IS NOT NULL AS disconnected FROM unified.status();
SELECT name, status FROM unified.status('lc_one', live => true);
SELECT * FROM unified.credits;
SELECT unified.disconnect('lc_one');
SELECT unified.disconnect('nonexistent');
-- a disconnected server stays disconnected in the scan too
\x on
SELECT * FROM error_of('EXPLAIN SELECT * FROM lc_one.items');
\x off

-- a transaction that rolls back takes its connect with it
BEGIN;
SELECT name FROM unified.connect('dynamics365_bc', :'instance_url', :'good', 'lc_rolled_back', :'opts');
SELECT used FROM unified.credits;
ROLLBACK;
SELECT * FROM leftovers();

SELECT name, status FROM unified.disconnect('dynamics365_bc');
SET client_min_messages = warning;
DROP SCHEMA lc_one, lc_ns, lc_sap, dynamics365_bc CASCADE;
DROP SERVER lc_one, lc_ns, lc_sap, dynamics365_bc CASCADE;
DELETE FROM unified.connections;
DROP FUNCTION leftovers();
DROP FUNCTION error_of(text);

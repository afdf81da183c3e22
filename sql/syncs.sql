--
-- Syncs without pg_cron (this database has no pg_cron extension): a
-- schedule is refused with a hint, and a sync run by hand still works.
-- The TAP suites 027 and 028 cover changes, failures, pg_cron and
-- disconnect against every sandbox.
--
\getenv bc UFDW_BC_URL
SELECT format('{"company_id": "bb6d48b6-c7b2-4a38-9a93-ad5506407f12", "token_url": "%s/syncs-tenant/oauth2/v2.0/token", "allow_insecure": true}',
              :'bc') AS opts \gset
\set instance_url :bc '/v2.0/syncs-tenant/production'
SET client_min_messages = warning;
SELECT name, status FROM unified.connect('dynamics365_bc', :'instance_url',
  '{"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}', 'sy', :'opts');
RESET client_min_messages;

-- how each table is read, from the model and the connector
SELECT * FROM unified._sync_tables('sy');

-- no pg_cron here: a schedule is refused, saying what to do
SELECT unified.start_sync('sy', schedule => '0 * * * *');
DO $$ BEGIN
  PERFORM unified.start_sync('sy', schedule => '0 * * * *');
EXCEPTION WHEN object_not_in_prerequisite_state THEN
  RAISE NOTICE 'SQLSTATE 55000 (object_not_in_prerequisite_state)';
END $$;
SELECT count(*) AS nothing_created FROM unified.syncs;
SELECT unified.start_sync('sy', '{orders}');
SELECT unified.sync_now('sy');
CALL unified.sync_now('nosuch');

-- by hand it works
SELECT table_name, mode, schedule, state FROM unified.start_sync('sy', '{vendors}');
CALL unified.sync_now('sy') \gset
SELECT :inserted AS inserted, :updated AS updated, :marked_deleted AS marked_deleted,
       :requests > 0 AS sent_requests, :failed AS failed;
SELECT connection, table_name, synced_table, mode, state, last_run_status, last_error, rows, rows_deleted
  FROM unified.sync_status;
SELECT count(*), count(*) FILTER (WHERE deleted_at IS NULL) AS live,
       bool_and(synced_at IS NOT NULL) AS stamped FROM sy_sync.vendors;
SELECT table_name, trigger, status, kind, inserted FROM unified.sync_runs;
CALL unified.sync_now('sy') \gset
SELECT :inserted AS inserted, :updated AS updated, :requests AS requests;

-- stop, adopt (refused while connected), drop
SELECT table_name, state, stopped_reason FROM unified.stop_sync('sy');
CALL unified.sync_now('sy') \gset
SELECT :inserted AS inserted, :requests AS requests, :failed AS failed;
SELECT unified.adopt_synced_data('sy', 'sy');
SELECT unified.drop_synced_data('sy');
SELECT to_regnamespace('sy_sync') IS NULL AS schema_gone, count(*) AS syncs_left FROM unified.syncs;
SET client_min_messages = warning;
SELECT status FROM unified.disconnect('sy');

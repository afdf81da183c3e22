/* unified_fdw 0.1: the foreign-data wrapper and schema "unified" */

\echo Use "CREATE EXTENSION unified_fdw" to load this file. \quit

CREATE FUNCTION unified_fdw_handler()
RETURNS fdw_handler
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT;

CREATE FUNCTION unified_fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER unified_fdw
  HANDLER unified_fdw_handler
  VALIDATOR unified_fdw_validator;

COMMENT ON FOREIGN DATA WRAPPER unified_fdw IS
  'purchase orders, lines, vendors and items from ERP APIs as one data model';

-- The unified model, as installed (connectors/model.json).
CREATE FUNCTION model_columns(
    OUT table_name text, OUT table_description text, OUT column_name text,
    OUT data_type text, OUT description text, OUT ordinal integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'unified_model_columns'
LANGUAGE C STRICT STABLE;

-- Validates a connector definition file; returns its system id.
CREATE FUNCTION check_connector(path text)
RETURNS text
AS 'MODULE_PATHNAME', 'unified_check_connector'
LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION check_connector(text) FROM PUBLIC;

-- One row per installed connector (connectors/*.json).
CREATE FUNCTION _systems(
    OUT system text, OUT name text, OUT auth_methods text[],
    OUT required_options text[], OUT tables text[], OUT setup_steps text[],
    OUT optional_options text[], OUT browser_auth_methods text[])
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'unified_systems'
LANGUAGE C STRICT STABLE;

CREATE VIEW systems AS SELECT * FROM _systems();
COMMENT ON VIEW systems IS 'the systems unified_fdw can connect to, with set-up guidance';

-- Everyone may look at the model and the systems; creating servers and
-- user mappings stays governed by USAGE on the wrapper and the servers.
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;
GRANT SELECT ON systems TO PUBLIC;

/*
 * CREATE FOREIGN TABLE cannot carry comments, so tables made by
 * IMPORT FOREIGN SCHEMA get the model's descriptions from this trigger.
 */
CREATE FUNCTION _comment_imported_tables()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    c record;
    model_table text;
BEGIN
    FOR r IN
        SELECT cmd.objid
          FROM pg_event_trigger_ddl_commands() AS cmd
          JOIN pg_foreign_table ft ON ft.ftrelid = cmd.objid
          JOIN pg_foreign_server s ON s.oid = ft.ftserver
          JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
         WHERE cmd.object_type = 'foreign table' AND w.fdwname = 'unified_fdw'
    LOOP
        SELECT option_value INTO model_table
          FROM pg_foreign_table ft, pg_options_to_table(ft.ftoptions)
         WHERE ft.ftrelid = r.objid AND option_name = 'table';
        FOR c IN
            SELECT m.column_name, m.description, m.table_description
              FROM @extschema@.model_columns() m
              JOIN pg_attribute a ON a.attrelid = r.objid AND a.attname = m.column_name
                                 AND NOT a.attisdropped
             WHERE m.table_name = model_table
        LOOP
            EXECUTE format('COMMENT ON FOREIGN TABLE %s IS %L', r.objid::regclass,
                           c.table_description);
            EXECUTE format('COMMENT ON COLUMN %s.%I IS %L', r.objid::regclass,
                           c.column_name, c.description);
        END LOOP;
    END LOOP;
END
$$;

CREATE EVENT TRIGGER unified_fdw_import_comments ON ddl_command_end
  WHEN TAG IN ('IMPORT FOREIGN SCHEMA')
  EXECUTE FUNCTION _comment_imported_tables();

-- Internal, for the regression tests only: the OAuth 1.0a (NetSuite TBA)
-- signature base string, signature and Authorization header value of a
-- request, computed by the same code that signs real requests.
CREATE FUNCTION _oauth1_signature(
    method text, url text, consumer_key text, consumer_secret text,
    token text, token_secret text, nonce text, "timestamp" text, realm text,
    OUT base_string text, OUT signature text, OUT header text)
AS 'MODULE_PATHNAME', 'unified_oauth1_signature'
LANGUAGE C STRICT IMMUTABLE;
REVOKE ALL ON FUNCTION _oauth1_signature(text, text, text, text, text, text, text, text, text) FROM PUBLIC;

/*
 * Connection lifecycle (DESIGN.md §2): unified.connect() creates a server,
 * a user mapping for the caller, a schema with the imported tables and a
 * row here; unified.disconnect() drops the credentials and returns the
 * credit.  Status columns are written by a background worker in a
 * transaction of its own (src/status.c), so they outlive the querying
 * transaction.  Callers have no privileges on the table itself: the
 * functions write it as its owner, and unified.status() shows the rows of
 * connections made by roles the caller is a member of.
 */
CREATE TABLE connections (
    name text PRIMARY KEY,
    system text NOT NULL,
    instance_url text NOT NULL,
    owner regrole NOT NULL,
    status text NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'reauthorization_required', 'error', 'disconnected')),
    created_at timestamptz NOT NULL DEFAULT now(),
    disconnected_at timestamptz,
    last_success_at timestamptz,
    last_error_at timestamptz,
    last_error text,
    last_http_status integer,
    last_request_id text,
    requests bigint NOT NULL DEFAULT 0
);
REVOKE ALL ON connections FROM PUBLIC;
COMMENT ON TABLE connections IS 'connections made with unified.connect(); read them with unified.status()';
SELECT pg_catalog.pg_extension_config_dump('connections', '');

CREATE FUNCTION connect(system text, instance_url text, credentials jsonb,
                        name text DEFAULT NULL, options jsonb DEFAULT '{}')
RETURNS connections
AS 'MODULE_PATHNAME', 'unified_connect'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION connect(text, text, jsonb, text, jsonb) IS
  'checks the inputs and the credentials live, then creates server, user mapping, schema and tables';

CREATE FUNCTION disconnect(name text)
RETURNS connections
AS 'MODULE_PATHNAME', 'unified_disconnect'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION disconnect(text) IS
  'drops the connection''s credentials and returns its credit; keeps the schema and its tables';

CREATE FUNCTION _probe(name text) RETURNS void
AS 'MODULE_PATHNAME', 'unified_probe'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION _status_sync() RETURNS void
AS 'MODULE_PATHNAME', 'unified_status_sync'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION _credit_total() RETURNS integer
AS 'MODULE_PATHNAME', 'unified_credit_total'
LANGUAGE C STRICT STABLE;

-- the rows the caller may see: connections made by roles it is a member of
CREATE VIEW _visible_connections WITH (security_barrier) AS
  SELECT c.* FROM connections c WHERE pg_catalog.pg_has_role(c.owner, 'USAGE');
GRANT SELECT ON _visible_connections TO PUBLIC;

-- live => true: probes each visible, connected connection and waits until
-- the outcome has been written
CREATE FUNCTION _refresh(conn_name text, live boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    IF NOT live THEN
        RETURN;
    END IF;
    FOR r IN SELECT c.name FROM @extschema@._visible_connections c
              WHERE c.disconnected_at IS NULL AND (conn_name IS NULL OR c.name = conn_name)
              ORDER BY c.name
    LOOP
        BEGIN
            PERFORM @extschema@._probe(r.name);
        EXCEPTION WHEN OTHERS THEN
            -- the failure itself is recorded in the status columns
            RAISE WARNING 'live check of connection "%" failed: %', r.name, SQLERRM;
        END;
    END LOOP;
    PERFORM @extschema@._status_sync();
END
$$;

CREATE FUNCTION status(name text DEFAULT NULL, live boolean DEFAULT false)
RETURNS TABLE (name text, system text, instance_url text, status text,
               created_at timestamptz, disconnected_at timestamptz,
               last_success_at timestamptz, last_error_at timestamptz,
               last_error text, last_http_status integer, last_request_id text,
               requests bigint)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT @extschema@._refresh($1, $2);
    SELECT c.name, c.system, c.instance_url, c.status, c.created_at,
           c.disconnected_at, c.last_success_at, c.last_error_at, c.last_error,
           c.last_http_status, c.last_request_id, c.requests
      FROM @extschema@._visible_connections c
     WHERE $1 IS NULL OR c.name = $1
     ORDER BY c.name;
$$;
COMMENT ON FUNCTION status(text, boolean) IS
  'one row per connection you may see; live => true checks each against its upstream first';

CREATE VIEW credits AS
  SELECT t.total, u.used, greatest(t.total - u.used, 0) AS available
    FROM (SELECT @extschema@._credit_total() AS total) t,
         (SELECT count(*)::integer AS used FROM @extschema@.connections
           WHERE disconnected_at IS NULL) u;
GRANT SELECT ON credits TO PUBLIC;
COMMENT ON VIEW credits IS 'the connection credit pool (setting unified_fdw.connection_credits)';

/*
 * Authorizing a connection in the browser (OAuth 2.0 authorization code
 * grant with PKCE, src/authorize.c): unified.authorize() records the
 * pending state here and returns the URL to send the customer to;
 * unified.complete_authorization() takes the state and code the redirect
 * brought back and creates the connection as unified.connect() does.
 * Row-level security: a role sees, completes and removes only the
 * authorizations it started (the PKCE verifier and the app's credentials
 * are in its rows).
 */
CREATE TABLE pending_authorizations (
    state text PRIMARY KEY,
    owner name NOT NULL DEFAULT current_user,
    system text NOT NULL,
    instance_url text NOT NULL,
    name text,
    redirect_uri text NOT NULL,
    code_verifier text NOT NULL,
    credentials jsonb NOT NULL,
    options jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
ALTER TABLE pending_authorizations ENABLE ROW LEVEL SECURITY;
CREATE POLICY started_by_me ON pending_authorizations
  USING (owner = current_user) WITH CHECK (owner = current_user);
REVOKE ALL ON pending_authorizations FROM PUBLIC;
GRANT SELECT, INSERT, DELETE ON pending_authorizations TO PUBLIC;
COMMENT ON TABLE pending_authorizations IS
  'authorizations started with unified.authorize() and not yet completed; each role sees its own';

CREATE FUNCTION authorize(system text, instance_url text, credentials jsonb,
                          redirect_uri text, name text DEFAULT NULL,
                          options jsonb DEFAULT '{}',
                          OUT authorization_url text, OUT state text,
                          OUT expires_at timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'unified_authorize'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION authorize(text, text, jsonb, text, text, jsonb) IS
  'starts an authorization in the browser: returns the URL to send the customer to, with state and PKCE challenge';

CREATE FUNCTION complete_authorization(state text, code text DEFAULT NULL,
                                       error text DEFAULT NULL,
                                       error_description text DEFAULT NULL,
                                       redirect_uri text DEFAULT NULL)
RETURNS connections
AS 'MODULE_PATHNAME', 'unified_complete_authorization'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION complete_authorization(text, text, text, text, text) IS
  'completes unified.authorize() with what the redirect brought back; creates the connection as unified.connect() does';

/*
 * Scheduled syncs (docs/sql.md, "Syncs"): a local copy of a connection's
 * tables in schema <connection>_sync, one ordinary table per unified
 * table, with the foreign table's columns plus synced_at and deleted_at.
 *
 * unified.sync_now() reads the foreign tables like any query (pushdown,
 * paging, retries and errors are the scan's).  Each table's run is one
 * transaction of its own: a run row is committed as 'running' first, the
 * work is done in a subtransaction and the row is then updated; a failed
 * run leaves the synced table as the last successful run left it, and a
 * run that never finished (terminated backend, crash) is reported as
 * 'interrupted' by the next run and by unified.sync_status.  A session
 * advisory lock makes one run per table at a time; a run that finds it
 * taken is recorded as 'skipped'.
 *
 * How a table is read is declared (unified._sync_tables): 'incremental'
 * where the model names a change stamp and the connector maps it
 * (updated_at >= the previous run's start minus the overlap, pushed down,
 * upserted by id), 'follows' for tables whose records follow a parent
 * (the children of every parent changed since the previous run are
 * re-read; children gone from such a parent are marked deleted), 'full'
 * otherwise (read whole when a reconciliation is due).  A reconciliation
 * reads only the keys and marks rows missing upstream as deleted.
 */
CREATE FUNCTION _sync_tables(server text,
    OUT table_name text, OUT mode text, OUT change_column text,
    OUT parent_table text, OUT link_column text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'unified_sync_tables'
LANGUAGE C STRICT STABLE;

CREATE FUNCTION _backend_requests() RETURNS bigint
AS 'MODULE_PATHNAME', 'unified_backend_requests'
LANGUAGE C STRICT VOLATILE;

CREATE TABLE syncs (
    connection text NOT NULL,
    table_name text NOT NULL,
    owner regrole NOT NULL DEFAULT current_user::regrole,
    mode text NOT NULL CHECK (mode IN ('incremental', 'follows', 'full')),
    change_column text,
    parent_table text,
    link_column text,
    schedule text,
    overlap interval NOT NULL DEFAULT '10 minutes' CHECK (overlap >= '0'),
    reconcile_every interval NOT NULL DEFAULT '1 day' CHECK (reconcile_every >= '0'),
    state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'stopped')),
    stopped_reason text,
    watermark timestamptz,
    last_reconciled_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection, table_name)
);
COMMENT ON TABLE syncs IS 'one row per synced table; read with unified.sync_status';
ALTER TABLE syncs ENABLE ROW LEVEL SECURITY;
CREATE POLICY syncs_of_own_roles ON syncs
  USING (pg_catalog.pg_has_role(owner, 'USAGE'))
  WITH CHECK (pg_catalog.pg_has_role(owner, 'USAGE'));
GRANT SELECT, INSERT, UPDATE, DELETE ON syncs TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('syncs', '');

CREATE TABLE sync_runs (
    id bigserial PRIMARY KEY,
    connection text NOT NULL,
    table_name text NOT NULL,
    owner regrole NOT NULL DEFAULT current_user::regrole,
    trigger text NOT NULL CHECK (trigger IN ('manual', 'scheduled')),
    run_by name NOT NULL DEFAULT current_user,
    status text NOT NULL
        CHECK (status IN ('running', 'succeeded', 'failed', 'skipped', 'interrupted')),
    kind text,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    inserted bigint,
    updated bigint,
    marked_deleted bigint,
    requests bigint,
    seconds numeric,
    error text,
    pid integer NOT NULL DEFAULT pg_catalog.pg_backend_pid(),
    backend_start timestamptz
);
CREATE INDEX ON sync_runs (connection, table_name, id);
COMMENT ON TABLE sync_runs IS 'the history of sync runs, one row per table and run';
ALTER TABLE sync_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY sync_runs_of_own_roles ON sync_runs
  USING (pg_catalog.pg_has_role(owner, 'USAGE'))
  WITH CHECK (pg_catalog.pg_has_role(owner, 'USAGE'));
GRANT SELECT, INSERT, UPDATE ON sync_runs TO PUBLIC;
GRANT USAGE ON SEQUENCE sync_runs_id_seq TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('sync_runs', '');

-- where the synced copy of a connection's tables lives
CREATE FUNCTION sync_schema(connection text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT $1 || '_sync' $$;
COMMENT ON FUNCTION sync_schema(text) IS 'the schema holding a connection''s synced tables';

-- the advisory lock key of one table's runs
CREATE FUNCTION _sync_lock_key(connection text, table_name text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT pg_catalog.hashtextextended('unified_fdw sync ' || $1 || '.' || $2, 0) $$;

-- a 'running' run row whose backend is gone
CREATE FUNCTION _sync_run_alive(pid integer, backend_start timestamptz) RETURNS boolean
LANGUAGE sql STABLE
AS $$
    SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                    WHERE a.pid = $1 AND a.backend_start IS NOT DISTINCT FROM $2)
$$;

CREATE FUNCTION _pg_cron_job(connection text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT 'unified_fdw sync ' || $1 $$;

-- the columns a synced table shares with its foreign table, in order
CREATE FUNCTION _sync_columns(connection text, table_name text) RETURNS text[]
LANGUAGE sql STABLE
AS $$
    SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum)
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = pg_catalog.format('%I.%I', $1, $2)::regclass
       AND a.attnum > 0 AND NOT a.attisdropped
$$;

/*
 * Upserts the rows of query (which returns the synced columns) into
 * dst by id; unchanged rows are left alone.  distinct: the query may
 * return a record twice (a record changed while a scan was paging); the
 * latest by order_by wins.  Returns the rows inserted and updated.
 */
CREATE FUNCTION _sync_upsert(dst text, cols text[], query text, order_by text,
                             OUT inserted bigint, OUT updated bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    list text := (SELECT string_agg(format('%I', c), ', ') FROM unnest(cols) c);
    excl text := (SELECT string_agg(format('EXCLUDED.%I', c), ', ') FROM unnest(cols) c);
    mine text := (SELECT string_agg(format('d.%I', c), ', ') FROM unnest(cols) c);
    src text;
BEGIN
    IF order_by IS NULL THEN
        src := format('SELECT %s FROM (%s) q', list, query);
    ELSE
        src := format('SELECT DISTINCT ON (id) %s FROM (%s) q ORDER BY id, %s', list, query, order_by);
    END IF;
    EXECUTE format(
        'WITH up AS (INSERT INTO %s AS d (%s, synced_at) SELECT *, now() FROM (%s) s '
        'ON CONFLICT (id) DO UPDATE SET (%s, synced_at, deleted_at) = (%s, EXCLUDED.synced_at, NULL) '
        'WHERE (%s) IS DISTINCT FROM (%s) OR d.deleted_at IS NOT NULL '
        'RETURNING xmax = 0 AS ins) '
        'SELECT count(*) FILTER (WHERE ins), count(*) FILTER (WHERE NOT ins) FROM up',
        dst, list, src, list, excl, mine, excl)
      INTO inserted, updated;
END
$$;

/*
 * One table's sync, inside the caller's subtransaction: reads what
 * changed, upserts it, reconciles when asked or due.  Returns what it did
 * and the watermark the next run starts from.
 */
CREATE FUNCTION _sync_table(s @extschema@.syncs, reconcile boolean,
                            OUT kind text, OUT inserted bigint, OUT updated bigint,
                            OUT marked_deleted bigint, OUT reconciled boolean,
                            OUT watermark timestamptz)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    src text := format('%I.%I', s.connection, s.table_name);
    dst text := format('%I.%I', @extschema@.sync_schema(s.connection), s.table_name);
    cols text[] := @extschema@._sync_columns(s.connection, s.table_name);
    list text := (SELECT string_agg(format('%I', c), ', ') FROM unnest(cols) c);
    started timestamptz := clock_timestamp();
    empty boolean;
    parents text[];
    batch text[];
    n bigint;
    i bigint;
    u bigint;
BEGIN
    inserted := 0;
    updated := 0;
    marked_deleted := 0;
    watermark := s.watermark;
    reconciled := coalesce(reconcile, s.last_reconciled_at IS NULL
                           OR s.last_reconciled_at + s.reconcile_every <= now());
    EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM %s)', dst) INTO empty;

    IF s.watermark IS NULL AND empty THEN
        -- first run: everything, straight in (a record seen twice while
        -- paging keeps its first version; its new stamp brings it back)
        kind := 'initial';
        EXECUTE format('INSERT INTO %s (%s, synced_at) SELECT %s, now() FROM %s ON CONFLICT (id) DO NOTHING',
                       dst, list, list, src);
        GET DIAGNOSTICS inserted = ROW_COUNT;
        reconciled := true;
        watermark := started;
        RETURN;
    END IF;

    IF s.watermark IS NULL OR (s.mode IN ('full', 'follows') AND reconciled) THEN
        -- a whole read, staged: what is missing is marked deleted.  The
        -- children tables are reconciled so too: a child changed without
        -- moving its parent's stamp is caught up here
        kind := 'full';
        EXECUTE format('CREATE TEMP TABLE _ufdw_stage ON COMMIT DROP AS SELECT %s FROM %s', list, src);
        SELECT * INTO i, u FROM @extschema@._sync_upsert(dst, cols, 'SELECT * FROM _ufdw_stage',
            CASE WHEN s.change_column IS NULL THEN 'id' ELSE format('%I DESC', s.change_column) END);
        inserted := i;
        updated := u;
        EXECUTE format('UPDATE %s d SET deleted_at = now() WHERE deleted_at IS NULL '
                       'AND NOT EXISTS (SELECT 1 FROM _ufdw_stage k WHERE k.id = d.id)', dst);
        GET DIAGNOSTICS marked_deleted = ROW_COUNT;
        DROP TABLE _ufdw_stage;
        reconciled := true;
        watermark := started;
        RETURN;
    END IF;

    IF s.mode = 'incremental' THEN
        kind := 'incremental';
        SELECT * INTO i, u FROM @extschema@._sync_upsert(dst, cols,
            format('SELECT %s FROM %s WHERE %I >= %L::timestamptz', list, src,
                   s.change_column, s.watermark - s.overlap),
            format('%I DESC', s.change_column));
        inserted := i;
        updated := u;
    ELSIF s.mode = 'follows' THEN
        -- the children of every parent synced since the previous run
        kind := 'follows';
        EXECUTE format('SELECT array_agg(id ORDER BY id) FROM %I.%I WHERE synced_at >= $1',
                       @extschema@.sync_schema(s.connection), s.parent_table)
          INTO parents USING s.watermark;
        n := coalesce(array_length(parents, 1), 0);
        i := 1;
        WHILE i <= n LOOP
            batch := parents[i:i + 49];
            EXECUTE format('CREATE TEMP TABLE _ufdw_stage ON COMMIT DROP AS SELECT %s FROM %s WHERE %I = ANY (%L::text[])',
                           list, src, s.link_column, batch);
            DECLARE
                bi bigint;
                bu bigint;
                bd bigint;
            BEGIN
                SELECT * INTO bi, bu FROM @extschema@._sync_upsert(dst, cols,
                    'SELECT * FROM _ufdw_stage', 'id');
                EXECUTE format('UPDATE %s d SET deleted_at = now() WHERE deleted_at IS NULL '
                               'AND d.%I = ANY ($1) '
                               'AND NOT EXISTS (SELECT 1 FROM _ufdw_stage k WHERE k.id = d.id)',
                               dst, s.link_column) USING batch;
                GET DIAGNOSTICS bd = ROW_COUNT;
                inserted := inserted + bi;
                updated := updated + bu;
                marked_deleted := marked_deleted + bd;
            END;
            DROP TABLE _ufdw_stage;
            i := i + 50;
        END LOOP;
        -- the children of parents seen deleted, without a request
        EXECUTE format('UPDATE %s d SET deleted_at = now() WHERE deleted_at IS NULL '
                       'AND d.%I IN (SELECT id FROM %I.%I WHERE deleted_at IS NOT NULL)',
                       dst, s.link_column, @extschema@.sync_schema(s.connection), s.parent_table);
        GET DIAGNOSTICS n = ROW_COUNT;
        marked_deleted := marked_deleted + n;
    ELSE
        kind := 'none';  -- a full table between reconciliations
    END IF;
    watermark := started;

    IF reconciled THEN
        -- only the keys; rows missing upstream are marked, never removed
        kind := kind || '+reconcile';
        EXECUTE format('CREATE TEMP TABLE _ufdw_keys ON COMMIT DROP AS SELECT id FROM %s', src);
        EXECUTE format('UPDATE %s d SET deleted_at = now() WHERE deleted_at IS NULL '
                       'AND NOT EXISTS (SELECT 1 FROM _ufdw_keys k WHERE k.id = d.id)', dst);
        GET DIAGNOSTICS n = ROW_COUNT;
        marked_deleted := marked_deleted + n;
        DROP TABLE _ufdw_keys;
    END IF;
END
$$;

-- the caller's connection, or an error; not a disconnected one unless allowed
CREATE FUNCTION _sync_connection(connection text, allow_disconnected boolean)
RETURNS @extschema@.connections
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c @extschema@.connections;
BEGIN
    SELECT * INTO c FROM @extschema@._visible_connections v WHERE v.name = connection;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'connection "%" does not exist', connection
              USING ERRCODE = 'undefined_object',
                    HINT = 'SELECT name FROM unified.status() lists the connections you can see.';
    END IF;
    IF c.disconnected_at IS NOT NULL AND NOT allow_disconnected THEN
        RAISE EXCEPTION 'connection "%" is disconnected', connection
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    HINT = 'Its synced tables stay readable in schema ' || quote_ident(connection || '_sync')
                           || '. Reconnect with unified.connect(...) under a new name, then '
                           || 'unified.adopt_synced_data(old, new) and unified.start_sync(new, ...).';
    END IF;
    RETURN c;
END
$$;

CREATE FUNCTION start_sync(connection text, tables text[] DEFAULT NULL,
                           schedule text DEFAULT NULL,
                           overlap interval DEFAULT '10 minutes',
                           reconcile_every interval DEFAULT '1 day')
RETURNS SETOF @extschema@.syncs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    schema_name text := @extschema@.sync_schema(connection);
    known text[];
    wanted text[];
    t record;
    cols text;
BEGIN
    PERFORM @extschema@._sync_connection(connection, false);
    SELECT array_agg(x.table_name) INTO known FROM @extschema@._sync_tables(connection) x;
    IF tables IS NOT NULL AND NOT tables <@ known THEN
        RAISE EXCEPTION 'connection "%" has no table %', connection,
              (SELECT string_agg(quote_literal(u), ', ') FROM unnest(tables) u WHERE u <> ALL (known))
              USING ERRCODE = 'undefined_table',
                    HINT = 'Its tables: ' || array_to_string(known, ', ') || '.';
    END IF;
    -- a table that follows a parent needs the parent synced too
    SELECT array_agg(DISTINCT x.table_name) INTO wanted
      FROM @extschema@._sync_tables(connection) x
     WHERE tables IS NULL OR x.table_name = ANY (tables)
        OR x.table_name IN (SELECT y.parent_table FROM @extschema@._sync_tables(connection) y
                             WHERE y.table_name = ANY (tables));
    IF schedule IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
            RAISE EXCEPTION 'cannot schedule syncs: pg_cron is not installed in this database'
                  USING ERRCODE = 'object_not_in_prerequisite_state',
                        DETAIL = 'Schedules are pg_cron jobs.',
                        HINT = 'Install pg_cron (Debian: postgresql-15-cron), add pg_cron to '
                               || 'shared_preload_libraries, set cron.database_name to this '
                               || 'database, restart and CREATE EXTENSION pg_cron; or start the '
                               || 'sync without a schedule and have any scheduler run '
                               || 'CALL unified.sync_now(' || quote_literal(connection) || ').';
        END IF;
    END IF;

    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', schema_name);
    FOR t IN SELECT x.* FROM @extschema@._sync_tables(connection) x
              WHERE x.table_name = ANY (wanted)
    LOOP
        IF to_regclass(format('%I.%I', schema_name, t.table_name)) IS NULL THEN
            SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)),
                              ', ' ORDER BY a.attnum) INTO cols
              FROM pg_attribute a
             WHERE a.attrelid = format('%I.%I', connection, t.table_name)::regclass
               AND a.attnum > 0 AND NOT a.attisdropped;
            EXECUTE format('CREATE TABLE %I.%I (%s, synced_at timestamptz NOT NULL, '
                           'deleted_at timestamptz, PRIMARY KEY (id))',
                           schema_name, t.table_name, cols);
            EXECUTE format('COMMENT ON TABLE %I.%I IS %L', schema_name, t.table_name,
                           format('synced copy of %I.%I (unified.sync_status); synced_at: when the '
                                  'row was last written by a sync; deleted_at: when it was seen '
                                  'deleted upstream', connection, t.table_name));
            IF t.link_column IS NOT NULL THEN
                EXECUTE format('CREATE INDEX ON %I.%I (%I)', schema_name, t.table_name, t.link_column);
            END IF;
        END IF;
        INSERT INTO @extschema@.syncs AS y (connection, table_name, mode, change_column,
                                            parent_table, link_column, schedule, overlap,
                                            reconcile_every)
        VALUES (connection, t.table_name, t.mode, t.change_column, t.parent_table,
                t.link_column, schedule, overlap, reconcile_every)
        ON CONFLICT ON CONSTRAINT syncs_pkey DO UPDATE
           SET mode = EXCLUDED.mode, change_column = EXCLUDED.change_column,
               parent_table = EXCLUDED.parent_table, link_column = EXCLUDED.link_column,
               schedule = EXCLUDED.schedule, overlap = EXCLUDED.overlap,
               reconcile_every = EXCLUDED.reconcile_every, state = 'active',
               stopped_reason = NULL,
               -- a table whose way of reading changed starts over
               watermark = CASE WHEN y.mode = EXCLUDED.mode THEN y.watermark END;
    END LOOP;

    -- one pg_cron job per connection runs every table that has a schedule
    IF schedule IS NOT NULL THEN
        UPDATE @extschema@.syncs y SET schedule = start_sync.schedule
         WHERE y.connection = start_sync.connection AND y.schedule IS NOT NULL;
        EXECUTE 'SELECT cron.schedule($1, $2, $3)'
          USING @extschema@._pg_cron_job(connection), schedule,
                format('CALL unified.sync_now(%L, scheduled => true)', connection);
    END IF;
    RETURN QUERY SELECT * FROM @extschema@.syncs y
                  WHERE y.connection = start_sync.connection AND y.table_name = ANY (wanted)
                  ORDER BY y.table_name;
END
$$;
COMMENT ON FUNCTION start_sync(text, text[], text, interval, interval) IS
  'starts syncing tables of a connection (all by default) into schema <connection>_sync, on a pg_cron schedule or run by unified.sync_now()';

-- Removes the caller's pg_cron job of the connection if no active
-- scheduled sync is left (pg_cron shows a role its own jobs only).
CREATE FUNCTION _sync_unschedule(connection text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron')
       AND NOT EXISTS (SELECT 1 FROM @extschema@.syncs y WHERE y.connection = _sync_unschedule.connection
                          AND y.state = 'active' AND y.schedule IS NOT NULL) THEN
        EXECUTE 'SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = $1'
          USING @extschema@._pg_cron_job(connection);
    END IF;
END
$$;

/*
 * unified.disconnect() calls this first: every schedule of the connection
 * goes at once and its syncs are recorded as stopped; the synced tables
 * stay.  As the extension's owner: the syncs may be other roles'.
 */
CREATE FUNCTION _stop_syncs(connection text, reason text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
    job boolean;
BEGIN
    job := false;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        -- as the extension's owner: the job may be another role's
        EXECUTE 'DELETE FROM cron.job WHERE jobname = $1' USING @extschema@._pg_cron_job(connection);
        GET DIAGNOSTICS n = ROW_COUNT;
        job := n > 0;
    END IF;
    UPDATE @extschema@.syncs y SET state = 'stopped', stopped_reason = reason
     WHERE y.connection = _stop_syncs.connection AND y.state = 'active';
    GET DIAGNOSTICS n = ROW_COUNT;
    -- a run in progress is cancelled (it keeps the previous state); runs
    -- check the sync's state before each table
    PERFORM pg_cancel_backend(r.pid) FROM @extschema@.sync_runs r
      WHERE r.connection = _stop_syncs.connection AND r.status = 'running'
        AND r.pid <> pg_backend_pid() AND @extschema@._sync_run_alive(r.pid, r.backend_start);
    IF n > 0 OR job THEN
        RAISE NOTICE 'stopped % sync(s) of connection "%"%; the synced tables stay in schema %',
              n, connection, CASE WHEN job THEN ' and removed its pg_cron job' ELSE '' END,
              quote_ident(@extschema@.sync_schema(connection));
    END IF;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION _stop_syncs(text, text) FROM PUBLIC;

CREATE FUNCTION stop_sync(connection text, tables text[] DEFAULT NULL)
RETURNS SETOF @extschema@.syncs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM @extschema@._sync_connection(connection, true);
    RETURN QUERY
    UPDATE @extschema@.syncs y SET state = 'stopped', stopped_reason = 'stopped by ' || current_user
     WHERE y.connection = stop_sync.connection AND y.state = 'active'
       AND (tables IS NULL OR y.table_name = ANY (tables))
    RETURNING *;
    PERFORM @extschema@._sync_unschedule(connection);
END
$$;
COMMENT ON FUNCTION stop_sync(text, text[]) IS
  'stops syncing tables of a connection (all by default); the synced tables stay';

CREATE FUNCTION drop_synced_data(connection text) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    PERFORM @extschema@._sync_connection(connection, true);
    PERFORM @extschema@.stop_sync(connection);
    EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', @extschema@.sync_schema(connection));
    DELETE FROM @extschema@.syncs y WHERE y.connection = drop_synced_data.connection;
    GET DIAGNOSTICS n = ROW_COUNT;
    RAISE NOTICE 'dropped schema % with the synced tables of connection "%"',
          quote_ident(@extschema@.sync_schema(connection)), connection;
    RETURN n;
END
$$;
COMMENT ON FUNCTION drop_synced_data(text) IS
  'stops the syncs of a connection and drops its synced tables (schema <connection>_sync)';

/*
 * Reconnecting under a new name: the old connection's synced tables move
 * to the new one's schema.  Against the same system and instance the
 * watermarks stay (the next run is incremental); else the next run reads
 * everything again, marking what the new connection does not have as
 * deleted.
 */
CREATE FUNCTION adopt_synced_data(old_connection text, new_connection text)
RETURNS SETOF @extschema@.syncs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o @extschema@.connections := @extschema@._sync_connection(old_connection, true);
    n @extschema@.connections := @extschema@._sync_connection(new_connection, false);
BEGIN
    IF o.disconnected_at IS NULL THEN
        RAISE EXCEPTION 'connection "%" is still connected', old_connection
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    HINT = 'Disconnect it first with unified.disconnect(' || quote_literal(old_connection) || ').';
    END IF;
    IF to_regnamespace(quote_ident(@extschema@.sync_schema(new_connection))) IS NOT NULL THEN
        RAISE EXCEPTION 'connection "%" already has synced tables', new_connection
              USING ERRCODE = 'duplicate_schema',
                    HINT = 'unified.drop_synced_data(' || quote_literal(new_connection) || ') drops them.';
    END IF;
    EXECUTE format('ALTER SCHEMA %I RENAME TO %I', @extschema@.sync_schema(old_connection),
                   @extschema@.sync_schema(new_connection));
    RETURN QUERY
    UPDATE @extschema@.syncs y
       SET connection = new_connection, state = 'stopped',
           stopped_reason = 'adopted from connection ' || quote_literal(old_connection),
           watermark = CASE WHEN o.system = n.system AND o.instance_url = n.instance_url
                            THEN y.watermark END
     WHERE y.connection = old_connection
    RETURNING *;
END
$$;
COMMENT ON FUNCTION adopt_synced_data(text, text) IS
  'moves a disconnected connection''s synced tables to a new connection; unified.start_sync(new, ...) resumes them';

-- records a run that did nothing, and why
CREATE FUNCTION _sync_skipped(s @extschema@.syncs, trig text, backend_start timestamptz, why text)
RETURNS void
LANGUAGE sql
AS $$
    INSERT INTO @extschema@.sync_runs (connection, table_name, owner, trigger, status, error,
                                       finished_at, backend_start)
    VALUES (s.connection, s.table_name, s.owner, trig, 'skipped', why,
            pg_catalog.clock_timestamp(), backend_start)
$$;

/*
 * Runs the active syncs of a connection now (those of tables, all by
 * default; scheduled => true: only those with a schedule, as pg_cron's job
 * does).  reconcile: true reads every table's keys now, false never, NULL
 * when due.  Commits per table: CALL it outside a transaction block.
 */
CREATE PROCEDURE sync_now(connection text, tables text[] DEFAULT NULL,
                          reconcile boolean DEFAULT NULL, scheduled boolean DEFAULT false,
                          INOUT inserted bigint DEFAULT NULL, INOUT updated bigint DEFAULT NULL,
                          INOUT marked_deleted bigint DEFAULT NULL,
                          INOUT requests bigint DEFAULT NULL, INOUT seconds numeric DEFAULT NULL,
                          INOUT failed integer DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    c @extschema@.connections;
    s @extschema@.syncs;
    todo @extschema@.syncs[];
    r record;
    run bigint;
    key1 bigint;
    key2 bigint;
    req0 bigint;
    t0 timestamptz;
    t1 timestamptz := pg_catalog.clock_timestamp();
    err text;
    state text;
    detail text;
    cancelled boolean := false;
    unauthorized boolean := false;
    trig text := CASE WHEN scheduled THEN 'scheduled' ELSE 'manual' END;
    mybackend timestamptz := (SELECT a.backend_start FROM pg_catalog.pg_stat_activity a
                               WHERE a.pid = pg_catalog.pg_backend_pid());
BEGIN
    inserted := 0; updated := 0; marked_deleted := 0; requests := 0; failed := 0;
    c := @extschema@._sync_connection(connection, true);
    SELECT pg_catalog.array_agg(y ORDER BY y.mode = 'follows', y.table_name) INTO todo
      FROM @extschema@.syncs y
     WHERE y.connection = sync_now.connection AND y.state = 'active'
       AND (tables IS NULL OR y.table_name = ANY (tables))
       AND (NOT scheduled OR y.schedule IS NOT NULL);
    IF todo IS NULL THEN
        RAISE NOTICE 'connection "%" has no active sync%', connection,
              CASE WHEN tables IS NULL THEN '' ELSE ' of ' || pg_catalog.array_to_string(tables, ', ') END
              USING HINT = 'unified.start_sync(...) starts one; unified.sync_status shows them.';
    END IF;
    FOREACH s IN ARRAY coalesce(todo, '{}') LOOP
        t0 := pg_catalog.clock_timestamp();
        req0 := @extschema@._backend_requests();
        -- stopped or disconnected since the run began: nothing more is sent
        IF NOT EXISTS (SELECT 1 FROM @extschema@.syncs y
                        WHERE y.connection = s.connection AND y.table_name = s.table_name
                          AND y.state = 'active') THEN
            PERFORM @extschema@._sync_skipped(s, trig, mybackend,
                'the sync was stopped while the run went on');
            COMMIT;
            CONTINUE;
        END IF;
        SELECT * INTO s FROM @extschema@.syncs y
         WHERE y.connection = s.connection AND y.table_name = s.table_name;
        c := @extschema@._sync_connection(connection, true);
        -- a scheduled run does not retry rejected credentials
        IF unauthorized OR (scheduled AND c.status = 'reauthorization_required') THEN
            PERFORM @extschema@._sync_skipped(s, trig, mybackend,
                'connection "' || connection || '" needs reauthorization; reconnect with unified.connect(...)');
            COMMIT;
            CONTINUE;
        END IF;
        key1 := @extschema@._sync_lock_key(s.connection, s.table_name);
        key2 := @extschema@._sync_lock_key(s.connection, coalesce(s.parent_table, s.table_name));
        IF NOT pg_catalog.pg_try_advisory_lock(key1) THEN
            PERFORM @extschema@._sync_skipped(s, trig, mybackend,
                'another run of this table was in progress');
            COMMIT;
            CONTINUE;
        END IF;
        IF key2 <> key1 AND NOT pg_catalog.pg_try_advisory_lock(key2) THEN
            PERFORM pg_catalog.pg_advisory_unlock(key1);
            PERFORM @extschema@._sync_skipped(s, trig, mybackend,
                'a run of its parent table ' || s.parent_table || ' was in progress');
            COMMIT;
            CONTINUE;
        END IF;
        -- holding the lock: a 'running' row left is a run that never finished
        UPDATE @extschema@.sync_runs x SET status = 'interrupted', finished_at = pg_catalog.clock_timestamp(),
               error = 'the run ended without finishing (session terminated, server crashed or restarted); nothing of it was kept'
         WHERE x.connection = s.connection AND x.table_name = s.table_name AND x.status = 'running';
        INSERT INTO @extschema@.sync_runs (connection, table_name, owner, trigger, status, backend_start)
        VALUES (s.connection, s.table_name, s.owner, trig, 'running', mybackend)
        RETURNING id INTO run;
        COMMIT;
        BEGIN
            SELECT * INTO r FROM @extschema@._sync_table(s, reconcile);
            UPDATE @extschema@.syncs y SET watermark = r.watermark,
                   last_reconciled_at = CASE WHEN r.reconciled THEN t0 ELSE y.last_reconciled_at END
             WHERE y.connection = s.connection AND y.table_name = s.table_name;
            UPDATE @extschema@.sync_runs x
               SET status = 'succeeded', kind = r.kind, inserted = r.inserted, updated = r.updated,
                   marked_deleted = r.marked_deleted, finished_at = pg_catalog.clock_timestamp(),
                   requests = @extschema@._backend_requests() - req0,
                   seconds = round(extract(epoch FROM pg_catalog.clock_timestamp() - t0)::numeric, 3)
             WHERE x.id = run;
            inserted := inserted + r.inserted;
            updated := updated + r.updated;
            marked_deleted := marked_deleted + r.marked_deleted;
        EXCEPTION WHEN OTHERS OR query_canceled THEN
            GET STACKED DIAGNOSTICS err = MESSAGE_TEXT, state = RETURNED_SQLSTATE,
                                    detail = PG_EXCEPTION_DETAIL;
            UPDATE @extschema@.sync_runs x
               SET status = 'failed', finished_at = pg_catalog.clock_timestamp(),
                   requests = @extschema@._backend_requests() - req0,
                   seconds = round(extract(epoch FROM pg_catalog.clock_timestamp() - t0)::numeric, 3),
                   error = err || CASE WHEN detail <> '' THEN E'\n' || detail ELSE '' END
                           || ' (SQLSTATE ' || state || ')'
             WHERE x.id = run;
            failed := failed + 1;
            cancelled := state = '57014';
            unauthorized := err LIKE '%HTTP status 401%';
        END;
        requests := requests + (@extschema@._backend_requests() - req0);
        PERFORM pg_catalog.pg_advisory_unlock(key1);
        IF key2 <> key1 THEN
            PERFORM pg_catalog.pg_advisory_unlock(key2);
        END IF;
        COMMIT;
        IF cancelled THEN
            RAISE EXCEPTION 'sync of %.% was cancelled: %', s.connection, s.table_name, err
                  USING ERRCODE = 'query_canceled',
                        DETAIL = 'The synced table is as the last successful run left it; the run is recorded in unified.sync_runs.';
        END IF;
    END LOOP;
    seconds := round(extract(epoch FROM pg_catalog.clock_timestamp() - t1)::numeric, 3);
    IF failed > 0 THEN
        RAISE WARNING '% of % table(s) of connection "%" failed to sync', failed,
              coalesce(array_length(todo, 1), 0), connection
              USING HINT = 'SELECT * FROM unified.sync_runs WHERE status = ''failed'' ORDER BY id DESC shows why.';
    END IF;
END
$$;
COMMENT ON PROCEDURE sync_now(text, text[], boolean, boolean, bigint, bigint, bigint, bigint, numeric, integer) IS
  'runs a connection''s syncs now: CALL unified.sync_now(''acme'') returns rows inserted, updated, marked deleted, requests and seconds';

-- rows of a synced table, live or marked deleted (NULL when it is gone)
CREATE FUNCTION _synced_rows(connection text, table_name text, deleted boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel regclass := to_regclass(format('%I.%I', @extschema@.sync_schema(connection), table_name));
    n bigint;
BEGIN
    IF rel IS NULL OR NOT has_table_privilege(rel, 'SELECT') THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT count(*) FROM %s WHERE (deleted_at IS NOT NULL) = $1', rel) INTO n USING deleted;
    RETURN n;
END
$$;

CREATE VIEW sync_status WITH (security_barrier) AS
SELECT s.connection, s.table_name,
       format('%I.%I', @extschema@.sync_schema(s.connection), s.table_name) AS synced_table,
       s.mode, s.schedule, s.state, s.stopped_reason,
       r.started_at AS last_run_at,
       CASE WHEN r.status = 'running' AND NOT @extschema@._sync_run_alive(r.pid, r.backend_start)
            THEN 'interrupted' ELSE r.status END AS last_run_status,
       e.error AS last_error, e.started_at AS last_error_at,
       s.watermark, s.last_reconciled_at, s.overlap, s.reconcile_every,
       @extschema@._synced_rows(s.connection, s.table_name) AS rows,
       @extschema@._synced_rows(s.connection, s.table_name, true) AS rows_deleted,
       s.owner
  FROM @extschema@.syncs s
  LEFT JOIN LATERAL (SELECT * FROM @extschema@.sync_runs x
                      WHERE x.connection = s.connection AND x.table_name = s.table_name
                      ORDER BY x.id DESC LIMIT 1) r ON true
  LEFT JOIN LATERAL (SELECT * FROM @extschema@.sync_runs x
                      WHERE x.connection = s.connection AND x.table_name = s.table_name
                        AND x.status IN ('failed', 'interrupted')
                      ORDER BY x.id DESC LIMIT 1) e ON true
 WHERE pg_catalog.pg_has_role(s.owner, 'USAGE');
GRANT SELECT ON sync_status TO PUBLIC;
COMMENT ON VIEW sync_status IS 'every sync you may see: mode, schedule, state, last run, last error, watermark, rows';

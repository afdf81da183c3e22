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

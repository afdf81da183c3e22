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
    OUT required_options text[], OUT tables text[], OUT setup_steps text[])
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

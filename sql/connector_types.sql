--
-- native_type in connector files is checked strictly: each directory of
-- test/connectors_bad/ holds one connector with one mistake.  Every case
-- runs in a new session (connectors are loaded once per session).
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set bad :abs_srcdir '/test/connectors_bad'
CREATE FUNCTION load_error(dir text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('unified_fdw.extra_connector_dir', dir, false);
  PERFORM count(*) FROM unified.systems;
  RETURN 'loaded';
EXCEPTION WHEN config_file_error THEN
  RETURN replace(SQLERRM, dir, '<dir>');
END
$$;
\set case :bad '/type_mismatch'
\c
SELECT load_error(:'case');
\set case :bad '/map_not_enum'
\c
SELECT load_error(:'case');
\set case :bad '/enum_without_map'
\c
SELECT load_error(:'case');
\set case :bad '/unknown_type'
\c
SELECT load_error(:'case');
\set case :bad '/not_a_field'
\c
SELECT load_error(:'case');
\set case :bad '/datetime_suiteql'
\c
SELECT load_error(:'case');
\set case :bad '/guid_suiteql'
\c
SELECT load_error(:'case');
\set case :bad '/not_a_string'
\c
SELECT load_error(:'case');
-- the good test connectors load
\set case :abs_srcdir '/test/connectors'
\c
SELECT load_error(:'case');
SELECT system, name FROM unified.systems ORDER BY system;

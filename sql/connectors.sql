--
-- Connector files: the installed ones load, and the loader is strict with
-- errors that name the file and the place (fixtures in test/fixtures).
--
\getenv fixtures UFDW_FIXTURES
SET unified_regress.fixtures = :'fixtures';

SELECT system, name, auth_methods, required_options, tables, cardinality(setup_steps) > 0 AS guided
  FROM unified.systems ORDER BY system;
-- every system's guidance recommends giving secrets as files (not in SQL text)
SELECT system, count(*) FILTER (WHERE step LIKE '%Keep secrets out of SQL text%_file%') AS file_secret_steps
  FROM unified.systems, unnest(setup_steps) AS step GROUP BY system ORDER BY system;
SELECT table_name, count(*) AS columns, string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal)
  FROM unified.model_columns() GROUP BY table_name ORDER BY table_name;

-- Checks a fixture file; shows the error with the fixture directory masked.
CREATE FUNCTION check_fixture(file text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  st text; msg text; det text;
BEGIN
  RETURN 'ok: ' || unified.check_connector(current_setting('unified_regress.fixtures') || '/' || file);
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
  RETURN st || ': ' || replace(msg, current_setting('unified_regress.fixtures'), '<fixtures>')
         || coalesce(' (' || nullif(det, '') || ')', '');
END
$$;

SELECT f, check_fixture(f || '.json')
  FROM unnest(ARRAY['valid', 'unknown_key', 'wrong_type', 'unknown_column', 'unmapped_column',
                    'unknown_table', 'unknown_dialect', 'undeclared_option',
                    'expr_outside_suiteql', 'suiteql_mixed_case_alias', 'duplicate_key', 'not_json', 'missing']) AS f;

-- native_type (pushdown) is checked against the model type, the value map,
-- the mapping form and the dialect
SELECT f, check_fixture(f || '.json')
  FROM unnest(ARRAY['native_type_type_mismatch', 'native_type_map_not_enum',
                    'native_type_enum_without_map', 'native_type_unknown_type',
                    'native_type_not_a_field', 'native_type_datetime_suiteql',
                    'native_type_guid_suiteql', 'native_type_not_a_string']) AS f;

-- read_through (a table served only per parent) is checked: OData v4 only,
-- a link column mapped to one field, at least one child per parent
SELECT f, check_fixture(f || '.json')
  FROM unnest(ARRAY['read_through_not_odata_v4', 'read_through_bad_link_column',
                    'read_through_zero_children']) AS f;

-- conversion (SAP conversion exits): a known exit and the field's length, on a
-- single field of a column whose type fits
SELECT f, check_fixture(f || '.json')
  FROM unnest(ARRAY['conversion_unknown_exit', 'conversion_bad_length',
                    'conversion_wrong_type', 'conversion_not_a_field']) AS f;

-- the loader checks capabilities: known keys and values, a paging kind
-- and typed enumerations the dialect has, enum_type on enum columns only
SELECT f, check_fixture('capabilities_' || f || '.json')
  FROM unnest(ARRAY['valid', 'unknown_key', 'bad_null_order', 'bad_text_case',
                    'in_operator_twice', 'nextlink_odata_v2', 'enum_type_odata_v2',
                    'enum_type_not_enum', 'enum_type_bad_name']) AS f;


-- the options a system declares (kind, pattern, advice), auth templates and
-- error-body paths are checked
SELECT f, check_fixture('options_' || f || '.json')
  FROM unnest(ARRAY['unknown_kind', 'general_declared', 'undeclared', 'tba_without_realm',
                    'unknown_filter', 'bad_error_path']) AS f;

-- any role may see the systems and the model; only roles that may read
-- server files can check connector files
CREATE ROLE regress_ufdw_author;
SET ROLE regress_ufdw_author;
SELECT count(*) FROM unified.systems;
SELECT count(*) FROM unified.model_columns();
RESET ROLE;
GRANT EXECUTE ON FUNCTION unified.check_connector(text) TO regress_ufdw_author;
SET ROLE regress_ufdw_author;
SELECT unified.check_connector('/etc/passwd');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION unified.check_connector(text) FROM regress_ufdw_author;
DROP ROLE regress_ufdw_author;
DROP FUNCTION check_fixture(text);

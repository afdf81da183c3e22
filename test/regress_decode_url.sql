-- decode_url(text): percent-decodes a URL query, for readable EXPLAIN
-- output in the regression suites (\i'd by sql/bc_pushdown.sql and
-- sql/dialects.sql)
CREATE OR REPLACE FUNCTION decode_url(s text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  out bytea := '';
  i int := 1;
BEGIN
  WHILE i <= length(s) LOOP
    IF substr(s, i, 1) = '%' THEN
      out := out || decode(substr(s, i + 1, 2), 'hex');
      i := i + 3;
    ELSE
      out := out || convert_to(substr(s, i, 1), 'UTF8');
      i := i + 1;
    END IF;
  END LOOP;
  RETURN convert_from(out, 'UTF8');
END
$$;

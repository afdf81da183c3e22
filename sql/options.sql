--
-- Option validation.  Nothing here reaches the network: the validator
-- checks names, shapes and privileges only, and never echoes a value.
--

-- unknown system: the error lists the known ones
CREATE SERVER s FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'sap_r3', instance_url 'https://erp.example.com');
-- required options
CREATE SERVER s FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (instance_url 'https://erp.example.com');
CREATE SERVER s FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', company_id 'bb6d48b6-c7b2-4a38-9a93-ad5506407f12');
CREATE SERVER s FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url 'https://api.businesscentral.dynamics.com/v2.0/t/production');

-- instance_url must be an http(s) URL without credentials or query
CREATE SERVER s FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url 'ftp://erp.example.com', company_id 'c1');
CREATE SERVER s FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url 'erp example', company_id 'c1');
CREATE SERVER s FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url 'https://admin:hunter2-canary@erp.example.com', company_id 'c1');
CREATE SERVER s FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url 'https://erp.example.com/?tenant=1', company_id 'c1');
-- plain http needs allow_insecure
CREATE SERVER s FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url 'http://erp.example.com', company_id 'c1');

-- credentials belong on user mappings, and their values are never shown
CREATE SERVER s FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url 'https://erp.example.com', company_id 'c1',
           client_secret 'hunter2-canary');
-- unknown options list the valid ones
CREATE SERVER s FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url 'https://erp.example.com', company_id 'c1',
           colour 'blue');
-- values that would reach a URL or header are checked
CREATE SERVER s FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url 'https://erp.example.com', company_id E'c1\r\nX-Injected: 1');
CREATE SERVER s FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url 'https://erp.example.com', company_id 'c1',
           page_size '0');
CREATE SERVER s FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url 'https://erp.example.com', company_id 'c1',
           allow_insecure 'maybe');

-- a valid server
CREATE SERVER s FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url 'https://api.businesscentral.dynamics.com/v2.0/t1/production/',
           company_id 'bb6d48b6-c7b2-4a38-9a93-ad5506407f12', tenant_id 't1', page_size '500');
ALTER SERVER s OPTIONS (ADD token_url 'http://login.example.com/token');
ALTER SERVER s OPTIONS (DROP instance_url);
ALTER SERVER s OPTIONS (ADD token_url 'https://login.example.com/t1/oauth2/v2.0/token');

-- user mappings: credentials come in complete groups
CREATE USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (client_id 'app');
CREATE USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (username 'u', client_secret 's');
CREATE USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (username 'u', password E'hunter2-canary\n');
CREATE USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (username 'u', password '');
CREATE USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (user 'u', password 'hunter2-canary');
CREATE USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (client_id 'app', client_secret 'hunter2-canary');
-- secrets stay hidden from other roles (PostgreSQL's rule for umoptions)
CREATE ROLE regress_ufdw_other;
SET ROLE regress_ufdw_other;
SELECT srvname, umoptions FROM pg_user_mappings WHERE srvname = 's';
RESET ROLE;

-- foreign tables name a unified table
CREATE FOREIGN TABLE ft (id text) SERVER s OPTIONS ("table" 'invoices');
CREATE FOREIGN TABLE ft (id text) SERVER s OPTIONS ("table" 'vendors', password 'hunter2-canary');
CREATE FOREIGN TABLE ft (id text, nickname text) SERVER s OPTIONS ("table" 'vendors');
-- an unknown column is caught when the table is planned
EXPLAIN (COSTS OFF) SELECT nickname FROM ft;
DROP FOREIGN TABLE ft;
-- no options on the wrapper itself
ALTER FOREIGN DATA WRAPPER unified_fdw OPTIONS (ADD system 'netsuite');

-- allow_insecure widens what the backend can reach: superuser only
GRANT USAGE ON FOREIGN DATA WRAPPER unified_fdw TO regress_ufdw_other;
SET ROLE regress_ufdw_other;
CREATE SERVER s2 FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url 'http://127.0.0.1:1/x', company_id 'c1',
           allow_insecure 'true');
-- a credential read from a server file: naming a file needs superuser or
-- pg_read_server_files (as file_fdw's filename); the path is not a secret
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER s TO regress_ufdw_other;
SET ROLE regress_ufdw_other;
CREATE USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (client_id 'app', client_secret_file '/etc/ufdw/s.secret');
RESET ROLE;
GRANT pg_read_server_files TO regress_ufdw_other;
SET ROLE regress_ufdw_other;
CREATE USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (client_id 'app', client_secret_file '/etc/ufdw/s.secret');
DROP USER MAPPING FOR CURRENT_USER SERVER s;
RESET ROLE;
REVOKE pg_read_server_files FROM regress_ufdw_other;
REVOKE USAGE ON FOREIGN SERVER s FROM regress_ufdw_other;
-- an absolute path; never both a value and its file; a group may mix
-- values and files; never on a server
CREATE USER MAPPING FOR regress_ufdw_other SERVER s OPTIONS (token_file 'secrets/token');
CREATE USER MAPPING FOR regress_ufdw_other SERVER s OPTIONS (token 'hunter2-canary', token_file '/etc/ufdw/token');
CREATE USER MAPPING FOR regress_ufdw_other SERVER s OPTIONS (username_file '/etc/ufdw/user');
CREATE USER MAPPING FOR regress_ufdw_other SERVER s OPTIONS (username 'u', password_file '/etc/ufdw/pw');
DROP USER MAPPING FOR regress_ufdw_other SERVER s;
ALTER SERVER s OPTIONS (ADD token_file '/etc/ufdw/token');

-- IMPORT FOREIGN SCHEMA: one remote schema, tables of the model
CREATE SCHEMA imp;
IMPORT FOREIGN SCHEMA erp FROM SERVER s INTO imp;
IMPORT FOREIGN SCHEMA unified LIMIT TO (invoices) FROM SERVER s INTO imp;
IMPORT FOREIGN SCHEMA unified LIMIT TO (vendors, items) FROM SERVER s INTO imp;
SELECT relname FROM pg_class WHERE relnamespace = 'imp'::regnamespace ORDER BY 1;
IMPORT FOREIGN SCHEMA unified EXCEPT (vendors, items) FROM SERVER s INTO imp;
SELECT relname FROM pg_class WHERE relnamespace = 'imp'::regnamespace ORDER BY 1;
-- the model's descriptions became comments
SELECT obj_description('imp.purchase_orders'::regclass, 'pg_class');
SELECT a.attname, format_type(a.atttypid, a.atttypmod), col_description(a.attrelid, a.attnum)
  FROM pg_attribute a
 WHERE a.attrelid = 'imp.purchase_order_lines'::regclass AND a.attnum > 0
 ORDER BY a.attnum;
-- EXPLAIN shows the native request and no credentials; it sends nothing
EXPLAIN (VERBOSE, COSTS OFF)
  SELECT number, vendor_name FROM imp.purchase_orders WHERE status = 'open';
EXPLAIN (VERBOSE, COSTS OFF) SELECT count(*) FROM imp.vendors;
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM imp.items;
-- EXPLAIN needs no user mapping (nothing is sent); running the query does
DROP USER MAPPING FOR CURRENT_USER SERVER s;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id, name FROM imp.vendors;
SELECT id, name FROM imp.vendors;

-- settings
SHOW unified_fdw.pushdown;
SET unified_fdw.no_such_setting = 1;

DROP SCHEMA imp CASCADE;
DROP SERVER s CASCADE;
REVOKE USAGE ON FOREIGN DATA WRAPPER unified_fdw FROM regress_ufdw_other;
DROP ROLE regress_ufdw_other;

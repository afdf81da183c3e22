--
-- Upstream errors against the sandbox Business Central: clear messages,
-- pinned SQLSTATEs, request ids, and never a secret.
--
\getenv bc UFDW_BC_URL
SET unified_regress.bc = :'bc';
\set instance_url :bc '/v2.0/regress-tenant/production'
\set token_url :bc '/regress-tenant/oauth2/v2.0/token'

-- show_error(): an error with its SQLSTATE, request ids shown as <uuid>, and
-- whether a secret appears anywhere in it
\set ECHO none
\i sql/upstream_helpers.psql
\set ECHO all

-- a wrong client secret
CREATE SERVER bad_secret FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url :'instance_url',
           company_id 'bb6d48b6-c7b2-4a38-9a93-ad5506407f12',
           token_url :'token_url', allow_insecure 'true');
CREATE USER MAPPING FOR CURRENT_USER SERVER bad_secret
  OPTIONS (client_id 'sandbox-client-id', client_secret 'canary-wrong-secret');
CREATE FOREIGN TABLE bad_secret_vendors (id text, name text)
  SERVER bad_secret OPTIONS ("table" 'vendors');
SELECT * FROM show_error('SELECT * FROM bad_secret_vendors');

-- an unknown client
ALTER USER MAPPING FOR CURRENT_USER SERVER bad_secret
  OPTIONS (SET client_id 'unknown-client');
SELECT * FROM show_error('SELECT * FROM bad_secret_vendors');

-- a company that does not exist
CREATE SERVER no_company FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url :'instance_url',
           company_id '11111111-2222-4333-8444-555555555555',
           token_url :'token_url', allow_insecure 'true');
CREATE USER MAPPING FOR CURRENT_USER SERVER no_company
  OPTIONS (client_id 'sandbox-client-id', client_secret 'sandbox-client-secret');
CREATE FOREIGN TABLE no_company_vendors (id text) SERVER no_company OPTIONS ("table" 'vendors');
SELECT * FROM show_error('SELECT * FROM no_company_vendors');

-- OAuth needs a token endpoint
CREATE SERVER no_token_url FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url :'instance_url',
           company_id 'bb6d48b6-c7b2-4a38-9a93-ad5506407f12', allow_insecure 'true');
CREATE USER MAPPING FOR CURRENT_USER SERVER no_token_url
  OPTIONS (client_id 'sandbox-client-id', client_secret 'sandbox-client-secret');
CREATE FOREIGN TABLE no_token_url_vendors (id text) SERVER no_token_url OPTIONS ("table" 'vendors');
SELECT * FROM show_error('SELECT * FROM no_token_url_vendors');

-- a mapping without credentials, and credentials the system does not take
ALTER USER MAPPING FOR CURRENT_USER SERVER no_token_url
  OPTIONS (DROP client_id, DROP client_secret);
SELECT * FROM show_error('SELECT * FROM no_token_url_vendors');
ALTER USER MAPPING FOR CURRENT_USER SERVER no_token_url OPTIONS (ADD api_key 'canary-key');
SELECT * FROM show_error('SELECT * FROM no_token_url_vendors');
-- no user mapping at all
DROP USER MAPPING FOR CURRENT_USER SERVER no_token_url;
SELECT * FROM show_error('SELECT * FROM no_token_url_vendors');

-- loopback is refused without allow_insecure (only a superuser can set it)
CREATE SERVER strict FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url 'https://127.0.0.1:18401/v2.0/t/production',
           company_id 'bb6d48b6-c7b2-4a38-9a93-ad5506407f12');
CREATE USER MAPPING FOR CURRENT_USER SERVER strict
  OPTIONS (username 'sandbox-user', password 'canary-password');
CREATE FOREIGN TABLE strict_vendors (id text) SERVER strict OPTIONS ("table" 'vendors');
SELECT * FROM show_error('SELECT * FROM strict_vendors');

-- nothing listens on port 1
CREATE SERVER closed FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url 'http://127.0.0.1:1/v2.0/t/production',
           company_id 'bb6d48b6-c7b2-4a38-9a93-ad5506407f12', allow_insecure 'true');
CREATE USER MAPPING FOR CURRENT_USER SERVER closed
  OPTIONS (username 'sandbox-user', password 'canary-password');
CREATE FOREIGN TABLE closed_vendors (id text) SERVER closed OPTIONS ("table" 'vendors');
SELECT * FROM show_error('SELECT * FROM closed_vendors');

-- the session is still fine
SELECT 1 AS still_usable;

DROP SERVER bad_secret, no_company, no_token_url, strict, closed CASCADE;
DROP FUNCTION show_error(text);

--
-- NetSuite: OAuth 1.0a (TBA) signatures against worked examples, account_id
-- rules, and scans of the sandbox NetSuite (test/run starts it on a free
-- port, in UFDW_NETSUITE_URL, with 60 generated purchase orders).
--

-- Signatures.  Expected values were computed independently with Python's
-- hmac/hashlib/urllib (see test/sandbox/netsuite.py for the same rules).
-- RFC 5849 section 3.4.1's request, adapted: HMAC-SHA256, no form body; the
-- URL's scheme and host are lower-cased and the default port dropped.
SELECT base_string = 'POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_method%3DHMAC-SHA256%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7%26oauth_version%3D1.0' AS rfc_base_string,
       signature = 'OX8bZIRgGCJG/GstHdrphNSEyNfsYFLWjjB3+wmZ7S8=' AS rfc_signature,
       header
  FROM unified._oauth1_signature('POST', 'HTTP://Example.COM:80/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b',
                                 '9djdj82h48djs9d2', 'j49sk3j29djd', 'kkk9d7dh3k39sjv7', 'dh893hdasih9',
                                 '7d8f3e4a', '137131201', 'Example');
-- NetSuite's own example (GET employee/40); realm is sent but not signed
SELECT base_string = 'GET&https%3A%2F%2F123456.suitetalk.api.netsuite.com%2Fservices%2Frest%2Frecord%2Fv1%2Femployee%2F40&oauth_consumer_key%3Def40afdd8abaac111b13825dd5e5e2ddddb44f86d5a0dd6dcf38c20aae6b67e4%26oauth_nonce%3DfjaLirsIcCGVZWzBX0pg%26oauth_signature_method%3DHMAC-SHA256%26oauth_timestamp%3D1508242306%26oauth_token%3D2b0ce516420110bcbd36b69e99196d1b7f6de3c6234c5afb799b73d87569f5cc%26oauth_version%3D1.0' AS netsuite_base_string,
       signature = 'fM5fe4ldKhZzH9sHW+7ulYELG4weTnqenoooQDw/VFY=' AS netsuite_signature
  FROM unified._oauth1_signature('GET', 'https://123456.suitetalk.api.netsuite.com/services/rest/record/v1/employee/40',
       'ef40afdd8abaac111b13825dd5e5e2ddddb44f86d5a0dd6dcf38c20aae6b67e4',
       'd26ad321a4b2f23b0741c8d38392ce01c3e23e109df6c96eac6d099e9ab9a8b5',
       '2b0ce516420110bcbd36b69e99196d1b7f6de3c6234c5afb799b73d87569f5cc',
       'c29a677df7d5439a458c063654187e3d678d73aca8e3c9d8bea1478a3eb0d295',
       'fjaLirsIcCGVZWzBX0pg', '1508242306', '123456');
-- a SuiteQL page: limit and offset are signed; secrets with "&" and " "
-- are percent-encoded in the key
SELECT base_string, signature = 'IILODNjTmaHShWwr5NWPJfN1pREXD01nrZEha972A3c=' AS suiteql_signature
  FROM unified._oauth1_signature('POST', 'https://1234567-sb1.suitetalk.api.netsuite.com:443/services/rest/query/v1/suiteql?limit=3&offset=0',
       'ck', 'consumer secret', 'tok', 'token&secret', 'n0nce', '1709712000', '1234567_SB1');
-- the realm does not change the signature; any other input does
SELECT count(DISTINCT signature) AS signatures, count(DISTINCT header) AS headers
  FROM (VALUES ('1234567_SB1'), ('OTHER')) r(realm),
       unified._oauth1_signature('GET', 'https://a.example/x', 'ck', 'cs', 't', 'ts', 'n', '1', r.realm);
SELECT count(DISTINCT signature) AS signatures
  FROM (VALUES ('GET', 'https://a.example/x'), ('POST', 'https://a.example/x'),
               ('GET', 'https://a.example/y'), ('GET', 'https://a.example/x?offset=5')) v(m, u),
       unified._oauth1_signature(v.m, v.u, 'ck', 'cs', 't', 'ts', 'n', '1', 'R');
-- not for PUBLIC
SELECT has_function_privilege('public', 'unified._oauth1_signature(text,text,text,text,text,text,text,text,text)', 'EXECUTE');

-- account_id: the format, and the host of a suitetalk instance_url
CREATE SERVER ns_bad FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'netsuite', instance_url 'https://1234567-sb1.suitetalk.api.netsuite.com', account_id '1234567_SB2');
CREATE SERVER ns_bad FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'netsuite', instance_url 'https://1234567.suitetalk.api.netsuite.com', account_id '1234567_SB1');
CREATE SERVER ns_bad FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'netsuite', instance_url 'https://1234567-sb1.suitetalk.api.netsuite.com', account_id '1234567__SB1');
CREATE SERVER ns_bad FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'netsuite', instance_url 'https://1234567-sb1.suitetalk.api.netsuite.com', account_id '_SB1');
CREATE SERVER ns_bad FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'netsuite', instance_url 'https://1234567-sb1.suitetalk.api.netsuite.com');
CREATE SERVER ns_ok1 FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'netsuite', instance_url 'https://1234567-SB1.SuiteTalk.api.netsuite.com', account_id '1234567_SB1');
CREATE SERVER ns_ok2 FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'netsuite', instance_url 'https://tstdrv123456.suitetalk.api.netsuite.com', account_id 'TSTDRV123456');
ALTER SERVER ns_ok2 OPTIONS (SET account_id '7654321');
-- time_zone: the zone NetSuite shows dates and times in (the token user's
-- preference); a name of PostgreSQL's time zone database, checked offline
\set VERBOSITY sqlstate
ALTER SERVER ns_ok2 OPTIONS (ADD time_zone 'Mars/Olympus_Mons');
\set VERBOSITY default
ALTER SERVER ns_ok2 OPTIONS (ADD time_zone 'Pacific Time');
ALTER SERVER ns_ok2 OPTIONS (ADD time_zone '-08:00');
ALTER SERVER ns_ok2 OPTIONS (ADD time_zone '');
ALTER SERVER ns_ok2 OPTIONS (ADD time_zone 'America/Los_Angeles');
ALTER SERVER ns_ok2 OPTIONS (SET time_zone 'Europe/Berlin');
SELECT srvoptions FROM pg_foreign_server WHERE srvname = 'ns_ok2';
SELECT required_options, optional_options, setup_steps[array_upper(setup_steps, 1)] AS time_zone_step
  FROM unified.systems WHERE system = 'netsuite';
DROP SERVER ns_ok1, ns_ok2;

-- the sandbox
\getenv ns UFDW_NETSUITE_URL
SET unified_regress.ns = :'ns';
CREATE SERVER ns FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'netsuite', instance_url :'ns', account_id '1234567_SB1',
           allow_insecure 'true', page_size '7', time_zone 'America/Los_Angeles');
CREATE USER MAPPING FOR CURRENT_USER SERVER ns
  OPTIONS (consumer_key 'sandbox-consumer-key', consumer_secret 'sandbox-consumer-secret',
           token_id 'sandbox-token-id', token_secret 'sandbox token/secret+1');
CREATE SCHEMA ns;
IMPORT FOREIGN SCHEMA unified FROM SERVER ns INTO ns;
SET TimeZone = 'UTC';

SELECT count(*) FROM ns.purchase_orders;
SELECT status, count(*) FROM ns.purchase_orders GROUP BY status ORDER BY status;
SELECT number, status, vendor_name, order_date, currency, total_amount, company_id, created_at, updated_at
  FROM ns.purchase_orders ORDER BY id LIMIT 8;
-- exact decimals; leap day and month ends; instants come as wall-clock time
-- of the user's zone (the sandbox user is on Pacific time, with DST) and
-- read as instants with the server's time_zone
SELECT min(total_amount), max(total_amount), sum(total_amount) FROM ns.purchase_orders;
SELECT order_date, count(*) FROM ns.purchase_orders
 WHERE order_date IN ('2024-02-29', '2023-12-31', '2024-01-31', '2024-04-30')
 GROUP BY order_date ORDER BY order_date;
SELECT number, updated_at, raw->>'lastmodifieddate' AS native FROM ns.purchase_orders
 WHERE number IN ('PO1011', 'PO1015') ORDER BY number;
-- NetSuite NULLs stay NULL: a vendor without a name, lines without item
SELECT number, name, email, status, currency FROM ns.vendors ORDER BY id;
SELECT count(*) FILTER (WHERE vendor_name IS NULL) AS no_vendor_name,
       count(*) FILTER (WHERE currency IS NULL) AS no_currency FROM ns.purchase_orders;
SELECT type, count(*), min(unit_cost), max(unit_cost), count(unit_of_measure) AS with_unit
  FROM ns.items GROUP BY type ORDER BY type;
SELECT count(*), count(item_id), sum(quantity), sum(amount), min(line_number), max(line_number)
  FROM ns.purchase_order_lines;
SELECT id, line_number, item_id, description, quantity, unit_price, amount, unit_of_measure
  FROM ns.purchase_order_lines WHERE purchase_order_id IN ('5021', '5024', '5057') ORDER BY id;
-- raw is the SuiteQL row: lower-case keys, strings, no NULL members
SELECT raw FROM ns.purchase_order_lines WHERE id = '5021/3';

-- what was sent: one SuiteQL query, paged by offset, sorted by id
\set ECHO none
\i sql/upstream_helpers.psql
\set ECHO all
SELECT explain_upstream($$SELECT number, vendor_name FROM ns.purchase_orders WHERE status = 'open'$$);
SELECT explain_upstream('SELECT id FROM ns.purchase_order_lines LIMIT 3');

-- instants around the 2024 daylight-saving changes (the sandbox puts orders
-- PO1031..PO1038 there): NetSuite compares wall-clock DATEs, so filters send
-- wall-clock TO_DATE literals in the server's time_zone
SELECT number, updated_at, raw->>'lastmodifieddate' AS wall_clock
  FROM ns.purchase_orders WHERE number BETWEEN 'PO1031' AND 'PO1038' ORDER BY updated_at, number;
-- spring forward: exact, the literal is the wall-clock time after the gap
SELECT explain_upstream($$SELECT number FROM ns.purchase_orders WHERE updated_at >= '2024-03-10 10:00:00+00'$$);
SELECT number FROM ns.purchase_orders WHERE updated_at >= '2024-03-10 10:00:00+00' AND updated_at < '2024-03-10 11:00:00+00' ORDER BY number;
-- fall back: 01:30 PDT and 01:30 PST are the same wall clock upstream; the
-- range is widened by the hour and PostgreSQL keeps the right rows
SELECT explain_upstream($$SELECT number FROM ns.purchase_orders WHERE updated_at > '2024-11-03 08:30:00+00' AND updated_at <= '2024-11-03 09:30:00+00'$$);
SELECT number, updated_at FROM ns.purchase_orders
 WHERE updated_at > '2024-11-03 08:30:00+00' AND updated_at <= '2024-11-03 09:30:00+00' ORDER BY number;
SELECT number, updated_at FROM ns.purchase_orders WHERE updated_at = '2024-11-03 09:30:00+00' ORDER BY number;
-- <> is not sent near a fall-back; fractions of a second widen the range
SELECT explain_upstream($$SELECT number FROM ns.purchase_orders WHERE updated_at <> '2024-11-03 09:30:00+00'$$);
SELECT explain_upstream($$SELECT number FROM ns.purchase_orders WHERE updated_at < '2024-03-10 10:00:00.5+00'$$);

-- errors: clear, with request ids, never a secret
-- a wrong token secret: 401 INVALID_LOGIN
ALTER USER MAPPING FOR CURRENT_USER SERVER ns OPTIONS (SET token_secret 'canary-wrong-secret');
SELECT * FROM show_error('SELECT count(*) FROM ns.vendors');
-- the realm is the account id: another account is rejected
ALTER USER MAPPING FOR CURRENT_USER SERVER ns OPTIONS (SET token_secret 'sandbox token/secret+1');
ALTER SERVER ns OPTIONS (SET account_id '7654321');
SELECT * FROM show_error('SELECT count(*) FROM ns.vendors');
-- lower case with "-" gives the same realm as 1234567_SB1
ALTER SERVER ns OPTIONS (SET account_id '1234567-sb1');
SELECT count(*) FROM ns.vendors;
-- a static bearer token
ALTER USER MAPPING FOR CURRENT_USER SERVER ns
  OPTIONS (DROP consumer_key, DROP consumer_secret, DROP token_id, DROP token_secret, ADD token 'sandbox-bearer-token');
SELECT count(*) FROM ns.items;
ALTER USER MAPPING FOR CURRENT_USER SERVER ns OPTIONS (SET token 'canary-expired-token');
SELECT * FROM show_error('SELECT count(*) FROM ns.items');
-- credentials NetSuite does not take
ALTER USER MAPPING FOR CURRENT_USER SERVER ns OPTIONS (DROP token, ADD username 'u', ADD password 'canary-pw');
SELECT * FROM show_error('SELECT count(*) FROM ns.items');
SELECT 1 AS still_usable;

DROP SERVER ns CASCADE;

-- Transport options: timeouts, retries, limits, TLS.  Checked when set,
-- without network I/O (the server below names a host that cannot exist).
\set VERBOSITY default
CREATE SERVER t FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url 'https://erp.invalid/bc', company_id 'c1',
           connect_timeout '10', request_timeout '120', low_speed_limit '100',
           low_speed_time '30', max_retries '5', retry_max_wait '20',
           max_response_bytes '1048576', max_pages '500');
SELECT unnest(srvoptions) FROM pg_foreign_server WHERE srvname = 't' ORDER BY 1;
-- out of range, not a number: the message names the option and the range
ALTER SERVER t OPTIONS (SET connect_timeout '0');
ALTER SERVER t OPTIONS (SET request_timeout '1 minute');
ALTER SERVER t OPTIONS (SET max_retries '11');
ALTER SERVER t OPTIONS (SET max_retries '-1');
ALTER SERVER t OPTIONS (SET retry_max_wait '3601');
ALTER SERVER t OPTIONS (SET max_response_bytes '1023');
ALTER SERVER t OPTIONS (SET max_response_bytes '99999999999999999999');
ALTER SERVER t OPTIONS (SET max_pages '');
ALTER SERVER t OPTIONS (SET low_speed_limit '1e3');
ALTER SERVER t OPTIONS (ADD max_concurrency '17');
ALTER SERVER t OPTIONS (ADD max_concurrency '4');
-- zero retries and zero backoff budget are allowed
ALTER SERVER t OPTIONS (SET max_retries '0', SET retry_max_wait '0');
-- transport options belong to the server
CREATE FOREIGN TABLE tt (id text) SERVER t OPTIONS ("table" 'vendors', request_timeout '5');
CREATE USER MAPPING FOR CURRENT_USER SERVER t OPTIONS (token 'abcdefgh', max_retries '1');

-- ca_file: an absolute path, superuser only (it changes what TLS trusts)
ALTER SERVER t OPTIONS (ADD ca_file 'certs/ca.pem');
ALTER SERVER t OPTIONS (ADD ca_file '/etc/ssl/certs/ca-certificates.crt');
CREATE ROLE regress_ufdw_transport;
GRANT USAGE ON FOREIGN DATA WRAPPER unified_fdw TO regress_ufdw_transport;
SET ROLE regress_ufdw_transport;
CREATE SERVER t2 FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url 'https://erp.invalid/bc', company_id 'c1',
           ca_file '/tmp/evil.pem');
-- the other transport options are not privileged
CREATE SERVER t2 FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'dynamics365_bc', instance_url 'https://erp.invalid/bc', company_id 'c1',
           request_timeout '30', max_retries '1');
DROP SERVER t2;
RESET ROLE;

-- CR, LF and other control characters never reach a header or URL
ALTER SERVER t OPTIONS (SET company_id E'c1\r\nX-Injected: 1');
ALTER SERVER t OPTIONS (ADD tenant_id E'x\ny');
ALTER SERVER t OPTIONS (ADD sap_client E'100\r');
ALTER SERVER t OPTIONS (SET instance_url E'https://erp.invalid/bc\r\nX-Injected: 1');
ALTER SERVER t OPTIONS (SET ca_file E'/etc/ssl/x\n.pem');
CREATE USER MAPPING FOR CURRENT_USER SERVER t OPTIONS (token E'abc\r\nX-Injected: 1');
CREATE USER MAPPING FOR CURRENT_USER SERVER t OPTIONS (api_key E'abc\tdef');

DROP SERVER t CASCADE;
REVOKE USAGE ON FOREIGN DATA WRAPPER unified_fdw FROM regress_ufdw_transport;
DROP ROLE regress_ufdw_transport;

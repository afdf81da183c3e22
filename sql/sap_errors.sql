--
-- Upstream errors against the sandbox SAP S/4HANA: SAP's error JSON becomes a
-- readable error (message, transaction id and our request id in DETAIL, the
-- request line in CONTEXT); rejected credentials of all three kinds.
--
\getenv sap UFDW_SAP_URL
SET unified_regress.sap = :'sap';

-- show_error(): an error with its SQLSTATE, request and transaction ids masked,
-- and whether a secret appears anywhere in it
\set ECHO none
\i sql/upstream_helpers.psql
\set ECHO all

CREATE SERVER sap_err FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'sap_s4hana', instance_url :'sap', sap_client '100', allow_insecure 'true');
CREATE USER MAPPING FOR CURRENT_USER SERVER sap_err
  OPTIONS (username 'sandbox-user', password 'sandbox-password');
CREATE FOREIGN TABLE sap_err_orders (id text, status text)
  SERVER sap_err OPTIONS ("table" 'purchase_orders');

-- SAP answers 400 with its error JSON.  unified_fdw sends no $filter yet, so the
-- body is taken from the sandbox's own answer to an ill-typed $filter (a string
-- property compared with a bare number) and served once through a fault switch
\! curl -sS -u sandbox-user:sandbox-password -H 'Accept: application/json' "$UFDW_SAP_URL/sap/opu/odata/sap/API_PURCHASEORDER_PROCESS_SRV/A_PurchaseOrder?\$filter=PurchaseOrder%20eq%204500000001" | python3 -c 'import json, sys; print(json.dumps({"match": "A_PurchaseOrder?", "status": 400, "body": json.load(sys.stdin)}))' | curl -fsS -o /dev/null -H 'Content-Type: application/json' -d @- "$UFDW_SAP_URL/_sandbox/faults"
SELECT * FROM show_error('SELECT * FROM sap_err_orders');
-- 403: the user lacks the authorization for the entity set
\! curl -fsS -o /dev/null -X POST -d '{"denied_entity_sets": ["A_PurchaseOrder"]}' "$UFDW_SAP_URL/_sandbox/config"
SELECT * FROM show_error('SELECT * FROM sap_err_orders');
\! curl -fsS -o /dev/null -X POST "$UFDW_SAP_URL/_sandbox/reset"

-- rejected credentials: a wrong password (SAP's logon page is HTML)
ALTER USER MAPPING FOR CURRENT_USER SERVER sap_err
  OPTIONS (SET password 'canary-wrong-password');
SELECT * FROM show_error('SELECT * FROM sap_err_orders');
-- the right password in another client
ALTER USER MAPPING FOR CURRENT_USER SERVER sap_err
  OPTIONS (SET password 'sandbox-password');
ALTER SERVER sap_err OPTIONS (SET sap_client '200');
SELECT * FROM show_error('SELECT * FROM sap_err_orders');
ALTER SERVER sap_err OPTIONS (SET sap_client '100');
SELECT count(*) > 0 AS right_client_works FROM sap_err_orders;

-- a wrong API key
ALTER USER MAPPING FOR CURRENT_USER SERVER sap_err
  OPTIONS (DROP username, DROP password, ADD api_key 'canary-wrong-key');
SELECT * FROM show_error('SELECT * FROM sap_err_orders');

-- a wrong OAuth client secret, and a wrong client id
ALTER USER MAPPING FOR CURRENT_USER SERVER sap_err
  OPTIONS (DROP api_key, ADD client_id 'sandbox-client-id',
           ADD client_secret 'canary-wrong-secret');
SELECT * FROM show_error('SELECT * FROM sap_err_orders');
ALTER USER MAPPING FOR CURRENT_USER SERVER sap_err
  OPTIONS (SET client_id 'unknown-client', SET client_secret 'sandbox-client-secret');
SELECT * FROM show_error('SELECT * FROM sap_err_orders');

-- a static bearer token is not a way into SAP
ALTER USER MAPPING FOR CURRENT_USER SERVER sap_err
  OPTIONS (DROP client_id, DROP client_secret, ADD token 'canary-token');
SELECT * FROM show_error('SELECT * FROM sap_err_orders');

-- sap_client must be digits
ALTER SERVER sap_err OPTIONS (SET sap_client '1 0');

SELECT 1 AS still_usable;
DROP SERVER sap_err CASCADE;

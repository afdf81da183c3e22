--
-- OData V2 values at the edges, served through the sandbox SAP's fault switch
-- (a 200 with a hand-written page): /Date()/ far in the past and future
-- (SAP's 9999-12-31 "unlimited"), before 1970, with an offset, out of range
-- and malformed; JSON null, "" and decimals as strings.
--
\getenv sap UFDW_SAP_URL
CREATE SERVER sap_values FOREIGN DATA WRAPPER unified_fdw
  OPTIONS (system 'sap_s4hana', instance_url :'sap', allow_insecure 'true');
CREATE USER MAPPING FOR CURRENT_USER SERVER sap_values
  OPTIONS (username 'sandbox-user', password 'sandbox-password');
CREATE FOREIGN TABLE sap_values_orders (number text, status text, vendor_name text,
  order_date date, created_at timestamptz, updated_at timestamptz)
  SERVER sap_values OPTIONS ("table" 'purchase_orders');
CREATE FOREIGN TABLE sap_values_vendors (id text, status text)
  SERVER sap_values OPTIONS ("table" 'vendors');
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

-- the next request for A_PurchaseOrder gets this page instead of the real one
\set page '{"match": "A_PurchaseOrder?", "status": 200, "body": {"d": {"results": [{"PurchaseOrder": "1", "PurchasingProcessingStatus": "05", "AddressName": "", "PurchaseOrderDate": "/Date(253402214400000)/", "CreationDate": "/Date(-62135596800000)/", "LastChangeDateTime": "/Date(1709543730123+0100)/"}, {"PurchaseOrder": "2", "PurchasingProcessingStatus": "99", "AddressName": "x", "PurchaseOrderDate": "/Date(-1)/", "CreationDate": "/Date(-1)/", "LastChangeDateTime": "/Date(0-0130)/"}, {"PurchaseOrder": "3", "PurchasingProcessingStatus": "", "AddressName": null, "PurchaseOrderDate": null, "CreationDate": "/Date(-210866803200000)/", "LastChangeDateTime": "/Date(9224318015999999)/"}]}}}'
\setenv SAP_PAGE :page
\! curl -fsS -o /dev/null -H 'Content-Type: application/json' -d "$SAP_PAGE" "$UFDW_SAP_URL/_sandbox/faults"
SELECT * FROM sap_values_orders;

-- out of range and malformed values are errors naming the column and value
\set page '{"match": "A_PurchaseOrder?", "status": 200, "body": {"d": {"results": [{"PurchaseOrder": "1", "LastChangeDateTime": "/Date(9224318016000000)/"}]}}}'
\setenv SAP_PAGE :page
\! curl -fsS -o /dev/null -H 'Content-Type: application/json' -d "$SAP_PAGE" "$UFDW_SAP_URL/_sandbox/faults"
SELECT * FROM sap_values_orders;
\set page '{"match": "A_PurchaseOrder?", "status": 200, "body": {"d": {"results": [{"PurchaseOrder": "1", "PurchaseOrderDate": "/Date(-210866803200001)/"}]}}}'
\setenv SAP_PAGE :page
\! curl -fsS -o /dev/null -H 'Content-Type: application/json' -d "$SAP_PAGE" "$UFDW_SAP_URL/_sandbox/faults"
SELECT * FROM sap_values_orders;
\set page '{"match": "A_PurchaseOrder?", "status": 200, "body": {"d": {"results": [{"PurchaseOrder": "1", "CreationDate": "/Date(17095437301x)/"}]}}}'
\setenv SAP_PAGE :page
\! curl -fsS -o /dev/null -H 'Content-Type: application/json' -d "$SAP_PAGE" "$UFDW_SAP_URL/_sandbox/faults"
SELECT * FROM sap_values_orders;
\set page '{"match": "A_PurchaseOrder?", "status": 200, "body": {"d": {"results": [{"PurchaseOrder": "1", "LastChangeDateTime": "/Date(1709543730123+01)/"}]}}}'
\setenv SAP_PAGE :page
\! curl -fsS -o /dev/null -H 'Content-Type: application/json' -d "$SAP_PAGE" "$UFDW_SAP_URL/_sandbox/faults"
SELECT * FROM sap_values_orders;
-- a V4-style page (no "d") is not an OData V2 page
\set page '{"match": "A_PurchaseOrder?", "status": 200, "body": {"value": [{"PurchaseOrder": "1"}]}}'
\setenv SAP_PAGE :page
\! curl -fsS -o /dev/null -H 'Content-Type: application/json' -d "$SAP_PAGE" "$UFDW_SAP_URL/_sandbox/faults"
SELECT * FROM sap_values_orders;

-- blocked flags: any true blocks; missing or null flags count as false
\set page '{"match": "A_Supplier?", "status": 200, "body": {"d": {"results": [{"Supplier": "1", "PostingIsBlocked": false, "PurchasingIsBlocked": true}, {"Supplier": "2", "PostingIsBlocked": true, "PurchasingIsBlocked": false}, {"Supplier": "3", "PostingIsBlocked": false, "PurchasingIsBlocked": false}, {"Supplier": "4", "PostingIsBlocked": null}]}}}'
\setenv SAP_PAGE :page
\! curl -fsS -o /dev/null -H 'Content-Type: application/json' -d "$SAP_PAGE" "$UFDW_SAP_URL/_sandbox/faults"
SELECT * FROM sap_values_vendors;

\! curl -fsS -o /dev/null -X POST "$UFDW_SAP_URL/_sandbox/reset"
DROP SERVER sap_values CASCADE;

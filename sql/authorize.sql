--
-- unified.authorize() and unified.complete_authorization(): argument checks,
-- made before anything is recorded or sent (no network I/O here; the flow
-- itself is in test/t/026_authorize.pl).
--
\set app '{"client_id": "app-id", "client_secret": "app-s3cret"}'
\set bc_url 'https://api.businesscentral.dynamics.com/v2.0/contoso/production'
\set bc_opts '{"company_id": "bb6d48b6-c7b2-4a38-9a93-ad5506407f12", "tenant_id": "contoso"}'
\set cb 'https://app.example.com/unified/callback'

SELECT system, browser_auth_methods FROM unified.systems ORDER BY system;

-- systems, arguments
SELECT * FROM unified.authorize('sap_s4hana', 'https://x.s4hana.cloud.sap', :'app', :'cb');
SELECT * FROM unified.authorize('no_such_system', :'bc_url', :'app', :'cb');
SELECT * FROM unified.authorize(NULL, :'bc_url', :'app', :'cb');
SELECT * FROM unified.authorize('dynamics365_bc', NULL, :'app', :'cb');
SELECT * FROM unified.authorize('dynamics365_bc', :'bc_url', NULL, :'cb');
SELECT * FROM unified.authorize('dynamics365_bc', :'bc_url', :'app', NULL);
SELECT * FROM unified.authorize('dynamics365_bc', :'bc_url', '[1]', :'cb');

-- the app's credentials: client_id and client_secret, nothing else
SELECT * FROM unified.authorize('dynamics365_bc', :'bc_url', '{"client_id": "a"}', :'cb', NULL, :'bc_opts');
SELECT * FROM unified.authorize('dynamics365_bc', :'bc_url', '{"client_id": "a", "client_secret": "b", "refresh_token": "c"}', :'cb', NULL, :'bc_opts');
SELECT * FROM unified.authorize('dynamics365_bc', :'bc_url', '{"username": "u", "password": "p"}', :'cb', NULL, :'bc_opts');

-- redirect URIs: absolute https (http only on loopback), no fragment
SELECT * FROM unified.authorize('dynamics365_bc', :'bc_url', :'app', 'http://app.example.com/cb', NULL, :'bc_opts');
SELECT * FROM unified.authorize('dynamics365_bc', :'bc_url', :'app', 'https://app.example.com/cb#x', NULL, :'bc_opts');
SELECT * FROM unified.authorize('dynamics365_bc', :'bc_url', :'app', '/cb', NULL, :'bc_opts');
SELECT * FROM unified.authorize('dynamics365_bc', :'bc_url', :'app', 'http://127.0.0.1.example.com/cb', NULL, :'bc_opts');

-- options and name, as unified.connect checks them
SELECT * FROM unified.authorize('dynamics365_bc', :'bc_url', :'app', :'cb', NULL, '{"tenant_id": "contoso"}');
SELECT * FROM unified.authorize('dynamics365_bc', :'bc_url', :'app', :'cb', NULL, '{"company_id": "bb6d48b6-c7b2-4a38-9a93-ad5506407f12"}');
SELECT * FROM unified.authorize('dynamics365_bc', :'bc_url', :'app', :'cb', 'Bad Name', :'bc_opts');
SELECT * FROM unified.authorize('dynamics365_bc', :'bc_url', :'app', :'cb', NULL, '{"company_id": "x", "tenant_id": "t", "client_secret": "s"}');
SELECT * FROM unified.authorize('dynamics365_bc', :'bc_url', :'app', :'cb', NULL, '{"company_id": "x", "tenant_id": "t", "authorization_url": "http://login.example.com/authorize"}');

-- a started authorization: the URL, a state, expiry in ten minutes
SELECT regexp_replace(regexp_replace(authorization_url, 'state=[A-Za-z0-9_-]{43}&', 'state=<state>&'),
                      'code_challenge=[A-Za-z0-9_-]{43}&', 'code_challenge=<challenge>&') AS url,
       length(state) AS state_length, expires_at - now() AS valid_for
  FROM unified.authorize('dynamics365_bc', :'bc_url', :'app', :'cb', 'acme', :'bc_opts');
SELECT regexp_replace(regexp_replace(authorization_url, 'state=[A-Za-z0-9_-]{43}&', 'state=<state>&'),
                      'code_challenge=[A-Za-z0-9_-]{43}&', 'code_challenge=<challenge>&') AS url
  FROM unified.authorize('netsuite', 'https://1234567-sb1.suitetalk.api.netsuite.com', :'app', :'cb', NULL,
                         '{"account_id": "1234567_SB1"}');

-- the challenge is BASE64URL(SHA-256(verifier)) (RFC 7636 4.2); the
-- verifier is 43 characters of base64url; the row is the caller's
SELECT authorization_url AS url, state AS st
  FROM unified.authorize('dynamics365_bc', :'bc_url', :'app', :'cb', 'acme2', :'bc_opts') \gset
SELECT code_verifier ~ '^[A-Za-z0-9_-]{43}$' AS verifier_ok,
       substring(:'url' FROM 'code_challenge=([^&]+)') =
         rtrim(translate(encode(sha256(convert_to(code_verifier, 'UTF8')), 'base64'), '+/', '-_'), '=')
         AS challenge_is_s256,
       owner = current_user AS mine, name, redirect_uri, credentials, options
  FROM unified.pending_authorizations WHERE state = :'st';

-- another role sees none of them, and cannot complete them
CREATE ROLE regress_ufdw_authz;
SET ROLE regress_ufdw_authz;
SELECT count(*) FROM unified.pending_authorizations;
SELECT unified.complete_authorization(:'st', 'some-code');
RESET ROLE;

-- completing: arguments, then the authorization server's error
SELECT unified.complete_authorization(NULL, 'some-code');
SELECT unified.complete_authorization(:'st');
SELECT unified.complete_authorization('no-such-state', 'some-code');
SELECT unified.complete_authorization(:'st', error => 'access_denied',
                                      error_description => 'AADSTS65004: User declined to consent to access the app.');
-- a state is single-use, even when its completion failed
SELECT unified.complete_authorization(:'st', 'some-code');

DELETE FROM unified.pending_authorizations;
DROP ROLE regress_ufdw_authz;

# Authentication against the sandbox Business Central: OAuth 2.0 client
# credentials (token cached, refreshed before expiry and after revocation,
# dropped on ALTER USER MAPPING), HTTP Basic, and rejected credentials that
# give a clear error and never show a secret.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use UfdwTest;

my $sb = start_sandbox('bc');
my $node = new_node('auth', log_min_messages => 'debug1');
bc_connect($node, $sb, 'bc');

sub token_requests
{
	return scalar grep { $_->{method} eq 'POST' && $_->{path} =~ m{/oauth2/v2.0/token$} }
	  @{ sandbox_requests($sb) };
}

clear_sandbox_requests($sb);
$node->safe_psql('postgres', 'SELECT count(*) FROM bc.vendors; SELECT count(*) FROM bc.items;');
is(token_requests(), 1, 'one token serves several scans in a session');

# a token is renewed ahead of its expiry
sandbox_call($sb, 'POST', '/_sandbox/config', { token_ttl => 2 });
clear_sandbox_requests($sb);
is($node->safe_psql('postgres', q{
	SELECT count(*) > 0 FROM bc.vendors;
	SELECT pg_sleep(2.2);
	SELECT count(*) > 0 FROM bc.vendors;
}), "t\n\nt", 'scans succeed across token expiry');
my @api401 = grep { $_->{status} == 401 } @{ sandbox_requests($sb) };
is(scalar(@api401), 0, 'no request was sent with an expired token');
cmp_ok(token_requests(), '>=', 2, 'a new token was fetched');
sandbox_call($sb, 'POST', '/_sandbox/config', { token_ttl => 3599 });

# a revoked token is replaced once, transparently
$node->safe_psql('postgres', 'SELECT count(*) FROM bc.vendors');
sandbox_call($sb, 'POST', '/_sandbox/revoke', {});
is($node->safe_psql('postgres', 'SELECT count(*) > 0 FROM bc.vendors'), 't',
	'a revoked token is replaced after a 401');

# a wrong client secret: clear error, no secret anywhere
my $canary = 'canary-Zq7rT0pSecret';
my ($ret, $out, $err) = $node->psql('postgres', qq{
	SELECT 'before', count(*) > 0 FROM bc.vendors;
	ALTER USER MAPPING FOR CURRENT_USER SERVER bc OPTIONS (SET client_secret '$canary');
	SELECT count(*) FROM bc.vendors;
}, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($out, qr/before\|t/, 'the first scan in the session used the good secret');
isnt($ret, 0, 'the scan fails once the mapping has a wrong secret (cached token dropped)');
like($err, qr/ERROR:  HV00N: credentials for server "bc" were rejected: HTTP status 401/,
	'the error says the credentials were rejected, with SQLSTATE HV00N');
like($err, qr/DETAIL:  Upstream error: invalid_client: AADSTS7000215/, 'DETAIL has the upstream error');
like($err, qr/Request id: [0-9a-f-]{36}/, 'DETAIL has our request id');
like($err, qr/HINT:  .*client_secret/, 'HINT says what to fix');
like($err, qr/CONTEXT:  upstream request: POST \Q$sb->{url}\E\/tap-tenant\/oauth2\/v2.0\/token/,
	'CONTEXT has the request line');
unlike($err, qr/\Q$canary\E/, 'the secret is not in the error');
# PostgreSQL itself logs statements (log_statement), including the ALTER
# USER MAPPING above; what unified_fdw logs must not hold the secret
my @own = grep { !/LOG:  statement: / } split /\n/, slurp_file($node->logfile);
unlike(join("\n", @own), qr/\Q$canary\E/, 'the secret is not in what unified_fdw logged');

# HTTP Basic: Business Central on-premises (https://host:port/<serverInstance>);
# online Business Central refuses it, as the real service does
$node->safe_psql('postgres', qq{
	CREATE SERVER basic FOREIGN DATA WRAPPER unified_fdw OPTIONS (
		system 'dynamics365_bc', instance_url '$sb->{url}/BC',
		company_id '@{[bc_company]}', allow_insecure 'true');
	CREATE USER MAPPING FOR CURRENT_USER SERVER basic OPTIONS (
		username 'sandbox-user', password 'sandbox-password');
	CREATE SCHEMA basic;
	IMPORT FOREIGN SCHEMA unified LIMIT TO (vendors) FROM SERVER basic INTO basic;
});
is($node->safe_psql('postgres', 'SELECT count(*) > 0 FROM basic.vendors'), 't', 'HTTP Basic works');
$node->safe_psql('postgres', "ALTER USER MAPPING FOR CURRENT_USER SERVER basic OPTIONS (SET password '$canary')");
$node->safe_psql('postgres', qq{
	CREATE SERVER basic_online FOREIGN DATA WRAPPER unified_fdw OPTIONS (
		system 'dynamics365_bc', instance_url '$sb->{url}/v2.0/tap-tenant/production',
		company_id '@{[bc_company]}', allow_insecure 'true');
	CREATE USER MAPPING FOR CURRENT_USER SERVER basic_online OPTIONS (
		username 'sandbox-user', password 'sandbox-password');
	CREATE FOREIGN TABLE basic_online_vendors (id text) SERVER basic_online OPTIONS ("table" 'vendors');
});
($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM basic_online_vendors');
like($err, qr/HTTP status 401/, 'online Business Central refuses HTTP Basic');
($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM basic.vendors');
like($err, qr/credentials for server "basic" were rejected while reading "vendors": HTTP status 401/,
	'a wrong password is reported as rejected credentials');
like($err, qr/Authentication_InvalidCredentials/, 'with the upstream error code');
unlike($err, qr/\Q$canary\E/, 'without the password');

# 401s are told apart: a token that expired and could not be renewed
# (the secret was rotated upstream meanwhile) ...
$node->safe_psql('postgres', qq{
	CREATE SERVER bc3 FOREIGN DATA WRAPPER unified_fdw OPTIONS (
		system 'dynamics365_bc', instance_url '$sb->{url}/v2.0/tap-tenant/production',
		company_id '@{[bc_company]}', token_url '$sb->{url}/tap-tenant/oauth2/v2.0/token',
		allow_insecure 'true');
	CREATE USER MAPPING FOR CURRENT_USER SERVER bc3 OPTIONS (
		client_id 'sandbox-client-id', client_secret 'sandbox-client-secret');
	CREATE FOREIGN TABLE bc3_vendors (id text) SERVER bc3 OPTIONS ("table" 'vendors');
	CREATE FOREIGN TABLE bc3_items (id text) SERVER bc3 OPTIONS ("table" 'items');
});
sandbox_call($sb, 'POST', '/_sandbox/config', { token_ttl => 2 });
my ($r1, $o1, $e1) = $node->psql('postgres', qq{
	SELECT count(*) > 0 FROM bc3_vendors;
	COPY (SELECT '{"client_secret": "rotated-secret"}') TO PROGRAM
	  'curl -sf -X POST -H "Content-Type: application/json" --data-binary \@- $sb->{url}/_sandbox/config';
	SELECT pg_sleep(2.2);
	SELECT count(*) FROM bc3_vendors;
}, on_error_stop => 0, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($e1, qr/HV00N: access token for server "bc3" expired or was revoked, and could not be renewed: HTTP status 401/,
	'an expired token whose renewal fails is named as such');
like($e1, qr/HINT:  The identity provider no longer accepts the client credentials/,
	'with a hint to renew the client secret');
# ... a fresh token that the API refuses too (the app was disabled upstream) ...
sandbox_call($sb, 'POST', '/_sandbox/config',
	{ token_ttl => 3599, client_secret => 'sandbox-client-secret', entra_app_enabled => JSON::PP::false });
($r1, $o1, $e1) = $node->psql('postgres', 'SELECT count(*) FROM bc3_items',
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($e1, qr/HV00N: server "bc3" requires reauthorization to read "bc3_items": a new access token was refused too \(HTTP status 401\)/,
	'a refused fresh token asks for reauthorization');
like($e1, qr/Microsoft Entra Applications/, 'with a hint where to authorize the app again');
sandbox_call($sb, 'POST', '/_sandbox/config', { entra_app_enabled => JSON::PP::true });
# ... and 403: authenticated, but without permission for that table
sandbox_call($sb, 'POST', '/_sandbox/config', { denied_entity_sets => ['items'] });
($r1, $o1, $e1) = $node->psql('postgres', 'SELECT count(*) FROM bc3_items',
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($e1, qr/42501: server "bc3" denied access to "bc3_items": HTTP status 403/, '403 names the table');
like($e1, qr/HINT:  The credentials are valid but lack permission/, '403 hint');
sandbox_call($sb, 'POST', '/_sandbox/config', { denied_entity_sets => [] });
is($node->safe_psql('postgres', 'SELECT count(*) > 0 FROM bc3_items'), 't', 'access restored');

# Microsoft Entra's documented code for an expired client secret
# (AADSTS7000222, in the token response's error_codes) is named as such
sandbox_call($sb, 'POST', '/_sandbox/faults', { match => 'oauth2', status => 401, body => {
	error => 'invalid_client', error_codes => [7000222],
	error_description => "AADSTS7000222: The provided client secret keys for app 'x' are out of date.\r\nTrace ID: 1" } });
$node->safe_psql('postgres', 'ALTER USER MAPPING FOR CURRENT_USER SERVER bc3 OPTIONS (SET client_secret \'sandbox-client-secret\')');
($r1, $o1, $e1) = $node->psql('postgres', 'SELECT count(*) FROM bc3_items',
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($e1, qr/HV00N: client secret for server "bc3" has expired: HTTP status 401/,
	'Entra error code 7000222: the client secret has expired');
like($e1, qr/HINT:  Create a new client secret/, 'with a hint to create a new one');
sandbox_call($sb, 'DELETE', '/_sandbox/faults');

# the session is still usable
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the session stays usable');

done_testing();

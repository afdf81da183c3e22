# NetSuite: full scans of the four tables equal the sandbox's own tables
# (joined independently by test/check_fullscan.py) across many pages, with
# an account on Pacific time whose data holds both 2024 daylight-saving
# changes (instants come as wall-clock Oracle DATEs of that zone); every
# request the extension signs is accepted, retries and rescans included,
# while a replayed or tampered one is rejected; 401 and 429 become clear
# errors with request ids, and no secret shows.
use strict;
use warnings;
use HTTP::Tiny;
use PostgreSQL::Test::Utils;
use Test::More;
use UfdwTest;

my $sb = start_sandbox('netsuite', '--orders', '250', '--time-zone', 'America/Los_Angeles');
my $node = new_node('netsuite', log_min_messages => 'debug1');
my $canary = 'canary-Tba7Secret';
$node->safe_psql('postgres', qq{
	CREATE SERVER ns FOREIGN DATA WRAPPER unified_fdw OPTIONS (
		system 'netsuite', instance_url '$sb->{url}', account_id '1234567_SB1',
		allow_insecure 'true', page_size '37', time_zone 'America/Los_Angeles');
	CREATE USER MAPPING FOR CURRENT_USER SERVER ns OPTIONS (
		consumer_key 'sandbox-consumer-key', consumer_secret 'sandbox-consumer-secret',
		token_id 'sandbox-token-id', token_secret 'sandbox token/secret+1');
	CREATE SCHEMA ns;
	IMPORT FOREIGN SCHEMA unified FROM SERVER ns INTO ns;
});

my @all;
for my $table (qw(items purchase_order_lines purchase_orders vendors))
{
	clear_sandbox_requests($sb);
	# instants come out in the session's zone; the oracle compares instants
	my $rows = check_fullscan($node, $sb, 'netsuite', "ns.$table", $table, 'America/New_York');

	my @reqs = @{ sandbox_requests($sb) };
	push @all, @reqs;
	my $nrows = () = $rows =~ /\n/g;
	$nrows++ if length $rows;
	my $pages = $nrows ? int(($nrows + 36) / 37) : 1;
	is(scalar(@reqs), $pages, "$table: $nrows rows in $pages requests");
	my @offsets = map { $_->{query} =~ /^limit=37&offset=(\d+)$/ ? $1 : 'bad' } @reqs;
	is(join(',', @offsets), join(',', map { 37 * $_ } 0 .. $pages - 1),
		"$table: limit 37, offsets multiples of it");
	is(scalar(grep { $_->{status} == 200 } @reqs), scalar(@reqs), "$table: every signed request accepted");
}
# the instants at the DST changes, read back: the spring-forward gap has no
# wall-clock time; the repeated fall-back hour reads as its second pass
is($node->safe_psql('postgres', q{
	SET TimeZone = 'UTC';
	SELECT string_agg(number || '=' || to_char(updated_at, 'MM-DD HH24:MI:SS'), ' ' ORDER BY number)
	  FROM ns.purchase_orders WHERE number BETWEEN 'PO1031' AND 'PO1038'}),
	'PO1031=03-10 09:59:59 PO1032=03-10 10:00:00 PO1033=03-10 10:30:00 PO1034=11-03 09:00:00 '
	. 'PO1035=11-03 09:30:00 PO1036=11-03 09:30:00 PO1037=11-03 10:00:00 PO1038=11-03 07:59:59',
	'instants at the daylight-saving changes');
# the wall-clock TO_CHAR is what NetSuite accepts on a DATE; a zone is not
my $ora = sandbox_call($sb, 'GET', '/_sandbox/requests')->{requests};
ok(!grep({ ($_->{body} // '') =~ /TZH/ } @$ora), 'no request asks a DATE for its time zone');

my %nonces;
$nonces{$_}++ for map { ($_->{headers}{Authorization} // '') =~ /oauth_nonce="([^"]+)"/ ? $1 : 'none' } @all;
is(scalar(keys %nonces), scalar(@all), 'every request had its own nonce');
ok(!exists $nonces{none}, 'every request was signed with OAuth 1.0a');

# a rescan of the same query in the same second is signed afresh
clear_sandbox_requests($sb);
$node->safe_psql('postgres', 'SELECT count(*) FROM ns.vendors; SELECT count(*) FROM ns.vendors; SELECT count(*) FROM ns.vendors');
my @again = @{ sandbox_requests($sb) };
is(scalar(grep { $_->{status} == 200 } @again), scalar(@again), 'repeated identical requests are all accepted');

# a replayed request (same Authorization, same nonce) is rejected
my $http = HTTP::Tiny->new(timeout => 30);
my $orig = $again[0];
my %hdr = map { $_ => $orig->{headers}{$_} } grep { /^(Authorization|Prefer|Content-Type)$/i } keys %{ $orig->{headers} };
my $replay = $http->request('POST', "$sb->{url}$orig->{path}?$orig->{query}", { headers => \%hdr, content => $orig->{body} });
is($replay->{status}, 401, 'a replayed request is rejected');
like($replay->{content}, qr/"o:errorCode":\s*"INVALID_LOGIN"/, 'with INVALID_LOGIN');
# a tampered one (another offset under the same signature) is rejected too
(my $tampered_auth = $hdr{Authorization}) =~ s/oauth_nonce="[^"]+"/oauth_nonce="fresh0nce"/;
my $tamper = $http->request('POST', "$sb->{url}$orig->{path}?limit=37&offset=37",
	{ headers => { %hdr, Authorization => $tampered_auth }, content => $orig->{body} });
is($tamper->{status}, 401, 'a tampered request is rejected');
my $audit = sandbox_call($sb, 'GET', '/_sandbox/login_audit')->{entries};
is_deeply([ map { $_->{reason} } @$audit[-2, -1] ], [ 'nonce already used', 'bad signature' ],
	'the sandbox saw a replay and a bad signature');

# 429 CONCURRENCY_LIMIT_EXCEEDED once: a successful retry (with a new
# signature) or a clear error with request ids
clear_sandbox_requests($sb);
sandbox_call($sb, 'POST', '/_sandbox/faults', { status => 429, times => 1, match => 'suiteql' });
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM ns.items',
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
my @r429 = @{ sandbox_requests($sb) };
if ($ret == 0)
{
	is($out, '20', '429: retried successfully');
	is(scalar(grep { $_->{status} == 200 } @r429), scalar(@r429) - 1, '429: the retry was accepted');
}
else
{
	like($err, qr/ERROR:  HV000: could not fetch "items" from server "ns": HTTP status 429/, '429: a clear error');
	like($err, qr/DETAIL:  Upstream error: CONCURRENCY_LIMIT_EXCEEDED: .* Request id: [0-9a-f-]{36}; upstream request id: [0-9a-f-]{36}\./,
		'429: DETAIL has the upstream code and both request ids');
}
sandbox_call($sb, 'DELETE', '/_sandbox/faults');

# the real concurrency limit: two sessions against a limit of one
sandbox_call($sb, 'POST', '/_sandbox/config', { concurrency_limit => 1, processing_delay => 1.5 });
my $bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/started/, "\\echo started\nSELECT count(*) FROM ns.vendors;\n");
usleep_ms(400);
($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM ns.items');
like($err, qr/HTTP status 429/, 'past the concurrency limit: 429') if $ret != 0;
ok($ret != 0 || $out eq '20', 'past the concurrency limit: an error or a successful retry');
$bg->quit;
sandbox_call($sb, 'POST', '/_sandbox/config', { concurrency_limit => 5, processing_delay => 0 });

# 401 with a wrong token secret: clear, with request ids, without the secret
($ret, $out, $err) = $node->psql('postgres', qq{
	ALTER USER MAPPING FOR CURRENT_USER SERVER ns OPTIONS (SET token_secret '$canary');
	SELECT count(*) FROM ns.vendors;
}, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  HV00N: credentials for server "ns" were rejected while reading "vendors": HTTP status 401/,
	'401: rejected credentials, SQLSTATE HV00N');
like($err, qr/DETAIL:  Upstream error: INVALID_LOGIN: .* Request id: [0-9a-f-]{36}; upstream request id: [0-9a-f-]{36}\./,
	'401: DETAIL has INVALID_LOGIN and both request ids');
unlike($err, qr/\Q$canary\E|sandbox-consumer-secret|oauth_signature/, 'no secret or signature in the error');
# PostgreSQL logs statements itself (log_statement), continuation lines
# included; what unified_fdw logs must not hold a secret
my @own = grep { !/LOG:  statement: / } split /\n(?=\d{4}-\d\d-\d\d )/, slurp_file($node->logfile);
unlike(join("\n", @own), qr/\Q$canary\E|sandbox-consumer-secret|oauth_signature/,
	'no secret or signature in what unified_fdw logged');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the session stays usable');

# a static bearer token: a 401 is told apart by the structure of the
# WWW-Authenticate challenge (RFC 6750 section 3), never by its free text
$node->safe_psql('postgres', qq{
	CREATE SERVER nsb FOREIGN DATA WRAPPER unified_fdw OPTIONS (
		system 'netsuite', instance_url '$sb->{url}', account_id '1234567_SB1',
		allow_insecure 'true');
	CREATE USER MAPPING FOR CURRENT_USER SERVER nsb OPTIONS (token 'sandbox-bearer-token');
	CREATE FOREIGN TABLE nsb_vendors (id text) SERVER nsb OPTIONS ("table" 'vendors');
});
is($node->safe_psql('postgres', 'SELECT count(*) > 0 FROM nsb_vendors'), 't', 'a static bearer token works');
for my $case (
	[ 'Bearer realm="netsuite", error="invalid_token", error_description="The token is not valid after 2026-01-01T00:00:00Z"',
	  qr/HV00N: access token for server "nsb" expired or was revoked while reading "nsb_vendors": HTTP status 401/,
	  'error="invalid_token" (whatever its description says): the token is no longer valid' ],
	[ 'Basic realm="x", Bearer error=invalid_token',
	  qr/HV00N: access token for server "nsb" expired or was revoked while reading/,
	  'error=invalid_token as a token, in a second challenge' ],
	[ 'Bearer realm="expired-sessions"',
	  qr/HV00N: credentials for server "nsb" were rejected while reading "nsb_vendors": HTTP status 401/,
	  'no error parameter: rejected credentials, though the realm says "expired"' ],
	[ 'Bearer error="invalid_request", error_description="token expired"',
	  qr/HV00N: credentials for server "nsb" were rejected while reading/,
	  'error="invalid_request": not an invalid token, whatever the description says' ])
{
	my ($challenge, $re, $name) = @$case;
	sandbox_call($sb, 'POST', '/_sandbox/faults',
		{ match => 'suiteql', status => 401, headers => { 'WWW-Authenticate' => $challenge } });
	($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM nsb_vendors',
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($err, $re, $name);
	sandbox_call($sb, 'DELETE', '/_sandbox/faults');
}

sub usleep_ms { select(undef, undef, undef, $_[0] / 1000) }

done_testing();

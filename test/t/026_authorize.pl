# Authorizing a connection in the browser: unified.authorize() and
# unified.complete_authorization() (OAuth 2.0 authorization code grant with
# PKCE) against the Business Central and NetSuite sandboxes, which play the
# authorization server and the customer's browser (test/sandbox/oauth_code.py).
# Every failure of a completion leaves nothing behind; rotated refresh tokens
# are kept durably (rollback, restart, two sessions at once); a refused
# refresh token makes the connection reauthorization_required everywhere;
# no secret appears in any output or in the server log at debug5.
use strict;
use warnings;
use HTTP::Tiny;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use UfdwTest;

my $bc = start_sandbox('bc', '--orders', '20');
my $ns = start_sandbox('netsuite', '--orders', '20');
my $node = new_node('authorize', log_min_messages => 'debug5');
my $redirect = 'http://127.0.0.1/unified/callback';
my @outputs;    # everything psql printed, searched for secrets at the end

# psql as $role (default: the superuser); returns (exit code, stdout, stderr)
sub run_sql
{
	my ($sql, $role) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql,
		extra_params => [ '-v', 'VERBOSITY=verbose', $role ? ('-U', $role) : () ]);
	push @outputs, $out, $err;
	return ($ret, $out, $err);
}

sub q1
{
	my ($sql) = @_;
	my ($ret, $out, $err) = run_sql($sql);
	die "query failed: $sql\n$err" if $ret;
	return $out;
}

# a query whose result is a secret the test reads on purpose (not recorded)
sub q1_secret
{
	my ($sql) = @_;
	return $node->safe_psql('postgres', $sql);
}

my %app = (
	bc => {
		sb => $bc,
		system => 'dynamics365_bc',
		instance_url => "$bc->{url}/v2.0/tap-tenant/production",
		credentials => '{"client_id": "sandbox-app-id", "client_secret": "sandbox-app-secret"}',
		options => qq({"company_id": "@{[bc_company]}", "tenant_id": "tap-tenant", "allow_insecure": "true", )
		  . qq("authorization_url": "$bc->{url}/tap-tenant/oauth2/v2.0/authorize", )
		  . qq("token_url": "$bc->{url}/tap-tenant/oauth2/v2.0/token"}),
	},
	ns => {
		sb => $ns,
		system => 'netsuite',
		instance_url => $ns->{url},
		credentials => '{"client_id": "sandbox-ns-client-id", "client_secret": "sandbox-ns-client-secret"}',
		options => qq({"account_id": "1234567_SB1", "allow_insecure": "true", )
		  . qq("authorization_url": "$ns->{url}/app/login/oauth2/authorize.nl"}),
	},
);

# unified.authorize(): (url, state, expires_at)
sub authorize
{
	my ($which, $name) = @_;
	my $a = $app{$which};
	my $n = defined $name ? "'$name'" : 'NULL';
	my $row = q1(qq{SELECT authorization_url, state, expires_at > now() + interval '5 minutes'
		AND expires_at <= now() + interval '10 minutes'
		FROM unified.authorize('$a->{system}', '$a->{instance_url}', '$a->{credentials}',
		                       '$redirect', $n, '$a->{options}')});
	return split /\|/, $row;
}

# the customer's browser: follows the authorization URL, returns the
# redirect's query parameters
sub browser
{
	my ($url) = @_;
	my $r = HTTP::Tiny->new(max_redirect => 0, timeout => 30)->get($url);
	die "authorization endpoint answered $r->{status}: $r->{content}" unless $r->{status} == 302;
	my ($query) = $r->{headers}{location} =~ /\?(.*)$/;
	my %p = map { my ($k, $v) = split /=/, $_, 2; $v =~ tr/+/ /; $v =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge; ($k, $v) }
	  split /&/, $query;
	return \%p;
}

my @codes;       # authorization codes seen
my @verifiers;   # PKCE verifiers seen

sub footprint
{
	return q1(q{SELECT (SELECT count(*) FROM pg_foreign_server) || '/' ||
		(SELECT count(*) FROM pg_user_mapping) || '/' ||
		(SELECT count(*) FROM pg_namespace) || '/' ||
		(SELECT count(*) FROM unified.connections) || '/' ||
		(SELECT used FROM unified.credits)});
}

# ---- the full flow, per system ----
my %first;
for my $which (qw(bc ns))
{
	my ($url, $state, $expiry_ok) = authorize($which, "${which}_auth");
	is($expiry_ok, 't', "$which: the state expires in minutes");
	like($url, qr/[?&]code_challenge_method=S256(&|$)/, "$which: the URL has an S256 PKCE challenge");
	like($url, qr/[?&]state=\Q$state\E(&|$)/, "$which: the URL has the state");
	my $verifier = q1_secret("SELECT code_verifier FROM unified.pending_authorizations WHERE state = '$state'");
	push @verifiers, $verifier;
	unlike($url, qr/\Q$verifier\E/, "$which: the URL does not hold the verifier");
	my $p = browser($url);
	is($p->{state}, $state, "$which: the redirect brings the state back");
	push @codes, $p->{code};
	my ($ret, $out, $err) = run_sql("SELECT name, status FROM unified.complete_authorization('$state', '$p->{code}')");
	is($ret, 0, "$which: complete_authorization succeeds") or diag($err);
	like($out, qr/^${which}_auth\|active$/m, "$which: it returns the active connection row");
	like($err, qr/NOTICE:  00000: checked the inputs of connection "${which}_auth": .*, oauth2_authorization_code credentials/,
		"$which: NOTICE about the inputs, as unified.connect gives");
	like($err, qr/reserved a connection credit.*accepted the credentials \(read 1 record of purchase_orders\).*created server "${which}_auth".*created the user mapping.*created schema "${which}_auth".*is active/s,
		"$which: the NOTICEs of unified.connect, in order");
	is(q1("SELECT count(*) > 0 FROM ${which}_auth.vendors"), "t", "$which: the new connection reads live");
	is(q1("SELECT count(*) FROM unified.pending_authorizations WHERE state = '$state'"), "0",
		"$which: the pending state is gone");
	$first{$which} = { state => $state, code => $p->{code} };
}
is(q1(q{SELECT browser_auth_methods FROM unified.systems WHERE system = 'dynamics365_bc'}),
	"{oauth2_authorization_code}", 'unified.systems shows which methods need a browser');

# ---- every failure of a completion leaves nothing behind ----
my $before = footprint();
sub fails_cleanly
{
	my ($label, $sql, $pattern) = @_;
	my ($ret, $out, $err) = run_sql($sql);
	isnt($ret, 0, "$label: fails");
	like($err, $pattern, "$label: says why");
	like($err, qr/HINT:  .*unified\.authorize\(\)/, "$label: the hint says to start again");
	is(footprint(), $before, "$label: no server, mapping, schema, row or credit left");
}

fails_cleanly('wrong state', "SELECT unified.complete_authorization('no-such-state', 'x')",
	qr/ERROR:  28000: unknown or already used authorization state/);
fails_cleanly('reused state',
	"SELECT unified.complete_authorization('$first{bc}{state}', '$first{bc}{code}')",
	qr/ERROR:  28000: unknown or already used authorization state/);

my ($url, $state) = authorize('bc', 'bc_expired');
my $p = browser($url);
push @codes, $p->{code};
q1("UPDATE unified.pending_authorizations SET expires_at = now() - interval '1 second' WHERE state = '$state'");
fails_cleanly('expired state', "SELECT unified.complete_authorization('$state', '$p->{code}')",
	qr/ERROR:  28000: authorization state has expired/);
fails_cleanly('expired state, tried again', "SELECT unified.complete_authorization('$state', '$p->{code}')",
	qr/ERROR:  28000: authorization state was already used/);

sandbox_call($bc, 'POST', '/_sandbox/oauth/config', { consent => 'deny' });
($url, $state) = authorize('bc', 'bc_denied');
$p = browser($url);
is($p->{error}, 'access_denied', 'the authorization server redirects with access_denied');
fails_cleanly('consent refused',
	"SELECT unified.complete_authorization('$state', error => '$p->{error}', error_description => '$p->{error_description}')",
	qr/ERROR:  28000: Microsoft Dynamics 365 Business Central did not authorize the connection: access_denied.*DETAIL:  The authorization server said: .*denied/s);
sandbox_call($bc, 'POST', '/_sandbox/oauth/config', { consent => 'grant' });

($url, $state) = authorize('bc', 'bc_redirect');
$p = browser($url);
push @codes, $p->{code};
fails_cleanly('other redirect URI',
	"SELECT unified.complete_authorization('$state', '$p->{code}', redirect_uri => 'http://127.0.0.1/elsewhere')",
	qr/ERROR:  28000: redirect URI "http:\/\/127.0.0.1\/elsewhere" differs from the one the authorization was started with/);

# a code is single-use: the first flow's code, with a new state
($url, $state) = authorize('bc', 'bc_code_reused');
fails_cleanly('code used before', "SELECT unified.complete_authorization('$state', '$first{bc}{code}')",
	qr/ERROR:  HV00N: the identity provider refused the authorization code for connection "bc_code_reused": HTTP status 400.*invalid_grant/s);

# the verifier and pending state are the starting role's only
q1(q{CREATE ROLE other LOGIN; GRANT USAGE ON FOREIGN DATA WRAPPER unified_fdw TO other;
	GRANT CREATE ON DATABASE postgres TO other});
($url, $state) = authorize('bc', 'bc_theirs');
my ($ret, $out, $err) = run_sql(q{SELECT count(*) FROM unified.pending_authorizations}, 'other');
is($out, '0', 'another role sees none of the pending authorizations (nor their verifiers)');
$p = browser($url);
push @codes, $p->{code};
($ret, $out, $err) = run_sql("SELECT unified.complete_authorization('$state', '$p->{code}')", 'other');
like($err, qr/unknown or already used authorization state/, 'another role cannot complete it');
is(q1("SELECT count(*) FROM unified.pending_authorizations WHERE state = '$state'"), "1",
	'and it is still pending for its own role');
is(footprint(), $before, 'nothing was left behind by any failure');

# ---- rotation, kept durably ----
# strict rotation: a used refresh token is refused, so a lost rotation
# would break the connection at once
sandbox_call($bc, 'POST', '/_sandbox/oauth/config', { rotation => 'strict' });
sub rotations { sandbox_call($bc, 'GET', '/_sandbox/oauth/info')->{stats}{rotations} }
my $r0 = rotations();
($ret, $out, $err) = run_sql(q{BEGIN; SELECT count(*) > 0 FROM bc_auth.vendors; ROLLBACK;});
is($ret, 0, 'a scan in a transaction that rolls back') or diag($err);
cmp_ok(rotations(), '>', $r0, 'the scan renewed the access token and the refresh token rotated');
my @files = glob($node->data_dir . '/unified_fdw/*_*');
ok(scalar(grep { !/state_/ } @files) >= 1, 'the rotated refresh token is in a file of its own');
my @stored = grep { !/state_/ } @files;
is(sprintf('%o', (stat $stored[0])[2] & 07777), '600', 'the file has mode 0600');
is(q1('SELECT count(*) > 0 FROM bc_auth.vendors'), "t",
	'after the rollback a new session renews with the rotated token');
$node->restart;
is(q1('SELECT count(*) > 0 FROM bc_auth.vendors'), "t", 'and after a server restart');
is(q1(q{SELECT status FROM unified.status('bc_auth')}), "active", 'the connection stays active');

# two sessions renewing at the same moment: the token endpoint answers
# slowly, so both are renewing at once; the second waits for the first
# and uses the token it stored
my $refused = sandbox_call($bc, 'GET', '/_sandbox/oauth/info')->{stats}{invalid_grant};
sandbox_call($bc, 'POST', '/_sandbox/faults',
	[ { match => '/oauth2/v2.0/token', method => 'POST', delay => 1, times => 2 } ]);
my @h;
my @res;
for my $i (0 .. 1)
{
	my ($o, $e) = ('', '');
	push @res, [ \$o, \$e ];
	push @h, IPC::Run::start(
		[ 'psql', '-X', '-A', '-t', '-d', $node->connstr('postgres'), '-c', 'SELECT count(*) > 0 FROM bc_auth.vendors' ],
		'>', \$o, '2>', \$e);
}
for my $i (0 .. 1)
{
	$h[$i]->finish;
	is(${ $res[$i][0] }, "t\n", "concurrent session " . ($i + 1) . " keeps working") or diag(${ $res[$i][1] });
	push @outputs, ${ $res[$i][0] }, ${ $res[$i][1] };
}
sandbox_call($bc, 'DELETE', '/_sandbox/faults');
is(q1('SELECT count(*) > 0 FROM bc_auth.vendors'), "t", 'a third session works after them');
is(sandbox_call($bc, 'GET', '/_sandbox/oauth/info')->{stats}{invalid_grant}, $refused,
	'no refresh token was sent twice');

# ---- refused refresh tokens ----
sandbox_call($bc, 'POST', '/_sandbox/oauth/revoke', {});
($ret, $out, $err) = run_sql('SELECT count(*) FROM bc_auth.vendors');
like($err, qr/ERROR:  HV00N: server "bc_auth" requires reauthorization: the identity provider refused its refresh token/,
	'a revoked refresh token: the query fails saying so');
like($err, qr/HINT:  .*authorize again with unified\.authorize\(\) and unified\.complete_authorization\(\)/,
	'with a hint to authorize again');
unlike($err, qr/admin (center|screens)|Microsoft Entra Applications/, 'not a hint about admin pages');
is(q1(q{SELECT status, last_error ~ 'invalid_grant.*revoked' FROM unified.status('bc_auth')}),
	"reauthorization_required|t",
	'another session sees reauthorization_required with the provider\'s reason');

sandbox_call($ns, 'POST', '/_sandbox/oauth/expire', {});
($ret, $out, $err) = run_sql('SELECT count(*) FROM ns_auth.vendors');
like($err, qr/requires reauthorization/, 'NetSuite: an expired refresh token: the query fails');
is(q1(q{SELECT status, last_error ~ 'invalid_grant' FROM unified.status('ns_auth')}),
	"reauthorization_required|t", 'NetSuite: reauthorization_required, seen from another session');

# authorizing again gives a new connection, as reconnecting does
($url, $state) = authorize('bc');
$p = browser($url);
push @codes, $p->{code};
is(q1("SELECT name, status FROM unified.complete_authorization('$state', '$p->{code}')"),
	"dynamics365_bc|active", 'a new authorization for the same system is a new connection');
is(q1('SELECT count(*) > 0 FROM dynamics365_bc.vendors'), "t", 'which reads live');
is(q1(q{SELECT status FROM unified.status('bc_auth')}), "reauthorization_required",
	'the old one stays as it was until it is disconnected');
q1(q{SELECT unified.disconnect('bc_auth')});
is(scalar(grep { !/state_/ } glob($node->data_dir . '/unified_fdw/*_*')), 1,
	'disconnecting removes its stored refresh token');

# ---- no secret anywhere ----
my @secrets = (@codes, @verifiers, 'sandbox-app-secret', 'sandbox-ns-client-secret');
for my $f (grep { !/state_/ } glob($node->data_dir . '/unified_fdw/*_*'))
{
	my @lines = split /\n/, slurp_file($f);
	push @secrets, $lines[2];
}
push @secrets, map { /refresh_token=([^,}]+)/ ? $1 : () }
  split /\n/, q1_secret(q{SELECT umoptions FROM pg_user_mapping});
my $all = join("\n", @outputs);
# PostgreSQL's own statement logging (log_statement = all in the test
# clusters) shows the statement texts the test sent, continuation lines
# included: those entries are left out; what unified_fdw logs is searched
my @log;
my $in_statement = 0;
for my $line (split /\n/, slurp_file($node->logfile))
{
	$in_statement = $line =~ /LOG:  statement: / if $line =~ /^\d{4}-\d\d-\d\d /;
	push @log, $line unless $in_statement;
}
my $log = join("\n", @log);
my $leaks = 0;
for my $s (grep { defined && length >= 8 } @secrets)
{
	$leaks++, diag("a secret is in psql's output") if index($all, $s) >= 0;
	if (index($log, $s) >= 0)
	{
		$leaks++;
		my ($line) = grep { index($_, $s) >= 0 } @log;
		$line =~ s/\Q$s\E/<SECRET>/g;
		diag("a secret is in the server log: $line");
	}
}
is($leaks, 0, 'no code, verifier, token or secret in any error, NOTICE or the server log at debug5');
unlike($log, qr/eyJ0eXAiOiJKV1Qi/, 'no access token (a JWT) in the server log');
cmp_ok(scalar(@secrets), '>=', 8, 'the secrets looked for were collected');

done_testing();

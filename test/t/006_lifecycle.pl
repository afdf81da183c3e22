# The connection lifecycle with several sessions against the sandbox
# Business Central: connect with wrong and good credentials, credentials
# rotated upstream (status survives the rolled-back transaction and a
# restart), disconnect seen by a session that holds a cached token and by an
# open transaction, the credit pool running out (also with two connects
# racing), a non-superuser's view, and a canary secret that appears in no
# output and not in the server log at log_min_messages = debug5.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use UfdwTest;

my $sb = start_sandbox('bc');
my $canary = 'canary-' . join('', map { ('a' .. 'z')[ int(rand(26)) ] } 1 .. 16);
sandbox_call($sb, 'POST', '/_sandbox/config', { client_secret => $canary });
# PostgreSQL logs the text of every statement under log_statement = all,
# credentials passed as literals included, as it does for CREATE USER
# MAPPING (docs/sql.md: pass them as bind parameters); the test turns that
# off.  log_min_error_statement stays at its default: unified.connect keeps
# a failing call's text out of the log itself.
my $node = new_node('lifecycle', log_min_messages => 'debug5', log_statement => "'none'");
my $wrong_canary = 'canary-wrong-' . join('', map { ('a' .. 'z')[ int(rand(26)) ] } 1 .. 12);
my @outputs;    # everything any session printed, checked for the canary

sub connect_sql
{
	my ($name, $secret, %o) = @_;
	my $host = $o{host} // $sb->{url};
	my $insecure = $o{insecure} // 1 ? ', "allow_insecure": true' : '';
	my $page = $o{page_size} ? qq{, "page_size": $o{page_size}} : '';
	return qq{SELECT name, status FROM unified.connect('dynamics365_bc',
		'$host/v2.0/tap/production',
		'{"client_id": "sandbox-client-id", "client_secret": "$secret"}', '$name',
		'{"company_id": "@{[bc_company]}", "token_url": "$host/tap/oauth2/v2.0/token"$insecure$page}')};
}

# psql as $user; returns (exit status, stdout, stderr) and keeps the output
sub run
{
	my ($sql, $user) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql,
		extra_params => [ '-U', $user // 'postgres' ]);
	push @outputs, $out, $err;
	return ($ret, $out, $err);
}

sub q1
{
	my ($sql) = @_;
	my $out = $node->safe_psql('postgres', $sql);
	push @outputs, $out;
	return $out;
}

sub leftovers
{
	my ($name) = @_;
	return q1(qq{SELECT (SELECT count(*) FROM pg_foreign_server WHERE srvname = '$name')
		+ (SELECT count(*) FROM pg_user_mappings WHERE srvname = '$name')
		+ (SELECT count(*) FROM pg_namespace WHERE nspname = '$name')
		+ (SELECT count(*) FROM unified.connections WHERE name = '$name')});
}

# a background session's query; its stderr is kept apart per query
sub bq
{
	my ($s, $sql) = @_;
	$s->{stderr} = '';
	my $out = $s->query($sql);
	my $err = $s->{stderr};
	push @outputs, $out, $err;
	return ($out, $err);
}

my $s1 = $node->background_psql('postgres', on_error_stop => 0);
my $s2 = $node->background_psql('postgres', on_error_stop => 0);

# ---- wrong credentials: clear error, nothing left behind, credits unchanged
my ($ret, $out, $err) = run(connect_sql('acme', $wrong_canary));
isnt($ret, 0, 'connect with a wrong secret fails');
like($err, qr/ERROR:  credentials for server "acme" were rejected: HTTP status 401/,
	'the error says the credentials were rejected');
like($err, qr/HINT:  .*unified\.connect\(\)/, 'the hint says how to retry');
like($err, qr/CONTEXT:  .*nothing was created/s, 'the context says nothing was created');
like($err, qr/NOTICE:  checked the inputs.*NOTICE:  reserved a connection credit/s,
	'the steps before the live check were reported');
is(leftovers('acme'), '0', 'no server, mapping, schema or row is left behind');
my ($credits) = bq($s2, 'SELECT used FROM unified.credits');
is($credits, '0', 'another session sees no credit used');

# ---- good credentials
($out, $err) = bq($s1, connect_sql('acme', $canary, page_size => 10));
is($out, 'acme|active', 'connect returns the active connection');
like($err,
	qr/checked the inputs.*reserved a connection credit.*accepted the credentials.*created server "acme".*created the user mapping.*created schema "acme".*is active/s,
	'each step is reported as a NOTICE, in order');
($out) = bq($s2, 'SELECT count(*) FROM acme.purchase_orders');
is($out, '60', 'another session queries the new tables');
my $reversed = reverse $canary;
($out) = bq($s2, qq{SELECT count(*) FROM pg_stat_activity WHERE strpos(query, reverse('$reversed')) > 0});
is($out, '0', 'pg_stat_activity does not show the statement that carried the secret');
($out) = bq($s2, q{SELECT used || '/' || total FROM unified.credits});
is($out, '1/10', 'the credit is used');
($out) = bq($s2, q{SELECT status FROM unified.status('acme')});
is($out, 'active', 'status is active');
($out) = bq($s2, 'EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM acme.vendors');
like($out, qr/Upstream Request: GET/, 'EXPLAIN shows the request');

# ---- credentials rotated upstream while a session holds a token
sandbox_call($sb, 'POST', '/_sandbox/config', { client_secret => 'rotated-secret' });
sandbox_call($sb, 'POST', '/_sandbox/revoke', {});
bq($s2, 'BEGIN');
($out, $err) = bq($s2, 'SELECT count(*) FROM acme.vendors');
bq($s2, 'ROLLBACK');
like($err, qr/ERROR:  access token for server "acme" expired or was revoked, and could not be renewed: HTTP status 401/,
	'a query fails naming the connection: its token was revoked and cannot be renewed');
like($err, qr/Request id: ([0-9a-f-]{36}); upstream request id: [0-9a-f-]{36}/,
	'the error carries our and the upstream\'s request ids');
my ($request_id) = $err =~ /Request id: ([0-9a-f-]{36})/;
ok( $node->poll_query_until('postgres',
		q{SELECT status = 'reauthorization_required' FROM unified.status('acme')}),
	'a new session sees reauthorization_required although the transaction rolled back');
is( q1(q{SELECT last_http_status || ' ' || last_request_id || ' ' || (last_error LIKE 'HTTP status 401%')
		FROM unified.status('acme')}),
	"401 $request_id true", 'status records the HTTP status, the failing request id and the error');

$node->restart;
is(q1(q{SELECT status FROM unified.status('acme')}), 'reauthorization_required',
	'the status survives a restart');

# the upstream takes the old secret back: a live status check recovers
sandbox_call($sb, 'POST', '/_sandbox/config', { client_secret => $canary });
is(q1(q{SELECT status || ' ' || last_http_status FROM unified.status('acme', live => true)}),
	'active 200', 'status(live => true) probes the upstream and records the recovery');

# ---- disconnect: a session with a cached token, and an open transaction
$s1 = $node->background_psql('postgres', on_error_stop => 0);
$s2 = $node->background_psql('postgres', on_error_stop => 0);
q1(q{CREATE TABLE acme.notes AS SELECT number FROM acme.purchase_orders LIMIT 5});
($out) = bq($s1, 'SELECT count(*) > 0 FROM acme.vendors');
is($out, 't', 'session 1 has a cached token');
bq($s2, 'BEGIN');
($out) = bq($s2, 'SELECT count(*) > 0 FROM acme.items');
is($out, 't', 'session 2 has an open transaction that read the connection');
my $s3 = $node->background_psql('postgres', on_error_stop => 0);
bq($s3, 'BEGIN');
bq($s3, 'DECLARE c CURSOR FOR SELECT number FROM acme.purchase_orders');
($out) = bq($s3, 'FETCH 5 FROM c');
is(scalar(split /\n/, $out), 5, 'session 3 is in the middle of a scan (pages of 10)');
clear_sandbox_requests($sb);
($ret, $out, $err) = run(q{SELECT name, status FROM unified.disconnect('acme')});
is($out, 'acme|disconnected', 'disconnect returns the disconnected connection');
like($err, qr/dropped the credentials.*returned the connection credit: 10 of 10 available/s,
	'disconnect reports its steps');
($out, $err) = bq($s1, 'SELECT count(*) FROM acme.vendors');
like($err, qr/ERROR:  connection "acme" is disconnected/, 'session 1: the next query fails clearly');
like($err, qr/HINT:  Reconnect with unified\.connect/, 'with a hint to reconnect');
($out, $err) = bq($s2, 'SELECT count(*) FROM acme.items');
like($err, qr/ERROR:  connection "acme" is disconnected/,
	'session 2: the next query of the open transaction fails too');
bq($s2, 'ROLLBACK');
($out, $err) = bq($s3, 'FETCH 50 FROM c');
like($err, qr/ERROR:  connection "acme" is disconnected/,
	'session 3: the scan in progress fails at its next page request');
bq($s3, 'ROLLBACK');
$s3->quit;
my @after = grep { $_->{path} !~ m{/_sandbox/} } @{ sandbox_requests($sb) };
cmp_ok(scalar(@after), '<=', 1,
	'at most the page already in flight (prefetched before the disconnect) reached the upstream');
is(q1(q{SELECT used FROM unified.credits}), '0', 'the credit is returned');
is( q1(q{SELECT count(*) FILTER (WHERE relkind = 'f') || ' ' || count(*) FILTER (WHERE relkind = 'r')
		FROM pg_class WHERE relnamespace = 'acme'::regnamespace}),
	'4 1', 'the foreign tables and the local table are kept');
is(q1('SELECT count(*) FROM acme.notes'), '5', 'with its rows');
is(q1(q{SELECT status || ' ' || (disconnected_at IS NOT NULL) FROM unified.status('acme')}),
	'disconnected true', 'status shows the disconnection');
($ret, $out, $err) = run(connect_sql('acme', $canary));
like($err, qr/connection "acme" already exists/, 'reconnecting needs a new name');

# ---- the pool runs out; two connects race for the last credit
q1(q{LOAD 'unified_fdw'; ALTER SYSTEM SET unified_fdw.connection_credits = 2});
q1(q{SELECT pg_reload_conf()});
$node->poll_query_until('postgres', q{SELECT total = 2 FROM unified.credits});
($ret, $out, $err) = run(connect_sql('beta', $canary));
is($out, 'beta|active', 'a connection within the pool');
$s1 = $node->background_psql('postgres', on_error_stop => 0);
bq($s1, 'BEGIN');
($out, $err) = bq($s1, connect_sql('gamma', $canary));
is($out, 'gamma|active', 'session 1 takes the last credit in an open transaction');
my ($in, $rout, $rerr) = ('', '', '');
my $h = IPC::Run::start(
	[ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-c', connect_sql('delta', $canary) ],
	'<', \$in, '>', \$rout, '2>', \$rerr);
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE 'SELECT unified.connect(...)%' AND wait_event_type = 'Lock'}),
	'a concurrent connect waits for the open one');
bq($s1, 'COMMIT');
IPC::Run::finish($h);
push @outputs, $rout, $rerr;
like($rerr, qr/ERROR:  no connection credit left: all 2 are in use/, 'the racing connect finds the pool empty');
like($rerr, qr/DETAIL:  Connections holding a credit: beta, gamma\./, 'and says which connections hold the credits');
is(leftovers('delta'), '0', 'the refused connect left nothing behind');

# ---- a non-superuser
q1(q{CREATE ROLE alice LOGIN;
	GRANT USAGE ON FOREIGN DATA WRAPPER unified_fdw TO alice;
	GRANT CREATE ON DATABASE postgres TO alice});
($ret, $out, $err) = run(q{SELECT count(*) FROM unified.status()}, 'alice');
is($out, '0', 'alice sees no status of other roles\' connections');
($ret, $out, $err) = run(q{SELECT total, used FROM unified.credits}, 'alice');
is($out, '2|2', 'alice sees the pool');
($ret, $out, $err) = run(q{SELECT * FROM unified.connections}, 'alice');
like($err, qr/permission denied for table connections/, 'alice cannot read unified.connections');
($ret, $out, $err) = run(q{SELECT umoptions IS NULL FROM pg_user_mappings WHERE srvname = 'beta'}, 'alice');
is($out, 't', 'alice cannot see the credentials of another role\'s mapping');
($ret, $out, $err) = run(q{SELECT unified.disconnect('beta')}, 'alice');
like($err, qr/connection "beta" does not exist/, 'alice cannot disconnect another role\'s connection');
($ret, $out, $err) = run(connect_sql('alice_bc', $canary), 'alice');
like($err, qr/permission denied to set option "allow_insecure"/,
	'alice cannot allow insecure destinations');
q1(q{SELECT unified.disconnect('beta')});
(my $https = $sb->{url}) =~ s/^http:/https:/;
($ret, $out, $err) = run(connect_sql('alice_bc', $canary, host => $https, insecure => 0), 'alice');
like($err, qr/NOTICE:  reserved a connection credit/, 'alice passes the input checks and takes a credit');
like($err, qr/ERROR:  destination address not allowed for server "alice_bc"/,
	'the live check refuses a loopback destination for alice');
is(leftovers('alice_bc'), '0', 'alice\'s failed connect left nothing behind');

# ---- the canary is nowhere
my @hits = grep { defined && /\Q$canary\E|\Q$wrong_canary\E/ } @outputs;
is(scalar(@hits), 0, 'the secret appears in no output of any session');
my $log = slurp_file($node->logfile);
unlike($log, qr/\Q$canary\E/, 'the secret is not in the server log at debug5');
unlike($log, qr/\Q$wrong_canary\E/,
	'nor the rejected one, although its unified.connect failed (log_min_error_statement = error)');
like($log, qr/background worker "unified_fdw status writer"/, 'the status writer ran (the log is real)');

$s1->quit;
$s2->quit;
done_testing();

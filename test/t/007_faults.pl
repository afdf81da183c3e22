# Transport fault suite: each fault the sandbox can inject is met with the
# documented SQLSTATE within a bounded time, and the same session then runs
# a normal query.  Cancel and statement_timeout act within a second in every
# phase (token fetch, waiting for an answer, receiving a body, retry backoff).
use strict;
use warnings;
use IO::Socket::INET;
use POSIX ();
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use UfdwTest;

my $sb = start_sandbox('bc');
my $other = start_sandbox('bc');	# must never receive anything
my $node = new_node('faults');
bc_connect($node, $sb, 'bc', page_size => 20);
# the follow-up query reads one page
$node->safe_psql('postgres', "ALTER FOREIGN TABLE bc.vendors OPTIONS (ADD page_size '100')");
is($node->safe_psql('postgres', 'SELECT count(*) FROM bc.purchase_orders'), '60',
	'sandbox answers');

my $NEXT = "SELECT 'next-query-ok', count(*) FROM bc.vendors;";

sub set_faults
{
	my (@rules) = @_;
	sandbox_call($sb, 'DELETE', '/_sandbox/faults');
	sandbox_call($sb, 'POST', '/_sandbox/faults', \@rules) if @rules;
	clear_sandbox_requests($sb);
}

sub alter_server
{
	my ($opts) = @_;
	$node->safe_psql('postgres', "ALTER SERVER bc OPTIONS ($opts)");
}

# Runs $sql in a new session (after $setup), timed by the server, then
# $NEXT in the same session.  $trigger->($pid) runs once the backend waits.
# $after runs after the statement, before $NEXT.
# Returns a hash: elapsed (s, server clock), sqlstate, err, out, next_ok,
# trigger_elapsed (s from the trigger to the statement's end).
sub run_fault
{
	my ($sql, %o) = @_;
	my ($in, $out, $err) = ('', '', '');
	my $setup = $o{setup} // '';
	my $h = IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-v', 'ON_ERROR_STOP=0' ],
		'<', \$in, '>', \$out, '2>', \$err);
	$in .= "\\set VERBOSITY verbose\n$setup\n"
	  . "SELECT 'start', extract(epoch from clock_timestamp());\n"
	  . "$sql\n"
	  . "SELECT 'end', extract(epoch from clock_timestamp());\n"
	  . ($o{after} // '')
	  . "$NEXT\n\\q\n";
	$h->pump_nb;
	my ($pid, $t_trigger);
	if ($o{trigger})
	{
		for (1 .. 200)
		{
			$pid = $node->safe_psql('postgres',
				"SELECT pid FROM pg_stat_activity WHERE query = '$sql' AND state = 'active' AND wait_event_type = 'Extension'");
			last if $pid;
			usleep(25_000);
		}
		usleep(($o{trigger_delay} // 0.2) * 1e6);
		$t_trigger = time;
		$o{trigger}->($pid);
	}
	IPC::Run::finish($h);
	my %r = (out => $out, err => $err, pid => $pid);
	$r{elapsed} = $2 - $1 if $out =~ /^start\|([\d.]+)\n.*^end\|([\d.]+)\n/ms;
	$r{sqlstate} = $1 if $err =~ /ERROR:\s+([0-9A-Z]{5}):/;
	$r{next_ok} = $out =~ /^next-query-ok\|25$/m ? 1 : 0;
	$r{end} = time;
	$r{trigger_to_exit} = $r{end} - $t_trigger if defined $t_trigger;
	# server clock, same host: from the trigger to the failed statement's end
	$r{trigger_elapsed} = $2 - $t_trigger
	  if defined $t_trigger && $out =~ /^start\|([\d.]+)\n.*^end\|([\d.]+)\n/ms;
	return \%r;
}

sub data_requests
{
	return [ grep { $_->{path} =~ /purchaseOrders/ } @{ sandbox_requests($sb) } ];
}

sub check
{
	my ($name, $r, $state, $re, $max) = @_;
	is($r->{sqlstate} // 'none', $state, "$name: SQLSTATE $state")
	  or diag("stderr: $r->{err}\nstdout: $r->{out}");
	like($r->{err}, $re, "$name: message") if $re;
	ok(defined $r->{elapsed} && $r->{elapsed} < $max,
		sprintf("$name: done in %.2f s (< %s s)", $r->{elapsed} // -1, $max));
	ok($r->{next_ok}, "$name: the session then runs a normal query");
}

my $Q = 'SELECT count(*) FROM bc.purchase_orders;';
my $cancel = sub { $node->safe_psql('postgres', "SELECT pg_cancel_backend($_[0])") };

# ---- stalls: statement_timeout and cancel in every phase ----
my %phase = (
	'token fetch' => { match => 'oauth2', stall => 20 },
	'waiting for an answer' => { match => 'purchaseOrders', stall => 20, times => -1 },
	'receiving a body' => { match => 'purchaseOrders', slow => 50, times => -1 },
	'retry backoff' => { match => 'purchaseOrders', status => 429, retry_after => '30', times => -1 },
);
for my $p (sort keys %phase)
{
	set_faults($phase{$p});
	my $r = run_fault($Q, setup => "SET statement_timeout = '300ms';");
	check("statement_timeout during $p", $r, '57014', qr/statement timeout/, 1.0);

	set_faults($phase{$p});
	$r = run_fault($Q, trigger => $cancel);
	is($r->{sqlstate} // 'none', '57014', "cancel during $p: SQLSTATE 57014")
	  or diag($r->{err});
	ok(defined $r->{trigger_elapsed} && $r->{trigger_elapsed} < 1.0,
		sprintf("cancel during $p: took effect in %.2f s (< 1 s)", $r->{trigger_elapsed} // -1));
	ok($r->{next_ok}, "cancel during $p: the session then runs a normal query");
	if ($p eq 'retry backoff')
	{
		# the backoff sleep ended: no further request reaches the sandbox
		my $n = scalar @{ data_requests() };
		usleep(1_000_000);
		is(scalar @{ data_requests() }, $n, 'no request is sent after the cancel');
		is($n, 1, 'the sandbox saw exactly one data request');
	}
}

# ---- retries ----
set_faults({ match => 'purchaseOrders', status => 429, retry_after => '2' });
my $r = run_fault($Q);
check('429 with Retry-After: 2', $r, 'none', undef, 10);
like($r->{out}, qr/^60$/m, '429 with Retry-After: 2: the retry returned every row');
my @req = @{ data_requests() };
ok(@req >= 2 && $req[0]{status} == 429, '429 with Retry-After: 2: first answer 429');
my $gap = @req >= 2 ? $req[1]{time} - $req[0]{time} : 0;
cmp_ok($gap, '>=', 2.0, sprintf('429 with Retry-After: 2: retried after %.2f s', $gap));

# Retry-After as an HTTP date, unreadable, and huge (clamped to retry_max_wait)
sub retry_gap
{
	my @req = @{ data_requests() };
	return @req >= 2 ? $req[1]{time} - $req[0]{time} : -1;
}
my $date = POSIX::strftime('%a, %d %b %Y %H:%M:%S GMT', gmtime(time + 3));
set_faults({ match => 'purchaseOrders', status => 429, retry_after => $date });
$r = run_fault($Q);
check('Retry-After as an HTTP date', $r, 'none', undef, 10);
cmp_ok(retry_gap(), '>=', 1.9, sprintf('Retry-After as an HTTP date: retried after %.2f s', retry_gap()));
set_faults({ match => 'purchaseOrders', status => 503, retry_after => 'abc' });
$r = run_fault($Q);
check('unreadable Retry-After: backoff instead', $r, 'none', undef, 3);
alter_server("ADD retry_max_wait '1'");
set_faults({ match => 'purchaseOrders', status => 429, retry_after => '999999999' });
$r = run_fault($Q);
check('Retry-After 999999999 clamped to retry_max_wait 1', $r, 'none', undef, 3);
cmp_ok(retry_gap(), '>=', 0.95, sprintf('clamped Retry-After: retried after %.2f s', retry_gap()));
alter_server("DROP retry_max_wait");

set_faults({ match => 'purchaseOrders', status => 503 });
$r = run_fault($Q);
check('503 then success', $r, 'none', undef, 10);
like($r->{out}, qr/^60$/m, '503 then success: every row');
is(scalar(grep { $_->{status} && $_->{status} == 503 } @{ data_requests() }), 1,
	'503 then success: one 503 seen');
set_faults({ match => 'purchaseOrders', status => 503 });
$r = run_fault("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) $Q");
# three pages of 25: three requests, the first one attempted twice
like($r->{out}, qr/Upstream Requests: 3\n\s*Upstream Retries: 1\n/,
	'503 then success: EXPLAIN ANALYZE counts three requests and one retry')
  or diag($r->{out});
$r = run_fault("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) $Q");
unlike($r->{out}, qr/Upstream Retries/, 'no fault: EXPLAIN ANALYZE shows no retries line');

set_faults({ match => 'purchaseOrders', reset => JSON::PP::true });
$r = run_fault($Q);
check('connection reset', $r, 'none', undef, 10);
like($r->{out}, qr/^60$/m, 'connection reset: retried, every row');
is(scalar(grep { !defined $_->{status} } @{ data_requests() }), 1,
	'connection reset: one reset request in the log');

alter_server("ADD max_retries '2'");
set_faults({ match => 'purchaseOrders', status => 503, times => -1 });
$r = run_fault($Q);
check('retries exhausted', $r, 'HV000', qr/HTTP status 503 after 3 attempts/, 10);
is(scalar @{ data_requests() }, 3, 'retries exhausted: the sandbox saw 3 attempts');
alter_server("DROP max_retries");

# Retry-After beyond the budget, every time: clamped to it once, then the
# budget is spent
alter_server("ADD retry_max_wait '1'");
set_faults({ match => 'purchaseOrders', status => 429, retry_after => '20', times => -1 });
$r = run_fault($Q);
check('Retry-After beyond retry_max_wait', $r, 'HV000', qr/HTTP status 429 after 2 attempts/, 3);
alter_server("DROP retry_max_wait");

# ---- timeouts ----
alter_server("ADD low_speed_limit '1000', ADD low_speed_time '1'");
set_faults({ match => 'purchaseOrders', slow => 100, times => -1 });
$r = run_fault($Q);
check('slow drip', $r, 'HV000', qr/timed out/, 5);
alter_server("DROP low_speed_limit, DROP low_speed_time");

alter_server("ADD request_timeout '1'");
set_faults({ match => 'purchaseOrders', delay => 10, times => -1 });
$r = run_fault($Q);
check('request_timeout', $r, 'HV000', qr/timed out/, 4);
alter_server("DROP request_timeout");

# ---- bad bodies ----
set_faults({ match => 'purchaseOrders', truncate => JSON::PP::true });
$r = run_fault($Q);
check('truncated body', $r, 'HV000', qr/incomplete response/, 5);

set_faults({ match => 'purchaseOrders', malformed => JSON::PP::true });
$r = run_fault($Q);
check('malformed JSON', $r, 'HV004', undef, 5);

set_faults({ match => 'purchaseOrders', content_type => 'text/html' });
$r = run_fault($Q);
check('HTML login page', $r, 'HV000', qr/unexpected content type/, 5);
unlike($r->{err}, qr/<html/i, 'HTML login page: the body is not echoed');

set_faults({ match => 'purchaseOrders', status => 200,
	headers => { 'Content-Type' => 'application/json' },
	body => { value => [ { id => "a\x{0}b", number => 'X' } ] } });
$r = run_fault('SELECT id FROM bc.purchase_orders;');
check('\u0000 in a value', $r, '22P05', qr/field "id" of record 1/, 5);

set_faults({ match => 'purchaseOrders', invalid_utf8 => JSON::PP::true });
$r = run_fault('SELECT id FROM bc.purchase_orders;');
check('invalid UTF-8 in a value', $r, '22021',
	qr/invalid UTF-8 in field "id" for foreign table "purchase_orders".*\n.*DETAIL:  invalid byte sequence for encoding "UTF8": 0xc3 0x28/, 5);
is(scalar(grep { ($_->{fault} // '') eq 'invalid_utf8' } @{ data_requests() }), 1,
	'invalid UTF-8 in a value: the sandbox sent the fault');

set_faults({ match => 'purchaseOrders', status => 200,
	headers => { 'Content-Type' => 'application/json' },
	body => '{"value": [], "@odata.nextLink": "x", "@odata.nextLink": "y"}' });
$r = run_fault($Q);
check('duplicate next link', $r, '22030', undef, 5);

# ---- size cap, also on the decompressed body of a chunked response ----
sandbox_call($sb, 'POST', '/_sandbox/config', { chunked => JSON::PP::true, compress => JSON::PP::true });
# a page of 20 full orders is about 29.5 kB, 5.5 kB gzipped: a cap between
# the two is only exceeded by the inflated body
alter_server("ADD max_response_bytes '8192'");
set_faults();
$r = run_fault('SELECT count(raw) FROM bc.purchase_orders;');
check('oversized body', $r, '54000', qr/exceeds max_response_bytes/, 5);
like(data_requests()->[0]{headers}{'Accept-Encoding'} // '', qr/gzip/,
	'oversized body: the response was compressed (the cap counts inflated bytes)');
alter_server("DROP max_response_bytes");
sandbox_call($sb, 'POST', '/_sandbox/config', { chunked => JSON::PP::false });

# ---- hostile bodies against an 8 MB cap: a 50 MB chunked body (no
# Content-Length) and a 1 MB gzip body that inflates to 1 GB.  The backend's
# peak resident size (VmHWM, read in the same session before and after)
# grows by less than 3 x the cap. ----
my $CAP = 8 * 1024 * 1024;
my $hwm = "SELECT 'hwm', substring(pg_read_file('/proc/self/status') from 'VmHWM:\\s+(\\d+) kB');\n";
alter_server("ADD max_response_bytes '$CAP'");
for my $case ([ '50 MB chunked body', { chunked_bytes => 50 * 1024 * 1024 } ],
	[ 'gzip bomb 1 MB -> 1 GB', { gzip_bomb => 1024 * 1024 * 1024 } ])
{
	my ($name, $rule) = @$case;
	set_faults({ match => 'purchaseOrders', times => -1, %$rule });
	$r = run_fault($Q, setup => $hwm, after => $hwm);
	# what shows the cap working is the error and the bounded VmHWM below;
	# the time bound only catches a hang, so it leaves room for a loaded machine
	check($name, $r, '54000', qr/exceeds max_response_bytes \($CAP bytes\)/, 60);
	my @hwm = $r->{out} =~ /^hwm\|(\d+)$/mg;
	is(scalar @hwm, 2, "$name: VmHWM read before and after") or diag($r->{out});
	my $growth = @hwm == 2 ? ($hwm[1] - $hwm[0]) * 1024 : -1;
	ok($growth >= 0 && $growth < 3 * $CAP,
		sprintf("$name: backend peak memory grew by %.1f MB (< %.0f MB)",
			$growth / 1048576, 3 * $CAP / 1048576));
	my @seen = grep { ($_->{fault} // '') eq (keys %$rule)[0] } @{ data_requests() };
	cmp_ok(scalar @seen, '>=', 1, "$name: the sandbox sent the fault");
}
alter_server("DROP max_response_bytes");

# ---- paging traps ----
alter_server("ADD max_pages '2'");
set_faults();
$r = run_fault($Q);
check('page cap', $r, 'HV000', qr/page limit exceeded/, 5);
alter_server("DROP max_pages");

my $first = $node->safe_psql('postgres',
	'EXPLAIN (VERBOSE, COSTS OFF) SELECT count(*) FROM bc.purchase_orders');
($first) = $first =~ /Upstream Request: GET (\S+)/;
my $b_link = "$first&\$skiptoken=loopB";
set_faults(
	{ match => 'skiptoken=loopB', status => 200,
	  headers => { 'Content-Type' => 'application/json' },
	  body => { value => [], '@odata.nextLink' => $first } },
	{ match => 'purchaseOrders', status => 200,
	  headers => { 'Content-Type' => 'application/json' },
	  body => { value => [], '@odata.nextLink' => $b_link } });
$r = run_fault($Q);
check('next link cycle A->B->A', $r, 'HV000', qr/pagination loop/, 5);
is(scalar @{ data_requests() }, 2, 'next link cycle: two requests, then stop');

sandbox_call($sb, 'POST', '/_sandbox/config', { next_link_base => $other->{url} });
set_faults();
clear_sandbox_requests($other);
$r = run_fault($Q);
check('next link to another host', $r, 'HV000', qr/another host/, 5);
sandbox_call($sb, 'POST', '/_sandbox/config', { next_link_base => '' });

# ---- redirect to another server: never followed ----
set_faults({ match => 'purchaseOrders', status => 302,
	headers => { Location => "$other->{url}/v2.0/tap-tenant/production/api/v2.0/companies(" . bc_company . ")/purchaseOrders" } });
$r = run_fault($Q);
check('redirect to another port', $r, 'HV000', qr/redirects are not followed/, 5);
is(scalar @{ sandbox_requests($other) }, 0, 'the other server received nothing');

# ---- TLS handshake that never completes: a listener that accepts TCP
# (the kernel does) and never answers ----
my $listener = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
	Listen => 16, Proto => 'tcp', ReuseAddr => 1) or die "listen: $!";
my $tls_port = $listener->sockport;
$node->safe_psql('postgres', qq{
	CREATE SERVER tls FOREIGN DATA WRAPPER unified_fdw OPTIONS (
		system 'dynamics365_bc', instance_url 'https://127.0.0.1:$tls_port/BC',
		company_id '@{[bc_company]}', allow_insecure 'true');
	CREATE USER MAPPING FOR CURRENT_USER SERVER tls OPTIONS (
		username 'sandbox-user', password 'sandbox-password');
	CREATE SCHEMA tls;
	IMPORT FOREIGN SCHEMA unified LIMIT TO (vendors) FROM SERVER tls INTO tls;
});
my $TQ = 'SELECT count(*) FROM tls.vendors;';
$r = run_fault($TQ, setup => "SET statement_timeout = '300ms';");
check('statement_timeout during a TLS handshake', $r, '57014', qr/statement timeout/, 1.0);
$r = run_fault($TQ, trigger => $cancel);
is($r->{sqlstate} // 'none', '57014', 'cancel during a TLS handshake: SQLSTATE 57014');
ok(defined $r->{trigger_elapsed} && $r->{trigger_elapsed} < 1.0,
	sprintf('cancel during a TLS handshake: took effect in %.2f s (< 1 s)', $r->{trigger_elapsed} // -1));
ok($r->{next_ok}, 'cancel during a TLS handshake: the session then runs a normal query');
$node->safe_psql('postgres', "ALTER SERVER tls OPTIONS (ADD connect_timeout '1')");
$r = run_fault($TQ);
check('connect_timeout during a TLS handshake', $r, 'HV00N', qr/could not connect.*timed out/, 3);

# ---- pg_terminate_backend while waiting: the backend exits cleanly ----
set_faults({ match => 'purchaseOrders', stall => 20, times => -1 });
$r = run_fault($Q, trigger => sub { $node->safe_psql('postgres', "SELECT pg_terminate_backend($_[0])") });
like($r->{err}, qr/57P01|terminating connection due to administrator command/,
	'terminate while waiting: the client is told');
ok(!$r->{next_ok}, 'terminate while waiting: the session is gone');
ok(defined $r->{trigger_to_exit} && $r->{trigger_to_exit} < 1.0,
	sprintf('terminate while waiting: psql saw the end in %.2f s (< 1 s)', $r->{trigger_to_exit} // -1));
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|server process .* was terminated|PANIC/,
	'terminate while waiting: no crash in the server log');

set_faults();
is($node->safe_psql('postgres', 'SELECT count(*) FROM bc.purchase_orders'), '60',
	'scans work once the faults are cleared');

# Sockets are accounted as external FDs and released when closed: 400 new
# connections in one backend (each ALTER SERVER drops the connection cache)
# stay within max_files_per_process's share for them.
$r = $node->safe_psql('postgres', join('',
	map { "ALTER SERVER bc OPTIONS (SET page_size '100');\nSELECT count(*) FROM bc.vendors;\n" } 1 .. 400));
is(scalar(grep { $_ eq '25' } split /\n/, $r), 400, '400 connections opened and closed in one backend');
done_testing();

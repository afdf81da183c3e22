# A stalled upstream request stops within a second on statement_timeout and
# on pg_cancel_backend, and the same session then runs the next query.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use UfdwTest;

my $sb = start_sandbox('bc');
my $node = new_node('cancel');
bc_connect($node, $sb, 'bc');
# warm up: the token is fetched and cached before the stall is armed
is($node->safe_psql('postgres', 'SELECT count(*) > 0 FROM bc.vendors'), 't', 'sandbox answers');
sandbox_call($sb, 'POST', '/_sandbox/faults', { match => 'purchaseOrders', stall => 20, times => -1 });

# Runs $sql in one psql session followed by a marker query; returns
# (elapsed seconds from $trigger to psql's exit, stdout, stderr).
sub run_with_stall
{
	my ($setup, $trigger) = @_;
	my ($in, $out, $err) = ('', '', '');
	my $h = IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-v', 'ON_ERROR_STOP=0' ],
		'<', \$in, '>', \$out, '2>', \$err);
	$in .= "$setup\nSELECT count(*) FROM bc.purchase_orders;\nSELECT 'next-query-ok', pg_backend_pid();\n\\q\n";
	$h->pump_nb;
	# wait until the backend is waiting for the upstream
	my $pid;
	for (1 .. 100)
	{
		$pid = $node->safe_psql('postgres',
			"SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT count(*) FROM bc.purchase_orders%' AND state = 'active' AND wait_event_type = 'Extension'");
		last if $pid;
		usleep(50_000);
	}
	my $t0 = time;
	$trigger->($pid) if $trigger;
	IPC::Run::finish($h);
	return (time - $t0, $out, $err, $pid);
}

my ($elapsed, $out, $err) = run_with_stall("SET statement_timeout = '300ms';");
like($err, qr/canceling statement due to statement timeout/, 'statement_timeout cancels a stalled request');
cmp_ok($elapsed, '<', 1.0, "statement_timeout took effect within 1 s (${elapsed}s)");
like($out, qr/next-query-ok/, 'the session runs the next query after the timeout');

my $pid;
($elapsed, $out, $err, $pid) = run_with_stall('', sub {
	my ($pid) = @_;
	usleep(200_000);
	$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
});
ok($pid, 'the scan was seen waiting');
like($err, qr/canceling statement due to user request/, 'pg_cancel_backend cancels a stalled request');
cmp_ok($elapsed, '<', 1.2, "cancel took effect within 1 s (${elapsed}s, including a 0.2 s pause)");
like($out, qr/next-query-ok\|$pid/, 'the same backend runs the next query after the cancel');

# after the faults are cleared, a scan in a fresh session works
sandbox_call($sb, 'DELETE', '/_sandbox/faults');
is($node->safe_psql('postgres', 'SELECT count(*) > 0 FROM bc.purchase_orders'), 't',
	'scans work again once the upstream answers');

done_testing();

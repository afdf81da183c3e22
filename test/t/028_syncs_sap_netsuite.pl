# Scheduled syncs against the sandbox SAP S/4HANA and NetSuite (the
# Business Central case, with the 401 and the adoption, is 027_syncs.pl).
# For each system: the initial sync equals the sandbox's export; a run
# without changes costs one small request per incremental table and
# transfers no record; inserts with lines, updates sharing a stamp, a
# deleted order, a removed line, changed lines and a vendor change reach the
# synced tables through one incremental run and a reconciliation, deleted
# rows marked; a 503 on page 3, a statement timeout, pg_terminate_backend
# and a server crash leave the previous state and the next run converges;
# the pg_cron schedule fires; after disconnect the job is gone, the sandbox
# sees no request and the rows stay readable.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;
use UfdwTest;

my $node = new_node('syncs2', cron => 1);
sub q1 { return $node->safe_psql('postgres', $_[0]); }

my %sys = (
	sap => {
		sb => start_sandbox('sap', '--orders', 30, '--spare-orders', 5),
		conn => 'globex',
		tables => [qw(purchase_orders purchase_order_lines vendors)],
		modes => 'purchase_order_lines:follows,purchase_orders:incremental,vendors:full',
		# the third page of a scan ($top=10: $skip=20)
		page3 => 'skip=20',
		page2 => 'skip=10',
		# no-change run: orders by LastChangeDateTime; SAP suppliers have no
		# change stamp and are read whole only when a reconciliation is due
		idle => 'A_PurchaseOrder=1',
	},
	netsuite => {
		sb => start_sandbox('netsuite', '--orders', 60, '--spare-orders', 5),
		conn => 'initech',
		tables => [qw(purchase_orders purchase_order_lines vendors items)],
		modes => 'items:incremental,purchase_order_lines:follows,purchase_orders:incremental,vendors:incremental',
		page3 => 'offset=20',
		page2 => 'offset=10',
		idle => 'suiteql=3',
	},
);

sub connect_sql
{
	my ($s) = @_;
	my $url = $sys{$s}{sb}{url};
	return $s eq 'sap'
	  ? qq{SELECT status FROM unified.connect('sap_s4hana', '$url',
		'{"username": "sandbox-user", "password": "sandbox-password"}', 'globex',
		'{"allow_insecure": true, "page_size": 10}')}
	  : qq{SELECT status FROM unified.connect('netsuite', '$url',
		'{"consumer_key": "sandbox-consumer-key", "consumer_secret": "sandbox-consumer-secret",
		  "token_id": "sandbox-token-id", "token_secret": "sandbox token/secret+1"}', 'initech',
		'{"account_id": "1234567_SB1", "allow_insecure": true, "page_size": 10,
		  "time_zone": "America/Los_Angeles"}')};
}

# CALL unified.sync_now(...) for system $s: "inserted|updated|marked_deleted|failed";
# the requests it reports must be those the sandbox saw
sub sync_now
{
	my ($s, $args) = @_;
	my $sb = $sys{$s}{sb};
	clear_sandbox_requests($sb);
	my $out = q1("CALL unified.sync_now('$sys{$s}{conn}'$args)");
	my @f = split /\|/, $out;
	is($f[3], scalar(@{ sandbox_requests($sb) }), "$s: sync_now($args) reports the requests the sandbox saw");
	return join('|', @f[ 0 .. 2 ], $f[5]);
}

sub mutate
{
	my ($s, @ops) = @_;
	my $body = ref $ops[0] eq 'HASH' && exists $ops[0]{ops} ? $ops[0] : { ops => \@ops };
	return sandbox_call($sys{$s}{sb}, 'POST', '/_sandbox/mutate', $body);
}

sub faults
{
	my ($s, @rules) = @_;
	sandbox_call($sys{$s}{sb}, 'DELETE', '/_sandbox/faults');
	sandbox_call($sys{$s}{sb}, 'POST', '/_sandbox/faults', [@rules]) if @rules;
}

sub check_all
{
	my ($s, $what) = @_;
	check_synced($node, $sys{$s}{sb}, $s, "$sys{$s}{conn}_sync.$_", $_, "$s, $what: $_ equals the export")
	  for @{ $sys{$s}{tables} };
}

sub snapshot
{
	my ($s) = @_;
	return q1(qq{SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM $sys{$s}{conn}_sync.purchase_orders t});
}

sub last_run
{
	my ($s, $table) = @_;
	return q1(qq{SELECT status || '|' || coalesce(error, '') FROM unified.sync_runs
		WHERE connection = '$sys{$s}{conn}' AND table_name = '$table' ORDER BY id DESC LIMIT 1});
}

sub lines_of
{
	my ($s, $id) = @_;
	return q1(qq{SELECT count(*) FROM $sys{$s}{conn}.purchase_order_lines WHERE purchase_order_id = '$id'});
}

for my $s (sort keys %sys)
{
	my $c = $sys{$s}{conn};
	my $sb = $sys{$s}{sb};
	is(q1(connect_sql($s)), 'active', "$s: connected");
	is(q1(qq{SELECT string_agg(table_name || ':' || mode, ',' ORDER BY table_name) FROM unified.start_sync('$c')}),
		$sys{$s}{modes}, "$s: how each table is read follows what the connector maps");

	# ---- initial sync
	like(sync_now($s, ''), qr/^\d+\|0\|0\|0$/, "$s: initial run");
	check_all($s, 'after the initial sync');

	# ---- no change: one small request per incremental table, no record
	is(sync_now($s, ''), '0|0|0|0', "$s: a run without changes writes nothing");
	my $reqs = [ grep { $_->{path} !~ /token/ } @{ sandbox_requests($sb) } ];
	my %per;
	$per{ ($_->{path} =~ m{/(\w+)$})[0] }++ for @$reqs;
	is(join(',', map { "$_=$per{$_}" } sort keys %per), $sys{$s}{idle},
		"$s: one small request per incremental table");
	is((grep { ($_->{records} // -1) != 0 } @$reqs), 0, "$s: zero records transferred");

	# ---- a mix of changes
	my $r = mutate($s,
		{ op => 'insert_order' }, { op => 'insert_order' },
		{ op => 'update_order', order => 3 }, { op => 'update_order', order => 4, status => 'draft' },
		{ op => 'delete_order', order => 5 },
		{ op => 'remove_line', order => 7, line => 1 },
		{ op => 'update_line', order => 8, line => 1, quantity => 7 },
		{ op => 'update_line', order => 11, line => 1, description => 'text changed upstream' },
		{ op => 'update_vendor', vendor => 2, email => 'changed@example.com' },
		{ op => 'update_item', item => 1, name => 'Renamed Item' });
	my %id = map { ($_->{op} . ($_->{order} // '')) => $_->{id} } @{ $r->{done} };
	my $new_lines = lines_of($s, $id{insert_order30} // $id{insert_order60})
	  + lines_of($s, $id{insert_order31} // $id{insert_order61});
	# orders 3, 4, 7, 8, 11 (a text change moves the stamp too); the lines
	# of changed orders that differ (in SAP an item shows its order's
	# status too); NetSuite's vendor and item (SAP suppliers wait for the
	# reconciliation)
	like(sync_now($s, ', reconcile => false'), qr/^@{[2 + $new_lines]}\|\d+\|1\|0$/,
		"$s: incremental run: 2 orders and their $new_lines lines inserted, the removed line marked deleted");
	is(q1(qq{SELECT string_agg(table_name || ':' || updated, ',' ORDER BY table_name) FROM unified.sync_runs
		WHERE connection = '$c' AND id > (SELECT max(id) - @{[scalar @{ $sys{$s}{tables} }]} FROM unified.sync_runs)
		AND table_name <> 'purchase_order_lines'}),
		$s eq 'sap' ? 'purchase_orders:5,vendors:0' : 'items:1,purchase_orders:5,vendors:1',
		"$s: the changed orders, vendor and item are updated");
	is(q1(qq{SELECT count(*) FROM ${c}_sync.purchase_order_lines WHERE description = 'text changed upstream'}), '1',
		"$s: a line whose text alone changed is picked up with its order");
	is(q1(qq{SELECT deleted_at IS NULL FROM ${c}_sync.purchase_orders WHERE id = '$id{delete_order5}'}), 't',
		"$s: a deleted order waits for the reconciliation");
	like(sync_now($s, ', reconcile => true'), qr/^0\|\d+\|\d+\|0$/, "$s: the reconciliation");
	check_all($s, 'after the changes, an incremental run and a reconciliation');
	is(q1(qq{SELECT (deleted_at IS NOT NULL) || '/' || (SELECT bool_and(deleted_at IS NOT NULL)
		FROM ${c}_sync.purchase_order_lines WHERE purchase_order_id = '$id{delete_order5}')
		FROM ${c}_sync.purchase_orders WHERE id = '$id{delete_order5}'}), 'true/true',
		"$s: the deleted order and its lines stay, marked deleted");

	# ---- a record changed while a scan pages; two records sharing a stamp
	mutate($s, { after_requests => 2, ops => [ { op => 'update_order', order => 0 }, { op => 'update_order', order => 1 } ] });
	is(sync_now($s, q{, '{purchase_orders}', reconcile => true}), '0|0|0|0',
		"$s: a key scan during which two orders change (same stamp)");
	is(sync_now($s, q{, '{purchase_orders}'}), '0|2|0|0', "$s: the next run picks both up");

	# ---- failures leave the previous state; the next run converges
	$r = mutate($s, { op => 'update_order', order => 12 }, { op => 'insert_order' });
	my $inserted_lines = lines_of($s, $r->{done}[1]{id});
	my $before = snapshot($s);
	faults($s, { status => 503, match => $sys{$s}{page3}, times => 20 });
	is(sync_now($s, q{, '{purchase_orders}', reconcile => true}), '0|0|0|1', "$s: 503 on page 3 after the retries");
	like(last_run($s, 'purchase_orders'), qr/^failed\|.*HTTP status 503/s, "$s: recorded with the upstream error");
	is(snapshot($s), $before, "$s: the synced orders are as before");

	faults($s, { delay => 20, match => $sys{$s}{page2}, times => 1 });
	my ($ret, $out, $err) = $node->psql('postgres',
		qq{SET statement_timeout = '3s'; CALL unified.sync_now('$c', '{purchase_orders}', reconcile => true)});
	like($err, qr/ERROR:  sync of $c\.purchase_orders was cancelled: canceling statement due to statement timeout/,
		"$s: a statement timeout cancels the run");
	is(snapshot($s), $before, "$s: the synced orders are as before");

	faults($s, { delay => 20, match => $sys{$s}{page2}, times => 1 });
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	$bg->query_until(qr/started/, qq{\\echo started
CALL unified.sync_now('$c', '{purchase_orders}', reconcile => true);
});
	$node->poll_query_until('postgres', qq{SELECT count(*) > 0 FROM unified.sync_runs
		WHERE status = 'running' AND connection = '$c'}) or die 'run did not start';
	sleep 2;
	is(q1(qq{SELECT pg_terminate_backend(pid) FROM unified.sync_runs WHERE status = 'running' AND connection = '$c'}),
		't', "$s: the running sync's backend is terminated");
	eval { $bg->quit; 1 };
	is(q1(qq{SELECT last_run_status FROM unified.sync_status WHERE connection = '$c' AND table_name = 'purchase_orders'}),
		'interrupted', "$s: sync_status reports the run as interrupted");
	is(snapshot($s), $before, "$s: the synced orders are as before");

	faults($s, { delay => 20, match => $sys{$s}{page2}, times => 1 });
	my ($in, $o, $e) = ('', '', '');
	my $h = IPC::Run::start([ 'psql', '-X', '-d', $node->connstr('postgres'), '-c',
		qq{CALL unified.sync_now('$c', '{purchase_orders}', reconcile => true)} ], \$in, \$o, \$e);
	$node->poll_query_until('postgres', qq{SELECT count(*) > 0 FROM unified.sync_runs
		WHERE status = 'running' AND connection = '$c' AND pid IN (SELECT pid FROM pg_stat_activity)})
	  or die 'run did not start';
	sleep 2;
	$node->stop('immediate');
	$h->finish;
	$node->start;
	faults($s);
	is(snapshot($s), $before, "$s: the synced orders are as before the crash");
	is(sync_now($s, ''), (1 + $inserted_lines) . '|1|0|0', "$s: the next run converges");
	check_all($s, 'after the failed runs and one more');
}

# ---- pg_cron fires for both; disconnect stops both, nothing more is sent
for my $s (sort keys %sys)
{
	my $c = $sys{$s}{conn};
	q1(qq{SELECT unified.start_sync('$c', schedule => '* * * * *')});
	mutate($s, { op => 'update_order', order => 20 });
}
is(q1(q{SELECT string_agg(jobname || '=' || username, ',' ORDER BY jobname) FROM cron.job}),
	'unified_fdw sync globex=postgres,unified_fdw sync initech=postgres', 'one pg_cron job per connection');
ok($node->poll_query_until('postgres', q{SELECT count(DISTINCT connection) = 2 FROM unified.sync_runs
	WHERE trigger = 'scheduled' AND status = 'succeeded' AND table_name = 'purchase_orders'}),
	'the schedules fired for both connections');
$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM unified.sync_runs WHERE status = 'running'});
for my $s (sort keys %sys)
{
	check_all($s, 'after the scheduled run');
	my ($ret, $out, $err) = $node->psql('postgres', qq{SELECT unified.disconnect('$sys{$s}{conn}')});
	like($err, qr/NOTICE:  stopped \d sync\(s\) of connection "$sys{$s}{conn}" and removed its pg_cron job/,
		"$s: disconnect stops the syncs and the job");
	clear_sandbox_requests($sys{$s}{sb});
}
my $disconnected = Time::HiRes::time();
is(q1(q{SELECT count(*) FROM cron.job}), '0', 'no job is left');
my $minute = q1(q{SELECT date_trunc('minute', now()) + interval '1 minute 15 seconds'});
$node->poll_query_until('postgres', qq{SELECT now() > '$minute'});
for my $s (sort keys %sys)
{
	my $after = [ grep { $_->{received} > $disconnected } @{ sandbox_requests($sys{$s}{sb}) } ];
	is(scalar(@$after), 0, "$s: the sandbox sees no request after the disconnect (past the next minute)");
	ok(q1(qq{SELECT count(*) FROM $sys{$s}{conn}_sync.purchase_orders WHERE deleted_at IS NULL}) > 0,
		"$s: the synced rows are still readable");
}

done_testing();

# Scheduled syncs against the sandbox Business Central (docs/sql.md,
# "Syncs"): an initial sync equal to the sandbox's export; an incremental
# run without changes costing one small request per table; inserts with
# lines, updates (two with the same modification time, one behind our
# clock), a deleted order, a removed line, a changed line, vendor and item
# changes, picked up by one incremental run and a reconciliation; a record
# changed while a scan pages; runs killed by a 503 on page 3, a statement
# timeout, pg_terminate_backend and a server crash leaving the previous
# state, the next run converging; overlapping runs skipped and recorded; a
# pg_cron schedule firing; a 401 in a scheduled run; disconnect removing the
# job with no request after it and the rows still there; reconnecting under
# a new name adopting the synced tables.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use UfdwTest;

my $sb = start_sandbox('bc', '--orders', 60, '--spare-orders', 20);
my $node = new_node('syncs', cron => 1);
my @tables = qw(purchase_orders purchase_order_lines vendors items);

sub q1 { return $node->safe_psql('postgres', $_[0]); }

sub connect_sql
{
	my ($name) = @_;
	return qq{SELECT status FROM unified.connect('dynamics365_bc',
		'$sb->{url}/v2.0/tap/production',
		'{"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}', '$name',
		'{"company_id": "@{[bc_company]}", "token_url": "$sb->{url}/tap/oauth2/v2.0/token",
		  "allow_insecure": true, "page_size": 10}')};
}

# CALL unified.sync_now(...): "inserted|updated|marked_deleted|failed"; the
# requests it reports must be those the sandbox saw (token requests included)
sub sync_now
{
	my ($args) = @_;
	clear_sandbox_requests($sb);
	my $out = q1("CALL unified.sync_now($args)");
	my @f = split /\|/, $out;
	is($f[3], scalar(@{ sandbox_requests($sb) }), "sync_now($args) reports the requests the sandbox saw");
	return join('|', @f[ 0 .. 2 ], $f[5]);
}

sub mutate
{
	my (@ops) = @_;
	my $body = ref $ops[0] eq 'HASH' && exists $ops[0]{ops} ? $ops[0] : { ops => \@ops };
	return sandbox_call($sb, 'POST', '/_sandbox/mutate', $body);
}

sub faults
{
	sandbox_call($sb, 'DELETE', '/_sandbox/faults');
	sandbox_call($sb, 'POST', '/_sandbox/faults', [@_]) if @_;
}

sub check_all
{
	my ($what) = @_;
	check_synced($node, $sb, 'bc', "acme_sync.$_", $_, "$what: $_ equals the export")
	  for @tables;
}

# the synced orders exactly, every column included
sub snapshot
{
	return q1(q{SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM acme_sync.purchase_orders t});
}

sub last_run
{
	my ($table) = @_;
	return q1(qq{SELECT status || '|' || coalesce(kind, '') || '|' || coalesce(error, '')
		FROM unified.sync_runs WHERE connection = 'acme' AND table_name = '$table'
		ORDER BY id DESC LIMIT 1});
}

# data requests since the log was cleared (not the token endpoint)
sub data_requests
{
	return [ grep { $_->{path} =~ m{/api/v2\.0/} } @{ sandbox_requests($sb) } ];
}

is(q1(connect_sql('acme')), 'active', 'connected');

# ---- starting: where the tables go and how each is read
is(q1(q{SELECT string_agg(table_name || ':' || mode, ',' ORDER BY table_name)
	FROM unified.start_sync('acme')}),
	'items:incremental,purchase_order_lines:follows,purchase_orders:incremental,vendors:incremental',
	'start_sync: orders, vendors and items by updated_at, lines following their orders');
is(q1(q{SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY attnum)
	FROM pg_attribute a WHERE attrelid = 'acme_sync.vendors'::regclass AND attnum > 0}),
	'id text, number text, name text, email text, phone text, currency text, status text, updated_at timestamp with time zone, raw jsonb, synced_at timestamp with time zone, deleted_at timestamp with time zone',
	'a synced table has the foreign table\'s columns and types plus synced_at and deleted_at');
my ($ret, $out, $err) = $node->psql('postgres', q{SELECT unified.start_sync('acme', '{orders}')});
like($err, qr/connection "acme" has no table 'orders'.*HINT:  Its tables: /s,
	'an unknown table is refused, naming the tables there are');

# ---- initial sync
is(sync_now(q{'acme'}), '250|0|0|0', 'initial run: 250 rows inserted');
check_all('after the initial sync');
is(q1(q{SELECT string_agg(DISTINCT kind, ',') FROM unified.sync_runs}), 'initial',
	'every table\'s first run is recorded as initial');

# ---- no change: one small request per table, no record
is(sync_now(q{'acme'}), '0|0|0|0', 'a run without changes writes nothing');
my $reqs = data_requests();
my %per;
$per{ ($_->{path} =~ m{/(\w+)$})[0] }++ for @$reqs;
is(join(',', map { "$_=$per{$_}" } sort keys %per), 'items=1,purchaseOrders=1,vendors=1',
	'one request per table (lines: none, no order changed)');
is((grep { ($_->{records} // -1) != 0 } @$reqs), 0, 'and zero records transferred');
like($reqs->[0]{query}, qr/\$filter=lastModifiedDateTime%20ge%20\d{4}-/,
	'the change filter is sent upstream');

# ---- a mix of changes: one incremental run, then a reconciliation
my $r = mutate(
	{ op => 'insert_order' }, { op => 'insert_order' },
	{ op => 'update_order', order => 3 }, { op => 'update_order', order => 4, status => 'draft' },
	{ op => 'delete_order', order => 5 },
	{ op => 'remove_line', order => 7, line => 1 },
	{ op => 'update_line', order => 8, line => 1, quantity => 7 },
	{ op => 'update_line', order => 9, line => 1, description => 'text changed upstream' },
	{ op => 'update_vendor', vendor => 2, name => 'Renamed Vendor' },
	{ op => 'update_item', item => 1, name => 'Renamed Item' });
my %id = map { ($_->{op} . ($_->{order} // '')) => $_->{id} } @{ $r->{done} };
my $new_lines = q1(qq{SELECT count(*) FROM acme.purchase_order_lines
	WHERE purchase_order_id IN ('$id{insert_order60}', '$id{insert_order61}')});
my $line7 = q1(qq{SELECT string_agg(id, ',' ORDER BY line_number) FROM acme_sync.purchase_order_lines
	WHERE purchase_order_id = '$id{remove_line7}'});
clear_sandbox_requests($sb);
is(sync_now(q{'acme', reconcile => false}), (2 + $new_lines) . '|7|1|0',
	"incremental run: 2 orders and their $new_lines lines inserted; 4 orders, 1 line, 1 vendor, 1 item updated; the removed line marked deleted");
is(q1(qq{SELECT count(*) FROM acme_sync.purchase_order_lines WHERE description = 'text changed upstream'}), '0',
	'a line whose text alone changed is not seen yet: Business Central does not move its order\'s stamp');
is(q1(q{SELECT string_agg(table_name || ':' || inserted || '/' || updated || '/' || marked_deleted, ',' ORDER BY table_name)
	FROM unified.sync_runs WHERE id > (SELECT max(id) - 4 FROM unified.sync_runs)}),
	"items:0/1/0,purchase_order_lines:$new_lines/1/1,purchase_orders:2/4/0,vendors:0/1/0",
	'per table');
is(q1(qq{SELECT count(*) FROM acme_sync.purchase_order_lines WHERE deleted_at IS NOT NULL
	AND id = split_part('$line7', ',', 1)}), '1', 'the removed line is marked deleted, not removed');
is(q1(qq{SELECT deleted_at IS NULL FROM acme_sync.purchase_orders WHERE id = '$id{delete_order5}'}), 't',
	'a deleted order is not seen by an incremental run');
is(sync_now(q{'acme', reconcile => true}), '0|1|2|0',
	'the reconciliation marks the deleted order and its line, and catches up the line whose text changed');
is(q1(q{SELECT kind FROM unified.sync_runs WHERE table_name = 'purchase_orders' ORDER BY id DESC LIMIT 1}),
	'incremental+reconcile', 'orders are reconciled by their keys');
check_all('after the changes, an incremental run and a reconciliation');
is(q1(qq{SELECT count(*) FILTER (WHERE deleted_at IS NOT NULL) || '/' || count(*)
	FROM acme_sync.purchase_orders WHERE id = '$id{delete_order5}'}), '1/1',
	'the deleted order stays, marked deleted');
is(q1(qq{SELECT bool_and(deleted_at IS NOT NULL) FROM acme_sync.purchase_order_lines
	WHERE purchase_order_id = '$id{delete_order5}'}), 't', 'so do its lines');

# ---- two records with the same stamp, behind our clock (skew within the overlap)
my $wm = q1(q{SELECT to_char((watermark - interval '4 minutes') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
	FROM unified.syncs WHERE connection = 'acme' AND table_name = 'purchase_orders'});
mutate({ at => $wm, ops => [ { op => 'update_order', order => 10 }, { op => 'update_order', order => 11 } ] });
is(sync_now(q{'acme', '{purchase_orders}'}), '0|2|0|0',
	'two orders sharing a stamp 4 minutes behind the watermark are both picked up (overlap 10 minutes)');

# ---- a record changed while a scan is paging: that run or the next picks it up
clear_sandbox_requests($sb);
mutate({ after_requests => 3, ops => [ { op => 'update_order', order => 0 } ] });
is(sync_now(q{'acme', '{purchase_orders}', reconcile => true}), '0|0|0|0',
	'a run whose key scan pages while order 0 changes');
is(sandbox_call($sb, 'GET', '/_sandbox/mutate')->{done}[0]{op}, 'update_order',
	'the change was made after the third request, mid-scan');
is(sync_now(q{'acme', '{purchase_orders}'}), '0|1|0|0', 'the next run picks it up');
check_synced($node, $sb, 'bc', 'acme_sync.purchase_orders', 'purchase_orders', 'orders equal the export again');

# ---- failed runs leave the previous state; the next run converges
$r = mutate({ op => 'update_order', order => 12 }, { op => 'insert_order' });
my $inserted = $r->{done}[1]{id};
my $before = snapshot();

# 503 on page 3 of the key scan, beyond the retries
faults({ status => 503, match => 'skiptoken', skip => 1, times => 20 });
is(sync_now(q{'acme', '{purchase_orders}', reconcile => true}), '0|0|0|1',
	'503 on page 3 (after the retries): the run fails');
like(last_run('purchase_orders'), qr/^failed\|\|could not fetch .*HTTP status 503/s,
	'the failed run is recorded with the upstream error');
is(snapshot(), $before, 'the synced orders are exactly as before (the changes read before the failure are not kept)');
faults();

# statement timeout during page 2
faults({ delay => 20, match => 'skiptoken', times => 1 });
($ret, $out, $err) = $node->psql('postgres',
	q{SET statement_timeout = '3s'; CALL unified.sync_now('acme', '{purchase_orders}', reconcile => true)});
like($err, qr/ERROR:  sync of acme\.purchase_orders was cancelled: canceling statement due to statement timeout/,
	'statement_timeout cancels the run with a clear error');
like(last_run('purchase_orders'), qr/^failed\|\|canceling statement due to statement timeout/,
	'the cancelled run is recorded as failed');
is(snapshot(), $before, 'the synced orders are as before');
faults();

# pg_terminate_backend during page 2; meanwhile a second run is skipped
faults({ delay => 30, match => 'skiptoken', times => 1 });
my $bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/started/, q{\echo started
CALL unified.sync_now('acme', '{purchase_orders}', reconcile => true);
});
$node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM unified.sync_runs
	WHERE status = 'running' AND table_name = 'purchase_orders'}) or die 'run did not start';
sleep 2;    # into the delayed page
is(sync_now(q{'acme', '{purchase_orders}'}), '0|0|0|0', 'a second run of the same table at the same time');
like(last_run('purchase_orders'), qr/^skipped\|\|another run of this table was in progress/,
	'is skipped and recorded');
is(q1(q{SELECT last_run_status FROM unified.sync_status WHERE table_name = 'purchase_orders'}), 'skipped',
	'sync_status shows the skipped run');
is(q1(q{SELECT pg_terminate_backend(pid) FROM unified.sync_runs WHERE status = 'running' AND table_name = 'purchase_orders'}),
	't', 'the running sync\'s backend is terminated');
eval { $bg->quit; 1 };    # its backend is gone: the pipe may be closed
$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity
	WHERE query LIKE 'CALL unified.sync_now%' AND pid <> pg_backend_pid()});
is(q1(q{SELECT status FROM unified.sync_runs WHERE table_name = 'purchase_orders' AND status IN ('running', 'interrupted') ORDER BY id DESC LIMIT 1}),
	'running', 'the terminated run\'s row says running');
is(snapshot(), $before, 'the synced orders are as before');
faults();

# a server crash (immediate stop) during page 2
faults({ delay => 30, match => 'skiptoken', times => 1 });
my ($in, $o, $e) = ('', '', '');
my $h = IPC::Run::start([ 'psql', '-X', '-d', $node->connstr('postgres'), '-c',
	q{CALL unified.sync_now('acme', '{purchase_orders}', reconcile => true)} ], \$in, \$o, \$e);
$node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM unified.sync_runs
	WHERE status = 'running' AND table_name = 'purchase_orders' AND pid IN (SELECT pid FROM pg_stat_activity)})
  or die 'run did not start';
sleep 2;
$node->stop('immediate');
$h->finish;
$node->start;
faults();
is(q1(q{SELECT last_run_status FROM unified.sync_status WHERE table_name = 'purchase_orders'}), 'interrupted',
	'after a crash sync_status reports the run as interrupted');
is(snapshot(), $before, 'the synced orders are as before the crash');
my $inserted_lines = q1(qq{SELECT count(*) FROM acme.purchase_order_lines WHERE purchase_order_id = '$inserted'});
is(sync_now(q{'acme'}), (1 + $inserted_lines) . '|1|0|0',
	"the next run converges: the inserted order with its $inserted_lines lines, the updated order");
is(q1(q{SELECT string_agg(status, ',' ORDER BY id) FROM unified.sync_runs
	WHERE table_name = 'purchase_orders' AND status IN ('interrupted', 'running')}), 'interrupted,interrupted',
	'both runs that never finished (terminated, crashed) are recorded as interrupted');
check_all('after the failed runs and one more');

# ---- pg_cron: the schedule fires, as the role that made the sync
my $jobs = q1(q{SELECT string_agg(table_name || '=' || schedule, ',' ORDER BY table_name)
	FROM unified.start_sync('acme', schedule => '* * * * *')});
is($jobs, 'items=* * * * *,purchase_order_lines=* * * * *,purchase_orders=* * * * *,vendors=* * * * *',
	'start_sync with a schedule');
is(q1(q{SELECT schedule || '|' || username || '|' || command FROM cron.job WHERE jobname = 'unified_fdw sync acme'}),
	q{* * * * *|postgres|CALL unified.sync_now('acme', scheduled => true)},
	'one pg_cron job for the connection, run as the role that started the sync');
mutate({ op => 'update_order', order => 20 });
ok($node->poll_query_until('postgres', q{SELECT count(*) = 4 FROM unified.sync_runs
	WHERE trigger = 'scheduled' AND status = 'succeeded'}), 'the schedule fired and synced every table');
check_all('after the scheduled run');

# ---- a 401 in a scheduled run: reauthorization_required, no more attempts
q1(q{SELECT cron.unschedule('unified_fdw sync acme')});    # run it by hand, as the job would
sandbox_call($sb, 'POST', '/_sandbox/config', { client_secret => 'rotated' });
sandbox_call($sb, 'POST', '/_sandbox/revoke', {});
mutate({ op => 'update_order', order => 21 });
is(sync_now(q{'acme', scheduled => true}), '0|0|0|1', 'a scheduled run meeting HTTP 401 fails');
like(last_run('items'), qr/^failed\|\|.*HTTP status 401/s, 'its first table records the 401');
like(last_run('vendors'), qr/^skipped\|\|connection "acme" needs reauthorization/,
	'the other tables are not tried');
$node->poll_query_until('postgres', q{SELECT status = 'reauthorization_required' FROM unified.status('acme')})
  or diag 'status not updated';
clear_sandbox_requests($sb);
is(sync_now(q{'acme', scheduled => true}), '0|0|0|0', 'the next scheduled run sends nothing');
is(scalar(@{ sandbox_requests($sb) }), 0, 'the sandbox saw no request');

# ---- disconnect: the job goes, nothing is sent after it, the rows stay
q1(q{SELECT unified.start_sync('acme', schedule => '* * * * *')});
($ret, $out, $err) = $node->psql('postgres', q{SELECT status FROM unified.disconnect('acme')});
like($err, qr/NOTICE:  stopped 4 sync\(s\) of connection "acme" and removed its pg_cron job; the synced tables stay in schema acme_sync/,
	'disconnect stops every sync of the connection and its pg_cron job at once');
is(q1(q{SELECT count(*) FROM cron.job WHERE jobname LIKE 'unified_fdw sync %'}), '0', 'no job is left');
is(q1(q{SELECT string_agg(DISTINCT state || ':' || stopped_reason, ',') FROM unified.syncs}), 'stopped:disconnected',
	'the syncs are recorded as stopped');
clear_sandbox_requests($sb);
my $disconnected = Time::HiRes::time();
my $minute = q1(q{SELECT date_trunc('minute', now()) + interval '1 minute 15 seconds'});
$node->poll_query_until('postgres', qq{SELECT now() > '$minute'});
# (requests delayed by the faults above arrived before, and are logged late)
my $after = [ grep { $_->{received} > $disconnected } @{ sandbox_requests($sb) } ];
is(scalar(@$after), 0, 'the sandbox sees no request after the disconnect (past the next minute)')
  or diag(join("\n", map { "$_->{timestamp} $_->{method} $_->{path}?$_->{query}" } @$after),
	q1(q{SELECT string_agg(id || ' ' || table_name || ' ' || trigger || ' ' || status || ' ' || started_at, E'\n' ORDER BY id) FROM unified.sync_runs WHERE id > (SELECT max(id) - 10 FROM unified.sync_runs)}));
is(q1(q{SELECT count(*) FROM acme_sync.purchase_orders WHERE deleted_at IS NULL}), '62',
	'the synced rows are still readable');
($ret, $out, $err) = $node->psql('postgres', q{CALL unified.sync_now('acme')});
like($err, qr/NOTICE:  connection "acme" has no active sync/, 'a run now does nothing');

# ---- reconnecting under a new name adopts the synced tables
sandbox_call($sb, 'POST', '/_sandbox/config', { client_secret => 'sandbox-client-secret' });
is(q1(connect_sql('acme2')), 'active', 'reconnected as acme2');
is(q1(q{SELECT string_agg(DISTINCT connection || ':' || state, ',') FROM unified.adopt_synced_data('acme', 'acme2')}),
	'acme2:stopped', 'adopt_synced_data moves the syncs to the new connection');
q1(q{SELECT unified.start_sync('acme2')});
is(sync_now(q{'acme2'}), '0|1|0|0', 'the first run of acme2 is incremental: the order changed since the 401');
is(q1(q{SELECT string_agg(DISTINCT kind, ',') FROM unified.sync_runs WHERE connection = 'acme2'}),
	'follows,incremental', 'no table was read whole again');
check_synced($node, $sb, 'bc', "acme2_sync.$_", $_, "adopted $_ equals the export") for @tables;
is(q1(q{SELECT unified.drop_synced_data('acme2')}), '4', 'drop_synced_data drops the tables when asked');
is(q1(q{SELECT to_regnamespace('acme2_sync') IS NULL}), 't', 'schema acme2_sync is gone');

# ---- a non-superuser's sync: the job runs as that role, others do not see it
q1(q{CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN;
	GRANT USAGE ON FOREIGN DATA WRAPPER unified_fdw TO alice;
	GRANT CREATE ON DATABASE postgres TO alice; GRANT USAGE ON SCHEMA cron TO alice});
# a loopback sandbox needs allow_insecure, which only a superuser may set:
# the superuser connects, then hands the connection over to alice
is(q1(connect_sql('alicebc')), 'active', 'connected alicebc');
q1(q{ALTER SERVER alicebc OWNER TO alice;
	CREATE USER MAPPING FOR alice SERVER alicebc
	  OPTIONS (client_id 'sandbox-client-id', client_secret 'sandbox-client-secret');
	GRANT USAGE ON SCHEMA alicebc TO alice;
	GRANT SELECT ON ALL TABLES IN SCHEMA alicebc TO alice;
	DROP USER MAPPING FOR postgres SERVER alicebc;
	UPDATE unified.connections SET owner = 'alice' WHERE name = 'alicebc'});
sub as_user
{
	my ($user, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, extra_params => [ '-U', $user ]);
	return $ret == 0 ? $out : "ERROR: $err";
}
is(as_user('alice', q{SELECT count(*) FROM unified.start_sync('alicebc', '{vendors}', schedule => '* * * * *')}),
	'1', 'alice starts a scheduled sync');
is(q1(q{SELECT username FROM cron.job WHERE jobname = 'unified_fdw sync alicebc'}), 'alice',
	'its pg_cron job runs as alice');
ok($node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM unified.sync_runs
	WHERE connection = 'alicebc' AND trigger = 'scheduled' AND status = 'succeeded'}), 'the job ran');
is(q1(q{SELECT string_agg(DISTINCT run_by || '/' || owner, ',') FROM unified.sync_runs WHERE connection = 'alicebc'}),
	'alice/alice', 'as alice, for alice\'s sync, with her user mapping (the only one of alicebc)');
is(as_user('alice', q{SELECT count(*) || ' ' || string_agg(DISTINCT connection, ',') FROM unified.sync_status}),
	'1 alicebc', 'alice sees her sync only');
is(as_user('bob', q{SELECT count(*) FROM unified.sync_status}), '0', 'bob sees none');
is(as_user('bob', q{SELECT count(*) FROM unified.sync_runs}), '0', 'nor their runs');
like(as_user('bob', q{CALL unified.sync_now('alicebc')}), qr/connection "alicebc" does not exist/,
	'and cannot run them');
is(as_user('alice', q{SELECT count(*) FROM unified.stop_sync('alicebc')}), '1', 'alice stops her sync');
is(q1(q{SELECT count(*) FROM cron.job WHERE jobname = 'unified_fdw sync alicebc'}), '0',
	'which removes her job');

done_testing();

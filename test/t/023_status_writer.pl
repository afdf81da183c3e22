# Status writes are batched: a burst of 1,000 failing queries across 20
# sessions starts at most a few status writers (one per database at a
# time, docs/operations.md "Connection status writer"), counted in the
# postmaster's log of background worker starts, and loses no status: every
# request is counted and the last failure is recorded.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use UfdwTest;

my $sb = start_sandbox('bc');
my $node = new_node('status_writer', log_min_messages => 'debug1',
	max_worker_processes => 8);
$node->safe_psql('postgres', qq{
	SELECT name, status FROM unified.connect('dynamics365_bc',
		'$sb->{url}/v2.0/tap/production',
		'{"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}', 'acme',
		'{"company_id": "@{[bc_company]}", "token_url": "$sb->{url}/tap/oauth2/v2.0/token",
		  "allow_insecure": true}')});
my $before = $node->safe_psql('postgres',
	q{SELECT requests FROM unified.status('acme')});

# every data request fails with 404 (not retried: one request per query)
sandbox_call($sb, 'POST', '/_sandbox/faults',
	{ match => '/vendors', status => 404, times => -1 });
clear_sandbox_requests($sb);

my $sessions = 20;
my $per_session = 50;
my $offset = -s $node->logfile;
my @runs;
for my $i (1 .. $sessions)
{
	my ($out, $err) = ('', '');
	push @runs, [ IPC::Run::start(
		[ 'psql', '-X', '-At', '-d', $node->connstr('postgres'), '-c', qq{
		DO \$\$
		DECLARE failed int := 0;
		BEGIN
			FOR i IN 1 .. $per_session LOOP
				BEGIN
					PERFORM count(*) FROM acme.vendors;
				EXCEPTION WHEN fdw_error THEN
					failed := failed + 1;
				END;
			END LOOP;
			RAISE NOTICE 'failed %', failed;
		END \$\$} ],
		'>', \$out, '2>', \$err, IPC::Run::timeout(300)), \$err ];
}
my $failed = 0;
for my $r (@runs)
{
	$r->[0]->finish;
	$failed += $1 if ${ $r->[1] } =~ /failed (\d+)/;
}
is($failed, $sessions * $per_session, "$failed queries failed with HTTP 404");
my @reqs = @{ sandbox_requests($sb) };
my $sent = grep { $_->{path} =~ m{/vendors$} } @reqs;
is($sent, $sessions * $per_session, 'one request per failing query reached the sandbox');
# and one token request per session
my $all = scalar(@reqs);

# wait until everything queued is written (unified.status syncs)
my $status = $node->safe_psql('postgres', qq{
	SELECT requests - $before, status, last_http_status, last_error LIKE 'HTTP status 404 while reading "vendors"%'
	  FROM unified.status('acme')});
is($status, join('|', $all, 'error', 404, 't'),
	'no status lost: every request counted, the last failure recorded');

my $log = substr(slurp_file($node->logfile), $offset);
my $starts = () = $log =~ /starting background worker process "unified_fdw status writer"/g;
note("status writers started for $failed failures: $starts");
cmp_ok($starts, '>=', 1, 'a status writer ran');
cmp_ok($starts, '<=', 5, "at most 5 status writers for the burst ($starts)");
unlike($log, qr/no background worker slot|out of background worker slots/,
	'never short of worker slots');

done_testing();

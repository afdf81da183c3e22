# ANALYZE on a foreign table samples the upstream within a documented
# request budget (docs/sql.md, "ANALYZE"): targrows records (300 x the
# statistics target) in at most ceil(targrows / page_size) requests: the
# first page, whose request also asks for the upstream's count, then pages
# spread evenly over the table.  The
# planner then uses the row count (pg_class.reltuples) and the column
# statistics (pg_stats), so a join with a local table plans on real sizes.
# use_remote_estimate still asks the upstream at planning time.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use POSIX qw(ceil);
use Test::More;
use UfdwTest;

my $orders = 100_000;
my $node = new_node('analyze');
my $bc = start_sandbox('bc', '--orders', $orders);
bc_connect($node, $bc, 'bc');

# Requests for an entity set, from the sandbox's log (the token request is not one).
sub api_requests
{
	my ($sb, $pattern) = @_;
	return [ grep { $_->{path} =~ $pattern } @{ sandbox_requests($sb) } ];
}

sub plan_of
{
	my ($sql) = @_;
	return $node->safe_psql('postgres', "EXPLAIN (COSTS ON) $sql");
}

# a local table of three vendors, joined with their orders
$node->safe_psql('postgres', q{
	CREATE TABLE picks AS SELECT id AS vendor_id FROM bc.vendors ORDER BY id LIMIT 3;
	ANALYZE picks;
});
my $join = q{SELECT count(*) FROM picks p JOIN bc.purchase_orders o ON o.vendor_id = p.vendor_id};
my $before = plan_of($join);
note("before ANALYZE:\n$before");
like($before, qr/Foreign Scan on purchase_orders o .*rows=1000 /,
	'before ANALYZE the planner guesses 1000 orders');
like($before, qr/Hash Join/, 'and joins by hashing a scan of every order');
my $status_before = plan_of(q{SELECT * FROM bc.purchase_orders WHERE status = 'open'});

# the sample: 300 x default_statistics_target (100) rows, pages of 1000
is($node->safe_psql('postgres', 'SHOW default_statistics_target'), '100', 'statistics target 100');
my $targrows = 300 * 100;
my $budget = ceil($targrows / 1000);
clear_sandbox_requests($bc);
my ($ret, $out, $err) = $node->psql('postgres', 'ANALYZE VERBOSE bc.purchase_orders');
is($ret, 0, 'ANALYZE of 100,000 orders succeeds') or diag($err);
like($err, qr/"purchase_orders": the upstream holds 100000 records; 30000 rows in sample, read in \d+ requests/,
	'ANALYZE VERBOSE reports the count, the sample and the requests');
my $reqs = api_requests($bc, qr{/purchaseOrders});
cmp_ok(scalar(@$reqs), '<=', $budget, "ANALYZE sent at most ceil(30000 / 1000) = $budget requests (" . scalar(@$reqs) . ')');
cmp_ok(scalar(@$reqs), '>=', 1, 'ANALYZE read the upstream');
like($reqs->[0]{query} // '', qr/\$count=true/, 'the first request asks for the count');
my @skips = map { ($_->{query} // '') =~ /\$skip=(\d+)/ ? $1 : 0 } @$reqs;
cmp_ok((sort { $b <=> $a } @skips)[0], '>=', 90_000, 'the sample pages are spread to the end of the table ($skip)');
is(scalar(keys %{ { map { $_ => 1 } @skips } }), scalar(@skips), 'no page is read twice');
is($node->safe_psql('postgres',
	q{SELECT reltuples::bigint FROM pg_class WHERE oid = 'bc.purchase_orders'::regclass}),
	$orders, 'reltuples is the upstream count (100,000)');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_stats WHERE schemaname = 'bc' AND tablename = 'purchase_orders'
	   AND attname IN ('status', 'vendor_id', 'order_date', 'total_amount')}), '4',
	'pg_stats has the columns of the sample');
is($node->safe_psql('postgres', q{
	SELECT most_common_vals IS NOT NULL FROM pg_stats
	 WHERE schemaname = 'bc' AND tablename = 'purchase_orders' AND attname = 'status'}), 't',
	'status has most common values');

my $after = plan_of($join);
note("after ANALYZE:\n$after");
like($after, qr/Foreign Scan on purchase_orders o .*rows=\d{3,}/, 'the join is planned on the real size');
unlike($after, qr/Foreign Scan on purchase_orders o .*rows=1000 /, 'not on the guess');
like($after, qr/Nested Loop/, 'and reads only the three vendors\' orders, one parameterized scan per vendor');
unlike($after, qr/Hash Join/, 'no longer a scan of every order');

# the estimate of a filter now comes from the column statistics
my $open = $node->safe_psql('postgres', q{SELECT count(*) FROM bc.purchase_orders WHERE status = 'open'});
my ($est) = plan_of(q{SELECT * FROM bc.purchase_orders WHERE status = 'open'}) =~ /rows=(\d+)/;
my ($est0) = $status_before =~ /rows=(\d+)/;
note("status = 'open': $open rows; estimated $est0 before ANALYZE, $est after");
# (the first 30,000 orders alone, a prefix, gave about 20,000: older orders are closed)
cmp_ok($est, '>', $open / 1.5, "the estimate of status = 'open' ($est) is within 50% of the real count ($open)");
cmp_ok($est, '<', $open * 1.5, '... from above as well');

# the join's result is the same either way
my $count_join = $node->safe_psql('postgres', $join);
is($count_join, $node->safe_psql('postgres', q{
	SELECT count(*) FROM bc.purchase_orders o WHERE o.vendor_id IN (SELECT vendor_id FROM picks)}),
	'the join counts the same orders');

# a small table is read to its end and counted exactly, in one request
clear_sandbox_requests($bc);
$node->safe_psql('postgres', 'ANALYZE bc.vendors');
my $vendor_reqs = api_requests($bc, qr{/vendors});
my $vendors = $node->safe_psql('postgres', 'SELECT count(*) FROM bc.vendors');
is($node->safe_psql('postgres',
	q{SELECT reltuples::bigint FROM pg_class WHERE oid = 'bc.vendors'::regclass}),
	$vendors, "a table smaller than the sample: reltuples is its row count ($vendors)");
is(scalar(@$vendor_reqs), 1, 'read in one request');

# use_remote_estimate stays available and asks the upstream at planning time
$node->safe_psql('postgres',
	q{ALTER FOREIGN TABLE bc.purchase_orders OPTIONS (ADD use_remote_estimate 'true')});
clear_sandbox_requests($bc);
my $remote = plan_of(q{SELECT * FROM bc.purchase_orders WHERE status = 'open'});
my ($est_remote) = $remote =~ /rows=(\d+)/;
is($est_remote, $open, "use_remote_estimate: the estimate is the upstream's count ($open)");
is(scalar(@{ api_requests($bc, qr{/purchaseOrders}) }), 1, 'from one request at planning time');

# SAP (OData V2 $inlinecount) and NetSuite (SuiteQL totalResults) count too:
# statistics target 1 samples 300 rows, pages of 100 make three requests
my $sap = start_sandbox('sap', '--orders', 1000);
sap_connect($node, $sap, 'sap', page_size => 100);
my $ns = start_sandbox('netsuite', '--orders', 1000);
$node->safe_psql('postgres', qq{
	CREATE SERVER ns FOREIGN DATA WRAPPER unified_fdw OPTIONS (
		system 'netsuite', instance_url '$ns->{url}', account_id '1234567_SB1',
		allow_insecure 'true', page_size '100');
	CREATE USER MAPPING FOR CURRENT_USER SERVER ns OPTIONS (token 'sandbox-bearer-token');
	CREATE SCHEMA ns;
	IMPORT FOREIGN SCHEMA unified LIMIT TO (purchase_orders) FROM SERVER ns INTO ns;
});
for my $case ([ 'sap', $sap, qr{/A_PurchaseOrder\b} ], [ 'ns', $ns, qr{/suiteql} ])
{
	my ($schema, $sb, $pattern) = @$case;
	clear_sandbox_requests($sb);
	$node->safe_psql('postgres',
		"SET default_statistics_target = 1; ANALYZE $schema.purchase_orders");
	my $r = api_requests($sb, $pattern);
	my $n = $node->safe_psql('postgres', "SELECT count(*) FROM $schema.purchase_orders");
	is(scalar(@$r), 3, "$schema: a sample of 300 in pages of 100 is three requests");
	is($node->safe_psql('postgres',
		"SELECT reltuples::bigint FROM pg_class WHERE oid = '$schema.purchase_orders'::regclass"),
		$n, "$schema: reltuples is the upstream's count ($n)");
}

done_testing();

# NetSuite: SuiteQL returns at most 100,000 results of one query, however it
# is paged (and at most 1000 pages).  A table larger than that is read whole
# all the same: when a query's last page is full the scan goes on with a new
# query for the records after the last key read.  The full scan equals the
# sandbox's own table (test/check_fullscan.py); no partial table, ever.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use UfdwTest;

# 42000 orders have about 105,000 lines (the sandbox serves 100,000 of one query)
my $sb = start_sandbox('netsuite', '--orders', '42000', '--time-zone', 'Europe/Berlin');
my $node = new_node('netsuite_100k');
$node->safe_psql('postgres', qq{
	CREATE SERVER ns FOREIGN DATA WRAPPER unified_fdw OPTIONS (
		system 'netsuite', instance_url '$sb->{url}', account_id '1234567_SB1',
		allow_insecure 'true', time_zone 'Europe/Berlin', max_concurrency '4');
	CREATE USER MAPPING FOR CURRENT_USER SERVER ns OPTIONS (token 'sandbox-bearer-token');
	CREATE SCHEMA ns;
	IMPORT FOREIGN SCHEMA unified LIMIT TO (purchase_order_lines) FROM SERVER ns INTO ns;
});

clear_sandbox_requests($sb);
my $t0 = time;
my $rows = check_fullscan($node, $sb, 'netsuite', 'ns.purchase_order_lines', 'purchase_order_lines', 'UTC');
my $secs = time - $t0;
my $n = () = $rows =~ /\n/g;
$n++ if length $rows;
cmp_ok($n, '>', 100_000, "the table has more than 100,000 rows ($n)");
note(sprintf('%d rows in %.1f s', $n, $secs));

my @reqs = grep { $_->{status} == 200 } @{ sandbox_requests($sb) };
my @queries = map { $_->{body} =~ /"q":"([^"]+)"/ ? $1 : '' } @reqs;
my %distinct = map { $_ => 1 } @queries;
is(scalar(keys %distinct), 2, 'two queries: the first 100,000 rows, then the rest');
my @offsets = map { $_->{query} =~ /offset=(\d+)/ ? $1 : -1 } @reqs;
ok(!grep({ $_ >= 100_000 } @offsets), 'no offset at or past 100,000');
my @second = grep { $_->{body} =~ /tl\.transaction > \?/ } @reqs;
ok(@second > 0, 'the second query asks for the lines after the last key read');
like($second[0]{body} // '', qr/"params":\["\d+","\d+","\d+"\]/, 'with the last key as bound values')
  if @second;
is(scalar(@reqs), int(($n + 999) / 1000), 'one request per page of 1000');

# count(*) and a filter that keeps most rows go past the cap too
is($node->safe_psql('postgres', 'SELECT count(*) FROM ns.purchase_order_lines'), $n,
	'count(*) counts every row');
my $pushed = $node->safe_psql('postgres',
	q{SELECT count(*) FROM ns.purchase_order_lines WHERE line_number >= 1});
is($pushed, $n, 'a pushed filter that keeps every row (pushdown off reads the table as the full scan did)');

done_testing();

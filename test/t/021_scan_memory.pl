# A scan holds one page's worth of memory however many pages it reads: the
# memory contexts of the scan (unified_fdw scan, page, filter, request)
# weigh the same after 10 pages as after 600, for each kind of paging:
# SAP (OData V2, $top/$skip URLs, also with requests sent ahead), NetSuite
# (SuiteQL: the whole query is the body of every page's request) and
# Business Central (OData v4 next links).  Measured inside an open cursor,
# where the scan is still running, with pg_backend_memory_contexts.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use UfdwTest;

my $orders = 600;
my $node = new_node('scan_memory');
my %sb = map { $_ => start_sandbox($_, '--orders', $orders) } qw(sap netsuite bc);
sap_connect($node, $sb{sap}, 'sap', page_size => 1);
bc_connect($node, $sb{bc}, 'bc', page_size => 1);
$node->safe_psql('postgres', qq{
	CREATE SERVER ns FOREIGN DATA WRAPPER unified_fdw OPTIONS (
		system 'netsuite', instance_url '$sb{netsuite}{url}', account_id '1234567_SB1',
		allow_insecure 'true', page_size '1');
	CREATE USER MAPPING FOR CURRENT_USER SERVER ns OPTIONS (
		consumer_key 'sandbox-consumer-key', consumer_secret 'sandbox-consumer-secret',
		token_id 'sandbox-token-id', token_secret 'sandbox token/secret+1');
	CREATE SCHEMA ns;
	IMPORT FOREIGN SCHEMA unified FROM SERVER ns INTO ns;
});
sap_connect($node, $sb{sap}, 'sap4', page_size => 1, max_concurrency => 4);

my $weigh = q{SELECT sum(total_bytes) FROM pg_backend_memory_contexts WHERE name LIKE 'unified_fdw %'};
for my $schema (qw(sap sap4 ns bc))
{
	# one page per record: a page's rows are freed when the next is read
	my $out = $node->safe_psql('postgres', qq{
		BEGIN;
		DECLARE c CURSOR FOR SELECT id, raw FROM $schema.purchase_orders;
		FETCH 10 FROM c \\g /dev/null
		$weigh;
		FETCH 580 FROM c \\g /dev/null
		$weigh;
		FETCH ALL FROM c \\g /dev/null
		COMMIT;
	});
	my ($after10, $after590) = split /\n/, $out;
	note("$schema: $after10 bytes after 10 pages, $after590 after 590");
	ok($after10 > 0, "$schema: the scan's contexts are measured");
	cmp_ok($after590 - $after10, '<', 8192,
		"$schema: less than 8 kB growth from 10 to 590 pages ($after10 -> $after590 bytes)");
}

done_testing();

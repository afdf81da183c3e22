# Offset-paged dialects keep up to max_concurrency requests in flight: the
# result is identical to a sequential scan, requests overlap in the
# sandbox's log, and a LIMIT cancels what was sent ahead.  Runs against the
# SAP (OData V2, $top/$skip) sandbox; skipped until that sandbox is present.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use UfdwTest;

my $root = $ENV{UFDW_ROOT} // '.';
plan skip_all => 'needs the SAP sandbox (test/sandbox/sap.py) and connector'
  unless -f "$root/test/sandbox/sap.py" && -f "$root/connectors/sap_s4hana.json";

my $sb = start_sandbox('sap', '--orders', 2000);
my $node = new_node('pipelining');
$node->safe_psql('postgres', qq{
	CREATE SERVER sap FOREIGN DATA WRAPPER unified_fdw OPTIONS (
		system 'sap_s4hana', instance_url '$sb->{url}', allow_insecure 'true',
		page_size '100');
	CREATE USER MAPPING FOR CURRENT_USER SERVER sap OPTIONS (
		username 'sandbox-user', password 'sandbox-password');
	CREATE SCHEMA sap;
	IMPORT FOREIGN SCHEMA unified FROM SERVER sap INTO sap;
});
# every page takes a while, so that requests in flight overlap; long enough
# (300 ms) that a loaded machine's scheduling delays do not blur the count
sandbox_call($sb, 'POST', '/_sandbox/faults',
	{ match => 'A_PurchaseOrder?', delay => 0.3, times => -1 });

my $scan = "SELECT count(*), count(DISTINCT id), md5(string_agg(id, ',' ORDER BY id)) FROM sap.purchase_orders";

# Largest number of data requests the sandbox was handling at once.  A
# request's logged end comes a little after the client has its answer (and
# may have sent the next request), so 150 ms of each 300 ms delay count.
sub max_overlap
{
	my @iv = map { [ $_->{time}, $_->{time} + ($_->{duration_ms} // 0) / 1000 - 0.15 ] }
	  grep { $_->{path} =~ /A_PurchaseOrder$/ } @{ sandbox_requests($sb) };
	my $max = 0;
	for my $a (@iv)
	{
		my $n = grep { $_->[0] <= $a->[0] && $a->[0] < $_->[1] } @iv;
		$max = $n if $n > $max;
	}
	return $max;
}

clear_sandbox_requests($sb);
my $sequential = $node->safe_psql('postgres', $scan);
like($sequential, qr/^2000\|2000\|/, 'sequential scan reads every order');
is(max_overlap(), 1, 'max_concurrency 1: one request at a time');

$node->safe_psql('postgres', "ALTER SERVER sap OPTIONS (ADD max_concurrency '4')");
clear_sandbox_requests($sb);
is($node->safe_psql('postgres', $scan), $sequential, 'max_concurrency 4: the same rows');
my $overlap = max_overlap();
ok($overlap >= 2 && $overlap <= 4, "max_concurrency 4: up to 4 requests at once (saw $overlap)");

# a LIMIT ends the scan early; what was sent ahead is cancelled, and the
# session goes on
is($node->safe_psql('postgres',
	"SELECT count(*) FROM (SELECT id FROM sap.purchase_orders LIMIT 150) s; SELECT count(*) FROM sap.vendors"),
	"150\n" . $node->safe_psql('postgres', 'SELECT count(*) FROM sap.vendors'),
	'LIMIT with requests ahead, then another scan');
done_testing();

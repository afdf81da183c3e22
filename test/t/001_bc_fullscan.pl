# Full scans of every Business Central table equal the sandbox's own export
# (mapped independently by test/check_fullscan.py), across many pages.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use UfdwTest;

my $sb = start_sandbox('bc', '--orders', '250');
my $node = new_node('fullscan');
bc_connect($node, $sb, 'bc', page_size => 37);

my %entity = (purchase_orders => 'purchaseOrders', purchase_order_lines => 'purchaseOrderLines',
	vendors => 'vendors', items => 'items');

for my $table (sort keys %entity)
{
	clear_sandbox_requests($sb);
	my $rows = check_fullscan($node, $sb, 'bc', "bc.$table", $table, 'UTC');
	my $requests = sandbox_requests($sb);
	my $nrows = () = $rows =~ /\n/g;
	$nrows++ if length $rows;

	if ($table eq 'purchase_order_lines')
	{
		# Business Central serves lines only per document: they come through
		# the 250 orders, 37 / 4 = 9 orders a page, each with all its lines
		my @gets = grep { $_->{method} eq 'GET' && $_->{path} =~ m{/purchaseOrders$}
			  && $_->{query} =~ /expand=purchaseOrderLines/ } @$requests;
		is(scalar(@gets), int((250 + 8) / 9), "$table: $nrows rows through 250 orders in 28 requests");
		my @prefer = grep { ($_->{headers}{Prefer} // $_->{headers}{prefer} // '') eq 'odata.maxpagesize=9' } @gets;
		is(scalar(@prefer), scalar(@gets), "$table: every request sent Prefer: odata.maxpagesize=9");
		is(scalar(grep { $_->{path} =~ m{/purchaseOrderLines$} || ($_->{status} // 0) != 200 } @$requests),
			0, "$table: no bare purchaseOrderLines request, no error");
		ok($nrows > 250, "$table: more lines ($nrows) than orders");
		next;
	}

	# paging: every page asked for 37 records and followed the nextLink
	my @gets = grep { $_->{method} eq 'GET' && $_->{path} =~ m{/$entity{$table}$} } @$requests;
	my $pages = int(($nrows + 36) / 37) || 1;
	is(scalar(@gets), $pages, "$table: $nrows rows in $pages requests");
	my @prefer = grep { ($_->{headers}{Prefer} // $_->{headers}{prefer} // '') eq 'odata.maxpagesize=37' } @gets;
	is(scalar(@prefer), scalar(@gets), "$table: every request sent Prefer: odata.maxpagesize=37");
}

# the second company sees its own data only
$node->safe_psql('postgres', qq{
	CREATE SERVER bc2 FOREIGN DATA WRAPPER unified_fdw OPTIONS (
		system 'dynamics365_bc', instance_url '$sb->{url}/v2.0/tap-tenant/production',
		company_id 'a1b2c3d4-0000-4000-8000-000000000002',
		token_url '$sb->{url}/tap-tenant/oauth2/v2.0/token', allow_insecure 'true');
	CREATE USER MAPPING FOR CURRENT_USER SERVER bc2 OPTIONS (
		client_id 'sandbox-client-id', client_secret 'sandbox-client-secret');
	CREATE SCHEMA bc2;
	IMPORT FOREIGN SCHEMA unified LIMIT TO (purchase_orders) FROM SERVER bc2 INTO bc2;
});
my $overlap = $node->safe_psql('postgres',
	'SELECT count(*) FROM bc.purchase_orders a JOIN bc2.purchase_orders b USING (id)');
is($overlap, '0', 'company_id selects the company');
is($node->safe_psql('postgres',
	"SELECT count(DISTINCT company_id) || ':' || min(company_id) FROM bc2.purchase_orders"),
	'1:a1b2c3d4-0000-4000-8000-000000000002', 'company_id column holds the server option');

done_testing();

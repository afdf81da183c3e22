# SAP S/4HANA against the sandbox: full scans of the three tables equal the
# sandbox's export (mapped independently by test/check_fullscan.py); page
# boundaries at 1000 and 5000 records, and a server that caps $top and
# continues with __next, lose or repeat no record; the three ways in.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use UfdwTest;

sub uri_unescape
{
	my ($s) = @_;
	$s =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
	return $s;
}

# 5200 orders: more than 5000 headers and about 13000 items
my $sb = start_sandbox('sap', '--orders', '5200');
my $node = new_node('sap');
sap_connect($node, $sb, 'sap', sap_client => '100');                   # default page: 1000
sap_connect($node, $sb, 'sap5k', page_size => 5000, auth => 'oauth');

my %entity = (purchase_orders => 'A_PurchaseOrder', purchase_order_lines => 'A_PurchaseOrderItem',
	vendors => 'A_Supplier');

# the query options of the GETs of one entity set, oldest first
sub gets
{
	my ($set) = @_;
	return map {
		my %q = map { my ($k, $v) = split /=/, $_, 2; (uri_unescape($k) => uri_unescape($v // '')) }
		  split /&/, $_->{query};
		\%q
	} grep { $_->{method} eq 'GET' && $_->{path} =~ m{/\Q$set\E$} } @{ sandbox_requests($sb) };
}

sub full_scan_matches
{
	my ($schema, $table, $what) = @_;
	note($what);
	my $rows = check_fullscan($node, $sb, 'sap', "$schema.$table", $table, 'UTC');
	my $n = () = $rows =~ /\n/g;
	return length($rows) ? $n + 1 : 0;
}

# pages of 1000: $top=1000 and $skip advancing by 1000 until a short page
for my $table (sort keys %entity)
{
	clear_sandbox_requests($sb);
	my $n = full_scan_matches('sap', $table, 'pages of 1000');
	my @q = gets($entity{$table});
	my $pages = int($n / 1000) + 1;
	is(scalar(@q), $pages, "$table: $n rows in $pages requests of 1000");
	is_deeply([ map { $_->{'$skip'} // 0 } @q ], [ map { $_ * 1000 } 0 .. $pages - 1 ],
		"$table: \$skip advanced by 1000 each time");
	is(scalar(grep { $_->{'$top'} eq '1000' && $_->{'sap-client'} eq '100' } @q), $pages,
		"$table: every request asked for \$top=1000 in client 100");
}

# pages of 5000 (SAP's largest), with OAuth: crossing 5000 headers and 10000 items
for my $table (qw(purchase_orders purchase_order_lines))
{
	clear_sandbox_requests($sb);
	my $n = full_scan_matches('sap5k', $table, 'pages of 5000');
	my @q = gets($entity{$table});
	my $pages = int($n / 5000) + 1;
	cmp_ok($n, '>', 5000, "$table: more than one page of 5000");
	is_deeply([ map { ($_->{'$skip'} // 0) . '/' . $_->{'$top'} } @q ],
		[ map { ($_ * 5000) . '/5000' } 0 .. $pages - 1 ], "$table: \$top=5000, \$skip by 5000");
}

# a server that serves at most 1000 records per request: each $top=5000 comes
# back in five parts linked by __next ($top for the rest, $skiptoken); where a
# chain ends with the full 5000 delivered the scan continues with $skip
sandbox_call($sb, 'POST', '/_sandbox/config', { max_top => 1000 });
clear_sandbox_requests($sb);
my $n = full_scan_matches('sap5k', 'purchase_order_lines', 'server capping $top at 1000');
my @q = gets('A_PurchaseOrderItem');
my @shape = map {
	defined $_->{'$skiptoken'} ? "t$_->{'$skiptoken'}/$_->{'$top'}" : 's' . ($_->{'$skip'} // 0) . "/$_->{'$top'}"
} @q;
my @want;
for (my $start = 0; $start <= $n; $start += 5000)
{
	push @want, "s$start/5000";
	for (my $k = 1000; $k < 5000 && $start + $k < $n; $k += 1000)
	{
		push @want, 't' . ($start + $k) . '/' . (5000 - $k);
	}
	last if $start + 5000 > $n;
}
is_deeply(\@shape, \@want, "__next chains followed, then \$skip: @shape[0 .. 6] ...");
is(scalar(@q), int(($n + 999) / 1000) + ($n % 5000 == 0 ? 1 : 0), "$n items in 1000-record parts");
sandbox_call($sb, 'POST', '/_sandbox/config', { max_top => 5000 });

# the three ways in: Basic, APIKey, OAuth (one token for several scans, a
# revoked token replaced after the 401)
sap_connect($node, $sb, 'sapkey', auth => 'api_key');
clear_sandbox_requests($sb);
is($node->safe_psql('postgres', 'SELECT count(*) FROM sapkey.vendors; SELECT count(*) FROM sap.vendors'),
	"25\n25", 'APIKey and Basic both read the suppliers');
my @req = grep { $_->{path} =~ /A_Supplier$/ } @{ sandbox_requests($sb) };
is($req[0]{headers}{APIKey}, 'sandbox-api-key', 'the API key travels in the APIKey header');
ok(!defined $req[0]{headers}{Authorization}, 'with no Authorization header');
like($req[1]{headers}{Authorization} // '', qr/^Basic /, 'Basic sends the communication user');
is($req[0]{headers}{Accept}, 'application/json', 'JSON is asked for');

clear_sandbox_requests($sb);
$node->safe_psql('postgres', 'SELECT count(*) FROM sap5k.vendors; SELECT count(*) FROM sap5k.purchase_orders');
my @tok = grep { $_->{path} eq '/sap/bc/sec/oauth2/token' } @{ sandbox_requests($sb) };
is(scalar(@tok), 1, 'one OAuth token serves several scans');
sandbox_call($sb, 'POST', '/_sandbox/revoke', {});
is($node->safe_psql('postgres', 'SELECT count(*) FROM sap5k.vendors'), '25',
	'a revoked token is replaced after the 401');

done_testing();

# Limits that used to be fixed: six scans with sixteen requests in flight
# each (96 sockets at once, more than the 64 the socket table used to
# hold) all return every row, where the extension used to fail with an
# internal error ("too many sockets").
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use UfdwTest;

my $sb = start_sandbox('sap', '--orders', 400);
my $node = new_node('limits');
sap_connect($node, $sb, 'sap', page_size => 5, max_concurrency => 16);
# the first page of each scan comes at once; the 90 requests sent ahead
# after them take 2 s each, so that all are open at the same time
sandbox_call($sb, 'POST', '/_sandbox/faults',
	{ match => '$skip=', delay => 2, times => 90 });

my $n = 6;
my $sql = "BEGIN;\n";
$sql .= "DECLARE c$_ CURSOR FOR SELECT id FROM sap.purchase_orders;\n" for 1 .. $n;
# the first row of each: every scan now has a page read and 15 sent ahead
$sql .= "FETCH 1 FROM c$_ \\g /dev/null\n" for 1 .. $n;
$sql .= "FETCH ALL FROM c$_;\n" for 1 .. $n;
$sql .= "COMMIT;\n";
my ($rc, $out, $err) = $node->psql('postgres', $sql);
is($rc, 0, "$n cursors with 16 requests in flight each read to the end")
  or diag($err);
my @ids = split /\n/, $out;
my %distinct = map { $_ => 1 } @ids;
is(scalar(@ids) . ' ' . scalar(keys %distinct), ($n * 399) . ' 399',
	'the cursors read the other 399 orders each');
unlike($err, qr/too many sockets|XX000/, 'no internal error');

my $peak = 0;
{
	my @iv = map { [ $_->{time}, $_->{time} + ($_->{duration_ms} // 0) / 1000 ] }
	  grep { $_->{path} =~ /A_PurchaseOrder$/ } @{ sandbox_requests($sb) };
	for my $a (@iv)
	{
		my $k = grep { $_->[0] <= $a->[0] && $a->[0] < $_->[1] } @iv;
		$peak = $k if $k > $peak;
	}
}
cmp_ok($peak, '>', 64, "more than 64 requests were open at once ($peak)");

done_testing();

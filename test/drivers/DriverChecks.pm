# DriverChecks: the checks test/drivers/001_jdbc.pl (pgjdbc) and
# 002_odbc.pl (psqlODBC) run through a real driver, against a node that
# listens on 127.0.0.1 and a Business Central sandbox of 10,000 orders.
#
# A probe (test/drivers/Probe.java, test/drivers/odbc_probe.py) is called
# as probe(MODE, ARGS...) and returns its tab-separated output lines; the
# checks compare them with the catalog and with the sandbox's request log.
package DriverChecks;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Utils;
use Test::More;
use UfdwTest;

our @EXPORT = qw(driver_setup check_catalog check_prepared check_cursor check_cancel
  check_limits);

my $orders = 10_000;

# The node (TCP on 127.0.0.1, every statement logged), the sandbox, and
# server bc with its tables imported.
sub driver_setup
{
	my ($name) = @_;
	my $sb = start_sandbox('bc', '--orders', $orders);
	my $node = new_node($name, listen_addresses => "'127.0.0.1'",
		log_statement => "'all'");
	bc_connect($node, $sb, 'bc');
	return ($node, $sb);
}

sub url_decode
{
	my ($s) = @_;
	$s =~ tr/+/ /;
	$s =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
	return $s;
}

# The purchaseOrders requests the sandbox logged, their query strings decoded.
sub order_requests
{
	my ($sb) = @_;
	return [ map { url_decode($_->{query} // '') }
		  grep { $_->{path} =~ m{/purchaseOrders} } @{ sandbox_requests($sb) } ];
}

# Output lines of the given kind, split into fields.
sub lines_of
{
	my ($kind, @lines) = @_;
	return map { [ split /\t/, $_, -1 ] } grep { /^\Q$kind\E(\t|$)/ } @lines;
}

# The catalog as a BI tool browses it: the four tables of schema bc, the
# columns of purchase_orders in order with their types (name:code as the
# driver reports them, %expect types), and the model's descriptions as
# remarks if the driver returns remarks (remarks => 1), else no remarks at
# all (what psqlODBC 13 gives; docs/bi-tools.md says so, and this fails
# when a driver starts returning them).
sub check_catalog
{
	my ($node, $probe, $driver, %expect) = @_;
	my @out = $probe->('catalog', 'bc', 'purchase_orders');
	my %tables = map { $_->[1] => $_ } lines_of('table', @out);
	is(join(',', sort keys %tables), 'items,purchase_order_lines,purchase_orders,vendors',
		"$driver: the tables of schema bc");
	is($tables{purchase_orders}[2], $expect{table_type}, "$driver: listed as $expect{table_type}");
	my $comment = $node->safe_psql('postgres',
		q{SELECT obj_description('bc.purchase_orders'::regclass, 'pg_class')});
	ok(length($comment) > 10, 'the table has the model\'s description as its comment');
	if ($expect{remarks})
	{
		is($tables{purchase_orders}[3], $comment, "$driver: the table's remarks are the model's description");
	}
	else
	{
		is($tables{purchase_orders}[3], '', "$driver: no table remarks (as documented)");
	}

	my @cols = lines_of('column', @out);
	my $want = $node->safe_psql('postgres', q{
		SELECT string_agg(attname || ':' || format_type(atttypid, atttypmod) || ':' ||
		                  coalesce(col_description(attrelid, attnum), ''), '|' ORDER BY attnum)
		  FROM pg_attribute WHERE attrelid = 'bc.purchase_orders'::regclass
		   AND attnum > 0 AND NOT attisdropped});
	my @want = map { [ split /:/, $_, 3 ] } split /\|/, $want;
	is(join(',', map { $_->[1] } @cols), join(',', map { $_->[0] } @want),
		"$driver: the columns of purchase_orders, in order");
	my %type = map { $_->[1] => $_->[2] } @cols;
	my %code = map { $_->[1] => $_->[3] } @cols;
	while (my ($col, $t) = each %{ $expect{types} })
	{
		is("$type{$col}:$code{$col}", $t, "$driver: $col is reported as $t");
	}
	my @described = grep { $_->[2] ne '' } @want;
	ok(@described >= 10, 'the columns have the model\'s descriptions as comments');
	my %remarks = map { $_->[1] => $_->[4] } @cols;
	is(join('|', map { $remarks{ $_->[0] } // '' } @want),
		join('|', map { $expect{remarks} ? $_->[2] : '' } @want),
		$expect{remarks} ? "$driver: each column's remarks are the model's description"
		: "$driver: no column remarks (as documented)");
}

# A parameterized statement prepared once and executed ten times, with ten
# order numbers: every execution sends its number upstream in $filter,
# also once PostgreSQL uses the generic plan.
sub check_prepared
{
	my ($node, $sb, $probe, $driver) = @_;
	my @numbers = split /\n/, $node->safe_psql('postgres',
		'SELECT number FROM bc.purchase_orders ORDER BY number LIMIT 10');
	is(scalar(@numbers), 10, 'ten order numbers');
	clear_sandbox_requests($sb);
	my @out = $probe->('prepared',
		'SELECT number, status, total_amount FROM bc.purchase_orders WHERE number = ?', @numbers);
	my @execs = lines_of('exec', @out);
	is(join(',', map { $_->[2] } @execs), join(',', (1) x 10),
		"$driver: each of the ten executions returns its order");
	my ($plans) = lines_of('plans', @out);
	cmp_ok($plans->[1] // 0, '>=', 1,
		"$driver: PostgreSQL switched to the generic plan ($plans->[1] generic, $plans->[2] custom)");
	my $reqs = order_requests($sb);
	is(scalar(@$reqs), 10, "$driver: one request per execution");
	my @pushed = grep { $reqs->[$_] && $reqs->[$_] =~ /\$filter=number eq '\Q$numbers[$_]\E'/ }
	  0 .. 9;
	is(scalar(@pushed), 10, "$driver: every request filters on its own number upstream, generic plan included")
	  or diag(join("\n", @$reqs));
}

# A cursor fetch of all 10,000 orders in batches of $batch: no more
# requests than a plain scan, in $batch-row fetches ($fetch_re matches one
# fetch in the server log).
sub check_cursor
{
	my ($node, $sb, $probe, $driver, $batch, $fetch_re) = @_;
	my $sql = 'SELECT * FROM bc.purchase_orders';
	clear_sandbox_requests($sb);
	is($node->safe_psql('postgres', "SELECT count(*) FROM ($sql) s"), $orders, "$orders orders");
	my $plain = scalar(@{ order_requests($sb) });
	clear_sandbox_requests($sb);
	my $log_pos = -s $node->logfile;
	my @out = $probe->('cursor', $sql, $batch);
	my ($rows) = lines_of('rows', @out);
	is($rows->[1], $orders, "$driver: the cursor fetched $orders rows");
	my $fetches = () = slurp_file($node->logfile, $log_pos) =~ /$fetch_re/g;
	cmp_ok($fetches, '>=', $orders / $batch, "$driver: in fetches of $batch rows ($fetches seen in the server log)");
	my $n = scalar(@{ order_requests($sb) });
	cmp_ok($n, '<=', $plain, "$driver: $n requests, no more than a plain scan's $plain");
}

# A scan stalled upstream after two pages, cancelled from the driver: the
# statement ends promptly with 57014 and the same connection runs the next
# query.
sub check_cancel
{
	my ($node, $sb, $probe, $driver) = @_;
	sandbox_call($sb, 'POST', '/_sandbox/faults',
		{ match => 'purchaseOrders', skip => 2, stall => 60, times => -1 });
	my @out = $probe->('cancel', 'SELECT * FROM bc.purchase_orders', 1000);
	sandbox_call($sb, 'DELETE', '/_sandbox/faults');
	my ($c) = lines_of('cancelled', @out);
	ok($c, "$driver: the statement was cancelled mid-scan") or diag(join("\n", @out));
	is($c->[1] // '', '57014', "$driver: SQLSTATE 57014 (query_canceled)");
	# a hang would last the 60 s stall; the figure is in the output
	cmp_ok($c->[2] // 1e9, '<', 15_000, "$driver: it returned " . ($c->[2] // '?') . ' ms after the cancel');
	my ($after) = lines_of('after', @out);
	is($after->[1] // '', '1', "$driver: the connection runs the next query");
}

# The metadata probes BI tools send: LIMIT 0 and WHERE 1 = 0 send nothing,
# LIMIT 1 one request for one record; a statement only described sends
# nothing.
sub check_limits
{
	my ($node, $sb, $probe, $driver, %o) = @_;
	my $ncols = $node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'bc.purchase_orders'::regclass AND attnum > 0});
	clear_sandbox_requests($sb);
	my ($q) = lines_of('query', $probe->('query', 'SELECT * FROM bc.purchase_orders LIMIT 0'));
	is("$q->[1]:$q->[2]", "$ncols:0", "$driver: LIMIT 0 gives the $ncols columns and no row");
	is(scalar(@{ order_requests($sb) }), 0, "$driver: LIMIT 0 sends no request");
	($q) = lines_of('query', $probe->('query', 'SELECT * FROM bc.purchase_orders WHERE 1 = 0'));
	is("$q->[1]:$q->[2]", "$ncols:0", "$driver: WHERE 1 = 0 gives the columns and no row");
	is(scalar(@{ order_requests($sb) }), 0, "$driver: WHERE 1 = 0 sends no request");
	($q) = lines_of('query', $probe->('query', 'SELECT * FROM bc.purchase_orders LIMIT 1'));
	is("$q->[1]:$q->[2]", "$ncols:1", "$driver: LIMIT 1 gives one row");
	my $reqs = order_requests($sb);
	is(scalar(@$reqs), 1, "$driver: LIMIT 1 sends one request");
	like($reqs->[0] // '', qr/\$top=1(&|$)/, "$driver: for one record (\$top=1)");
	if ($o{describe})
	{
		clear_sandbox_requests($sb);
		my ($d) = lines_of('describe', $probe->('describe', 'SELECT * FROM bc.purchase_orders'));
		is($d->[1], $ncols, "$driver: a prepared statement described without executing");
		is(scalar(@{ order_requests($sb) }), 0, "$driver: sends no request");
	}
}

1;

# psqlODBC (Debian's odbc-postgresql, through unixODBC and python3-pyodbc)
# as BI tools use it: SQLTables/SQLColumns, a prepared statement executed
# ten times, a UseDeclareFetch cursor, SQLCancel, metadata probes
# (test/drivers/DriverChecks.pm; the client is test/drivers/odbc_probe.py).
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use UfdwTest;
use DriverChecks;

my $root = $ENV{UFDW_ROOT} // '.';
my ($driver) = glob('/usr/lib/*/odbc/psqlodbcw.so');
BAIL_OUT('psqlODBC (odbc-postgresql) is not installed') unless $driver;

my ($node, $sb) = driver_setup('odbc');
# the TAP node's superuser is the OS user running the test
my $conn = sprintf('Driver=%s;Server=127.0.0.1;Port=%d;Database=postgres;UID=%s',
	$driver, $node->port, scalar getpwuid($<));

# Runs odbc_probe.py with extra connection settings; returns its output lines.
sub probe_with
{
	my ($extra, $mode, @args) = @_;
	my ($o, $e) = ('', '');
	my $ok = IPC::Run::run([ 'python3', "$root/test/drivers/odbc_probe.py", $mode,
			"$conn$extra", @args ], '>', \$o, '2>', \$e);
	diag("odbc_probe $mode: $e") unless $ok;
	return split /\n/, $o;
}
sub probe { return probe_with('', @_) }

# psqlODBC returns no remarks; by default text is SQL_WLONGVARCHAR (-10), a
# "memo" to BI tools; TextAsLongVarchar=0 makes it SQL_WVARCHAR (-9)
check_catalog($node, \&probe, 'psqlODBC',
	table_type => 'FOREIGN TABLE', remarks => 0,
	types => { number => 'text:-10', total_amount => 'numeric:2', order_date => 'date:91',
		updated_at => 'timestamptz:93', raw => 'jsonb:-9' });
my %types = map { my @f = split /\t/; $f[1] => "$f[2]:$f[3]" }
  grep { /^column\t/ } probe_with(';TextAsLongVarchar=0', 'catalog', 'bc', 'purchase_orders');
is($types{number}, 'text:-9', 'psqlODBC: with TextAsLongVarchar=0 text is SQL_WVARCHAR');
check_prepared($node, $sb, \&probe, 'psqlODBC');
# UseDeclareFetch: DECLARE ... CURSOR, then "fetch 100 in SQL_CUR..." per batch
check_cursor($node, $sb, sub { probe_with(';UseDeclareFetch=1;Fetch=100', @_) },
	'psqlODBC', 100, qr/fetch 100 in/i);
check_cancel($node, $sb, \&probe, 'psqlODBC');
check_limits($node, $sb, \&probe, 'psqlODBC');

done_testing();

# pgjdbc (Debian's libpostgresql-jdbc-java, run by a headless JDK) as BI
# tools use it: catalog browsing with remarks, a prepared statement past
# the switch to a generic plan, a cursor fetch, a cancel, metadata probes
# (test/drivers/DriverChecks.pm).  Probe.java is compiled here with javac.
use strict;
use warnings;
use File::Temp qw(tempdir);
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use UfdwTest;
use DriverChecks;

my $jar = '/usr/share/java/postgresql.jar';
my $root = $ENV{UFDW_ROOT} // '.';
my $classes = tempdir(CLEANUP => 1);
my ($out, $err);
IPC::Run::run([ 'javac', '-d', $classes, '-cp', $jar, "$root/test/drivers/Probe.java" ],
	'>', \$out, '2>', \$err)
  or BAIL_OUT("javac failed: $out$err");

my ($node, $sb) = driver_setup('jdbc');
# the TAP node's superuser is the OS user running the test
my $url = sprintf('jdbc:postgresql://127.0.0.1:%d/postgres?user=%s&prepareThreshold=1',
	$node->port, scalar getpwuid($<));

# Runs Probe; returns its output lines (a failure is diagnosed, no lines).
sub probe
{
	my ($mode, @args) = @_;
	my ($o, $e) = ('', '');
	my $ok = IPC::Run::run([ 'java', '-cp', "$jar:$classes", 'Probe', $mode, $url, @args ],
		'>', \$o, '2>', \$e);
	diag("Probe $mode: $e") unless $ok;
	return split /\n/, $o;
}

check_catalog($node, \&probe, 'pgjdbc',
	table_type => 'FOREIGN TABLE', remarks => 1,
	types => { number => 'text:12', total_amount => 'numeric:2', order_date => 'date:91',
		updated_at => 'timestamptz:93', raw => 'jsonb:1111' });
check_prepared($node, $sb, \&probe, 'pgjdbc');
# pgjdbc fetches from its portal: the server logs "execute fetch from S_n/C_n"
check_cursor($node, $sb, \&probe, 'pgjdbc', 100, qr/execute fetch from/);
check_cancel($node, $sb, \&probe, 'pgjdbc');
check_limits($node, $sb, \&probe, 'pgjdbc', describe => 1);

done_testing();

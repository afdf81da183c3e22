# UfdwTest: helpers shared by the TAP tests in test/t/.
#
# Each test starts its own sandbox upstream on a free loopback port and its
# own PostgreSQL node, so tests never share fault switches or state.
package UfdwTest;

use strict;
use warnings;
use Exporter 'import';
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(start_sandbox sandbox_call new_node bc_connect sap_connect
  bc_company sandbox_requests clear_sandbox_requests check_fullscan);

my $root = $ENV{UFDW_ROOT} // '.';
my @sandboxes;

use constant bc_company => 'bb6d48b6-c7b2-4a38-9a93-ad5506407f12';

# start_sandbox('bc', '--orders', 60): a running sandbox, as a hash with
# port, url and pid.  Stopped when the test ends.
sub start_sandbox
{
	my ($name, @args) = @_;
	my $dir = tempdir(CLEANUP => 1);
	my $ready = "$dir/port";
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDOUT, '>', "$dir/out.log");
		open(STDERR, '>', "$dir/err.log");
		exec('python3', "$root/test/sandbox/$name.py", '--host', '127.0.0.1',
			'--port', '0', '--ready-file', $ready, @args)
		  or die "exec: $!";
	}
	# generating 100,000 orders takes a while on a loaded machine: up to 60 s
	for (1 .. 1200)
	{
		last if -s $ready;
		usleep(50_000);
	}
	die "sandbox $name did not start: " . slurp_file("$dir/err.log")
	  unless -s $ready;
	my $port = slurp_file($ready);
	$port =~ s/\s+//g;
	my $sb = { name => $name, port => $port, pid => $pid,
		url => "http://127.0.0.1:$port" };
	push @sandboxes, $sb;
	return $sb;
}

END
{
	kill 'TERM', $_->{pid} for @sandboxes;
}

# sandbox_call($sb, 'POST', '/_sandbox/faults', {...}): decoded JSON answer.
sub sandbox_call
{
	my ($sb, $method, $path, $body) = @_;
	my $http = HTTP::Tiny->new(timeout => 30);
	my %opt;
	if (defined $body)
	{
		$opt{content} = encode_json($body);
		$opt{headers} = { 'Content-Type' => 'application/json' };
	}
	my $r = $http->request($method, "$sb->{url}$path", \%opt);
	die "sandbox $method $path: $r->{status} $r->{content}"
	  unless $r->{success};
	return length($r->{content}) ? JSON::PP->new->allow_bignum->decode($r->{content}) : undef;
}

sub sandbox_requests
{
	my ($sb) = @_;
	return sandbox_call($sb, 'GET', '/_sandbox/requests')->{requests};
}

sub clear_sandbox_requests
{
	my ($sb) = @_;
	sandbox_call($sb, 'DELETE', '/_sandbox/requests');
}

# check_fullscan($node, $sb, 'bc', 'bc.vendors', 'vendors', 'UTC'): scans
# the foreign table, compares it with test/check_fullscan.py's independent
# mapping of the sandbox's data (one ok() named after the table) and
# returns the rows (one JSON object per line).
sub check_fullscan
{
	my ($node, $sb, $system, $relation, $table, $timezone) = @_;
	my $rows = $node->safe_psql('postgres',
		"SET TimeZone = '$timezone'; SELECT row_to_json(t) FROM $relation t");
	my $file = tempdir(CLEANUP => 1) . "/$table.jsonl";
	open(my $fh, '>:raw', $file) or die "$file: $!";
	print $fh $rows;
	close $fh;
	my ($out, $err);
	my $ok = IPC::Run::run([ 'python3', "$root/test/check_fullscan.py", $system, $sb->{url}, $table, $file ],
		'>', \$out, '2>', \$err);
	ok($ok, "full scan of $table equals the sandbox's data") or diag("$out$err");
	return $rows;
}

# A started node with unified_fdw created in database postgres.
sub new_node
{
	my ($name, %conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', join("\n", map { "$_ = $conf{$_}" } keys %conf))
	  if %conf;
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION unified_fdw');
	return $node;
}

# Creates server $name for the BC sandbox, a user mapping and schema $name
# with the imported tables.  Options: client_secret, page_size, tenant.
sub bc_connect
{
	my ($node, $sb, $name, %o) = @_;
	my $tenant = $o{tenant} // 'tap-tenant';
	my $secret = $o{client_secret} // 'sandbox-client-secret';
	my $page = $o{page_size} ? ", page_size '$o{page_size}'" : '';
	$node->safe_psql('postgres', qq{
		CREATE SERVER $name FOREIGN DATA WRAPPER unified_fdw OPTIONS (
			system 'dynamics365_bc', instance_url '$sb->{url}/v2.0/$tenant/production',
			company_id '@{[bc_company]}', token_url '$sb->{url}/$tenant/oauth2/v2.0/token',
			allow_insecure 'true'$page);
		CREATE USER MAPPING FOR CURRENT_USER SERVER $name OPTIONS (
			client_id 'sandbox-client-id', client_secret '$secret');
		CREATE SCHEMA $name;
		IMPORT FOREIGN SCHEMA unified FROM SERVER $name INTO $name;
	});
}

# Creates server $name for the SAP sandbox, a user mapping and schema $name
# with the imported tables.  Options: auth ('basic' (default), 'api_key',
# 'oauth'), page_size, sap_client, max_concurrency.
sub sap_connect
{
	my ($node, $sb, $name, %o) = @_;
	my $auth = $o{auth} // 'basic';
	my $opts = '';
	$opts .= ", $_ '$o{$_}'" for grep { $o{$_} } qw(page_size sap_client max_concurrency);
	my $cred =
	    $auth eq 'api_key' ? "api_key 'sandbox-api-key'"
	  : $auth eq 'oauth' ? "client_id 'sandbox-client-id', client_secret 'sandbox-client-secret'"
	  : "username 'sandbox-user', password 'sandbox-password'";
	$node->safe_psql('postgres', qq{
		CREATE SERVER $name FOREIGN DATA WRAPPER unified_fdw OPTIONS (
			system 'sap_s4hana', instance_url '$sb->{url}', allow_insecure 'true'$opts);
		CREATE USER MAPPING FOR CURRENT_USER SERVER $name OPTIONS ($cred);
		CREATE SCHEMA $name;
		IMPORT FOREIGN SCHEMA unified FROM SERVER $name INTO $name;
	});
}

1;

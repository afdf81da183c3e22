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
  fno_connect fno_token bc_company sandbox_requests clear_sandbox_requests check_fullscan check_synced);

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
	compare_with_export($sb, $system, $table, $rows, "full scan of $table equals the sandbox's data");
	return $rows;
}

# One ok(): rows (one JSON object per line) against test/check_fullscan.py's
# mapping of the sandbox's export of table.
sub compare_with_export
{
	my ($sb, $system, $table, $rows, $what) = @_;
	my $file = tempdir(CLEANUP => 1) . "/$table.jsonl";
	open(my $fh, '>:raw', $file) or die "$file: $!";
	print $fh $rows;
	close $fh;
	my ($out, $err);
	my $ok = IPC::Run::run([ 'python3', "$root/test/check_fullscan.py", $system, $sb->{url}, $table, $file ],
		'>', \$out, '2>', \$err);
	ok($ok, $what) or diag("$out$err");
	return $ok;
}

# check_synced($node, $sb, 'bc', 'acme_sync.vendors', 'vendors'): the rows
# of a synced table not marked deleted, without synced_at and deleted_at,
# compared with test/check_fullscan.py's mapping of the sandbox's export
# (one ok() named $what); returns the number of rows.
sub check_synced
{
	my ($node, $sb, $system, $relation, $table, $what) = @_;
	my $rows = $node->safe_psql('postgres',
		"SET TimeZone = 'UTC'; SELECT to_jsonb(t) - 'synced_at' - 'deleted_at' FROM $relation t WHERE deleted_at IS NULL");
	compare_with_export($sb, $system, $table, $rows, $what // "synced $table equals the sandbox's export");
	return scalar(() = $rows =~ /^\{/mg);
}

# A started node with unified_fdw created in database postgres.  With
# cron => 1, pg_cron is preloaded for database postgres (its jobs connect
# through the node's socket directory) and created there.
sub new_node
{
	my ($name, %conf) = @_;
	my $cron = delete $conf{cron};
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', join("\n", map { "$_ = $conf{$_}" } keys %conf))
	  if %conf;
	$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_cron'\n"
		  . "cron.database_name = 'postgres'\ncron.host = '" . $node->host . "'\n")
	  if $cron;
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION unified_fdw');
	$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron') if $cron;
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

# fno_token($sb): an access token from the Finance & Operations sandbox's
# Entra endpoint (client credentials, scope "<environment URL>/.default").
sub fno_token
{
	my ($sb) = @_;
	my $r = HTTP::Tiny->new(timeout => 30)->post_form("$sb->{url}/tap-tenant/oauth2/v2.0/token",
		{ grant_type => 'client_credentials', client_id => 'sandbox-fno-client-id',
		  client_secret => 'sandbox-fno-client-secret', scope => "$sb->{url}/.default" });
	die "token: $r->{status} $r->{content}" unless $r->{success};
	return decode_json($r->{content})->{access_token};
}

# Creates server $name for the Finance & Operations sandbox, a user mapping
# and schema $name with the imported tables.  Options: auth ('bearer'
# (default): a token from fno_token; 'oauth': client credentials), page_size.
# Returns the bearer token (undef with 'oauth').
sub fno_connect
{
	my ($node, $sb, $name, %o) = @_;
	my $auth = $o{auth} // 'bearer';
	my $page = $o{page_size} ? ", page_size '$o{page_size}'" : '';
	my $token = $auth eq 'oauth' ? undef : fno_token($sb);
	my $cred = $auth eq 'oauth'
	  ? "client_id 'sandbox-fno-client-id', client_secret 'sandbox-fno-client-secret'"
	  : "token '$token'";
	$node->safe_psql('postgres', qq{
		CREATE SERVER $name FOREIGN DATA WRAPPER unified_fdw OPTIONS (
			system 'dynamics365_fo', instance_url '$sb->{url}',
			token_url '$sb->{url}/tap-tenant/oauth2/v2.0/token', allow_insecure 'true'$page);
		CREATE USER MAPPING FOR CURRENT_USER SERVER $name OPTIONS ($cred);
		CREATE SCHEMA $name;
		IMPORT FOREIGN SCHEMA unified FROM SERVER $name INTO $name;
	});
	return $token;
}

1;

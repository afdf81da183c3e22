# Invalidation by hash value: an ALTER of one server or one user mapping
# drops the cached OAuth token of that connection only, as postgres_fdw's
# pgfdw_inval_callback drops only the connections concerned.  Counted with
# the Business Central sandbox's log of token requests, in one session
# that reads two servers before and after each change.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use UfdwTest;

my $sb = start_sandbox('bc', '--orders', 5);
my $node = new_node('invalidation');
bc_connect($node, $sb, 'a', tenant => 'tenant-a');
bc_connect($node, $sb, 'b', tenant => 'tenant-b');

# token requests per tenant, in the order made
sub tokens
{
	my @t = map { $_->{path} =~ m{^/(tenant-[ab])/oauth2/v2\.0/token$} ? $1 : () }
	  @{ sandbox_requests($sb) };
	return join(',', @t);
}

my $read = 'SELECT count(*) FROM a.vendors; SELECT count(*) FROM b.vendors;';
my $out = $node->safe_psql('postgres', qq{
	$read
	ALTER SERVER a OPTIONS (ADD max_retries '2');
	$read
	ALTER USER MAPPING FOR CURRENT_USER SERVER b OPTIONS (SET client_secret 'sandbox-client-secret');
	$read
	$read
});
is($out, join("\n", ('25') x 8), 'every read returns the vendors');
is(tokens(), 'tenant-a,tenant-b,tenant-a,tenant-b',
	'ALTER SERVER a renews only a\'s token, ALTER USER MAPPING for b only b\'s');

# another session's change reaches this one by invalidation message too
clear_sandbox_requests($sb);
my $s1 = $node->background_psql('postgres');
$s1->query_safe($read);
$node->safe_psql('postgres', q{ALTER SERVER b OPTIONS (ADD max_retries '2')});
$s1->query_safe($read);
$s1->quit;
is(tokens(), 'tenant-a,tenant-b,tenant-b',
	'a change committed by another session renews only that server\'s token');

done_testing();

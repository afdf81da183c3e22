# Dynamics 365 Finance & Operations, added by a connector file only
# (connectors/dynamics365_fo.json) against its sandbox (test/sandbox/fno.py):
# full scans of the four tables equal the sandbox's data mapped
# independently (test/check_fullscan.py), across both legal entities
# (cross-company) and many pages (followed through @odata.nextLink, asked
# for with Prefer: odata.maxpagesize); composite keys give unique ids;
# text equality holding '*' (a wildcard upstream), the empty date
# 1900-01-01 under range filters with LIMIT, and enum filters give the
# rows PostgreSQL's own semantics give; upstream errors are clear, and no
# secret shows.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use UfdwTest;

my $sb = start_sandbox('fno', '--orders', '120');
# no statement logging: the test's own SQL holds secrets; the extension's
# messages must not
my $node = new_node('fno', log_min_messages => 'debug1', log_statement => 'none');
my $token = fno_connect($node, $sb, 'fo', page_size => 25);
my %export = map { $_ => sandbox_call($sb, 'GET', "/_sandbox/export/$_")->{value} }
  qw(PurchaseOrderHeadersV2 VendorsV2);

# ---------------------------------------------------------------------
# Full scans, paging, cross-company, composite keys
# ---------------------------------------------------------------------
my %rows;
for my $table (qw(items purchase_order_lines purchase_orders vendors))
{
	clear_sandbox_requests($sb);
	$rows{$table} = check_fullscan($node, $sb, 'fno', "fo.$table", $table, 'UTC');
	my @reqs = @{ sandbox_requests($sb) };
	my $n = () = $rows{$table} =~ /\n/g;
	$n++ if length $rows{$table};
	my $pages = int(($n + 24) / 25) || 1;
	is(scalar(@reqs), $pages, "$table: $n rows in $pages requests of 25");
	is(scalar(grep { ($_->{headers}{Prefer} // '') =~ /odata\.maxpagesize=25/ } @reqs), $pages,
		"$table: every request asks for pages of 25 (Prefer: odata.maxpagesize)");
	is(scalar(grep { $_->{query} =~ /(^|&)cross-company=true(&|$)/ } @reqs), $pages,
		"$table: every request reads all legal entities (cross-company=true)");
	is(scalar(grep { $_->{query} =~ /\$skip=(\d+)/ && $1 % 25 == 0 } @reqs), $pages - 1,
		"$table: the pages after the first are the next links (\$skip in steps of 25)");
	is(scalar(grep { $_->{status} == 200 } @reqs), $pages, "$table: every request answered 200");
}
is($node->safe_psql('postgres',
	q{SELECT string_agg(company_id || ':' || n, ' ' ORDER BY company_id) FROM
	  (SELECT company_id, count(*) AS n FROM fo.purchase_orders GROUP BY 1) s}),
	'demf:5 usmf:120', 'cross-company: orders of both legal entities');
is($node->safe_psql('postgres',
	q{SELECT count(*) || ' ' || count(DISTINCT id) || ' ' || count(DISTINCT number) FROM fo.purchase_orders}),
	'125 125 120', 'composite keys: order numbers repeat across companies, ids do not');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM fo.purchase_order_lines l JOIN fo.purchase_orders o ON o.id = l.purchase_order_id
	 WHERE o.company_id <> split_part(l.id, '/', 1)}), '0',
	'composite keys: every line joins the order of its own company');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM fo.purchase_order_lines l LEFT JOIN fo.purchase_orders o ON o.id = l.purchase_order_id
	 WHERE o.id IS NULL}), '0', 'composite keys: every line finds its order');
like($node->safe_psql('postgres', 'EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM fo.vendors'),
	qr{GET http://127\.0\.0\.1:\d+/data/VendorsV2\?.*cross-company=true}, 'EXPLAIN shows the request');

# ---------------------------------------------------------------------
# What F&O evaluates differently from PostgreSQL
# ---------------------------------------------------------------------
# Runs a query with pushdown on and off; returns both results and the
# requests the pushed run sent.
sub both
{
	my ($sql) = @_;
	my $off = $node->safe_psql('postgres', "SET unified_fdw.pushdown = off; $sql");
	clear_sandbox_requests($sb);
	my $on = $node->safe_psql('postgres', "SET unified_fdw.pushdown = on; $sql");
	return ($on, $off, @{ sandbox_requests($sb) });
}

# '*' is a wildcard in an F&O string eq: 'Star*Parts Ltd' also matches
# 'Starlight Parts Ltd' upstream; such an equality can never be exact
my ($on, $off, @reqs) = both(q{SELECT name FROM fo.vendors WHERE name = 'Star*Parts Ltd'});
is($on, 'Star*Parts Ltd', "text equality holding '*': only the equal row");
is($off, $on, "text equality holding '*': same with pushdown off");
($on, $off, @reqs) = both(q{SELECT number, vendor_name FROM fo.purchase_orders
	WHERE vendor_name = 'Star*Parts Ltd' ORDER BY number LIMIT 2});
is($on, $off, "'*' with ORDER BY and LIMIT: same rows with pushdown on and off");
ok($on =~ /^\d+\|Star\*Parts Ltd(\n\d+\|Star\*Parts Ltd)?$/, "'*' with LIMIT: rows of that vendor only")
  or diag($on);
ok(!grep({ $_->{query} =~ /\$top=/ && $_->{query} =~ /Star\*Parts/ } @reqs),
	"'*' in text equality is never sent as exact (no \$top with it in the request log)");
ok(grep({ $_->{VendorOrganizationName} eq 'Starlight Parts Ltd' } @{ $export{VendorsV2} }),
	'(the sandbox has a vendor that the wildcard also matches)');

# the empty date 1900-01-01 is NULL here: a range filter with LIMIT must
# not let the upstream's 1900 rows take the places of real ones
my $empty = grep { $_->{AccountingDate} eq '1900-01-01T12:00:00Z' } @{ $export{PurchaseOrderHeadersV2} };
cmp_ok($empty, '>=', 10, "(the sandbox has $empty orders with the empty date)");
is($node->safe_psql('postgres', q{SELECT count(*) FROM fo.purchase_orders WHERE order_date IS NULL}),
	$empty, 'the empty date 1900-01-01 reads as NULL');
for my $sql (
	q{SELECT number, order_date FROM fo.purchase_orders WHERE order_date < '2024-01-01' ORDER BY number LIMIT 5},
	q{SELECT number, order_date FROM fo.purchase_orders WHERE order_date <= '2023-03-01' OR order_date IS NULL ORDER BY order_date NULLS FIRST, id LIMIT 3},
	q{SELECT count(*) FROM (SELECT 1 FROM fo.purchase_orders WHERE order_date < '2023-06-01' LIMIT 4) s},
	q{SELECT number FROM fo.purchase_orders WHERE order_date BETWEEN '1900-01-01' AND '2023-02-01' ORDER BY id LIMIT 3},
	q{SELECT number FROM fo.purchase_orders WHERE NOT (order_date >= '2023-02-01') ORDER BY number LIMIT 2})
{
	($on, $off, @reqs) = both($sql);
	is($on, $off, "1900-01-01 under a range filter with LIMIT: same rows ($sql)");
	ok($on !~ /\|$/m || $sql =~ /IS NULL/, '  and no NULL date among them') or diag($on);
	is($on, '4', '  four rows') if $sql =~ /LIMIT 4/;
}

# enum filters (OnHoldStatus, ProductType, the order and approval status)
for my $sql (
	q{SELECT number, status FROM fo.vendors WHERE status = 'blocked' ORDER BY id},
	q{SELECT number FROM fo.vendors WHERE status IN ('active') AND number < 'V0010' ORDER BY id},
	q{SELECT number, type FROM fo.items WHERE type = 'service' ORDER BY id},
	q{SELECT number FROM fo.items WHERE type <> 'inventory' OR unit_cost > 100 ORDER BY id},
	q{SELECT status, count(*) FROM fo.purchase_orders WHERE status IN ('open', 'cancelled', 'closed') GROUP BY 1 ORDER BY 1},
	q{SELECT number FROM fo.purchase_orders WHERE status = 'pending_approval' ORDER BY id LIMIT 3})
{
	($on, $off, @reqs) = both($sql);
	is($on, $off, "enum filter: same rows with pushdown on and off ($sql)");
	ok(length $on, '  and it finds rows');
	is(scalar(grep { $_->{status} != 200 } @reqs), 0, '  every request accepted (enum literals as F&O wants them)');
}
# enums go upstream as typed literals
(undef, undef, @reqs) = both(q{SELECT number FROM fo.vendors WHERE status = 'active'});
like($reqs[0]{query}, qr/OnHoldStatus%20eq%20Microsoft\.Dynamics\.DataEntities\.CustVendorBlocked'(No|Never)'/,
	'enum condition sent as a typed literal');
(undef, undef, @reqs) = both(q{SELECT number FROM fo.items WHERE type = 'service'});
like($reqs[0]{query}, qr/ProductType%20eq%20Microsoft\.Dynamics\.DataEntities\.EcoResProductType'Service'/,
	'  (items: ProductType)');
my $held = grep { $_->{OnHoldStatus} !~ /^(No|Never)$/ } @{ $export{VendorsV2} };
ok(grep({ $_->{OnHoldStatus} eq 'Never' } @{ $export{VendorsV2} }), '(the sandbox has vendors on hold status Never)');
is($node->safe_psql('postgres', q{SELECT count(*) FROM fo.vendors WHERE status = 'blocked'}), $held,
	'vendor status: on hold unless No or Never');

# numbers are compared upstream: only the matching records travel
($on, $off, @reqs) = both(q{SELECT id FROM fo.purchase_order_lines WHERE amount > 5000 AND line_number = 1 ORDER BY id});
is($on, $off, 'decimal and integer conditions: same rows');
like($reqs[0]{query}, qr/\$filter=.*LineAmount%20gt%205000/, '  sent upstream as $filter');

# ---------------------------------------------------------------------
# Errors and secrets
# ---------------------------------------------------------------------
sandbox_call($sb, 'POST', '/_sandbox/faults', { match => 'VendorsV2', status => 500 });
my ($ret, $stdout, $stderr) = $node->psql('postgres', 'SELECT count(*) FROM fo.vendors');
isnt($ret, 0, 'an upstream 500 fails the query');
like($stderr, qr/could not fetch "vendors" from server "fo": HTTP status 500/, '  naming the table, server and status');
like($stderr, qr/An error has occurred/, '  with F&O\'s message');
like($stderr, qr/Request id: [0-9a-f-]{36}/i, '  and our request id');

sandbox_call($sb, 'POST', '/_sandbox/faults', { match => 'VendorsV2', status => 429, retry_after => '1', times => -1 });
($ret, $stdout, $stderr) = $node->psql('postgres', 'SELECT count(*) FROM fo.vendors');
isnt($ret, 0, 'a throttled request fails once retries are used up');
like($stderr, qr/HTTP status 429/, '  with the status');
sandbox_call($sb, 'DELETE', '/_sandbox/faults');

sandbox_call($sb, 'POST', '/_sandbox/reset');    # revokes every token
($ret, $stdout, $stderr) = $node->psql('postgres', 'SELECT count(*) FROM fo.items');
isnt($ret, 0, 'a revoked token fails the query');
like($stderr, qr/HTTP status 401/, '  with 401');
like($stderr, qr/HINT:/, '  and a hint');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the session stays usable');

# OAuth 2.0 client credentials: the token request's scope is the
# environment URL + /.default (a template in the connector file)
$node->safe_psql('postgres', q{ALTER USER MAPPING FOR CURRENT_USER SERVER fo OPTIONS
	(DROP token, ADD client_id 'sandbox-fno-client-id', ADD client_secret 'canary-Fno-Secret-1')});
($ret, $stdout, $stderr) = $node->psql('postgres', 'SELECT count(*) FROM fo.items');
isnt($ret, 0, 'a wrong client secret fails the query');
like($stderr, qr/invalid_client|7000215|credentials/i, '  saying the credentials were refused');
unlike($stderr, qr/canary-Fno-Secret-1/, '  without the secret');
$node->safe_psql('postgres', q{ALTER USER MAPPING FOR CURRENT_USER SERVER fo OPTIONS
	(SET client_secret 'sandbox-fno-client-secret')});
($ret, $stdout, $stderr) = $node->psql('postgres', 'SELECT count(*) FROM fo.items');
is($ret, 0, 'client credentials with the environment\'s scope') or diag($stderr);
my ($tok) = grep { $_->{path} =~ m{/oauth2/v2\.0/token$} } @{ sandbox_requests($sb) };
(my $form = $tok->{body} // '') =~ tr/+/ /;
$form =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
like($form, qr{(^|&)scope=\Q$sb->{url}\E/\.default(&|$)},
	'  the token request\'s scope is the environment URL + /.default');

my $log = slurp_file($node->logfile);
unlike($log, qr/\Q$token\E/, 'the access token never reaches the server log');
unlike($log, qr/canary-Fno-Secret-1|sandbox-fno-client-secret/, 'nor the client secret');
my $explain = $node->safe_psql('postgres', 'EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM fo.items');
unlike($explain, qr/sandbox-fno-client-secret|\Q$token\E/, 'nor EXPLAIN');

done_testing();

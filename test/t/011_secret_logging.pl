# Secrets and PostgreSQL's own logging.  For each of log_statement = 'all',
# log_min_duration_statement = 0, auto_explain (log_analyze, nested
# statements) and pg_stat_statements (track = all), with a fresh canary
# secret each time: a secret given inline in SQL text (unified.connect's
# credentials, CREATE USER MAPPING) reaches exactly the places
# docs/operations.md ("Security") says it does, and a secret given as a
# server file (credentials {"client_secret_file": ...}) reaches none.
# Then the file's rules (mode, rotation, errors without the content), and
# redaction of the forms an upstream may echo a secret in (HTTP Basic's
# base64, percent-encoded, JSON-escaped, short secrets), in errors and in
# unified.connections.last_error.
use strict;
use warnings;
use File::Temp qw(tempdir);
use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Utils;
use Test::More;
use UfdwTest;

my $sb = start_sandbox('bc');
my $node = new_node('secretlog',
	shared_preload_libraries => "'auto_explain,pg_stat_statements'",
	'pg_stat_statements.track' => 'all',
	'pg_stat_statements.track_utility' => 'on',
	'unified_fdw.connection_credits' => '100');
$node->safe_psql('postgres', 'CREATE EXTENSION pg_stat_statements');

# credential files live in a directory the server's OS user owns
my $dir = tempdir(CLEANUP => 1);
chmod 0755, $dir;
my $owner = (stat($node->data_dir))[4];
sub secret_file
{
	my ($name, $content, $mode) = @_;
	my $path = "$dir/$name";
	open(my $fh, '>', $path) or die "$path: $!";
	print $fh $content;
	close $fh;
	chown $owner, -1, $path;
	chmod $mode // 0600, $path;
	return $path;
}

sub canary { 'canary-' . join('', map { ('a' .. 'z')[ int(rand(26)) ] } 1 .. 16) }
my $n = 0;

# ---- derived forms of a secret, echoed by the upstream
my $pw = 'c@n/ary+"Q z&7' . canary();
sandbox_call($sb, 'POST', '/_sandbox/config', { basic_password => $pw });
(my $pw_json = $pw) =~ s/(["\\])/\\$1/g;
my ($ret, $out, $err) = $node->psql('postgres', qq{
	SELECT status FROM unified.connect('dynamics365_bc', '$sb->{url}/BC',
		'{"username": "sandbox-user", "password": "$pw_json"}', 'derived',
		'{"company_id": "@{[bc_company]}", "allow_insecure": true}')});
is($out, 'active', 'connected with a password full of characters that encode') or diag($err);
sub pct
{
	my ($s, $lower, $plus) = @_;
	join '', map {
		/[A-Za-z0-9\-._~]/ ? $_
		  : ($_ eq ' ' && $plus) ? '+'
		  : sprintf($lower ? '%%%02x' : '%%%02X', ord)
	} split //, $s;
}
(my $json = $pw) =~ s/(["\\\/])/\\$1/g;
my %forms = (
	'Basic base64' => encode_base64("sandbox-user:$pw", ''),
	'percent-encoded' => pct($pw, 0, 0),
	'percent-encoded, lower case, + for space' => pct($pw, 1, 1),
	'JSON-escaped' => $json,
	'raw' => $pw);
my $echo = join ' ', map { "<$_>" } values %forms;
sandbox_call($sb, 'POST', '/_sandbox/faults', { match => 'vendors', status => 400, times => -1,
	body => { error => { code => 'BadRequest', message => "You sent: $echo" } } });
($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM derived.vendors',
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/DETAIL:  Upstream error: BadRequest: You sent: <\[redacted\]>/, 'the echo is shown, redacted');
$node->safe_psql('postgres', 'SELECT unified._status_sync()');
my $last = $node->safe_psql('postgres', "SELECT last_error FROM unified.status('derived')");
like($last, qr/You sent: <\[redacted\]>/, 'last_error holds the redacted echo');
for my $f (sort keys %forms)
{
	unlike($err, qr/\Q$forms{$f}\E/, "the error holds no $f form of the secret");
	unlike($last, qr/\Q$forms{$f}\E/, "last_error holds no $f form of the secret");
}
sandbox_call($sb, 'DELETE', '/_sandbox/faults');

# a short secret: text that holds it is withheld whole
sandbox_call($sb, 'POST', '/_sandbox/config', { basic_password => 'Xq7' });
($ret, $out, $err) = $node->psql('postgres', qq{
	SELECT status FROM unified.connect('dynamics365_bc', '$sb->{url}/BC',
		'{"username": "sandbox-user", "password": "Xq7"}', 'shorty',
		'{"company_id": "@{[bc_company]}", "allow_insecure": true}')});
is($out, 'active', 'connected with a three-character password') or diag($err);
sandbox_call($sb, 'POST', '/_sandbox/faults', { match => 'vendors', status => 400, times => -1,
	body => { error => { code => 'BadRequest', message => 'Password Xq7 is too short' } } });
($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM shorty.vendors',
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/HTTP status 400/, 'a short secret echoed: the error is raised');
like($err, qr/\[withheld: the text contains a credential\]/, 'the upstream text is withheld');
$node->safe_psql('postgres', 'SELECT unified._status_sync()');
$last = $node->safe_psql('postgres', "SELECT last_error FROM unified.status('shorty')");
unlike("$err\n$last", qr/Xq7/, 'the short secret is neither in the error nor in last_error');
sandbox_call($sb, 'DELETE', '/_sandbox/faults');
sandbox_call($sb, 'POST', '/_sandbox/config', { basic_password => 'sandbox-password' });


sub log_since
{
	my ($offset) = @_;
	my $log = slurp_file($node->logfile);
	return substr($log, $offset);
}

# connects with client_secret (inline) or client_secret_file, under the
# given settings, then scans; returns what the server logged meanwhile
sub connect_with
{
	my ($how, $settings, $secret) = @_;
	my $name = 'c' . ++$n;
	sandbox_call($sb, 'POST', '/_sandbox/config', { client_secret => $secret });
	my $cred = $how eq 'inline'
	  ? qq{"client_secret": "$secret"}
	  : qq{"client_secret_file": "@{[secret_file("$name.secret", "$secret\n")]}"};
	my $offset = -s $node->logfile;
	my ($ret, $out, $err) = $node->psql('postgres', qq{
		$settings
		SELECT status FROM unified.connect('dynamics365_bc', '$sb->{url}/v2.0/tap-tenant/production',
			'{"client_id": "sandbox-client-id", $cred}', '$name',
			'{"company_id": "@{[bc_company]}", "allow_insecure": true,
			  "token_url": "$sb->{url}/tap-tenant/oauth2/v2.0/token"}');
		SELECT count(*) > 0 FROM $name.vendors;
	});
	is($out, "active\nt", "$how, $settings: connected and scanned") or diag($err);
	return log_since($offset);
}

my %setting = (
	log_statement => "SET log_statement = 'all';",
	log_min_duration_statement => 'SET log_min_duration_statement = 0;',
	auto_explain => 'SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on; '
	  . 'SET auto_explain.log_nested_statements = on; SET auto_explain.log_verbose = on;');
my @stmts_secrets;    # canaries given inline, to look for in pg_stat_statements
my @file_secrets;     # canaries given as files
for my $s (sort keys %setting)
{
	my $inline = canary();
	my $log = connect_with('inline', $setting{$s}, $inline);
	like($log, qr/\Q$inline\E/, "$s: an inline secret is in the log (the statement's text, as documented)");
	push @stmts_secrets, $inline;

	my $file = canary();
	$log = connect_with('file', $setting{$s}, $file);
	unlike($log, qr/\Q$file\E/, "$s: a secret given as a file is not in the log");
	like($log, qr/client_secret_file/, "$s: the log has the statement, which names the file only");
	push @file_secrets, $file;
}

# CREATE USER MAPPING: PostgreSQL logs and tracks DDL text itself
my $ddl = canary();
my $ddl_file = canary();
my $offset = -s $node->logfile;
$node->safe_psql('postgres', qq{
	SET log_statement = 'ddl';
	CREATE SERVER um FOREIGN DATA WRAPPER unified_fdw OPTIONS (system 'dynamics365_bc',
		instance_url '$sb->{url}/BC', company_id '@{[bc_company]}', allow_insecure 'true');
	CREATE USER MAPPING FOR CURRENT_USER SERVER um OPTIONS (username 'u', password '$ddl');
	ALTER USER MAPPING FOR CURRENT_USER SERVER um
		OPTIONS (DROP password, ADD password_file '@{[secret_file('um.secret', $ddl_file)]}');
});
my $log = log_since($offset);
like($log, qr/\Q$ddl\E/, 'log_statement = ddl: an inline CREATE USER MAPPING secret is in the log (PostgreSQL\'s own)');
unlike($log, qr/\Q$ddl_file\E/, 'log_statement = ddl: a password_file secret is not');

# pg_stat_statements: unified.connect's arguments are constants, which it
# normalises ($1, $2, ...); utility statements are kept as written
my $pgss = $node->safe_psql('postgres', 'SELECT string_agg(query, E\'\n\') FROM pg_stat_statements');
for my $c (@stmts_secrets)
{
	unlike($pgss, qr/\Q$c\E/, 'pg_stat_statements: an inline unified.connect secret is normalised away');
}
like($pgss, qr/unified\.connect\(\$1/, 'pg_stat_statements: unified.connect is tracked with placeholders');
like($pgss, qr/\Q$ddl\E/, 'pg_stat_statements: an inline CREATE USER MAPPING secret is kept (utility text)');
unlike($pgss, qr/\Q$_\E/, 'pg_stat_statements: no file secret') for @file_secrets, $ddl_file;
# and nothing else unified_fdw logged holds a file secret
unlike(slurp_file($node->logfile), qr/\Q$_\E/, 'the server log holds no file secret') for @file_secrets, $ddl_file;

# ---- the file's rules
my $basic = secret_file('basic.secret', "sandbox-password\n");
$node->safe_psql('postgres', qq{
	ALTER USER MAPPING FOR CURRENT_USER SERVER um OPTIONS (SET username 'sandbox-user',
		SET password_file '$basic');
	CREATE FOREIGN TABLE um_vendors (id text) SERVER um OPTIONS ("table" 'vendors');
});
is($node->safe_psql('postgres', 'SELECT count(*) > 0 FROM um_vendors'), 't', 'a password file works');
# rotation: the file is read at each scan, in the same session
my $rotated = canary();
($ret, $out, $err) = $node->psql('postgres', qq{
	SELECT count(*) > 0 FROM um_vendors;
	COPY (SELECT '{"basic_password": "$rotated"}') TO PROGRAM
	  'curl -sf -X POST -H "Content-Type: application/json" --data-binary \@- $sb->{url}/_sandbox/config';
	COPY (SELECT '$rotated') TO '$basic';
	SELECT count(*) > 0 FROM um_vendors;
});
is($out, "t\nt", 'a rotated secret is read at the next scan of the same session') or diag($err);
chmod 0640, $basic;
($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM um_vendors',
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/F0000: file "\Q$basic\E" named by option "password_file" has group or world access/,
	'a group-readable file is refused (F0000), naming option and path');
like($err, qr/Its permissions are 0640/, 'the DETAIL gives the mode');
unlike($err, qr/\Q$rotated\E/, 'never the content');
chmod 0600, $basic;
$node->safe_psql('postgres', "ALTER USER MAPPING FOR CURRENT_USER SERVER um OPTIONS (SET password_file '$dir/missing')");
($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM um_vendors',
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/58P01: could not open file "\Q$dir\E\/missing" named by option "password_file" of the user mapping for server "um"/,
	'a missing file: 58P01 with option, path and server');
my $bad = secret_file('bad.secret', "line one\nline two\n$rotated\n");
$node->safe_psql('postgres', "ALTER USER MAPPING FOR CURRENT_USER SERVER um OPTIONS (SET password_file '$bad')");
($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM um_vendors',
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/F0000: invalid content in file "\Q$bad\E"/, 'a file of several lines is refused');
unlike($err, qr/\Q$rotated\E|line one/, 'without quoting it');

# naming a server file is a privilege, in unified.connect as on a mapping
$node->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN;
	GRANT USAGE ON FOREIGN DATA WRAPPER unified_fdw TO alice;
	GRANT CREATE ON DATABASE postgres TO alice;
});
($ret, $out, $err) = $node->psql('postgres', qq{
	SELECT unified.connect('dynamics365_bc', 'https://bc.example/BC',
		'{"username": "sandbox-user", "password_file": "$basic"}', 'alices',
		'{"company_id": "@{[bc_company]}"}')},
	extra_params => [ '-U', 'alice', '-v', 'VERBOSITY=verbose' ]);
like($err, qr/42501: permission denied to set option "password_file"/,
	'a role without pg_read_server_files cannot name a credential file');

is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the session stays usable');
done_testing();

# TLS verification: a server with a certificate from an unknown CA is
# refused (HV00N) unless the superuser names that CA in ca_file; a
# certificate for another host name is refused even then.  The HTTPS
# endpoint here is a minimal loopback stub that answers every request with
# an empty Business Central page; it logs the paths it receives.
use strict;
use warnings;
use File::Temp qw(tempdir);
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use UfdwTest;

my $dir = tempdir(CLEANUP => 1);
chmod 0755, $dir;

# a CA, and two server certificates it signs: one for 127.0.0.1, one for
# another name
sub openssl { system('openssl', @_) == 0 or die "openssl @_ failed" }
openssl(qw(req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ufdw-test-ca),
	'-keyout', "$dir/ca.key", '-out', "$dir/ca.pem");
for my $c ([ 'good', 'IP:127.0.0.1' ], [ 'wrong', 'DNS:erp.example' ])
{
	my ($name, $san) = @$c;
	openssl(qw(req -newkey rsa:2048 -nodes -subj), "/CN=$name",
		'-keyout', "$dir/$name.key", '-out', "$dir/$name.csr");
	open(my $fh, '>', "$dir/$name.ext") or die;
	print $fh "subjectAltName=$san\n";
	close $fh;
	openssl(qw(x509 -req -days 2 -CAcreateserial), '-in', "$dir/$name.csr",
		'-CA', "$dir/ca.pem", '-CAkey', "$dir/ca.key", '-extfile', "$dir/$name.ext",
		'-out', "$dir/$name.pem");
}
chmod 0644, glob("$dir/*");

open(my $py, '>', "$dir/stub.py") or die;
print $py <<'PY';
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keep-alive
    def do_GET(self):
        body = b'{"value": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        sys.stderr.write("GET %s from port %d\n" % (self.path, self.client_address[1]))
        sys.stderr.flush()
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
PY
close $py;

my %stub;
for my $name ('good', 'wrong')
{
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ 'python3', "$dir/stub.py", "$dir/$name.pem", "$dir/$name.key" ],
		'>', \$out, '2>', \$err);
	$h->pump until $out =~ /^(\d+)\n/ || !$h->pumpable;
	$stub{$name} = { h => $h, port => $1, err => \$err };
}

my $node = new_node('tls');
for my $name ('good', 'wrong')
{
	$node->safe_psql('postgres', qq{
		CREATE SERVER $name FOREIGN DATA WRAPPER unified_fdw OPTIONS (
			system 'dynamics365_bc', instance_url 'https://127.0.0.1:$stub{$name}{port}/BC',
			company_id '@{[bc_company]}', allow_insecure 'true');
		CREATE USER MAPPING FOR CURRENT_USER SERVER $name OPTIONS (
			username 'sandbox-user', password 'sandbox-password');
		CREATE SCHEMA $name;
		IMPORT FOREIGN SCHEMA unified LIMIT TO (vendors) FROM SERVER $name INTO $name;
	});
}

sub query
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	return ($ret, $out, $err);
}

my ($ret, $out, $err) = query('SELECT count(*) FROM good.vendors');
like($err, qr/HV00N: could not connect to server "good"/, 'unknown CA: HV00N');
like($err, qr/certificate/i, 'unknown CA: the reason names the certificate');

$node->safe_psql('postgres', "ALTER SERVER good OPTIONS (ADD ca_file '$dir/ca.pem')");
($ret, $out, $err) = query('SELECT count(*) FROM good.vendors');
is($out, '0', 'ca_file names the CA: the request succeeds') or diag($err);

# unified.connect's live check and unified.status(live => true) send their
# requests with the server's transport settings too, ca_file among them
($ret, $out, $err) = query(qq{SELECT status FROM unified.connect('dynamics365_bc',
	'https://127.0.0.1:$stub{good}{port}/BC',
	'{"username": "sandbox-user", "password": "sandbox-password"}', 'viaconnect',
	'{"company_id": "@{[bc_company]}", "allow_insecure": true, "ca_file": "$dir/ca.pem"}')});
is($out, 'active', 'unified.connect checks the credentials with the ca_file given') or diag($err);
($ret, $out, $err) = query("SELECT status FROM unified.status('viaconnect', live => true)");
is($out, 'active', 'unified.status(live => true) probes with the server\'s ca_file') or diag($err);
unlike($err, qr/WARNING/, 'unified.status(live => true): no failed live check');
$node->safe_psql('postgres', "ALTER SERVER viaconnect OPTIONS (SET ca_file '$dir/wrong.pem')");
($ret, $out, $err) = query("SELECT status FROM unified.status('viaconnect', live => true)");
like($err, qr/live check of connection "viaconnect" failed: could not connect/,
	'unified.status(live => true) with a ca_file that does not name the CA: the check fails');
$node->safe_psql('postgres', "ALTER SERVER viaconnect OPTIONS (SET ca_file '$dir/ca.pem')");

$node->safe_psql('postgres', "ALTER SERVER wrong OPTIONS (ADD ca_file '$dir/ca.pem')");
($ret, $out, $err) = query('SELECT count(*) FROM wrong.vendors');
like($err, qr/HV00N: could not connect to server "wrong"/, 'certificate for another host: HV00N');
unlike(${ $stub{wrong}{err} }, qr/GET/, 'certificate for another host: no request was sent');

# keep-alive: a second scan in the session reuses the connection; after an
# ALTER USER MAPPING (or SERVER) the cache is dropped and a new one is made
sub client_ports
{
	$stub{good}{h}->pump_nb;
	return [ ${ $stub{good}{err} } =~ /from port (\d+)/g ];
}
my $before = scalar @{ client_ports() };
$node->safe_psql('postgres', "SELECT count(*) FROM good.vendors; SELECT count(*) FROM good.vendors;");
my @p = @{ client_ports() }[ $before .. $before + 1 ];
is($p[0], $p[1], "two scans in one session share a connection (port $p[0])");
$before = scalar @{ client_ports() };
$node->safe_psql('postgres', "SELECT count(*) FROM good.vendors; "
	  . "ALTER USER MAPPING FOR CURRENT_USER SERVER good OPTIONS (SET password 'sandbox-password'); "
	  . "SELECT count(*) FROM good.vendors;");
@p = @{ client_ports() }[ $before .. $before + 1 ];
isnt($p[0], $p[1], "after ALTER USER MAPPING a new connection is made ($p[0], $p[1])");

# a changed ca_file takes effect on the next query of the same session
($ret, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nALTER SERVER good OPTIONS (SET ca_file '$dir/ca.pem');\n"
	  . "SELECT count(*) FROM good.vendors;\n"
	  . "ALTER SERVER good OPTIONS (SET ca_file '$dir/wrong.pem');\n"
	  . "SELECT count(*) FROM good.vendors;");
like($out, qr/^0$/m, 'same session: the first scan succeeds');
like($err, qr/HV00N/, 'ALTER SERVER ca_file in the same session: the old connection is not reused');

$_->{h}->kill_kill for values %stub;
done_testing();

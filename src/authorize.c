/*-------------------------------------------------------------------------
 *
 * authorize.c
 *		unified.authorize() and unified.complete_authorization(): the OAuth
 *		2.0 authorization code grant with PKCE (RFC 6749 section 4.1,
 *		RFC 7636) for applications that embed the connect flow.
 *
 * authorize() checks the inputs as unified.connect() does, draws a state
 * and a PKCE code verifier, keeps them in unified.pending_authorizations
 * (row-level security: only the role that started the flow sees its rows,
 * verifier included) and returns the URL of the system's authorization
 * endpoint, with the S256 code challenge, that the customer's browser is
 * sent to, and when the state expires.
 *
 * complete_authorization() takes what the redirect brought back: the
 * state and the code (or the authorization server's error).  A state is
 * single-use: its mark (token_store.c) is made before anything else and
 * outlives the transaction, so even a failed completion spends it; it
 * expires after UFDW_AUTHORIZATION_TTL_S.  The connection is then made by
 * ufdw_create_connection(), as unified.connect() makes it (same NOTICEs,
 * same credit, all or nothing), with the code exchanged for tokens just
 * before the live check; the user mapping gets client_id, client_secret
 * and the refresh token.  Later renewals are auth.c's.
 *
 * Secrets (client secret, code, verifier, tokens) never appear in messages:
 * both statements' texts are hidden (ufdw_hide_statement) and every token
 * request redacts them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/base64.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"

#include "unified_fdw.h"

PG_FUNCTION_INFO_V1(unified_authorize);
PG_FUNCTION_INFO_V1(unified_complete_authorization);

/* How long a started authorization may be completed. */
#define UFDW_AUTHORIZATION_TTL_S 600

/* n random bytes as base64url without padding (RFC 7636 appendix A). */
static char *
random_b64url(int n)
{
	uint8		raw[64];

	Assert(n <= sizeof(raw));
	if (!pg_strong_random(raw, n))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random authorization state")));
	return ufdw_b64url((const char *) raw, n);
}

/* src as base64url without padding, palloc'd. */
char *
ufdw_b64url(const char *src, int len)
{
	int			cap = pg_b64_enc_len(len) + 1;
	char	   *out = palloc0(cap);
	int			n = pg_b64_encode(src, len, out, cap);

	if (n < 0)
		elog(ERROR, "could not encode base64");
	out[n] = '\0';
	while (n > 0 && out[n - 1] == '=')
		out[--n] = '\0';
	for (char *p = out; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	return out;
}

/* The S256 code challenge of verifier: BASE64URL(SHA256(verifier)). */
static char *
s256_challenge(const char *verifier)
{
	uint8		digest[UFDW_SHA256_LEN];

	ufdw_sha256(verifier, digest);
	return ufdw_b64url((const char *) digest, UFDW_SHA256_LEN);
}

/*
 * A redirect URI must be absolute, without fragment (RFC 6749 3.1.2), and
 * https unless it is a loopback address (RFC 8252 7.3).
 */
static void
check_redirect_uri(const char *uri)
{
	static const char *const loopback[] = {"http://127.0.0.1", "http://localhost",
	"http://[::1]"};
	bool		ok = strncmp(uri, "https://", 8) == 0 && uri[8] != '\0';

	for (int i = 0; !ok && i < lengthof(loopback); i++)
	{
		size_t		len = strlen(loopback[i]);

		ok = strncmp(uri, loopback[i], len) == 0 &&
			(uri[len] == '/' || uri[len] == ':' || uri[len] == '\0');
	}
	for (const char *p = uri; ok && *p; p++)
		ok = *p > ' ' && *p < 127 && *p != '#';
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid redirect_uri \"%s\"", uri),
				 errhint("Give the absolute https URI (http only for a loopback address), without a fragment, exactly as it is registered for the app in the system's admin screens.")));
}

/*
 * Whether creds are exactly client_id and client_secret (the secret maybe
 * as client_secret_file); the client id goes into the URL.
 */
static void
check_app_credentials(const UfdwConnector *conn, List *creds)
{
	ListCell   *lc;
	int			id = 0;
	int			secret = 0;

	foreach(lc, creds)
	{
		DefElem    *d = lfirst(lc);

		if (strcmp(d->defname, "client_id") == 0)
			id++;
		else if (strcmp(d->defname, "client_secret") == 0 ||
				 strcmp(d->defname, "client_secret_file") == 0)
			secret++;
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unexpected credential field \"%s\" for unified.authorize()", d->defname),
					 errhint("Give the app's {\"client_id\": \"...\", \"client_secret\": \"...\"} as registered in %s; the customer's sign-in provides the rest.",
							 conn->name)));
	}
	if (id != 1 || secret != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("credentials for unified.authorize() need \"client_id\" and \"client_secret\" once each"),
				 errhint("Give the app's {\"client_id\": \"...\", \"client_secret\": \"...\"} as registered in %s.",
						 conn->name)));
}

static List *
server_options(const UfdwConnector *conn, const char *instance_url, List *options)
{
	return list_concat(list_make2(makeDefElem("system", (Node *) makeString(conn->system), -1),
								  makeDefElem("instance_url", (Node *) makeString(pstrdup(instance_url)), -1)),
					   list_copy(options));
}

/* The connector, which must offer the authorization code grant. */
static const UfdwConnector *
code_connector(const char *system)
{
	const UfdwConnector *conn = ufdw_system_connector(system);
	StringInfoData offer;
	ListCell   *lc;

	if (conn->auth_methods & UFDW_AUTH_OAUTH2_CODE)
		return conn;
	initStringInfo(&offer);
	foreach(lc, ufdw_connectors())
	{
		const UfdwConnector *c = lfirst(lc);

		if (c->auth_methods & UFDW_AUTH_OAUTH2_CODE)
			appendStringInfo(&offer, "%s%s", offer.len ? ", " : "", c->system);
	}
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s does not offer the OAuth 2.0 authorization code grant", conn->name),
			 errhint("Systems that do: %s. For %s, connect with service credentials: unified.connect().",
					 offer.len ? offer.data : "none", conn->name)));
	return NULL;				/* keep compiler quiet */
}

static char *
text_arg(FunctionCallInfo fcinfo, int n, const char *name)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"%s\" must not be null", name)));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/*
 * unified.authorize(system, instance_url, credentials, redirect_uri, name,
 * options) returns (authorization_url, state, expires_at).  See docs/sql.md.
 */
Datum
unified_authorize(PG_FUNCTION_ARGS)
{
	int			guclevel;
	char	   *system;
	char	   *instance_url;
	char	   *redirect_uri;
	char	   *name = NULL;
	const UfdwConnector *conn;
	List	   *creds;
	List	   *options = NIL;
	List	   *srv_options;
	const char *method = "oauth2_authorization_code";
	ForeignServer fake_server = {0};
	UfdwOptions *opts;
	char	   *base;
	bool		missing = false;
	char	   *state;
	char	   *verifier;
	StringInfoData url;
	Oid			argtypes[9] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	JSONBOID, JSONBOID, INT4OID};
	Datum		values[9];
	char		nulls[9];
	TupleDesc	tupdesc;
	Datum		result[3];
	HeapTuple	tuple;
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext spicxt;
	bool		rnulls[3] = {0};

	guclevel = ufdw_hide_statement("SELECT unified.authorize(...)  -- statement text hidden by unified_fdw: it holds the app's client secret");
	system = text_arg(fcinfo, 0, "system");
	conn = code_connector(system);
	instance_url = text_arg(fcinfo, 1, "instance_url");
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"credentials\" must not be null"),
				 errhint("Give the app's {\"client_id\": \"...\", \"client_secret\": \"...\"} as registered in %s.",
						 conn->name)));
	creds = ufdw_jsonb_options(PG_GETARG_DATUM(2), "credentials");
	redirect_uri = text_arg(fcinfo, 3, "redirect_uri");
	if (!PG_ARGISNULL(4))
		name = text_to_cstring(PG_GETARG_TEXT_PP(4));
	if (!PG_ARGISNULL(5))
		options = ufdw_jsonb_options(PG_GETARG_DATUM(5), "options");
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	check_app_credentials(conn, creds);
	srv_options = server_options(conn, instance_url, options);
	ufdw_check_connection_inputs(conn, options, srv_options, creds, &method);
	check_redirect_uri(redirect_uri);
	if (name)
		ufdw_check_connection_name(name);

	/* the endpoints, from the server options as the connection will have them */
	fake_server.servername = name ? name : conn->system;
	fake_server.options = srv_options;
	opts = ufdw_get_options(&fake_server, NULL);
	(void) ufdw_auth_code_token_url(opts);
	base = ufdw_option_value(srv_options, "authorization_url");
	if (base == NULL)
		base = ufdw_expand_template(conn->auth_code->authorization_url, opts, &missing);
	if (missing)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("the authorization URL of %s needs an option that is not given", conn->name),
				 errdetail("The URL is \"%s\".", conn->auth_code->authorization_url),
				 errhint("Give the option it names in argument \"options\", or the URL itself as \"authorization_url\".")));

	state = random_b64url(32);
	verifier = random_b64url(32);	/* 43 characters (RFC 7636 4.1) */
	initStringInfo(&url);
	appendStringInfo(&url, "%s%cresponse_type=code&client_id=%s&redirect_uri=%s&scope=%s&state=%s&code_challenge=%s&code_challenge_method=S256",
					 base, strchr(base, '?') ? '&' : '?',
					 ufdw_url_escape(ufdw_option_value(creds, "client_id")),
					 ufdw_url_escape(redirect_uri), ufdw_url_escape(conn->auth_code->scope),
					 state, s256_challenge(verifier));

	/* this role's expired states go; then the new one */
	if (SPI_execute("DELETE FROM unified.pending_authorizations WHERE expires_at < now()",
					false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not purge expired authorizations");
	ufdw_purge_states(2 * UFDW_AUTHORIZATION_TTL_S);
	memset(nulls, ' ', sizeof(nulls));
	values[0] = CStringGetTextDatum(state);
	values[1] = CStringGetTextDatum(conn->system);
	values[2] = CStringGetTextDatum(instance_url);
	values[3] = name ? CStringGetTextDatum(name) : (Datum) 0;
	nulls[3] = name ? ' ' : 'n';
	values[4] = CStringGetTextDatum(redirect_uri);
	values[5] = CStringGetTextDatum(verifier);
	values[6] = PG_GETARG_DATUM(2);
	values[7] = PG_ARGISNULL(5) ? DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")) :
		PG_GETARG_DATUM(5);
	values[8] = Int32GetDatum(UFDW_AUTHORIZATION_TTL_S);
	if (SPI_execute_with_args("INSERT INTO unified.pending_authorizations "
							  "(state, system, instance_url, name, redirect_uri, code_verifier, credentials, options, expires_at) "
							  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9)) "
							  "RETURNING expires_at",
							  9, argtypes, values, nulls, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not record the authorization");
	/* the result row lives in the caller's context: SPI_finish frees SPI's */
	spicxt = MemoryContextSwitchTo(outer);
	result[0] = CStringGetTextDatum(url.data);
	result[1] = CStringGetTextDatum(state);
	result[2] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &rnulls[2]);
	tuple = heap_form_tuple(tupdesc, result, rnulls);
	MemoryContextSwitchTo(spicxt);
	SPI_finish();
	AtEOXact_GUC(true, guclevel);
	PG_RETURN_DATUM(HeapTupleGetDatum(tuple));
}

/* What the code exchange needs (see exchange_code()). */
typedef struct Exchange
{
	const char *code;
	const char *verifier;
	const char *redirect_uri;
} Exchange;

/*
 * ufdw_create_connection()'s hook: exchanges the authorization code for
 * tokens (RFC 6749 4.1.3, with the PKCE verifier of RFC 7636 4.5), seeds
 * the access token for the live check, and returns the credentials with
 * the refresh token.
 */
static List *
exchange_code(void *arg, List *creds, ForeignServer *server)
{
	Exchange   *x = arg;
	UserMapping um = {0};
	UfdwOptions *opts;
	UfdwRequestContext rctx;
	UfdwTokenResponse tok;
	StringInfoData form;

	/* the code stands in for the refresh token: method and redaction */
	um.umid = InvalidOid;
	um.userid = GetUserId();
	um.options = lappend(list_copy(creds),
						 makeDefElem("refresh_token", (Node *) makeString(pstrdup(x->code)), -1));
	opts = ufdw_get_options(server, &um);
	ufdw_request_context(opts, NULL, &rctx);
	rctx.secrets = lappend(rctx.secrets, pstrdup(x->verifier));
	rctx.auth_failure = UFDW_AUTHFAIL_CODE_EXCHANGE;
	initStringInfo(&form);
	appendStringInfo(&form, "grant_type=authorization_code&code=%s&redirect_uri=%s&code_verifier=%s",
					 ufdw_url_escape(x->code), ufdw_url_escape(x->redirect_uri),
					 ufdw_url_escape(x->verifier));
	(void) ufdw_token_request(opts, &rctx, form.data, &tok);
	explicit_bzero(form.data, form.len);
	if (tok.refresh_token == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("the identity provider returned no refresh token for connection \"%s\"",
						server->servername),
				 errhint("Without one the connection would stop when the access token expires: the app registration must allow refresh tokens (scope \"%s\").",
						 opts->connector->auth_code->scope)));
	ufdw_seed_token(InvalidOid, tok.access_token, tok.expires_in);
	explicit_bzero(tok.access_token, strlen(tok.access_token));
	return lappend(list_copy(creds),
				   makeDefElem("refresh_token", (Node *) makeString(tok.refresh_token), -1));
}

static void
bad_state(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 errmsg("%s", what),
			 errhint("A state is single-use, expires %d minutes after unified.authorize(), and can only be completed by the role that started it: start again with unified.authorize().",
					 UFDW_AUTHORIZATION_TTL_S / 60)));
}

/*
 * unified.complete_authorization(state, code, error, error_description,
 * redirect_uri) returns the new unified.connections row.  See docs/sql.md.
 */
Datum
unified_complete_authorization(PG_FUNCTION_ARGS)
{
	int			guclevel;
	char	   *state;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	HeapTuple	row;
	TupleDesc	desc;
	const UfdwConnector *conn;
	char	   *instance_url;
	char	   *name;
	List	   *creds;
	List	   *options;
	bool		isnull;
	Exchange	x;
	Datum		result;
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext spicxt;

	guclevel = ufdw_hide_statement("SELECT unified.complete_authorization(...)  -- statement text hidden by unified_fdw: it holds an authorization code");
	state = text_arg(fcinfo, 0, "state");
	if (PG_ARGISNULL(1) && PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"code\" must not be null unless \"error\" is given"),
				 errhint("Pass the code and state parameters of the redirect, or its error and error_description.")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* row-level security: only the caller's own rows */
	values[0] = CStringGetTextDatum(state);
	if (SPI_execute_with_args("SELECT system, instance_url, name, redirect_uri, code_verifier, "
							  "credentials, options, expires_at < now() "
							  "FROM unified.pending_authorizations WHERE state = $1",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the pending authorizations");
	if (SPI_processed == 0)
		bad_state("unknown or already used authorization state");
	row = SPI_copytuple(SPI_tuptable->vals[0]);
	desc = CreateTupleDescCopy(SPI_tuptable->tupdesc);
	if (!ufdw_claim_state(state))
		bad_state("authorization state was already used");
	if (SPI_execute_with_args("DELETE FROM unified.pending_authorizations WHERE state = $1",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not remove the pending authorization");
	if (DatumGetBool(SPI_getbinval(row, desc, 8, &isnull)))
		bad_state("authorization state has expired");

	/* what is needed after SPI_finish() (ufdw_create_connection() uses SPI) */
	spicxt = MemoryContextSwitchTo(outer);
	conn = code_connector(SPI_getvalue(row, desc, 1));
	instance_url = SPI_getvalue(row, desc, 2);
	name = SPI_getvalue(row, desc, 3);
	x.redirect_uri = SPI_getvalue(row, desc, 4);
	x.verifier = SPI_getvalue(row, desc, 5);
	creds = ufdw_jsonb_options(SPI_getbinval(row, desc, 6, &isnull), "credentials");
	options = ufdw_jsonb_options(SPI_getbinval(row, desc, 7, &isnull), "options");
	MemoryContextSwitchTo(spicxt);
	SPI_finish();

	if (!PG_ARGISNULL(2))
	{
		char	   *error = text_to_cstring(PG_GETARG_TEXT_PP(2));
		char	   *desc_text = PG_ARGISNULL(3) ? NULL :
			ufdw_redact(text_to_cstring(PG_GETARG_TEXT_PP(3)), NIL, 300);

		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("%s did not authorize the connection: %s",
						conn->name, ufdw_redact(error, NIL, 60)),
				 desc_text ? errdetail("The authorization server said: %s", desc_text) : 0,
				 strcmp(error, "access_denied") == 0 ?
				 errhint("The customer refused consent, or may not grant it (an administrator may have to consent for the organisation): start again with unified.authorize() when that is settled.") :
				 errhint("Check the app registration in %s's admin screens (redirect URI, permissions), then start again with unified.authorize().",
						 conn->name)));
	}
	if (!PG_ARGISNULL(4) &&
		strcmp(text_to_cstring(PG_GETARG_TEXT_PP(4)), x.redirect_uri) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("redirect URI \"%s\" differs from the one the authorization was started with",
						ufdw_redact(text_to_cstring(PG_GETARG_TEXT_PP(4)), NIL, 300)),
				 errdetail("It was started with \"%s\".", x.redirect_uri),
				 errhint("Complete an authorization at the redirect URI it was started with; start again with unified.authorize().")));
	x.code = text_to_cstring(PG_GETARG_TEXT_PP(1));

	result = ufdw_create_connection(conn, instance_url, creds, name, options,
									"oauth2_authorization_code", exchange_code, &x);
	AtEOXact_GUC(true, guclevel);
	return result;
}

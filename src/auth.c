/*-------------------------------------------------------------------------
 *
 * auth.c
 *		Credentials on requests, and OAuth 2.0 access tokens.
 *
 * NetSuite TBA requests are signed here (oauth1.c) anew for every attempt.
 *
 * Credentials come from the user mapping each time a scan starts; only
 * derived access tokens are cached, per user mapping OID, in backend
 * memory.  A change to a server or user mapping drops the tokens of that
 * mapping, or of the mappings of that server (the values are zeroed
 * first), so ALTER USER MAPPING takes effect on the next request and other
 * connections keep their tokens.  As postgres_fdw's connection cache does,
 * entries are matched by the syscache hash values of their server and user
 * mapping (ufdw_mapping_hashes); a cache reset (hash value 0) drops all.  A token is refreshed ahead of its expiry, and once
 * more when the upstream answers 401 (it may have been revoked).
 *
 * Retries: a request that only reads (GET, a SuiteQL POST, a token request)
 * is sent again after 429, 502, 503, 504 or a connection reset, up to the
 * server's max_retries, waiting Retry-After or an exponential backoff with
 * jitter, never more than retry_max_wait in total.  Every attempt goes
 * through start_with_credentials(), so credentials are applied (and, for
 * signing methods, a request is signed) afresh each time.  Requests that
 * may change upstream state are never retried.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "unified_fdw.h"

#define DEFAULT_TOKEN_LIFETIME_S 3600

/* Starts one attempt of a request; see finish_with_retries(). */
typedef UfdwTransfer *(*AttemptStarter) (void *arg);

typedef struct TokenEntry
{
	Oid			umid;			/* hash key: user mapping OID */
	char	   *access_token;	/* in TopMemoryContext, or NULL */
	TimestampTz refresh_at;		/* renew from this time on */
	uint32		server_hashvalue;	/* FOREIGNSERVEROID hash of its server */
	uint32		mapping_hashvalue;	/* USERMAPPINGOID hash of umid */
} TokenEntry;

static HTAB *token_cache = NULL;

static void
forget_token(TokenEntry *entry)
{
	if (entry->access_token)
	{
		explicit_bzero(entry->access_token, strlen(entry->access_token));
		pfree(entry->access_token);
		entry->access_token = NULL;
	}
}

/*
 * Syscache callback: a server or user mapping changed; drop the tokens
 * of the mappings it concerns (all of them on a cache reset).
 */
static void
invalidate_tokens(Datum arg, int cacheid, uint32 hashvalue)
{
	HASH_SEQ_STATUS scan;
	TokenEntry *entry;

	if (token_cache == NULL)
		return;
	hash_seq_init(&scan, token_cache);
	while ((entry = hash_seq_search(&scan)) != NULL)
		if (ufdw_hash_matches(cacheid, hashvalue, entry->server_hashvalue,
							  entry->mapping_hashvalue))
			forget_token(entry);
}

void
ufdw_auth_init(void)
{
	CacheRegisterSyscacheCallback(FOREIGNSERVEROID, invalidate_tokens, (Datum) 0);
	CacheRegisterSyscacheCallback(USERMAPPINGOID, invalidate_tokens, (Datum) 0);
}

static TokenEntry *
token_entry(Oid umid)
{
	bool		found;
	TokenEntry *entry;

	if (token_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(TokenEntry);
		token_cache = hash_create("unified_fdw tokens", 16, &ctl,
								  HASH_ELEM | HASH_BLOBS);
	}
	entry = hash_search(token_cache, &umid, HASH_ENTER, &found);
	if (!found)
		entry->access_token = NULL;
	if (entry->access_token == NULL)
		ufdw_mapping_hashes(umid, &entry->server_hashvalue, &entry->mapping_hashvalue);
	return entry;
}

/* Drops the cached token of one user mapping (InvalidOid: unified.connect's check). */
void
ufdw_forget_token(Oid umid)
{
	if (token_cache != NULL)
		forget_token(token_entry(umid));
}

/* Whether req may be sent again: it only reads. */
static bool
request_is_read(const UfdwRequest *req)
{
	return strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0 ||
		req->read_only;
}

/*
 * Milliseconds to wait before retry number retry (1, 2, ...) of req, or -1
 * if it must not be retried: not a read, retries used up, or the wait
 * would exceed what is left of retry_max_wait (a longer Retry-After is
 * clamped to retry_max_wait first).
 */
static long
retry_wait(const UfdwRequest *req, const UfdwRequestContext *rctx,
		   const UfdwResponse *resp, int retry, long slept_ms)
{
	long		delay;

	if (!request_is_read(req) || retry > rctx->max_retries)
		return -1;
	delay = Min(ufdw_http_retry_delay(resp, retry), rctx->retry_max_wait_ms);
	if (slept_ms + delay > rctx->retry_max_wait_ms)
		return -1;
	return delay;
}

/*
 * Waits for xfer and returns its response, retrying as the file header
 * says: start(arg) sends each further attempt.  Transport failures that
 * are not retried raise an ERROR; HTTP statuses are left to the caller
 * (the last response is returned when retries are used up).
 */
static UfdwResponse *
finish_with_retries(UfdwTransfer *xfer, const UfdwRequest *req,
					const UfdwRequestContext *rctx, AttemptStarter start, void *arg)
{
	long		slept_ms = 0;

	for (int attempt = 1;; attempt++)
	{
		UfdwResponse *resp = NULL;
		long		delay;

		ufdw_http_set_attempts(xfer, attempt);
		ufdw_http_wait(xfer);
		if (ufdw_http_failed_retryably(xfer))
		{
			delay = retry_wait(req, rctx, NULL, attempt, slept_ms);
			if (delay < 0)
				(void) ufdw_http_finish(xfer);	/* raises the failure */
			ufdw_http_cancel(xfer);
		}
		else
		{
			resp = ufdw_http_finish(xfer);
			if (!ufdw_http_retryable_status(resp->status))
				return resp;
			delay = retry_wait(req, rctx, resp, attempt, slept_ms);
			if (delay < 0)
				return resp;
		}
		ereport(DEBUG1,
				(errmsg_internal("unified_fdw: retrying %s request to server \"%s\" in %ld ms (attempt %d, %s)",
								 req->method, rctx->server_name, delay, attempt + 1,
								 resp ? psprintf("HTTP status %ld", resp->status) :
								 "connection lost")));
		ufdw_http_sleep(delay);
		slept_ms += delay;
		xfer = start(arg);
	}
}

/* A token request's attempt: the credentials are in its body. */
typedef struct TokenAttempt
{
	const UfdwRequest *req;
	const UfdwRequestContext *rctx;
	Oid			umid;
	const char *username;		/* HTTP Basic client authentication, or NULL */
	const char *password;
} TokenAttempt;

static UfdwTransfer *
start_token_attempt(void *arg)
{
	TokenAttempt *t = arg;

	return ufdw_http_start(t->req, t->rctx, NIL, t->username, t->password, t->umid);
}

static void
append_form(StringInfo buf, const char *name, const char *value)
{
	appendStringInfo(buf, "%s%s=%s", buf->len ? "&" : "", name, ufdw_url_escape(value));
}

/* The token endpoint: the server's token_url, else the connector's. */
static char *
token_url(const UfdwOptions *opts)
{
	char	   *url = NULL;
	bool		missing = false;

	if (opts->token_url)
		url = pstrdup(opts->token_url);
	else if (opts->connector->token_url)
		url = ufdw_expand_template(opts->connector->token_url, opts, &missing);
	if (url == NULL || missing)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("server \"%s\" needs option \"tenant_id\" or \"token_url\" for OAuth",
						opts->server_name)));
	return url;
}

char *
ufdw_auth_code_token_url(const UfdwOptions *opts)
{
	return token_url(opts);
}

/*
 * POSTs an OAuth 2.0 token request (form: the grant's fields, without the
 * client's) to the token endpoint, with the client authenticated as the
 * connector says (client_secret in the form, or HTTP Basic for the
 * authorization code grant when the connector asks for it).  retry: the
 * request may be sent again (it changes nothing upstream).  Raises the
 * upstream's error unless it answers 200 with an access token, which is
 * returned in *tok with the response.  trctx->auth_failure says how to
 * explain a refusal.
 */
static UfdwResponse *
post_token_form(const UfdwOptions *opts, UfdwRequestContext *trctx, Oid umid,
				const char *form, bool retry, UfdwTokenResponse *tok)
{
	UfdwRequest req = {0};
	StringInfoData body;
	UfdwResponse *resp;
	TokenAttempt starter;
	bool		basic = opts->auth_method == UFDW_AUTH_OAUTH2_CODE &&
		opts->connector->auth_code->client_secret_basic;

	req.url = token_url(opts);
	req.method = "POST";
	req.headers = list_make2("Content-Type: application/x-www-form-urlencoded",
							 "Accept: application/json");
	initStringInfo(&body);
	appendStringInfoString(&body, form);
	if (!basic)
	{
		append_form(&body, "client_id", opts->client_id);
		append_form(&body, "client_secret", opts->client_secret);
	}
	req.body = body.data;
	req.read_only = retry;

	trctx->table_name = NULL;
	starter.req = &req;
	starter.rctx = trctx;
	starter.umid = umid;
	starter.username = basic ? ufdw_url_escape(opts->client_id) : NULL;
	starter.password = basic ? ufdw_url_escape(opts->client_secret) : NULL;
	resp = finish_with_retries(start_token_attempt(&starter), &req, trctx,
							   start_token_attempt, &starter);
	explicit_bzero(body.data, body.len);
	if (resp->status != 200)
		ufdw_http_raise(trctx, &req, resp);

	ufdw_parse_token_response(resp->body, resp->len, tok);
	explicit_bzero(resp->body, resp->len);
	if (tok->access_token == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("could not obtain an access token for server \"%s\"",
						opts->server_name),
				 errdetail("%s (request id %s).", tok->error, resp->request_id),
				 errhint("Check token_url: it must be the OAuth 2.0 token endpoint of the identity provider.")));
	return resp;
}

/* Whether entry's access token is to be used: not due for renewal nor forced. */
static bool
cached_token(TokenEntry *entry, bool force)
{
	return !force && entry->access_token && GetCurrentTimestamp() < entry->refresh_at;
}

/* Caches an access token of lifetime expires_in seconds (0: unknown). */
static void
cache_token(TokenEntry *entry, char *access_token, int64 expires_in)
{
	int64		lifetime = expires_in > 0 ? expires_in : DEFAULT_TOKEN_LIFETIME_S;

	forget_token(entry);
	entry->access_token = MemoryContextStrdup(TopMemoryContext, access_token);
	explicit_bzero(access_token, strlen(access_token));
	/* renew a minute early, or halfway through a short lifetime */
	entry->refresh_at = GetCurrentTimestamp() +
		(lifetime - Min(60, lifetime / 2)) * USECS_PER_SEC;
}

/*
 * Caches an access token obtained elsewhere (an authorization code
 * exchanged by unified.complete_authorization(), for its live check).
 */
void
ufdw_seed_token(Oid umid, const char *access_token, int64 expires_in)
{
	cache_token(token_entry(umid), pstrdup(access_token), expires_in);
}

/*
 * Sends a token request for a user's grant (authorization code) and
 * returns the response; see post_token_form().  Never retried: a code is
 * single-use.
 */
UfdwResponse *
ufdw_token_request(const UfdwOptions *opts, const UfdwRequestContext *rctx,
				   const char *form, UfdwTokenResponse *tok)
{
	UfdwRequestContext trctx = *rctx;

	return post_token_form(opts, &trctx, InvalidOid, form, false, tok);
}

/*
 * An access token for the user mapping, from the cache unless it is due
 * for renewal or force is set.  The client credentials grant is POSTed to
 * the server's token_url, else the connector's default.
 */
static const char *
oauth2_token(const UfdwOptions *opts, const UfdwRequestContext *rctx, Oid umid,
			 bool force)
{
	TokenEntry *entry = token_entry(umid);
	UfdwRequestContext trctx = *rctx;
	StringInfoData form;
	UfdwTokenResponse tok;

	if (cached_token(entry, force))
		return entry->access_token;
	/* a token that expired or was refused, and must now be replaced */
	if (entry->access_token || force)
		trctx.auth_failure = UFDW_AUTHFAIL_NOT_REFRESHED;
	forget_token(entry);

	initStringInfo(&form);
	append_form(&form, "grant_type", "client_credentials");
	if (opts->connector->scope)
		append_form(&form, "scope", opts->connector->scope);
	/* a new token changes nothing upstream: retried */
	(void) post_token_form(opts, &trctx, umid, form.data, true, &tok);
	cache_token(entry, tok.access_token, tok.expires_in);
	return entry->access_token;
}

/*
 * An access token for a user mapping of the authorization code grant
 * (unified.authorize()), from the cache unless it is due for renewal or
 * force is set; else renewed with the refresh token (RFC 6749 section 6).
 *
 * The refresh token in use is the one stored durably for the mapping
 * (token_store.c), if it belongs to the mapping's current refresh_token
 * option, else that option.  Renewals of one mapping are serialised by a
 * lock across backends, and the stored token is read again under it, so
 * two sessions never send the same token: with a provider that rotates
 * them (and may refuse a token used twice), the second session uses the
 * token the first one got.  A new refresh token is stored at once, before
 * anything else can fail, outside any transaction: a rollback cannot lose
 * it.  A request for a new token that rotates is never retried blindly (a
 * lost answer would leave the only valid token unknown).
 */
static const char *
oauth2_code_token(const UfdwOptions *opts, const UfdwRequestContext *rctx, Oid umid,
				  bool force)
{
	TokenEntry *entry = token_entry(umid);
	UfdwRequestContext trctx = *rctx;
	StringInfoData form;
	UfdwTokenResponse tok;
	char	   *refresh;
	const UfdwAuthCode *ac = opts->connector->auth_code;

	if (cached_token(entry, force))
		return entry->access_token;
	trctx.auth_failure = UFDW_AUTHFAIL_NOT_REFRESHED;
	forget_token(entry);

	if (OidIsValid(umid))
		ufdw_refresh_lock(umid);
	refresh = OidIsValid(umid) ?
		ufdw_stored_refresh_token(umid, opts->refresh_token) : NULL;
	if (refresh == NULL)
		refresh = pstrdup(opts->refresh_token);
	else
		trctx.secrets = lappend(list_copy(trctx.secrets), refresh);

	initStringInfo(&form);
	append_form(&form, "grant_type", "refresh_token");
	append_form(&form, "refresh_token", refresh);
	if (ac->scope_on_refresh)
		append_form(&form, "scope", ac->scope);
	(void) post_token_form(opts, &trctx, umid, form.data, !ac->rotates_refresh_tokens,
						   &tok);
	explicit_bzero(form.data, form.len);
	if (tok.refresh_token && strcmp(tok.refresh_token, refresh) != 0 &&
		OidIsValid(umid))
		ufdw_store_refresh_token(umid, opts->refresh_token, tok.refresh_token);
	if (tok.refresh_token)
		explicit_bzero(tok.refresh_token, strlen(tok.refresh_token));
	explicit_bzero(refresh, strlen(refresh));
	if (OidIsValid(umid))
		ufdw_refresh_unlock(umid);
	cache_token(entry, tok.access_token, tok.expires_in);
	return entry->access_token;
}

/*
 * The OAuth 1.0a Authorization header for req (NetSuite TBA), signed with
 * a fresh nonce and timestamp: called again for every attempt, so a retry
 * is never a replay.  The realm is the server's account_id.
 */
static char *
tba_header(const UfdwRequest *req, const UfdwOptions *opts)
{
	const char *account_id = ufdw_option_value(opts->server_options, "account_id");
	UfdwOAuth1Params p;
	char		nonce[UFDW_OAUTH1_NONCE_LEN + 1];
	char		timestamp[21];

	if (account_id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("server \"%s\" needs option \"account_id\" for token-based authentication",
						opts->server_name),
				 errhint("Set the NetSuite account id, e.g. ALTER SERVER %s OPTIONS (ADD account_id '1234567_SB1').",
						 opts->server_name)));
	ufdw_oauth1_fresh(nonce, timestamp);
	p.consumer_key = opts->consumer_key;
	p.consumer_secret = opts->consumer_secret;
	p.token = opts->token_id;
	p.token_secret = opts->token_secret;
	p.realm = ufdw_netsuite_realm(account_id);
	p.nonce = nonce;
	p.timestamp = timestamp;
	return ufdw_oauth1_header(req->method, req->url, &p);
}

/* Sends req with the credentials of opts; force renews an OAuth token. */
static UfdwTransfer *
start_with_credentials(const UfdwRequest *req, const UfdwOptions *opts,
					   const UfdwRequestContext *rctx, Oid umid, bool force)
{
	List	   *headers = NIL;

	switch (opts->auth_method)
	{
		case UFDW_AUTH_BASIC:
			return ufdw_http_start(req, rctx, NIL, opts->username, opts->password, umid);
		case UFDW_AUTH_BEARER:
			headers = list_make1(psprintf("Authorization: Bearer %s", opts->token));
			break;
		case UFDW_AUTH_API_KEY:
			headers = list_make1(psprintf("%s: %s", opts->connector->api_key_header,
										  opts->api_key));
			break;
		case UFDW_AUTH_OAUTH2_CC:
			headers = list_make1(psprintf("Authorization: Bearer %s",
										  oauth2_token(opts, rctx, umid, force)));
			break;
		case UFDW_AUTH_TBA:
			headers = list_make1(tba_header(req, opts));
			break;
		case UFDW_AUTH_OAUTH2_CODE:
			headers = list_make1(psprintf("Authorization: Bearer %s",
										  oauth2_code_token(opts, rctx, umid, force)));
			break;
	}
	return ufdw_http_start(req, rctx, headers, NULL, NULL, umid);
}

/* An attempt of a request with credentials. */
typedef struct DataAttempt
{
	const UfdwRequest *req;
	const UfdwOptions *opts;
	const UfdwRequestContext *rctx;
	Oid			umid;
	bool		renew;			/* renew the OAuth token on the next attempt */
} DataAttempt;

static UfdwTransfer *
start_data_attempt(void *arg)
{
	DataAttempt *a = arg;
	bool		renew = a->renew;

	a->renew = false;
	return start_with_credentials(a->req, a->opts, a->rctx, a->umid, renew);
}

/* Starts req with credentials; finish it with ufdw_finish_authenticated(). */
UfdwTransfer *
ufdw_start_authenticated(const UfdwRequest *req, const UfdwOptions *opts,
						 const UfdwRequestContext *rctx, Oid umid)
{
	return start_with_credentials(req, opts, rctx, umid, false);
}

/*
 * True for application/json and application/<anything>+json (RFC 6839),
 * e.g. NetSuite's "application/vnd.oracle.resource+json; type=collection",
 * with or without parameters.
 */
static bool
is_json_content_type(const char *ct)
{
	size_t		len;

	if (ct == NULL || pg_strncasecmp(ct, "application/", 12) != 0)
		return false;
	len = strcspn(ct, "; \t");
	return (len == 16 && pg_strncasecmp(ct + 12, "json", 4) == 0) ||
		(len > 17 && pg_strncasecmp(ct + len - 5, "+json", 5) == 0);
}

#define HTTP_TCHARS "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

/*
 * The "error" parameter of the Bearer challenge in a WWW-Authenticate
 * value (RFC 6750 section 3, e.g. Bearer realm="x", error="invalid_token",
 * error_description="..."), or NULL if there is none.  The value is read
 * by the syntax of RFC 9110 section 11.6.1: challenges separated by
 * commas, each an auth-scheme followed by a token68 or by auth-params
 * (name = token or quoted-string); scheme and parameter names are
 * case-insensitive.  Free text such as error_description is never
 * interpreted.
 */
static char *
bearer_error(const char *header)
{
	const char *p = header;
	bool		in_bearer = false;
	char	   *error = NULL;

	while (p && *p)
	{
		const char *name;
		size_t		n;
		const char *q;

		p += strspn(p, " \t,");
		name = p;
		n = strspn(p, HTTP_TCHARS);
		if (n == 0)
			break;				/* not the syntax: stop reading */
		q = p + n;
		q += strspn(q, " \t");
		if (*q == '=' && q[1] != '=' && q[1] != ',' && q[1] != '\0')
		{
			/* an auth-param of the current challenge: name = value */
			StringInfoData value;

			initStringInfo(&value);
			q++;
			q += strspn(q, " \t");
			if (*q == '"')
			{
				for (q++; *q && *q != '"'; q++)
				{
					if (*q == '\\' && q[1])
						q++;
					appendStringInfoChar(&value, *q);
				}
				if (*q == '"')
					q++;
			}
			else
			{
				size_t		vlen = strspn(q, HTTP_TCHARS);

				appendBinaryStringInfo(&value, q, vlen);
				q += vlen;
			}
			if (in_bearer && n == 5 && pg_strncasecmp(name, "error", 5) == 0)
				error = value.data;
			p = q;
			continue;
		}
		/* an auth-scheme starts a challenge; skip a token68's "/" and "=" */
		in_bearer = n == 6 && pg_strncasecmp(name, "Bearer", 6) == 0;
		p = q + strspn(q, "/=");
	}
	return error;
}

/*
 * Waits for xfer and returns its successful (2xx) response.  A 401 to an
 * OAuth request is retried once with a new token; any other failure
 * raises the upstream's error.
 */
UfdwResponse *
ufdw_finish_authenticated(UfdwTransfer *xfer, const UfdwRequest *req,
						  const UfdwOptions *opts, const UfdwRequestContext *rctx,
						  Oid umid)
{
	UfdwResponse *resp;
	DataAttempt attempt = {req, opts, rctx, umid, false};
	bool		renewed = false;

	resp = finish_with_retries(xfer, req, rctx, start_data_attempt, &attempt);
	if (resp->status == 401 && (opts->auth_method == UFDW_AUTH_OAUTH2_CC ||
								opts->auth_method == UFDW_AUTH_OAUTH2_CODE))
	{
		attempt.renew = renewed = true;
		resp = finish_with_retries(start_data_attempt(&attempt), req, rctx,
								   start_data_attempt, &attempt);
	}
	if (resp->status < 200 || resp->status > 299)
	{
		UfdwRequestContext erctx = *rctx;
		TokenEntry *entry = token_entry(umid);

		/* an upstream may echo the Authorization header: redact the token too */
		if (entry->access_token)
			erctx.secrets = lappend(list_copy(rctx->secrets), entry->access_token);
		if (resp->status == 401 && renewed)
			erctx.auth_failure = UFDW_AUTHFAIL_REAUTHORIZE;
		else if (resp->status == 401 && opts->auth_method == UFDW_AUTH_BEARER)
		{
			/* RFC 6750: expired, revoked or otherwise no longer valid */
			char	   *error = bearer_error(resp->www_authenticate);

			if (error && strcmp(error, "invalid_token") == 0)
				erctx.auth_failure = UFDW_AUTHFAIL_NOT_REFRESHED;
		}
		ufdw_http_raise(&erctx, req, resp);
	}
	if (!is_json_content_type(resp->content_type))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("unexpected content type from server \"%s\"%s%s%s",
						rctx->server_name, rctx->table_name ? " for \"" : "",
						rctx->table_name ? rctx->table_name : "",
						rctx->table_name ? "\"" : ""),
				 errdetail("Expected application/json or a +json type, got \"%s\" (request id %s).",
						   resp->content_type ? ufdw_redact(resp->content_type, NIL, 100) : "none",
						   resp->request_id),
				 errhint("A proxy or login page may be answering instead of the API: check instance_url.")));
	return resp;
}

/* Sends req with credentials and waits for its successful response. */
UfdwResponse *
ufdw_execute(const UfdwRequest *req, const UfdwOptions *opts,
			 const UfdwRequestContext *rctx, Oid umid)
{
	return ufdw_finish_authenticated(ufdw_start_authenticated(req, opts, rctx, umid),
									 req, opts, rctx, umid);
}

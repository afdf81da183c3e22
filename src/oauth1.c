/*-------------------------------------------------------------------------
 *
 * oauth1.c
 *		OAuth 1.0a request signing (RFC 5849) with HMAC-SHA256, as NetSuite
 *		token-based authentication (TBA) requires.
 *
 * Pure functions: no I/O, no catalog access.  The signature base string is
 * RFC 5849 section 3.4.1: the upper-case method, the base string URI
 * (scheme and host lower-cased, default port dropped, no query or
 * fragment) and the normalized parameters (every query parameter of the
 * URL plus the oauth_* protocol parameters, each name and value percent-
 * encoded per RFC 3986, sorted by name then value, joined with "=" and
 * "&"), each part percent-encoded again and joined with "&".  "realm" and
 * oauth_signature are not signed; a JSON body is not signed either (only
 * form-encoded bodies are, section 3.4.1.3.1).  The key is
 * enc(consumer_secret) "&" enc(token_secret); the signature is the base64
 * of the HMAC-SHA256 of the base string (PostgreSQL's common/hmac.h).
 *
 * Values returned here hold secrets or are derived from them: callers
 * must never show them (auth.c puts the header on the wire only).
 *
 * unified._oauth1_signature() exposes the pure parts to SQL for the
 * regression tests; it is internal and not part of the documented surface.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "common/base64.h"
#include "common/cryptohash.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "compat.h"
#include "unified_fdw.h"

/* One name/value pair of the normalized parameters, already encoded. */
typedef struct OAuthParam
{
	char	   *name;
	char	   *value;
} OAuthParam;

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decodes a query component as application/x-www-form-urlencoded, which
 * RFC 5849 section 3.4.1.3.1 prescribes: "+" is a space, %XX a byte.
 */
static char *
form_decode(const char *s, size_t len)
{
	char	   *out = palloc(len + 1);
	size_t		o = 0;

	for (size_t i = 0; i < len; i++)
	{
		if (s[i] == '+')
			out[o++] = ' ';
		else if (s[i] == '%' && i + 2 < len &&
				 hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0)
		{
			out[o++] = (char) (hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		}
		else
			out[o++] = s[i];
	}
	out[o] = '\0';
	return out;
}

static int
param_cmp(const void *a, const void *b)
{
	const OAuthParam *pa = a;
	const OAuthParam *pb = b;
	int			c = strcmp(pa->name, pb->name);

	return c != 0 ? c : strcmp(pa->value, pb->value);
}

/*
 * The base string URI of url (section 3.4.1.2), or NULL if url is not an
 * absolute http(s) URL.
 */
static char *
base_string_uri(const char *url)
{
	const char *p = strstr(url, "://");
	const char *host;
	const char *host_end;
	const char *path_end;
	const char *port = NULL;
	StringInfoData buf;
	bool		https;

	if (p == NULL)
		return NULL;
	if (p - url == 5 && pg_strncasecmp(url, "https", 5) == 0)
		https = true;
	else if (p - url == 4 && pg_strncasecmp(url, "http", 4) == 0)
		https = false;
	else
		return NULL;
	host = p + 3;
	host_end = host + strcspn(host, "/?#");
	path_end = host_end + strcspn(host_end, "?#");
	/* a port follows the last ":" unless it is inside an IPv6 literal */
	for (const char *c = host_end - 1; c >= host && *c != ']'; c--)
		if (*c == ':')
		{
			port = c;
			break;
		}

	initStringInfo(&buf);
	appendStringInfoString(&buf, https ? "https://" : "http://");
	for (const char *c = host; c < (port ? port : host_end); c++)
		appendStringInfoChar(&buf, pg_tolower((unsigned char) *c));
	if (port && port + 1 < host_end &&
		!(strncmp(port + 1, https ? "443" : "80", host_end - port - 1) == 0 &&
		  strlen(https ? "443" : "80") == (size_t) (host_end - port - 1)))
		appendBinaryStringInfo(&buf, port, host_end - port);
	if (path_end == host_end)
		appendStringInfoChar(&buf, '/');
	else
		appendBinaryStringInfo(&buf, host_end, path_end - host_end);
	return buf.data;
}

/*
 * The signature base string of a request (RFC 5849 section 3.4.1).  The
 * result is palloc'd; it holds no secret.
 */
char *
ufdw_oauth1_base_string(const char *method, const char *url,
						const UfdwOAuth1Params *p)
{
	char	   *uri = base_string_uri(url);
	const char *query = strchr(url, '?');
	OAuthParam *params;
	int			nparams = 0;
	int			maxparams = 7;
	StringInfoData norm;
	StringInfoData buf;

	if (uri == NULL)
		elog(ERROR, "cannot sign a request to a URL that is not http(s)");
	if (query)
		for (const char *c = query; *c && *c != '#'; c++)
			if (*c == '&' || *c == '?')
				maxparams++;
	params = palloc(sizeof(OAuthParam) * maxparams);

	if (query)
	{
		const char *q = query + 1;
		const char *end = q + strcspn(q, "#");

		while (q < end)
		{
			const char *amp = memchr(q, '&', end - q);
			const char *stop = amp ? amp : end;
			const char *eq = memchr(q, '=', stop - q);

			if (stop > q)
			{
				params[nparams].name = ufdw_url_escape(form_decode(q, (eq ? eq : stop) - q));
				params[nparams].value = eq ?
					ufdw_url_escape(form_decode(eq + 1, stop - eq - 1)) : pstrdup("");
				nparams++;
			}
			q = stop + 1;
		}
	}
#define ADD_PARAM(n, v) \
	(params[nparams].name = (n), params[nparams].value = ufdw_url_escape(v), nparams++)
	ADD_PARAM("oauth_consumer_key", p->consumer_key);
	ADD_PARAM("oauth_nonce", p->nonce);
	ADD_PARAM("oauth_signature_method", "HMAC-SHA256");
	ADD_PARAM("oauth_timestamp", p->timestamp);
	ADD_PARAM("oauth_token", p->token);
	ADD_PARAM("oauth_version", "1.0");
#undef ADD_PARAM
	qsort(params, nparams, sizeof(OAuthParam), param_cmp);

	initStringInfo(&norm);
	for (int i = 0; i < nparams; i++)
		appendStringInfo(&norm, "%s%s=%s", i ? "&" : "", params[i].name, params[i].value);

	initStringInfo(&buf);
	for (const char *c = method; *c; c++)
		appendStringInfoChar(&buf, pg_toupper((unsigned char) *c));
	appendStringInfo(&buf, "&%s&%s", ufdw_url_escape(uri), ufdw_url_escape(norm.data));
	return buf.data;
}

/*
 * base64(HMAC-SHA256(enc(consumer_secret) & enc(token_secret), base)).
 * The key is zeroed before returning.  The result is palloc'd.
 */
char *
ufdw_oauth1_signature(const char *base, const char *consumer_secret,
					  const char *token_secret)
{
	char	   *key = psprintf("%s&%s", ufdw_url_escape(consumer_secret),
							   ufdw_url_escape(token_secret));
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);
	char	   *out;
	int			len;

	if (ctx == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	if (pg_hmac_init(ctx, (const uint8 *) key, strlen(key)) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) base, strlen(base)) < 0 ||
		pg_hmac_final(ctx, digest, sizeof(digest)) < 0)
	{
		const char *why = pg_hmac_error(ctx);

		pg_hmac_free(ctx);
		explicit_bzero(key, strlen(key));
		elog(ERROR, "could not compute an HMAC-SHA256 signature: %s", why);
	}
	pg_hmac_free(ctx);
	explicit_bzero(key, strlen(key));

	out = palloc(pg_b64_enc_len(sizeof(digest)) + 1);
	len = ufdw_b64_encode(digest, sizeof(digest), out, pg_b64_enc_len(sizeof(digest)));
	explicit_bzero(digest, sizeof(digest));
	if (len < 0)
		elog(ERROR, "could not encode an HMAC-SHA256 signature");
	out[len] = '\0';
	return out;
}

/*
 * The Authorization header line for a request, "Authorization: OAuth
 * realm=..., ...": every value percent-encoded, the realm included but not
 * signed (section 3.5.1).  Secret-bearing; never show it.
 */
char *
ufdw_oauth1_header(const char *method, const char *url, const UfdwOAuth1Params *p)
{
	char	   *base = ufdw_oauth1_base_string(method, url, p);
	char	   *sig = ufdw_oauth1_signature(base, p->consumer_secret, p->token_secret);
	char	   *header;

	header = psprintf("Authorization: OAuth realm=\"%s\", oauth_consumer_key=\"%s\", "
					  "oauth_token=\"%s\", oauth_signature_method=\"HMAC-SHA256\", "
					  "oauth_timestamp=\"%s\", oauth_nonce=\"%s\", oauth_version=\"1.0\", "
					  "oauth_signature=\"%s\"",
					  ufdw_url_escape(p->realm), ufdw_url_escape(p->consumer_key),
					  ufdw_url_escape(p->token), ufdw_url_escape(p->timestamp),
					  ufdw_url_escape(p->nonce), ufdw_url_escape(sig));
	explicit_bzero(sig, strlen(sig));
	return header;
}

/*
 * Fills nonce (UFDW_OAUTH1_NONCE_LEN + 1 bytes) with a fresh random nonce
 * (hex of 16 strong random bytes) and timestamp (at least 21 bytes) with
 * the current Unix time.  Called for every request, retries included.
 */
void
ufdw_oauth1_fresh(char *nonce, char *timestamp)
{
	uint8		b[UFDW_OAUTH1_NONCE_LEN / 2];

	if (!pg_strong_random(b, sizeof(b)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random OAuth nonce")));
	for (int i = 0; i < (int) sizeof(b); i++)
		snprintf(nonce + 2 * i, 3, "%02x", b[i]);
	snprintf(timestamp, 21, "%lld", (long long) time(NULL));
}

PG_FUNCTION_INFO_V1(unified_oauth1_signature);

/*
 * unified._oauth1_signature(method, url, consumer_key, consumer_secret,
 * token, token_secret, nonce, timestamp, realm) returns (base_string,
 * signature, header) for the regression tests.  Internal.
 */
Datum
unified_oauth1_signature(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	UfdwOAuth1Params p;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	char	   *method = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *base;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	p.consumer_key = text_to_cstring(PG_GETARG_TEXT_PP(2));
	p.consumer_secret = text_to_cstring(PG_GETARG_TEXT_PP(3));
	p.token = text_to_cstring(PG_GETARG_TEXT_PP(4));
	p.token_secret = text_to_cstring(PG_GETARG_TEXT_PP(5));
	p.nonce = text_to_cstring(PG_GETARG_TEXT_PP(6));
	p.timestamp = text_to_cstring(PG_GETARG_TEXT_PP(7));
	p.realm = text_to_cstring(PG_GETARG_TEXT_PP(8));

	base = ufdw_oauth1_base_string(method, url, &p);
	values[0] = CStringGetTextDatum(base);
	values[1] = CStringGetTextDatum(ufdw_oauth1_signature(base, p.consumer_secret,
														  p.token_secret));
	/* without the "Authorization: " prefix */
	values[2] = CStringGetTextDatum(ufdw_oauth1_header(method, url, &p) +
									strlen("Authorization: "));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*-------------------------------------------------------------------------
 *
 * upstream_json.c
 *		Small upstream documents read with jansson: OAuth 2.0 token
 *		responses and error bodies.
 *
 * Page bodies never come here (page.c parses them with PostgreSQL's own
 * parser).  Documents are parsed with duplicate keys rejected; every tree
 * is released before returning or before an error propagates.  Values are
 * copied into palloc'd strings.
 *
 * This file uses jansson and so must not include utils/builtins.h; it
 * never calls json_object() (see STYLE.md).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <jansson.h>

#include "unified_fdw.h"

/* Parses body; NULL if it is not a JSON object. */
static json_t *
load_object(const char *body, size_t len)
{
	json_error_t jerr;
	json_t	   *root;

	if (body == NULL || len == 0)
		return NULL;
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root && !json_is_object(root))
	{
		json_decref(root);
		root = NULL;
	}
	return root;
}

static char *
string_member(json_t *obj, const char *key)
{
	json_t	   *v = obj ? json_object_get(obj, key) : NULL;

	if (json_is_string(v))
		return pstrdup(json_string_value(v));
	if (json_is_integer(v))
		return psprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	return NULL;
}

/*
 * Reads an OAuth 2.0 token response (RFC 6749 section 5.1).  On failure
 * out->access_token is NULL and out->error says why (never quoting the
 * body, which may hold a token).
 */
void
ufdw_parse_token_response(const char *body, size_t len, UfdwTokenResponse *out)
{
	json_t	   *volatile root = load_object(body, len);

	memset(out, 0, sizeof(*out));
	if (root == NULL)
	{
		out->error = "the token response is not a JSON object";
		return;
	}
	PG_TRY();
	{
		json_t	   *exp = json_object_get(root, "expires_in");
		char	   *type = string_member(root, "token_type");

		out->access_token = string_member(root, "access_token");
		out->refresh_token = string_member(root, "refresh_token");
		if (out->refresh_token && out->refresh_token[0] == '\0')
			out->refresh_token = NULL;
		if (json_is_integer(exp))
			out->expires_in = json_integer_value(exp);
		else if (json_is_string(exp))
			out->expires_in = strtol(json_string_value(exp), NULL, 10);
		if (out->access_token == NULL || out->access_token[0] == '\0')
		{
			out->access_token = NULL;
			out->error = "the token response has no access_token";
		}
		else if (type && pg_strcasecmp(type, "bearer") != 0)
		{
			out->access_token = NULL;
			out->error = "the token response is not for a bearer token";
		}
	}
	PG_CATCH();
	{
		json_decref(root);
		PG_RE_THROW();
	}
	PG_END_TRY();
	json_decref(root);
}

/*
 * Business Central appends "  CorrelationId:  <guid>." to its messages;
 * returns the id, or NULL.
 */
static char *
correlation_id(const char *message)
{
	const char *p = message ? strstr(message, "CorrelationId:") : NULL;
	const char *end;

	if (p == NULL)
		return NULL;
	p += strlen("CorrelationId:");
	while (*p == ' ')
		p++;
	end = p;
	while (*end && (isalnum((unsigned char) *end) || *end == '-'))
		end++;
	return end > p ? pnstrdup(p, end - p) : NULL;
}

/*
 * Extracts code, message and upstream id from the error body shapes of the
 * supported upstreams; fields that are not found stay NULL:
 *	 OData v4/v2	{"error": {"code", "message" (string or {"value"}),
 *					 "innererror": {"transactionid"}}}
 *	 OAuth 2.0		{"error": "invalid_client", "error_description",
 *					 "correlation_id", "error_codes" (Entra ID)}
 *	 NetSuite		{"title", "o:errorDetails": [{"detail", "o:errorCode"}]}
 *	 API gateways	{"fault": {"faultstring", "detail": {"errorcode"}}} (Apigee,
 *					 e.g. SAP's API hub rejecting an APIKey)
 */
void
ufdw_parse_error_body(const char *body, size_t len, UfdwUpstreamError *out)
{
	json_t	   *volatile root = load_object(body, len);

	memset(out, 0, sizeof(*out));
	if (root == NULL)
		return;
	PG_TRY();
	{
		json_t	   *err = json_object_get(root, "error");
		json_t	   *details = json_object_get(root, "o:errorDetails");
		json_t	   *fault = json_object_get(root, "fault");

		if (json_is_object(err))
		{
			json_t	   *msg = json_object_get(err, "message");
			json_t	   *inner = json_object_get(err, "innererror");

			out->code = string_member(err, "code");
			if (json_is_object(msg))
				out->message = string_member(msg, "value");
			else
				out->message = string_member(err, "message");
			if (json_is_object(inner))
				out->upstream_id = string_member(inner, "transactionid");
			if (out->upstream_id == NULL)
				out->upstream_id = correlation_id(out->message);
		}
		else if (json_is_string(err))
		{
			json_t	   *codes = json_object_get(root, "error_codes");
			size_t		i;
			json_t	   *c;

			out->code = string_member(root, "error");
			out->message = string_member(root, "error_description");
			out->upstream_id = string_member(root, "correlation_id");
			/* Microsoft Entra ID: "error_codes": [7000222] */
			json_array_foreach(codes, i, c)
				if (json_is_integer(c) && json_integer_value(c) > 0 &&
					json_integer_value(c) <= PG_INT32_MAX)
					out->error_codes = lappend_int(out->error_codes,
											   (int) json_integer_value(c));
			/* Entra appends trace lines to the description; keep the first */
			if (out->message && strchr(out->message, '\r'))
				*strchr(out->message, '\r') = '\0';
			if (out->message && strchr(out->message, '\n'))
				*strchr(out->message, '\n') = '\0';
		}
		else if (json_is_array(details) && json_array_size(details) > 0)
		{
			json_t	   *first = json_array_get(details, 0);

			out->code = string_member(first, "o:errorCode");
			out->message = string_member(first, "detail");
			if (out->message == NULL)
				out->message = string_member(root, "title");
		}
		else if (json_is_object(fault))
		{
			json_t	   *fdetail = json_object_get(fault, "detail");

			out->message = string_member(fault, "faultstring");
			if (json_is_object(fdetail))
				out->code = string_member(fdetail, "errorcode");
		}
		else if (json_object_get(root, "title"))
			out->message = string_member(root, "title");
	}
	PG_CATCH();
	{
		json_decref(root);
		PG_RE_THROW();
	}
	PG_END_TRY();
	json_decref(root);
}

/*-------------------------------------------------------------------------
 *
 * option.c
 *		Option validation for servers, user mappings and foreign tables,
 *		the unified_fdw.* settings, and collecting the options of a scan.
 *
 * The validator never does network I/O: it checks names, shapes and
 * privileges only.  Credentials are accepted on user mappings and nowhere
 * else, and no error message ever echoes an option's value.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "access/reloptions.h"
#include "catalog/pg_foreign_data_wrapper.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "common/base64.h"
#include "miscadmin.h"
#include "catalog/pg_authid.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "pgtime.h"

#include "unified_fdw.h"

/* How an option's value is checked. */
typedef enum OptKind
{
	OPT_SYSTEM,					/* a known connector id */
	OPT_URL,					/* http(s) URL without credentials or query */
	OPT_IDENT,					/* letters, digits, '-', '_', '.' */
	OPT_DIGITS,					/* digits only */
	OPT_POSINT,					/* integer 1..1000000 */
	OPT_BOOL,
	OPT_TABLE,					/* a table of the unified model */
	OPT_SECRET,					/* credential: non-empty, printable */
	OPT_LIMIT,					/* integer in the range of transport_limits */
	OPT_PATH,					/* absolute file path, printable */
	OPT_SECRET_FILE,			/* credential read from a server file */
	OPT_COST,					/* planner cost: a number >= 0 */
	OPT_TIMEZONE				/* a zone of PostgreSQL's time zone database */
} OptKind;

typedef struct OptDef
{
	const char *name;
	Oid			context;		/* catalog the option belongs to */
	OptKind		kind;
	bool		superuser_only;
} OptDef;

static const OptDef option_defs[] = {
	{"system", ForeignServerRelationId, OPT_SYSTEM, false},
	{"instance_url", ForeignServerRelationId, OPT_URL, false},
	{"company_id", ForeignServerRelationId, OPT_IDENT, false},
	{"tenant_id", ForeignServerRelationId, OPT_IDENT, false},
	{"account_id", ForeignServerRelationId, OPT_IDENT, false},
	{"sap_client", ForeignServerRelationId, OPT_DIGITS, false},
	{"token_url", ForeignServerRelationId, OPT_URL, false},
	{"authorization_url", ForeignServerRelationId, OPT_URL, false},
	{"page_size", ForeignServerRelationId, OPT_POSINT, false},
	{"time_zone", ForeignServerRelationId, OPT_TIMEZONE, false},
	{"allow_insecure", ForeignServerRelationId, OPT_BOOL, true},
	{"ca_file", ForeignServerRelationId, OPT_PATH, true},
	{"connect_timeout", ForeignServerRelationId, OPT_LIMIT, false},
	{"request_timeout", ForeignServerRelationId, OPT_LIMIT, false},
	{"low_speed_limit", ForeignServerRelationId, OPT_LIMIT, false},
	{"low_speed_time", ForeignServerRelationId, OPT_LIMIT, false},
	{"max_retries", ForeignServerRelationId, OPT_LIMIT, false},
	{"retry_max_wait", ForeignServerRelationId, OPT_LIMIT, false},
	{"max_response_bytes", ForeignServerRelationId, OPT_LIMIT, false},
	{"max_pages", ForeignServerRelationId, OPT_LIMIT, false},
	{"max_concurrency", ForeignServerRelationId, OPT_LIMIT, false},
	{"disconnected", ForeignServerRelationId, OPT_BOOL, false},
	{"use_remote_estimate", ForeignServerRelationId, OPT_BOOL, false},
	{"fdw_startup_cost", ForeignServerRelationId, OPT_COST, false},
	{"fdw_tuple_cost", ForeignServerRelationId, OPT_COST, false},
	{"table", ForeignTableRelationId, OPT_TABLE, false},
	{"page_size", ForeignTableRelationId, OPT_POSINT, false},
	{"use_remote_estimate", ForeignTableRelationId, OPT_BOOL, false},
	{"username", UserMappingRelationId, OPT_SECRET, false},
	{"password", UserMappingRelationId, OPT_SECRET, false},
	{"token", UserMappingRelationId, OPT_SECRET, false},
	{"api_key", UserMappingRelationId, OPT_SECRET, false},
	{"client_id", UserMappingRelationId, OPT_SECRET, false},
	{"client_secret", UserMappingRelationId, OPT_SECRET, false},
	{"consumer_key", UserMappingRelationId, OPT_SECRET, false},
	{"consumer_secret", UserMappingRelationId, OPT_SECRET, false},
	{"token_id", UserMappingRelationId, OPT_SECRET, false},
	{"token_secret", UserMappingRelationId, OPT_SECRET, false},
	{"refresh_token", UserMappingRelationId, OPT_SECRET, false},
	/* the same, read at each scan from a file only the server can read */
	{"username_file", UserMappingRelationId, OPT_SECRET_FILE, true},
	{"password_file", UserMappingRelationId, OPT_SECRET_FILE, true},
	{"token_file", UserMappingRelationId, OPT_SECRET_FILE, true},
	{"api_key_file", UserMappingRelationId, OPT_SECRET_FILE, true},
	{"client_id_file", UserMappingRelationId, OPT_SECRET_FILE, true},
	{"client_secret_file", UserMappingRelationId, OPT_SECRET_FILE, true},
	{"consumer_key_file", UserMappingRelationId, OPT_SECRET_FILE, true},
	{"consumer_secret_file", UserMappingRelationId, OPT_SECRET_FILE, true},
	{"token_id_file", UserMappingRelationId, OPT_SECRET_FILE, true},
	{"token_secret_file", UserMappingRelationId, OPT_SECRET_FILE, true},
	{NULL, InvalidOid, 0, false}
};

/*
 * Transport limits: server options, their accepted range and default.
 * Times are in seconds.
 */
typedef struct TransportLimit
{
	const char *name;
	int64		min;
	int64		max;
	int64		dflt;
	const char *unit;			/* for messages */
} TransportLimit;

static const TransportLimit transport_limits[] = {
	{"connect_timeout", 1, 3600, 30, "seconds"},
	{"request_timeout", 1, 86400, 300, "seconds"},
	{"low_speed_limit", 1, INT64CONST(1000000000), 1, "bytes per second"},
	{"low_speed_time", 1, 3600, 60, "seconds"},
	{"max_retries", 0, 10, 3, "retries"},
	{"retry_max_wait", 0, 3600, 60, "seconds"},
	{"max_response_bytes", 1024, INT64CONST(1073741824), INT64CONST(268435456), "bytes"},
	{"max_pages", 1, 10000000, 100000, "pages"},
	/* offset-paged dialects only; 1 = the next page only (prefetch) */
	{"max_concurrency", 1, UFDW_MAX_CONCURRENCY, 1, "requests"},
};

/* Credential options that must be given together. */
static const char *const credential_groups[][5] = {
	{"username", "password", NULL},
	{"client_id", "client_secret", NULL},
	{"consumer_key", "consumer_secret", "token_id", "token_secret", NULL},
};

bool		ufdw_pushdown_enabled = true;
char	   *ufdw_extra_connector_dir = NULL;
int			ufdw_connection_credits = 10;

PG_FUNCTION_INFO_V1(unified_fdw_validator);

void
ufdw_define_gucs(void)
{
	DefineCustomBoolVariable("unified_fdw.pushdown",
							 "Translates filters, sorting and limits into upstream queries.",
							 "When off, every upstream request fetches whole tables and "
							 "PostgreSQL does all filtering; results are identical.",
							 &ufdw_pushdown_enabled,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("unified_fdw.extra_connector_dir",
							   "A directory of further connector files (for tests).",
							   "Read, after the installed connectors, when a session first "
							   "loads connectors; later changes take effect in new sessions.",
							   &ufdw_extra_connector_dir,
							   "",
							   PGC_SUSET,
							   GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("unified_fdw.connection_credits",
							"Number of connections unified.connect() may hold at once in a database.",
							"A connection holds a credit from unified.connect() until unified.disconnect().",
							&ufdw_connection_credits,
							10, 0, 100000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("unified_fdw");
}

static const char *
context_name(Oid context)
{
	switch (context)
	{
		case ForeignServerRelationId:
			return "a server";
		case UserMappingRelationId:
			return "a user mapping";
		case ForeignTableRelationId:
			return "a foreign table";
		case ForeignDataWrapperRelationId:
			return "the foreign-data wrapper";
	}
	return "this object";
}

static const OptDef *
find_option(const char *name, Oid context)
{
	for (const OptDef *d = option_defs; d->name; d++)
		if (d->context == context && strcmp(d->name, name) == 0)
			return d;
	return NULL;
}

static char *
valid_options(Oid context)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (const OptDef *d = option_defs; d->name; d++)
		/* "disconnected" is set by unified.disconnect(), not by hand */
		if (d->context == context && strcmp(d->name, "disconnected") != 0)
			appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", d->name);
	return buf.len ? buf.data : pstrdup("(none)");
}

/* True if s has a control character or (if no_space) white space. */
static bool
has_bad_chars(const char *s, bool no_space)
{
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
		if (*p < 0x20 || *p == 0x7f || (no_space && *p == ' '))
			return true;
	return false;
}

/*
 * Checks that url is an http(s) URL with a host and without user info,
 * query or fragment.  Returns NULL if it is, else why not.  Sets *is_http
 * when the scheme is plain http.
 */
static const char *
check_url(const char *url, bool *is_http)
{
	CURLU	   *u = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	char	   *user = NULL;
	char	   *query = NULL;
	char	   *fragment = NULL;
	const char *problem = NULL;

	*is_http = false;
	if (u == NULL)
		return "out of memory";
	if (has_bad_chars(url, true))
		problem = "it contains white space or control characters";
	else if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		problem = "it is not a valid URL";
	else
	{
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
		curl_url_get(u, CURLUPART_HOST, &host, 0);
		curl_url_get(u, CURLUPART_USER, &user, 0);
		curl_url_get(u, CURLUPART_QUERY, &query, 0);
		curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0);
		if (scheme == NULL || (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0))
			problem = "its scheme must be https (or http, for test servers)";
		else if (host == NULL || host[0] == '\0')
			problem = "it has no host name";
		else if (user != NULL)
			problem = "it must not contain a user name or password; credentials belong in the user mapping";
		else if (query != NULL || fragment != NULL)
			problem = "it must not contain a query string or fragment";
		else
			*is_http = strcmp(scheme, "http") == 0;
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_free(query);
	curl_free(fragment);
	curl_url_cleanup(u);
	return problem;
}

/*
 * The value of transport limit name: value parsed and range-checked, or
 * the default when value is NULL.  Raises an ERROR naming the option and
 * the accepted range.
 */
static int64
transport_limit(const char *name, const char *value)
{
	const TransportLimit *lim = NULL;
	char	   *end;
	int64		n;

	for (int i = 0; i < lengthof(transport_limits); i++)
		if (strcmp(transport_limits[i].name, name) == 0)
			lim = &transport_limits[i];
	if (lim == NULL)
		elog(ERROR, "unknown transport limit \"%s\"", name);
	if (value == NULL)
		return lim->dflt;
	errno = 0;
	n = strtoi64(value, &end, 10);
	if (errno || *end || end == value || n < lim->min || n > lim->max)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"%s\"", name),
				 errdetail("Expected an integer between " INT64_FORMAT " and " INT64_FORMAT " (%s); the default is " INT64_FORMAT ".",
						   lim->min, lim->max, lim->unit, lim->dflt)));
	return n;
}

static void
validate_value(const OptDef *def, DefElem *elem)
{
	char	   *value = defGetString(elem);
	bool		is_http;

	switch (def->kind)
	{
		case OPT_SYSTEM:
			if (ufdw_connector(value) == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
						 errmsg("unknown system \"%s\"", value),
						 errhint("Known systems are: %s.", ufdw_known_systems())));
			break;
		case OPT_URL:
			{
				const char *problem = check_url(value, &is_http);

				if (problem)
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("invalid value for option \"%s\": %s", def->name, problem),
							 errhint("Give the URL as https://host[:port][/path], for example \"https://api.businesscentral.dynamics.com/v2.0/<tenant>/production\".")));
			}
			break;
		case OPT_IDENT:
			for (const char *p = value; *p; p++)
				if (!isalnum((unsigned char) *p) && !strchr("-_.", *p))
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("invalid value for option \"%s\"", def->name),
							 errdetail("Only letters, digits, \"-\", \"_\" and \".\" are allowed.")));
			if (value[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("option \"%s\" must not be empty", def->name)));
			break;
		case OPT_DIGITS:
			if (value[0] == '\0' || strspn(value, "0123456789") != strlen(value))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"%s\"", def->name),
						 errdetail("Only digits are allowed, e.g. \"100\".")));
			break;
		case OPT_POSINT:
			{
				char	   *end;
				long		n;

				errno = 0;
				n = strtol(value, &end, 10);
				if (errno || *end || end == value || n < 1 || n > 1000000)
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("invalid value for option \"%s\"", def->name),
							 errdetail("Expected an integer between 1 and 1000000.")));
			}
			break;
		case OPT_BOOL:
			(void) defGetBoolean(elem);
			break;
		case OPT_TABLE:
			if (ufdw_model_table(value) == NULL)
			{
				StringInfoData names;
				const UfdwModel *model = ufdw_model();

				initStringInfo(&names);
				for (int i = 0; i < model->ntables; i++)
					appendStringInfo(&names, "%s%s", i ? ", " : "", model->tables[i].name);
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("unknown unified table \"%s\"", value),
						 errhint("Tables of the unified model are: %s.", names.data)));
			}
			break;
		case OPT_LIMIT:
			(void) transport_limit(def->name, value);
			break;
		case OPT_PATH:
		case OPT_SECRET_FILE:
			if (value[0] != '/' || has_bad_chars(value, false))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"%s\"", def->name),
						 errdetail("Expected an absolute file path without control characters.")));
			break;
		case OPT_COST:
			(void) ufdw_cost_option(def->name, value, 0);
			break;
		case OPT_TIMEZONE:
			/* a full zone name; not an offset or abbreviation, which have no rules */
			if (value[0] == '\0' || has_bad_chars(value, true) ||
				strspn(value, "0123456789+-:") == strlen(value) ||
				pg_tzset(value) == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"%s\": unknown time zone \"%s\"",
								def->name, value),
						 errdetail("Expected a time zone name of the IANA database, e.g. \"America/Los_Angeles\", \"Europe/Berlin\" or \"UTC\"; the names PostgreSQL knows are in pg_timezone_names."),
						 errhint("Give the time zone of the upstream user whose credentials the user mapping holds; unified.systems' setup_steps say where the system shows it.")));
			break;
		case OPT_SECRET:
			/* never echo the value */
			if (value[0] == '\0' || has_bad_chars(value, false))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"%s\"", def->name),
						 errdetail("The value must not be empty or contain control characters.")));
			break;
	}
}

/*
 * The value of planner cost option name (fdw_startup_cost, fdw_tuple_cost):
 * value parsed, or dflt when value is NULL.  Raises an ERROR naming the
 * option unless it is a finite number >= 0.
 */
double
ufdw_cost_option(const char *name, const char *value, double dflt)
{
	char	   *end;
	double		d;

	if (value == NULL)
		return dflt;
	errno = 0;
	d = strtod(value, &end);
	if (errno || *end || end == value || isnan(d) || isinf(d) || d < 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"%s\"", name),
				 errdetail("Expected a number of at least 0, e.g. \"1000\" or \"0.05\".")));
	return d;
}

/*
 * Records per upstream page of a table: its page_size option, else its
 * server's, else the connector's default; at most the connector's maximum.
 * The one place page_size is read (planner and executor alike).
 */
int
ufdw_page_size(const UfdwConnector *conn, List *server_options, List *table_options)
{
	char	   *v = ufdw_option_value(table_options, "page_size");
	long		n;

	if (v == NULL)
		v = ufdw_option_value(server_options, "page_size");
	/* validated (1..1000000) when the option was set */
	n = v ? strtol(v, NULL, 10) : conn->default_page_size;
	return (int) Max(1, Min(n, conn->max_page_size));
}

/*
 * The server's time_zone option (the zone of an upstream's wall-clock date
 * and time values), "UTC" when not set.
 */
const char *
ufdw_time_zone(const UfdwOptions *opts)
{
	char	   *v = ufdw_option_value(opts->server_options, "time_zone");

	return v ? v : "UTC";
}

/* A boolean option's value, or dflt when it is not set. */
bool
ufdw_option_bool(List *options, const char *name, bool dflt)
{
	char	   *v = ufdw_option_value(options, name);
	bool		result = dflt;

	if (v)
		(void) parse_bool(v, &result);
	return result;
}

#define NETSUITE_HOST_SUFFIX ".suitetalk.api.netsuite.com"
#define ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

/*
 * NetSuite account ids: "1234567", "1234567_SB1" (sandbox), "TSTDRV123456",
 * "1234567_RP" (release preview): letters and digits with at most one
 * "_" (or "-") suffix.  The OAuth realm is the id in upper case with "_";
 * the host name is <id in lower case with "-">.suitetalk.api.netsuite.com.
 * An instance_url on that domain must belong to account_id.
 */
static void
validate_account_id(const char *account_id, const char *url)
{
	size_t		n = strspn(account_id, ALNUM);
	const char *suffix = account_id + n + 1;
	CURLU	   *u;
	char	   *host = NULL;

	if (n == 0 || (account_id[n] != '\0' &&
				   ((account_id[n] != '_' && account_id[n] != '-') || *suffix == '\0' ||
					strspn(suffix, ALNUM) != strlen(suffix))))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"account_id\""),
				 errdetail("A NetSuite account id is letters and digits with an optional suffix such as \"_SB1\", e.g. \"1234567\" or \"1234567_SB1\"."),
				 errhint("Find it under Setup > Company > Company Information (Account ID).")));
	if (url == NULL || (u = curl_url()) == NULL)
		return;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host)
	{
		size_t		hlen = strlen(host);
		size_t		slen = strlen(NETSUITE_HOST_SUFFIX);

		if (hlen > slen && pg_strcasecmp(host + hlen - slen, NETSUITE_HOST_SUFFIX) == 0)
		{
			char	   *want = pstrdup(account_id);
			bool		same = strlen(want) == hlen - slen;

			for (char *c = want; *c; c++)
				*c = (*c == '_') ? '-' : pg_tolower((unsigned char) *c);
			same = same && pg_strncasecmp(host, want, hlen - slen) == 0;
			curl_free(host);
			curl_url_cleanup(u);
			if (!same)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("option \"instance_url\" does not belong to NetSuite account \"%s\"",
								account_id),
						 errhint("For account \"%s\" the instance_url is \"https://%s%s\" (lower case, \"-\" for \"_\").",
								 account_id, want, NETSUITE_HOST_SUFFIX)));
			return;
		}
	}
	curl_free(host);
	curl_url_cleanup(u);
}

/* Server checks that need the whole option list. */
static void
validate_server(List *options)
{
	char	   *system = ufdw_option_value(options, "system");
	char	   *url = ufdw_option_value(options, "instance_url");
	const char *const urls[] = {"token_url", "authorization_url"};
	bool		insecure = false;
	const UfdwConnector *conn;
	ListCell   *lc;
	bool		is_http;

	foreach(lc, options)
	{
		DefElem    *d = lfirst(lc);

		if (strcmp(d->defname, "allow_insecure") == 0)
			insecure = defGetBoolean(d);
	}
	if (system == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("option \"system\" is required"),
				 errhint("Known systems are: %s.", ufdw_known_systems())));
	conn = ufdw_connector(system);
	if (url == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("option \"instance_url\" is required"),
				 errhint("For %s it looks like \"%s\".", conn->name,
						 conn->instance_url_example)));
	foreach(lc, conn->required_options)
		if (ufdw_option_value(options, lfirst(lc)) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("option \"%s\" is required for system \"%s\"",
							(char *) lfirst(lc), system)));
	if (ufdw_option_value(options, "account_id"))
		validate_account_id(ufdw_option_value(options, "account_id"), url);
	(void) check_url(url, &is_http);
	if (is_http && !insecure)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("option \"instance_url\" must use https"),
				 errhint("Plain http is only allowed for test servers, with allow_insecure 'true' (superuser only).")));
	for (int i = 0; i < lengthof(urls); i++)
	{
		char	   *u = ufdw_option_value(options, urls[i]);

		if (u == NULL)
			continue;
		(void) check_url(u, &is_http);
		if (is_http && !insecure)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("option \"%s\" must use https", urls[i]),
					 errhint("Plain http is only allowed for test servers, with allow_insecure 'true' (superuser only).")));
	}
}

/* Whether credential field name is given, as itself or as name_file. */
static bool
has_credential(List *options, const char *name)
{
	return ufdw_option_value(options, name) != NULL ||
		ufdw_option_value(options, psprintf("%s_file", name)) != NULL;
}

/* User mapping checks that need the whole option list. */
static void
validate_user_mapping(List *options)
{
	for (const OptDef *d = option_defs; d->name; d++)
		if (d->kind == OPT_SECRET_FILE)
		{
			char	   *field = pnstrdup(d->name, strlen(d->name) - strlen("_file"));

			if (ufdw_option_value(options, field) && ufdw_option_value(options, d->name))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
						 errmsg("options \"%s\" and \"%s\" cannot both be set", field, d->name),
						 errhint("Give the credential either in the user mapping or in a file, not both.")));
		}
	for (int g = 0; g < lengthof(credential_groups); g++)
	{
		int			present = 0;
		int			n = 0;

		for (n = 0; credential_groups[g][n]; n++)
			if (has_credential(options, credential_groups[g][n]))
				present++;
		if (present > 0 && present < n)
			for (int i = 0; i < n; i++)
				if (!has_credential(options, credential_groups[g][i]))
					ereport(ERROR,
							(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
							 errmsg("option \"%s\" is required with option \"%s\"",
									credential_groups[g][i], credential_groups[g][0]),
							 errhint("Either option may also be given as a file: \"%s_file\".",
									 credential_groups[g][i])));
	}
}

Datum
unified_fdw_validator(PG_FUNCTION_ARGS)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			context = PG_GETARG_OID(1);
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *elem = lfirst(lc);
		const OptDef *def = find_option(elem->defname, context);

		if (def == NULL)
		{
			if (find_option(elem->defname, UserMappingRelationId) != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
						 errmsg("credential option \"%s\" is not allowed on %s",
								elem->defname, context_name(context)),
						 errhint("Credentials belong in the user mapping: CREATE USER MAPPING ... OPTIONS (%s '...'). Valid options on %s are: %s.",
								 elem->defname, context_name(context), valid_options(context))));
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\" for %s", elem->defname,
							context_name(context)),
					 errhint("Valid options on %s are: %s.", context_name(context),
							 valid_options(context))));
		}
		if (def->kind == OPT_SECRET_FILE)
		{
			/* as file_fdw's filename: naming a server file is a privilege */
			if (!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied to set option \"%s\"", def->name),
						 errhint("Only superusers and members of pg_read_server_files may name a server file in \"%s\".",
								 def->name)));
		}
		else if (def->superuser_only && !superuser())
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to set option \"%s\"", def->name),
					 errhint("Only superusers may set \"%s\".", def->name)));
		validate_value(def, elem);
	}

	if (context == ForeignServerRelationId)
		validate_server(options);
	else if (context == UserMappingRelationId)
		validate_user_mapping(options);

	PG_RETURN_VOID();
}

/* The value of option name in a DefElem list, or NULL. */
char *
ufdw_option_value(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *d = lfirst(lc);

		if (strcmp(d->defname, name) == 0)
			return defGetString(d);
	}
	return NULL;
}

/* The transport limits of a server, defaults for those not set. */
static void
get_transport_options(UfdwOptions *o, List *options)
{
#define LIMIT(name) transport_limit(name, ufdw_option_value(options, name))
	o->ca_file = ufdw_option_value(options, "ca_file");
	o->connect_timeout_s = (int) LIMIT("connect_timeout");
	o->request_timeout_s = (int) LIMIT("request_timeout");
	o->low_speed_limit = (int) LIMIT("low_speed_limit");
	o->low_speed_time_s = (int) LIMIT("low_speed_time");
	o->max_retries = (int) LIMIT("max_retries");
	o->retry_max_wait_s = (int) LIMIT("retry_max_wait");
	o->max_response_bytes = LIMIT("max_response_bytes");
	o->max_pages = (int) LIMIT("max_pages");
	o->max_concurrency = (int) LIMIT("max_concurrency");
#undef LIMIT
}

/*
 * The request context for requests to opts' server: who they are made for
 * (server, and table_name, NULL for requests outside a scan), the secrets
 * to redact, and the server's transport settings (allow_insecure, ca_file,
 * timeouts, retries, response cap).  The one constructor of request
 * settings: scans, remote estimates, unified.connect's live check and
 * unified.status(live => true) all use it.  *rctx is overwritten.
 */
void
ufdw_request_context(const UfdwOptions *opts, const char *table_name,
					 UfdwRequestContext *rctx)
{
	memset(rctx, 0, sizeof(*rctx));
	rctx->server_name = opts->server_name;
	rctx->table_name = table_name;
	rctx->secrets = ufdw_secrets(opts);
	rctx->allow_insecure = opts->allow_insecure;
	rctx->ca_file = opts->ca_file;
	rctx->connect_timeout_ms = opts->connect_timeout_s * 1000L;
	rctx->request_timeout_ms = opts->request_timeout_s * 1000L;
	rctx->low_speed_limit = opts->low_speed_limit;
	rctx->low_speed_time_s = opts->low_speed_time_s;
	rctx->max_retries = opts->max_retries;
	rctx->retry_max_wait_ms = opts->retry_max_wait_s * 1000L;
	rctx->max_response_bytes = opts->max_response_bytes;
	rctx->user_grant = opts->auth_method == UFDW_AUTH_OAUTH2_CODE;
}

#define SECRET_FILE_MAX 65536

/*
 * The content of credential file path (option option of a user mapping for
 * server), without one final line break.  The file must be a regular file
 * that neither its group nor others may read, write or execute (as libpq's
 * password file), at most 64 kB, and hold a non-empty value without control
 * characters.  Read afresh each time, so a rotated secret is used at the
 * next scan.  Errors name the option and the path, never the content.
 */
static char *
read_secret_file(const char *option, const char *path, const char *server)
{
	int			fd;
	struct stat st;
	char	   *buf;
	ssize_t		n;

	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\" named by option \"%s\" of the user mapping for server \"%s\": %m",
						path, option, server),
				 errhint("The file must exist and be readable by the operating system user the PostgreSQL server runs as.")));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
	{
		CloseTransientFile(fd);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("file \"%s\" named by option \"%s\" is not a regular file", path, option)));
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO))
	{
		CloseTransientFile(fd);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("file \"%s\" named by option \"%s\" has group or world access", path, option),
				 errdetail("Its permissions are %04o.", (unsigned int) (st.st_mode & 07777)),
				 errhint("Only the server's operating system user may have access to a credential file: chmod 600 \"%s\".",
						 path)));
	}
	if (st.st_size > SECRET_FILE_MAX)
	{
		CloseTransientFile(fd);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("file \"%s\" named by option \"%s\" is larger than %d bytes", path, option,
						SECRET_FILE_MAX)));
	}
	buf = palloc(SECRET_FILE_MAX + 2);
	n = read(fd, buf, SECRET_FILE_MAX + 1);
	if (n < 0)
	{
		int			save_errno = errno;

		CloseTransientFile(fd);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read file \"%s\" named by option \"%s\": %m", path, option)));
	}
	CloseTransientFile(fd);
	buf[Min(n, SECRET_FILE_MAX)] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	if (n == 0 || n > SECRET_FILE_MAX || strlen(buf) != (size_t) n || has_bad_chars(buf, false))
	{
		explicit_bzero(buf, SECRET_FILE_MAX + 2);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("invalid content in file \"%s\" named by option \"%s\"", path, option),
				 errdetail("The file must hold one non-empty value without control characters, optionally followed by one line break.")));
	}
	return buf;
}

/* Credential field name of a user mapping: its option, else its file. */
static char *
credential(List *options, const char *name, const char *server)
{
	char	   *option = psprintf("%s_file", name);
	char	   *path = ufdw_option_value(options, option);

	if (path)
		return read_secret_file(option, path, server);
	return ufdw_option_value(options, name);
}

/*
 * Collects everything a scan needs from the server and the user mapping,
 * and picks the authentication method from the credentials given.  um may
 * be NULL when nothing will be sent (EXPLAIN without ANALYZE): then no
 * credentials are read or required.
 */
UfdwOptions *
ufdw_get_options(ForeignServer *server, UserMapping *um)
{
	UfdwOptions *o = palloc0(sizeof(UfdwOptions));
	List	   *uo = um ? um->options : NIL;
	char	   *system = ufdw_option_value(server->options, "system");
	char	   *v;

	o->server_name = pstrdup(server->servername);
	o->server_options = server->options;
	o->connector = system ? ufdw_connector(system) : NULL;
	if (o->connector == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("server \"%s\" names an unknown system", server->servername),
				 errhint("Known systems are: %s.", ufdw_known_systems())));
	o->instance_url = pstrdup(ufdw_option_value(server->options, "instance_url"));
	while (strlen(o->instance_url) > 0 && o->instance_url[strlen(o->instance_url) - 1] == '/')
		o->instance_url[strlen(o->instance_url) - 1] = '\0';
	o->token_url = ufdw_option_value(server->options, "token_url");
	if ((v = ufdw_option_value(server->options, "allow_insecure")) != NULL)
		(void) parse_bool(v, &o->allow_insecure);
	get_transport_options(o, server->options);

	o->username = credential(uo, "username", server->servername);
	o->password = credential(uo, "password", server->servername);
	o->token = credential(uo, "token", server->servername);
	o->api_key = credential(uo, "api_key", server->servername);
	o->client_id = credential(uo, "client_id", server->servername);
	o->client_secret = credential(uo, "client_secret", server->servername);
	o->consumer_key = credential(uo, "consumer_key", server->servername);
	o->consumer_secret = credential(uo, "consumer_secret", server->servername);
	o->token_id = credential(uo, "token_id", server->servername);
	o->token_secret = credential(uo, "token_secret", server->servername);
	o->refresh_token = credential(uo, "refresh_token", server->servername);

	if (o->client_id && o->refresh_token)
		o->auth_method = UFDW_AUTH_OAUTH2_CODE;
	else if (o->client_id)
		o->auth_method = UFDW_AUTH_OAUTH2_CC;
	else if (o->consumer_key)
		o->auth_method = UFDW_AUTH_TBA;
	else if (o->token)
		o->auth_method = UFDW_AUTH_BEARER;
	else if (o->api_key)
		o->auth_method = UFDW_AUTH_API_KEY;
	else if (o->username)
		o->auth_method = UFDW_AUTH_BASIC;

	if (um != NULL &&
		(o->auth_method == 0 || !(o->connector->auth_methods & o->auth_method)))
	{
		StringInfoData accepted;
		static const struct
		{
			int			method;
			const char *options;
		}			methods[] =
		{
			{UFDW_AUTH_OAUTH2_CC, "client_id and client_secret"},
			{UFDW_AUTH_BASIC, "username and password"},
			{UFDW_AUTH_BEARER, "token"},
			{UFDW_AUTH_API_KEY, "api_key"},
			{UFDW_AUTH_TBA, "consumer_key, consumer_secret, token_id and token_secret"},
			{UFDW_AUTH_OAUTH2_CODE, "client_id, client_secret and refresh_token (which unified.complete_authorization() stores)"},
		};

		initStringInfo(&accepted);
		for (int i = 0; i < lengthof(methods); i++)
			if (o->connector->auth_methods & methods[i].method)
				appendStringInfo(&accepted, "%s%s", accepted.len ? "; or " : "",
								 methods[i].options);
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg(o->auth_method == 0 ?
						"user mapping for server \"%s\" has no credentials" :
						"user mapping for server \"%s\" has credentials that %s does not accept",
						server->servername, o->connector->name),
				 errhint("Set, in the user mapping: %s.", accepted.data)));
	}
	return o;
}

/* s with every byte outside unreserved (RFC 3986) as %XX, hex in upper or lower case. */
static char *
percent_encoded(const char *s, bool lower, bool plus_for_space)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			(*p >= '0' && *p <= '9') || strchr("-._~", *p))
			appendStringInfoChar(&buf, *p);
		else if (*p == ' ' && plus_for_space)
			appendStringInfoChar(&buf, '+');
		else
			appendStringInfo(&buf, lower ? "%%%02x" : "%%%02X", *p);
	}
	return buf.data;
}

/* s as the content of a JSON string; "/" as "\/" if slash. */
static char *
json_escaped(const char *s, bool slash)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (const char *p = s; *p; p++)
	{
		if (*p == '"' || *p == '\\' || (*p == '/' && slash))
			appendStringInfoChar(&buf, '\\');
		appendStringInfoChar(&buf, *p);
	}
	return buf.data;
}

static List *
add_secret(List *l, char *s)
{
	ListCell   *lc;

	foreach(lc, l)
		if (strcmp(lfirst(lc), s) == 0)
			return l;
	return lappend(l, s);
}

/*
 * The secret values of the user mapping, for redaction from messages, with
 * the forms an upstream may echo them in: percent-encoded (query strings,
 * form bodies such as the OAuth token request; upper- or lower-case hex,
 * space as "+" or "%20"), JSON-escaped ("\"", "\\", "\/"), and HTTP Basic's
 * base64 of "username:password".  Every secret counts, however short; see
 * ufdw_redact() for what happens to text that holds a short one.
 */
List *
ufdw_secrets(const UfdwOptions *opts)
{
	List	   *l = NIL;
	const char *secrets[] = {opts->password, opts->token, opts->api_key,
		opts->client_secret, opts->consumer_secret, opts->token_secret,
	opts->consumer_key, opts->token_id, opts->refresh_token};

	for (int i = 0; i < lengthof(secrets); i++)
	{
		const char *s = secrets[i];

		if (s == NULL || s[0] == '\0')
			continue;
		l = add_secret(l, pstrdup(s));
		l = add_secret(l, percent_encoded(s, false, false));
		l = add_secret(l, percent_encoded(s, true, false));
		l = add_secret(l, percent_encoded(s, false, true));
		l = add_secret(l, percent_encoded(s, true, true));
		l = add_secret(l, json_escaped(s, false));
		l = add_secret(l, json_escaped(s, true));
	}
	if (opts->username && opts->password)
	{
		char	   *plain = psprintf("%s:%s", opts->username, opts->password);
		int			len = strlen(plain);
		char	   *b64 = palloc(pg_b64_enc_len(len) + 1);
		int			n = pg_b64_encode(plain, len, b64, pg_b64_enc_len(len));

		if (n > 0)
		{
			b64[n] = '\0';
			l = add_secret(l, b64);
		}
		explicit_bzero(plain, len);
	}
	return l;
}

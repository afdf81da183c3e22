/*-------------------------------------------------------------------------
 *
 * request.c
 *		Turns a scan into native requests: what every dialect shares (the
 *		fields a scan needs, URL escaping, the connector's templates, extra
 *		headers and query parameters, following a next link safely, the
 *		window of a capped query) and the entry points, which hand over to
 *		the connector's dialect module (dialect_odata.c, dialect_suiteql.c
 *		say how each language requests and pages).
 *
 * The filter and sort come rendered from deparse.c (spec->filter, params,
 * orderby); spec->top is a pushed LIMIT, spec->count asks for the total
 * (use_remote_estimate).  Everything here is pure: no I/O, no catalog
 * access, no secrets.  The requests built here are what EXPLAIN VERBOSE
 * shows; credentials are added by auth.c when a request is sent.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/json.h"

#include "dialect.h"

/*
 * Percent-encodes s for a URL query or form value: everything but letters,
 * digits and the characters in keep.
 */
static char *
escape_except(const char *s, const char *keep)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		if (isalnum(*p) || strchr(keep, *p))
			appendStringInfoChar(&buf, *p);
		else
			appendStringInfo(&buf, "%%%02X", *p);
	}
	return buf.data;
}

/* Percent-encodes everything but RFC 3986 unreserved characters. */
char *
ufdw_url_escape(const char *s)
{
	return escape_except(s, "-._~");
}

/*
 * Encoding for query option values: also keeps the sub-delimiters OData
 * expressions are made of ("$", ",", "'", "(", ")", ":"), which RFC 3986
 * allows in a query, so requests stay readable in EXPLAIN.  "&", "=", "+",
 * "#", "%", space and non-ASCII bytes are always encoded.
 */
char *
ufdw_query_escape(const char *s)
{
	return escape_except(s, "-._~$,'():/@");
}

/* The value of a server option as used in templates. */
static const char *
template_value(const UfdwOptions *opts, const char *name)
{
	if (strcmp(name, "instance_url") == 0)
		return opts->instance_url;
	return ufdw_server_option(opts, name);
}

/*
 * The value of a template placeholder "name|filter|...": the option's
 * value passed through the filters (upper, lower: the case of ASCII
 * letters; dash: "_" to "-"; underscore: "-" to "_"), or NULL if the option
 * is not set.  An unknown filter is an ERROR (connector.c checks them when
 * loading, so this cannot happen).
 */
static char *
placeholder_value(const UfdwOptions *opts, char *spec, char **name)
{
	char	   *filters = strchr(spec, '|');
	const char *value;
	char	   *v;

	if (filters)
		*filters++ = '\0';
	*name = spec;
	if ((value = template_value(opts, spec)) == NULL)
		return NULL;
	v = pstrdup(value);
	while (filters && *filters)
	{
		char	   *next = strchr(filters, '|');

		if (next)
			*next++ = '\0';
		if (!ufdw_template_filter(filters, v))
			elog(ERROR, "unknown template filter \"%s\"", filters);
		filters = next;
	}
	return v;
}

/*
 * Applies template filter name to s in place; false if there is no such
 * filter (then s is unchanged).
 */
bool
ufdw_template_filter(const char *name, char *s)
{
	if (strcmp(name, "upper") == 0)
		for (char *c = s; *c; c++)
			*c = pg_ascii_toupper((unsigned char) *c);
	else if (strcmp(name, "lower") == 0)
		for (char *c = s; *c; c++)
			*c = pg_ascii_tolower((unsigned char) *c);
	else if (strcmp(name, "dash") == 0)
		for (char *c = s; *c; c++)
			*c = *c == '_' ? '-' : *c;
	else if (strcmp(name, "underscore") == 0)
		for (char *c = s; *c; c++)
			*c = *c == '-' ? '_' : *c;
	else
		return false;
	return true;
}

/*
 * Replaces every {option} (or {option|filter...}, placeholder_value) in
 * tmpl with the server option's value.  A missing option expands to "" and
 * sets *missing, and *missing_name (if not NULL) to the first one missing.
 * The result is palloc'd.
 */
char *
ufdw_expand_template_named(const char *tmpl, const UfdwOptions *opts, bool *missing,
						   const char **missing_name)
{
	StringInfoData buf;
	const char *p = tmpl;

	*missing = false;
	if (missing_name)
		*missing_name = NULL;
	initStringInfo(&buf);
	while (*p)
	{
		const char *close;

		if (*p == '{' && (close = strchr(p, '}')) != NULL)
		{
			char	   *name;
			char	   *value = placeholder_value(opts, pnstrdup(p + 1, close - p - 1), &name);

			if (value)
				appendStringInfoString(&buf, value);
			else
			{
				if (missing_name && !*missing)
					*missing_name = name;
				*missing = true;
			}
			p = close + 1;
		}
		else
			appendStringInfoChar(&buf, *p++);
	}
	return buf.data;
}

/* The same, without the name of what is missing. */
char *
ufdw_expand_template(const char *tmpl, const UfdwOptions *opts, bool *missing)
{
	return ufdw_expand_template_named(tmpl, opts, missing, NULL);
}

/* The native fields the needed columns read, each once. */
List *
ufdw_needed_fields(const UfdwScanSpec *spec, bool *all)
{
	const UfdwTableMap *tm = spec->table;
	List	   *fields = NIL;
	int			c = -1;

	*all = false;
	while ((c = bms_next_member(spec->columns, c)) >= 0)
	{
		const UfdwColumnMap *cm = &tm->columns[c];

		if (cm->kind == UFDW_MAP_RAW)
			*all = true;
		for (int f = 0; f < cm->nfields; f++)
		{
			ListCell   *lc;
			bool		seen = false;

			foreach(lc, fields)
				if (strcmp(((UfdwField *) lfirst(lc))->name, cm->fields[f].name) == 0)
					seen = true;
			if (!seen)
				fields = lappend(fields, &cm->fields[f]);
		}
	}
	return fields;
}

/* Every mapped field of the table, each once (for "raw" in SuiteQL). */
List *
ufdw_all_fields(const UfdwTableMap *tm)
{
	UfdwScanSpec spec = {0};
	bool		all;

	spec.table = tm;
	for (int c = 0; c < tm->model->ncolumns; c++)
		if (tm->columns[c].kind != UFDW_MAP_RAW)
			spec.columns = bms_add_member(spec.columns, c);
	return ufdw_needed_fields(&spec, &all);
}

void
ufdw_append_param(StringInfo buf, const char *name, const char *value)
{
	appendStringInfo(buf, "%c%s=%s", strchr(buf->data, '?') ? '&' : '?',
					 name, ufdw_query_escape(value));
}

/* Connector headers and query parameters, expanded; unset ones left out. */
void
ufdw_add_connector_extras(UfdwRequest *req, StringInfo url, const UfdwOptions *opts)
{
	const UfdwConnector *conn = opts->connector;
	bool		missing;

	for (int i = 0; i < conn->nquery; i++)
	{
		char	   *v = ufdw_expand_template(conn->query[i].value, opts, &missing);

		if (!missing)
			ufdw_append_param(url, conn->query[i].name, v);
	}
	for (int i = 0; i < conn->nheaders; i++)
	{
		char	   *v = ufdw_expand_template(conn->headers[i].value, opts, &missing);

		if (!missing)
			req->headers = lappend(req->headers,
								   psprintf("%s: %s", conn->headers[i].name, v));
	}
}

char *
ufdw_base_url(const UfdwOptions *opts)
{
	bool		missing;
	char	   *url = ufdw_expand_template(opts->connector->base_url, opts, &missing);

	if (missing)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("server \"%s\" lacks an option that %s needs",
						opts->server_name, opts->connector->name),
				 errdetail("The base URL is \"%s\".", opts->connector->base_url)));
	return url;
}

/* Length of the scheme://host:port part of url. */
static size_t
origin_length(const char *url)
{
	const char *p = strstr(url, "://");

	if (p == NULL)
		return 0;
	p += 3;
	while (*p && *p != '/' && *p != '?' && *p != '#')
		p++;
	return p - url;
}


/*
 * The request for the page a next link (page->next_link) points to, with
 * prev's headers, allocated in the current memory context and sharing
 * nothing with prev.  The link must stay on the origin of prev and must not
 * repeat it (else an ERROR).
 */
UfdwRequest *
ufdw_follow_link(const UfdwOptions *opts, const UfdwRequest *prev, int page_no,
				 const UfdwPageInfo *page)
{
	UfdwRequest *req;
	size_t		olen = origin_length(prev->url);
	ListCell   *lc;

	if (olen == 0 || strncmp(page->next_link, prev->url, olen) != 0 ||
		origin_length(page->next_link) != olen)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("server \"%s\" sent a next-page link to another host",
						opts->server_name),
				 errdetail("Page %d linked outside \"%.*s\"; the link was not followed.",
						   page_no, (int) olen, prev->url),
				 errhint("Check instance_url; it must be the host the upstream itself uses.")));
	if (strcmp(page->next_link, prev->url) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("server \"%s\" sent a next-page link that repeats the current page",
						opts->server_name),
				 errdetail("Page %d linked to itself; paging stopped to avoid a loop.", page_no)));

	req = palloc0(sizeof(UfdwRequest));
	req->method = "GET";
	req->url = pstrdup(page->next_link);
	/* copied: prev is freed once this request is built (one page in memory) */
	foreach(lc, prev->headers)
		req->headers = lappend(req->headers, pstrdup(lfirst(lc)));
	req->offset = prev->offset + page->nrecords;
	req->limit = prev->limit;
	return req;
}

/* Does the connector cap what one query returns (max_results, max_pages)? */
bool
ufdw_query_capped(const UfdwScanSpec *spec)
{
	return (spec->connector->max_results > 0 || spec->connector->max_pages > 0) &&
		spec->table->columns[0].kind != UFDW_MAP_RAW &&
		spec->table->columns[0].nfields > 0;
}

/*
 * Records one query returns at most when paged by page_size, a multiple
 * of it (offset stays a multiple of limit); 0: no cap.
 */
int64
ufdw_query_window(const UfdwScanSpec *spec)
{
	const UfdwConnector *c = spec->connector;
	int64		w = 0;

	if (!ufdw_query_capped(spec) || spec->page_size <= 0)
		return 0;
	if (c->max_results > 0)
		w = c->max_results;
	if (c->max_pages > 0)
		w = w > 0 ? Min(w, (int64) c->max_pages * spec->page_size) :
			(int64) c->max_pages * spec->page_size;
	return w / spec->page_size * spec->page_size;
}

/* Records one query reaches by offset (0: all of them). */
int64
ufdw_offset_reach(const UfdwScanSpec *spec)
{
	return ufdw_query_window(spec);
}

/*
 * ANALYZE's request for the page_size records from offset on (records in
 * the upstream's order, no LIMIT), or NULL when one query cannot reach
 * offset: the dialect cannot ask for an offset, the table is read through
 * parents, or the offset lies past what one capped query returns
 * (SuiteQL's max_results).
 */
UfdwRequest *
ufdw_sample_request(const UfdwScanSpec *spec, const UfdwOptions *opts, int64 offset)
{
	int64		window = ufdw_query_window(spec);

	if (opts->connector->dialect->offset_request == NULL ||
		spec->table->read_through || spec->top > 0 ||
		(window > 0 && offset + spec->page_size > window))
		return NULL;
	return opts->connector->dialect->offset_request(spec, opts, offset);
}

/* The first request of a scan, in the connector's dialect. */
UfdwRequest *
ufdw_first_request(const UfdwScanSpec *spec, const UfdwOptions *opts)
{
	return opts->connector->dialect->first_request(spec, opts);
}

/*
 * The request for the page after prev, or NULL when prev was the last,
 * allocated in the current memory context and sharing nothing with prev.
 */
UfdwRequest *
ufdw_next_request(const UfdwScanSpec *spec, const UfdwOptions *opts,
				  const UfdwRequest *prev, int page_no, const UfdwPageInfo *page)
{
	return opts->connector->dialect->next_request(spec, opts, prev, page_no, page);
}

/*-------------------------------------------------------------------------
 *
 * request.c
 *		Turns a scan into native requests, one dialect at a time: the URL
 *		with its query options, the headers, the body, and the request for
 *		the page after a given one.
 *
 * The filter and sort come rendered from deparse.c (spec->filter, params,
 * orderby); spec->top is a pushed LIMIT, spec->count asks for the total
 * (use_remote_estimate).  Everything here is pure: no I/O, no catalog
 * access, no secrets.  The requests built here are what EXPLAIN VERBOSE
 * shows; credentials are added by auth.c when a request is sent.
 *
 *	 odata_v4   GET base/entity?$select=…&$filter=…&$orderby=…[&$top=L]
 *	            with Prefer: odata.maxpagesize=N, then every @odata.nextLink
 *	            as given (opaque; it repeats the options).  A table read
 *	            through its parent (read_through): GET base/parent?$select=
 *	            key[&$filter=…]&$expand=nav($select=…;$filter=…), paged by
 *	            parents, N / children_per_parent of them per page.
 *	 odata_v2   GET base/entity?$select=…&$filter=…&$orderby=…&$top=N&$skip=K
 *	            ($top lowered to what a pushed LIMIT still needs); follows
 *	            __next when the server sends it, else advances $skip.
 *	 suiteql    POST …/services/rest/query/v1/suiteql?limit=N&offset=K with
 *	            {"q": "SELECT … WHERE … ORDER BY …, <id fields>", "params":
 *	            [...]} and Prefer: transient; offset advances by limit
 *	            (always a multiple of it) while hasMore is true.  One query
 *	            returns at most max_results records in at most max_pages
 *	            pages (connector "paging"; NetSuite: 100,000 and 1000): when
 *	            a query's last page is full, the scan goes on with a new
 *	            query for the records after the last key read ("WHERE …
 *	            AND id > ?", offset 0), so no table is ever cut short.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/json.h"

#include "unified_fdw.h"

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
static char *
query_escape(const char *s)
{
	return escape_except(s, "-._~$,'():/@");
}

/* The value of a server option as used in templates. */
static const char *
template_value(const UfdwOptions *opts, const char *name)
{
	if (strcmp(name, "instance_url") == 0)
		return opts->instance_url;
	return ufdw_option_value(opts->server_options, name);
}

/*
 * Replaces every {option} in tmpl with the server option's value.  A
 * missing option expands to "" and sets *missing.  The result is palloc'd.
 */
char *
ufdw_expand_template(const char *tmpl, const UfdwOptions *opts, bool *missing)
{
	StringInfoData buf;
	const char *p = tmpl;

	*missing = false;
	initStringInfo(&buf);
	while (*p)
	{
		const char *close;

		if (*p == '{' && (close = strchr(p, '}')) != NULL)
		{
			char	   *name = pnstrdup(p + 1, close - p - 1);
			const char *value = template_value(opts, name);

			if (value)
				appendStringInfoString(&buf, value);
			else
				*missing = true;
			p = close + 1;
		}
		else
			appendStringInfoChar(&buf, *p++);
	}
	return buf.data;
}

/* The native fields the needed columns read, each once. */
static List *
needed_fields(const UfdwScanSpec *spec, bool *all)
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
static List *
all_fields(const UfdwTableMap *tm)
{
	UfdwScanSpec spec = {0};
	bool		all;

	spec.table = tm;
	for (int c = 0; c < tm->model->ncolumns; c++)
		if (tm->columns[c].kind != UFDW_MAP_RAW)
			spec.columns = bms_add_member(spec.columns, c);
	return needed_fields(&spec, &all);
}

static void
append_param(StringInfo buf, const char *name, const char *value)
{
	appendStringInfo(buf, "%c%s=%s", strchr(buf->data, '?') ? '&' : '?',
					 name, query_escape(value));
}

/* Connector headers and query parameters, expanded; unset ones left out. */
static void
add_connector_extras(UfdwRequest *req, StringInfo url, const UfdwOptions *opts)
{
	const UfdwConnector *conn = opts->connector;
	bool		missing;

	for (int i = 0; i < conn->nquery; i++)
	{
		char	   *v = ufdw_expand_template(conn->query[i].value, opts, &missing);

		if (!missing)
			append_param(url, conn->query[i].name, v);
	}
	for (int i = 0; i < conn->nheaders; i++)
	{
		char	   *v = ufdw_expand_template(conn->headers[i].value, opts, &missing);

		if (!missing)
			req->headers = lappend(req->headers,
								   psprintf("%s: %s", conn->headers[i].name, v));
	}
}

static char *
base_url(const UfdwOptions *opts)
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

/* "$select=a,b" for OData, or nothing when the whole record is needed. */
static void
append_odata_select(StringInfo url, const UfdwScanSpec *spec)
{
	bool		all;
	List	   *fields = needed_fields(spec, &all);
	StringInfoData sel;
	ListCell   *lc;

	if (all)
		return;
	initStringInfo(&sel);
	foreach(lc, fields)
		appendStringInfo(&sel, "%s%s", sel.len ? "," : "", ((UfdwField *) lfirst(lc))->name);
	if (sel.len == 0)
	{
		/* count(*) and friends: one field keeps records small */
		const UfdwColumnMap *cm = &spec->table->columns[0];

		if (cm->nfields > 0)
			appendStringInfoString(&sel, cm->fields[0].name);
	}
	if (sel.len > 0)
		append_param(url, "$select", sel.data);
}

/*
 * A table read through its parent (UfdwReadThrough):
 * "$select=<key>[&$filter=<parents>]&$expand=<nav>($select=…;$filter=…)",
 * the children's options inside the expand, where "=" and ";" are kept
 * as they are (they spell the nested options; values are escaped).
 */
static void
append_read_through_query(StringInfo url, const UfdwScanSpec *spec)
{
	const UfdwReadThrough *rt = spec->table->read_through;
	StringInfoData sel;
	StringInfoData nested;

	append_param(url, "$select", rt->parent_key);
	if (spec->parent_filter)
		append_param(url, "$filter", spec->parent_filter);

	initStringInfo(&sel);
	append_odata_select(&sel, spec);
	initStringInfo(&nested);
	if (sel.len > 0)
		/* sel is "?$select=…", already escaped */
		appendStringInfoString(&nested, sel.data + 1);
	if (spec->filter)
		appendStringInfo(&nested, "%s$filter=%s", nested.len ? ";" : "",
						 query_escape(spec->filter));
	appendStringInfo(url, "%c$expand=%s", strchr(url->data, '?') ? '&' : '?',
					 query_escape(rt->expand));
	if (nested.len > 0)
		appendStringInfo(url, "(%s)", nested.data);
}

/* $select, then the pushed $filter and $orderby. */
static void
append_odata_query(StringInfo url, const UfdwScanSpec *spec)
{
	if (spec->table->read_through)
		append_read_through_query(url, spec);
	else
	{
		append_odata_select(url, spec);
		if (spec->filter)
			append_param(url, "$filter", spec->filter);
	}
	if (spec->orderby)
		append_param(url, "$orderby", spec->orderby);
	if (spec->count)
		append_param(url, spec->connector->dialect == UFDW_DIALECT_ODATA_V4 ?
					 "$count" : "$inlinecount",
					 spec->connector->dialect == UFDW_DIALECT_ODATA_V4 ? "true" : "allpages");
}

/* Does the connector cap what one query returns (max_results, max_pages)? */
static bool
query_capped(const UfdwScanSpec *spec)
{
	return (spec->connector->max_results > 0 || spec->connector->max_pages > 0) &&
		spec->table->columns[0].kind != UFDW_MAP_RAW &&
		spec->table->columns[0].nfields > 0;
}

/*
 * Records one query returns at most when paged by page_size, a multiple
 * of it (offset stays a multiple of limit); 0: no cap.
 */
static int64
query_window(const UfdwScanSpec *spec)
{
	const UfdwConnector *c = spec->connector;
	int64		w = 0;

	if (!query_capped(spec) || spec->page_size <= 0)
		return 0;
	if (c->max_results > 0)
		w = c->max_results;
	if (c->max_pages > 0)
		w = w > 0 ? Min(w, (int64) c->max_pages * spec->page_size) :
			(int64) c->max_pages * spec->page_size;
	return w / spec->page_size * spec->page_size;
}

/* A key field as written in a condition or ORDER BY. */
static const char *
key_ref(const UfdwField *f)
{
	return f->filter_expr ? f->filter_expr : f->expr ? f->expr : f->name;
}

/*
 * "(k1 > ? OR (k1 = ? AND k2 > ?))": the records after key values after
 * (of char *), in the order of the key; their bound values go to *params.
 */
static char *
after_key_condition(const UfdwTableMap *tm, List *after, List **params)
{
	const UfdwColumnMap *key = &tm->columns[0];
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '(');
	for (int i = 0; i < key->nfields; i++)
	{
		if (i > 0)
			appendStringInfoString(&buf, " OR (");
		for (int j = 0; j < i; j++)
		{
			appendStringInfo(&buf, "%s = ? AND ", key_ref(&key->fields[j]));
			*params = lappend(*params, list_nth(after, j));
		}
		appendStringInfo(&buf, "%s > ?", key_ref(&key->fields[i]));
		*params = lappend(*params, list_nth(after, i));
		if (i > 0)
			appendStringInfoChar(&buf, ')');
	}
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/*
 * The SuiteQL text of spec; after (NIL for the first query) adds the
 * condition for the records after that key, whose bound values are
 * appended to *params.
 */
static char *
suiteql_query(const UfdwScanSpec *spec, List *after, List **params)
{
	const UfdwTableMap *tm = spec->table;
	bool		all;
	List	   *fields = needed_fields(spec, &all);
	StringInfoData q;
	ListCell   *lc;
	char	   *filter = spec->filter;

	if (all)
		fields = all_fields(tm);
	if (fields == NIL)
		fields = all_fields(tm);
	/* a capped query: the key of its last record starts the next one */
	if (query_capped(spec))
		for (int f = 0; f < tm->columns[0].nfields; f++)
			if (!list_member_ptr(fields, &tm->columns[0].fields[f]))
			{
				bool		seen = false;

				foreach(lc, fields)
					if (strcmp(((UfdwField *) lfirst(lc))->name, tm->columns[0].fields[f].name) == 0)
						seen = true;
				if (!seen)
					fields = lappend(fields, &tm->columns[0].fields[f]);
			}
	if (after != NIL)
	{
		char	   *cond = after_key_condition(tm, after, params);

		filter = filter ? psprintf("%s AND %s", filter, cond) : cond;
	}
	initStringInfo(&q);
	appendStringInfoString(&q, "SELECT ");
	foreach(lc, fields)
	{
		UfdwField  *f = lfirst(lc);

		if (foreach_current_index(lc) > 0)
			appendStringInfoString(&q, ", ");
		if (f->expr)
			appendStringInfo(&q, "%s AS %s", f->expr, f->name);
		else
			appendStringInfoString(&q, f->name);
	}
	appendStringInfo(&q, " FROM %s", tm->entity);
	if (tm->where && filter)
		appendStringInfo(&q, " WHERE (%s) AND %s", tm->where, filter);
	else if (tm->where || filter)
		appendStringInfo(&q, " WHERE %s", tm->where ? tm->where : filter);

	/*
	 * Offset paging is only exact over a total order: without ORDER BY the
	 * database may return rows in a different order for every page.  A
	 * pushed sort ends with the id fields (deparse.c); otherwise order by the
	 * fields of the unique "id" column.
	 */
	if (spec->orderby)
		appendStringInfo(&q, " ORDER BY %s", spec->orderby);
	else
		for (int c = 0; c < tm->model->ncolumns; c++)
			if (strcmp(tm->model->columns[c].name, "id") == 0)
				for (int f = 0; f < tm->columns[c].nfields; f++)
				{
					const UfdwField *fld = &tm->columns[c].fields[f];

					appendStringInfoString(&q, f == 0 ? " ORDER BY " : ", ");
					appendStringInfoString(&q, fld->expr ? fld->expr : fld->name);
				}
	return q.data;
}

/* The request for records offset .. offset+limit of an offset-paged dialect. */
static UfdwRequest *
offset_request(const UfdwScanSpec *spec, const UfdwOptions *opts, int64 offset,
			   int64 window_start, List *after)
{
	UfdwRequest *req = palloc0(sizeof(UfdwRequest));
	StringInfoData url;
	ListCell   *lc;

	req->offset = offset;
	req->window_start = window_start;
	/* copied: the previous request or page it comes from is freed first */
	foreach(lc, after)
		req->after = lappend(req->after, pstrdup(lfirst(lc)));
	after = req->after;
	req->limit = spec->page_size;
	/* a pushed LIMIT: ask for what is left of it (SuiteQL keeps offset % limit == 0) */
	if (spec->top > 0 && spec->top - offset < req->limit &&
		(opts->connector->dialect != UFDW_DIALECT_SUITEQL || offset == window_start))
		req->limit = (int) (spec->top - offset);
	initStringInfo(&url);
	appendStringInfoString(&url, base_url(opts));
	if (opts->connector->dialect == UFDW_DIALECT_SUITEQL)
	{
		StringInfoData body;
		List	   *params = list_copy(spec->params);
		char	   *q = suiteql_query(spec, after, &params);

		req->method = "POST";
		req->read_only = true;	/* a query: safe to retry */

		appendStringInfo(&url, "?limit=%d&offset=" INT64_FORMAT, req->limit,
						 offset - window_start);
		initStringInfo(&body);
		appendStringInfoString(&body, "{\"q\":");
		escape_json(&body, q);
		if (params)
		{
			appendStringInfoString(&body, ",\"params\":[");
			foreach(lc, params)
			{
				if (foreach_current_index(lc) > 0)
					appendStringInfoChar(&body, ',');
				escape_json(&body, lfirst(lc));
			}
			appendStringInfoChar(&body, ']');
		}
		appendStringInfoChar(&body, '}');
		req->body = body.data;
		req->headers = lappend(req->headers, pstrdup("Prefer: transient"));
		req->headers = lappend(req->headers, pstrdup("Content-Type: application/json"));
	}
	else
	{
		req->method = "GET";
		appendStringInfoString(&url, spec->table->entity);
		append_odata_query(&url, spec);
		appendStringInfo(&url, "%c$top=%d", strchr(url.data, '?') ? '&' : '?', req->limit);
		if (offset > 0)
			appendStringInfo(&url, "&$skip=" INT64_FORMAT, offset);
	}
	add_connector_extras(req, &url, opts);
	req->url = url.data;
	return req;
}

/*
 * ANALYZE's request for the page_size records from offset on (records in
 * the upstream's order, no LIMIT), or NULL when one query cannot reach
 * offset: the table is read through parents, or the offset lies past what
 * one capped query returns (SuiteQL's max_results).  OData v4 pages are
 * asked for with $top/$skip, as the other dialects' are.
 */
UfdwRequest *
ufdw_sample_request(const UfdwScanSpec *spec, const UfdwOptions *opts, int64 offset)
{
	int64		window = query_window(spec);

	if (spec->table->read_through || spec->top > 0 ||
		(window > 0 && offset + spec->page_size > window))
		return NULL;
	return offset_request(spec, opts, offset, 0, NIL);
}

/* Records one query reaches by offset (0: all of them). */
int64
ufdw_offset_reach(const UfdwScanSpec *spec)
{
	return query_window(spec);
}

/* The first request of a scan. */
UfdwRequest *
ufdw_first_request(const UfdwScanSpec *spec, const UfdwOptions *opts)
{
	UfdwRequest *req;
	StringInfoData url;
	int			page_size;

	if (opts->connector->dialect != UFDW_DIALECT_ODATA_V4)
		return offset_request(spec, opts, 0, 0, NIL);

	req = palloc0(sizeof(UfdwRequest));
	req->method = "GET";
	initStringInfo(&url);
	appendStringInfoString(&url, base_url(opts));
	page_size = spec->page_size;
	if (spec->table->read_through)
	{
		/* paged by parents, each with all its children: fewer per page */
		appendStringInfoString(&url, spec->table->read_through->parent);
		page_size = Max(1, page_size / spec->table->read_through->children_per_parent);
	}
	else
		appendStringInfoString(&url, spec->table->entity);
	append_odata_query(&url, spec);
	if (spec->top > 0)
		append_param(&url, "$top", psprintf(INT64_FORMAT, spec->top));
	req->headers = lappend(req->headers,
						   psprintf("Prefer: odata.maxpagesize=%d",
									spec->top > 0 && spec->top < page_size ?
									(int) spec->top : page_size));
	add_connector_extras(req, &url, opts);
	req->url = url.data;
	return req;
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
 * The request for the page after prev, or NULL when prev was the last,
 * allocated in the current memory context and sharing nothing with prev.
 * A next link must stay on the origin of the first request and must not
 * repeat the current one.
 */
UfdwRequest *
ufdw_next_request(const UfdwScanSpec *spec, const UfdwOptions *opts,
				  const UfdwRequest *prev, int page_no, const UfdwPageInfo *page)
{
	UfdwRequest *req;
	size_t		olen = origin_length(prev->url);
	ListCell   *lc;

	if (spec->top > 0 && prev->offset + page->nrecords >= spec->top &&
		opts->connector->dialect != UFDW_DIALECT_ODATA_V4)
		return NULL;			/* the pushed LIMIT is satisfied */
	if (opts->connector->dialect == UFDW_DIALECT_SUITEQL)
	{
		int64		window = query_window(spec);
		int64		next = prev->offset + prev->limit;

		if (page->nrecords <= 0)
			return NULL;
		if (window > 0 && next - prev->window_start >= window)
		{
			/*
			 * The query can return no more.  A full last page means more
			 * records may follow: a new query reads those after the last
			 * key.  (A guess made ahead of the page has no key: wait.)
			 */
			if (page->nrecords < prev->limit || page->last_key == NIL)
				return NULL;
			if (spec->orderby)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_ERROR),
						 errmsg("cannot read more than " INT64_FORMAT " records of \"%s\" from server \"%s\" in the order asked for",
								window, spec->table->model->name, opts->server_name),
						 errdetail("%s returns at most " INT64_FORMAT " records of one query; a scan goes on by key, which keeps only the order of the key.",
								   opts->connector->name, window),
						 errhint("Add conditions that select fewer records, or sort by id.")));
			return offset_request(spec, opts, next, next, page->last_key);
		}
		return page->has_more ?
			offset_request(spec, opts, next, prev->window_start, prev->after) : NULL;
	}

	if (page->next_link == NULL)
	{
		/* OData V2 without __next: a full page means there may be more */
		if (opts->connector->dialect == UFDW_DIALECT_ODATA_V2 &&
			prev->limit > 0 && page->nrecords >= prev->limit)
			return offset_request(spec, opts, prev->offset + page->nrecords, 0, NIL);
		return NULL;
	}

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

	/*
	 * OData V2: a server that caps $top answers with part of the records
	 * and a __next link for the rest of them.  The link asks for what the
	 * $top still owes, so that where the chain ends a full $top (more may
	 * follow: advance $skip) can be told from a short one (the end).
	 */
	if (opts->connector->dialect == UFDW_DIALECT_ODATA_V2 && prev->limit > 0)
		req->limit = Max(prev->limit - page->nrecords, 0);
	return req;
}

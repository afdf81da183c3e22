/*-------------------------------------------------------------------------
 *
 * dialect_suiteql.c
 *		The SuiteQL dialect: SQL text with bound parameters, POSTed.
 *
 * A scan is POST base?limit=N&offset=K with {"q": "SELECT … WHERE … ORDER
 * BY …, <id fields>", "params": [...]} and Prefer: transient; offset
 * advances by limit (always a multiple of it) while hasMore is true.  One
 * query returns at most max_results records in at most max_pages pages
 * (connector "paging"): when a query's last page is full, the scan goes on
 * with a new query for the records after the last key read ("WHERE … AND
 * id > ?", offset 0), so no table is ever cut short.
 *
 * Literals are bound parameters ("?"); dates are TO_DATE(?, 'YYYY-MM-DD'),
 * wall-clock instants TO_DATE(?, 'YYYY-MM-DD HH24:MI:SS').  Fields may be
 * expressions (selected "AS" their name; "filter_expr" is what conditions
 * compare), and tables may have a fixed condition ("where").
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/json.h"

#include "dialect.h"

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
	List	   *fields = ufdw_needed_fields(spec, &all);
	StringInfoData q;
	ListCell   *lc;
	char	   *filter = spec->filter;

	if (all)
		fields = ufdw_all_fields(tm);
	if (fields == NIL)
		fields = ufdw_all_fields(tm);
	/* a capped query: the key of its last record starts the next one */
	if (ufdw_query_capped(spec))
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

/* The request for records offset .. offset+limit of query window_start. */
static UfdwRequest *
offset_request(const UfdwScanSpec *spec, const UfdwOptions *opts, int64 offset,
			   int64 window_start, List *after)
{
	UfdwRequest *req = palloc0(sizeof(UfdwRequest));
	StringInfoData url;
	StringInfoData body;
	List	   *params;
	char	   *q;
	ListCell   *lc;

	req->offset = offset;
	req->window_start = window_start;
	/* copied: the previous request or page it comes from is freed first */
	foreach(lc, after)
		req->after = lappend(req->after, pstrdup(lfirst(lc)));
	after = req->after;
	req->limit = spec->page_size;
	/* a pushed LIMIT: ask for what is left of it (offset % limit stays 0) */
	if (spec->top > 0 && spec->top - offset < req->limit && offset == window_start)
		req->limit = (int) (spec->top - offset);
	initStringInfo(&url);
	appendStringInfoString(&url, ufdw_base_url(opts));
	params = list_copy(spec->params);
	q = suiteql_query(spec, after, &params);

	req->method = "POST";
	req->read_only = true;		/* a query: safe to retry */

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
	ufdw_add_connector_extras(req, &url, opts);
	req->url = url.data;
	return req;
}

static UfdwRequest *
suiteql_first_request(const UfdwScanSpec *spec, const UfdwOptions *opts)
{
	return offset_request(spec, opts, 0, 0, NIL);
}

static UfdwRequest *
suiteql_next_request(const UfdwScanSpec *spec, const UfdwOptions *opts,
					 const UfdwRequest *prev, int page_no, const UfdwPageInfo *page)
{
	int64		window = ufdw_query_window(spec);
	int64		next = prev->offset + prev->limit;

	if (spec->top > 0 && prev->offset + page->nrecords >= spec->top)
		return NULL;			/* the pushed LIMIT is satisfied */
	if (page->nrecords <= 0)
		return NULL;
	if (window > 0 && next - prev->window_start >= window)
	{
		/*
		 * The query can return no more.  A full last page means more records
		 * may follow: a new query reads those after the last key.  (A guess
		 * made ahead of the page has no key: wait.)
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

/* ANALYZE's page at offset: of the first query (its window). */
static UfdwRequest *
suiteql_offset_request(const UfdwScanSpec *spec, const UfdwOptions *opts, int64 offset)
{
	return offset_request(spec, opts, offset, 0, NIL);
}

/*
 * Literals are bound: the value goes to *params, "?" into the text.  NULL
 * for what SuiteQL cannot compare (GUIDs, OData's typed instants).
 */
static char *
suiteql_literal(UfdwNativeType t, const char *v, List **params)
{
	switch (t)
	{
		case UFDW_NATIVE_STRING:
		case UFDW_NATIVE_ENUM:
		case UFDW_NATIVE_DECIMAL:
		case UFDW_NATIVE_INTEGER:
			*params = lappend(*params, pstrdup(v));
			return pstrdup("?");
		case UFDW_NATIVE_DATE:
			*params = lappend(*params, pstrdup(v));
			return pstrdup("TO_DATE(?, 'YYYY-MM-DD')");
		case UFDW_NATIVE_LOCAL_DATETIME:
			*params = lappend(*params, pstrdup(v));
			return pstrdup("TO_DATE(?, 'YYYY-MM-DD HH24:MI:SS')");
		default:
			return NULL;
	}
}

/* "f LIKE ? ESCAPE '\\'" with the pattern bound, its wildcards escaped. */
static char *
suiteql_match(const char *f, const char *v, bool prefix, List **params)
{
	StringInfoData pat;

	initStringInfo(&pat);
	if (!prefix)
		appendStringInfoChar(&pat, '%');
	for (const char *s = v; *s; s++)
	{
		if (*s == '%' || *s == '_' || *s == '\\')
			appendStringInfoChar(&pat, '\\');
		appendStringInfoChar(&pat, *s);
	}
	appendStringInfoChar(&pat, '%');
	*params = lappend(*params, pat.data);
	return psprintf("%s LIKE ? ESCAPE '\\'", f);
}

/*
 * A field name is the alias of a result column, and the upstream
 * lower-cases the keys of result rows: "vendorName" would never match.
 */
static const char *
suiteql_check_field_name(const char *name)
{
	if (!(name[0] >= 'a' && name[0] <= 'z'))
		return "a SuiteQL field name must start with a lower-case letter";
	for (const char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
			return "a SuiteQL field name may only hold lower-case letters, digits and \"_\" (NetSuite lower-cases the keys of result rows)";
	return NULL;
}

static const char *const suiteql_ops[] = {"=", "<>", "<", "<=", ">", ">="};

const UfdwDialect ufdw_dialect_suiteql = {
	.name = "suiteql",
	.native_types = UFDW_NATIVE_BIT(UFDW_NATIVE_STRING) | UFDW_NATIVE_BIT(UFDW_NATIVE_ENUM) |
	UFDW_NATIVE_BIT(UFDW_NATIVE_DECIMAL) | UFDW_NATIVE_BIT(UFDW_NATIVE_INTEGER) |
	UFDW_NATIVE_BIT(UFDW_NATIVE_DATE) | UFDW_NATIVE_BIT(UFDW_NATIVE_DATETIMEOFFSET) |
	UFDW_NATIVE_BIT(UFDW_NATIVE_LOCAL_DATETIME),
	.field_exprs = true,
	.conversions = false,
	.read_through = false,
	.key_continuation = true,
	.nextlink_paging = false,
	.check_field_name = suiteql_check_field_name,
	.cmp_ops = suiteql_ops,
	.and_word = " AND ",
	.or_word = " OR ",
	.not_format = "NOT (%s)",
	.in_word = "IN",
	.not_in_word = "NOT IN",
	.is_null_format = "%s IS NULL",
	.not_null_format = "%s IS NOT NULL",
	.literal = suiteql_literal,
	.enum_literal = NULL,
	.match = suiteql_match,
	.asc = "ASC",
	.desc = "DESC",
	.order_separator = ", ",
	.first_request = suiteql_first_request,
	.next_request = suiteql_next_request,
	.offset_request = suiteql_offset_request,
	.envelope = {{"items"}, {NULL}, {"hasMore"}, {"totalResults"}},
	.count_param = NULL,
	.count_value = NULL,
	.native_datetime = NULL,
	.defaults = UFDW_CAPABILITIES_NONE(UFDW_PAGING_OFFSET),
};

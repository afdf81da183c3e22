/*-------------------------------------------------------------------------
 *
 * dialect_odata.c
 *		What the OData dialects (dialect_odata4.c, dialect_odata2.c) share:
 *		the URL query options of a scan, paging, and quoted literals.
 *
 * A scan is GET base/entity?$select=…&$filter=…&$orderby=…, paged as the
 * connector's capability "paging" says:
 *
 *	 nextlink   [&$top=L] with Prefer: odata.maxpagesize=N, then every next
 *	            link as given (opaque; it repeats the options).  A table read
 *	            through its parent (read_through): GET base/parent?$select=
 *	            key[&$filter=…]&$expand=nav($select=…;$filter=…), paged by
 *	            parents, N / children_per_parent of them per page.
 *	 offset     &$top=N&$skip=K ($top lowered to what a pushed LIMIT still
 *	            needs); follows a next link when the server sends one (a
 *	            server that caps $top), else advances $skip while pages are
 *	            full.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "dialect.h"

/* Comparison operators, by UfdwCmpOp. */
const char *const ufdw_odata_cmp_ops[] = {"eq", "ne", "lt", "le", "gt", "ge"};

/* 'text' with quotes doubled: an OData string literal. */
char *
ufdw_odata_quoted(const char *s)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '\'');
	for (; *s; s++)
	{
		if (*s == '\'')
			appendStringInfoChar(&buf, '\'');
		appendStringInfoChar(&buf, *s);
	}
	appendStringInfoChar(&buf, '\'');
	return buf.data;
}

/* "$select=a,b", or nothing when the whole record is needed. */
static void
append_odata_select(StringInfo url, const UfdwScanSpec *spec)
{
	bool		all;
	List	   *fields = ufdw_needed_fields(spec, &all);
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
		ufdw_append_param(url, "$select", sel.data);
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

	ufdw_append_param(url, "$select", rt->parent_key);
	if (spec->parent_filter)
		ufdw_append_param(url, "$filter", spec->parent_filter);

	initStringInfo(&sel);
	append_odata_select(&sel, spec);
	initStringInfo(&nested);
	if (sel.len > 0)
		/* sel is "?$select=…", already escaped */
		appendStringInfoString(&nested, sel.data + 1);
	if (spec->filter)
		appendStringInfo(&nested, "%s$filter=%s", nested.len ? ";" : "",
						 ufdw_query_escape(spec->filter));
	appendStringInfo(url, "%c$expand=%s", strchr(url->data, '?') ? '&' : '?',
					 ufdw_query_escape(rt->expand));
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
			ufdw_append_param(url, "$filter", spec->filter);
	}
	if (spec->orderby)
		ufdw_append_param(url, "$orderby", spec->orderby);
	if (spec->count && spec->connector->caps.count && spec->connector->dialect->count_param)
		ufdw_append_param(url, spec->connector->dialect->count_param,
						  spec->connector->dialect->count_value);
}

/*
 * The collection a scan reads (the parent's, for a table read through it)
 * and the records a page holds of it.
 */
static const char *
collection(const UfdwScanSpec *spec, int *page_size)
{
	const UfdwReadThrough *rt = spec->table->read_through;

	*page_size = spec->page_size;
	if (rt == NULL)
		return spec->table->entity;
	/* paged by parents, each with all its children: fewer per page */
	*page_size = Max(1, spec->page_size / rt->children_per_parent);
	return rt->parent;
}

/*
 * The request for records offset .. offset+limit ($top, $skip), also
 * ANALYZE's (UfdwDialect.offset_request): OData v4 servers that page by
 * next links take $top and $skip as well.
 */
UfdwRequest *
ufdw_odata_offset_request(const UfdwScanSpec *spec, const UfdwOptions *opts, int64 offset)
{
	UfdwRequest *req = palloc0(sizeof(UfdwRequest));
	StringInfoData url;
	int			page_size;
	const char *entity = collection(spec, &page_size);

	req->method = "GET";
	req->offset = offset;
	req->limit = page_size;
	/* a pushed LIMIT: ask for what is left of it */
	if (spec->top > 0 && spec->top - offset < req->limit)
		req->limit = (int) (spec->top - offset);
	initStringInfo(&url);
	appendStringInfoString(&url, ufdw_base_url(opts));
	appendStringInfoString(&url, entity);
	append_odata_query(&url, spec);
	appendStringInfo(&url, "%c$top=%d", strchr(url.data, '?') ? '&' : '?', req->limit);
	if (offset > 0)
		appendStringInfo(&url, "&$skip=" INT64_FORMAT, offset);
	ufdw_add_connector_extras(req, &url, opts);
	req->url = url.data;
	return req;
}

/* The first request of a scan. */
UfdwRequest *
ufdw_odata_first_request(const UfdwScanSpec *spec, const UfdwOptions *opts)
{
	UfdwRequest *req;
	StringInfoData url;
	int			page_size;
	const char *entity;

	if (opts->connector->caps.paging != UFDW_PAGING_NEXTLINK)
		return ufdw_odata_offset_request(spec, opts, 0);

	req = palloc0(sizeof(UfdwRequest));
	req->method = "GET";
	entity = collection(spec, &page_size);
	initStringInfo(&url);
	appendStringInfoString(&url, ufdw_base_url(opts));
	appendStringInfoString(&url, entity);
	append_odata_query(&url, spec);
	if (spec->top > 0)
		ufdw_append_param(&url, "$top", psprintf(INT64_FORMAT, spec->top));
	req->headers = lappend(req->headers,
						   psprintf("Prefer: odata.maxpagesize=%d",
									spec->top > 0 && spec->top < page_size ?
									(int) spec->top : page_size));
	ufdw_add_connector_extras(req, &url, opts);
	req->url = url.data;
	return req;
}

/*
 * The request for the page after prev, or NULL when prev was the last
 * (ufdw_next_request).
 */
UfdwRequest *
ufdw_odata_next_request(const UfdwScanSpec *spec, const UfdwOptions *opts,
						const UfdwRequest *prev, int page_no, const UfdwPageInfo *page)
{
	bool		offset = opts->connector->caps.paging == UFDW_PAGING_OFFSET;
	UfdwRequest *req;

	if (offset && spec->top > 0 && prev->offset + page->nrecords >= spec->top)
		return NULL;			/* the pushed LIMIT is satisfied */
	if (page->next_link == NULL)
	{
		/* offset paging without a next link: a full page means there may be more */
		if (offset && prev->limit > 0 && page->nrecords >= prev->limit)
			return ufdw_odata_offset_request(spec, opts, prev->offset + page->nrecords);
		return NULL;
	}
	req = ufdw_follow_link(opts, prev, page_no, page);

	/*
	 * Offset paging: a server that caps $top answers with part of the
	 * records and a next link for the rest of them.  The link asks for what
	 * the $top still owes, so that where the chain ends a full $top (more
	 * may follow: advance $skip) can be told from a short one (the end).
	 */
	if (offset && prev->limit > 0)
		req->limit = Max(prev->limit - page->nrecords, 0);
	return req;
}

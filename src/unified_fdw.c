/*-------------------------------------------------------------------------
 *
 * unified_fdw.c
 *		Planner and executor callbacks, EXPLAIN, and module initialisation.
 *
 * A scan reads the foreign table option "table" (a unified model table),
 * finds the server's connector, and maps each attribute by name to a model
 * column.  Planning records, in fdw_private, which model column each
 * attribute reads (-1 for attributes the query does not need); execution
 * builds the native requests from that (request.c), sends them with the
 * user mapping's credentials (auth.c, http.c) and converts each page into
 * rows (page.c).
 *
 * Memory: a scan context holds the scan's state; a page context, reset for
 * every page, holds the current page's rows; each request has a context of
 * its own, deleted when its response has been read.  So one page is held
 * at a time (plus the next one arriving: the next request is sent as soon
 * as a page is parsed, and transfers progress while rows are returned).
 * Offset-paged dialects may have up to max_concurrency requests in flight,
 * each in a context of its own (fill_ahead); their bodies are held by
 * libcurl until they are read.
 *
 * All quals are evaluated locally; only the column list is sent upstream.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/table.h"
#include "common/hashfn.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "foreign/fdwapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "parser/parsetree.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "compat.h"
#include "unified_fdw.h"

PG_MODULE_MAGIC;

/* Most requests one scan sends ahead (max_concurrency is at most 16). */
#define UFDW_MAX_AHEAD 16

/* Default planner figures: every request is expensive. */
#define DEFAULT_ROWS 1000
#define REQUEST_COST 1000.0
#define ROW_COST 0.05

/* fdw_private of a ForeignScan, by position. */
enum UfdwPrivateIndex
{
	UFDW_PRIVATE_ATTR_COLUMNS	/* IntList: model column per attribute, or -1 */
};

/* Planner state, in baserel->fdw_private. */
typedef struct UfdwRelInfo
{
	int			table_index;	/* model table */
	int		   *attr_column;	/* per attribute: model column, -1 if unneeded */
	int			natts;
} UfdwRelInfo;

/* A request sent ahead of the page after the current one. */
typedef struct UfdwAhead
{
	UfdwRequest *req;
	UfdwTransfer *xfer;
	MemoryContext cxt;			/* owns xfer; deleting it cancels the transfer */
} UfdwAhead;

/* Executor state of one scan. */
typedef struct UfdwScanState
{
	UfdwOptions *opts;
	Oid			serverid;		/* checked before every request (disconnect) */
	Oid			umid;
	UfdwScanSpec spec;
	UfdwConverter *conv;
	UfdwRequestContext rctx;
	UfdwRequest *first_req;
	UfdwRequest *cur_req;		/* the request in flight or next to send */
	UfdwTransfer *inflight;		/* NULL when no request is in flight */
	MemoryContext scan_cxt;
	MemoryContext page_cxt;		/* rows of the current page */
	MemoryContext xfer_cxt;		/* the request in flight */
	bool		last_page;		/* no page after the current one */
	int			page_no;
	int			nrows;
	int			next_row;
	Datum	  **values;
	bool	  **nulls;
	HTAB	   *seen_urls;		/* hashes of the page URLs requested */
	/* offset-paged dialects: further pages in flight, in offset order */
	int			nahead;
	UfdwAhead	ahead[UFDW_MAX_AHEAD];
	/* EXPLAIN ANALYZE figures */
	int64		requests;
	int64		records;
	int64		bytes;
	double		upstream_ms;
} UfdwScanState;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(unified_fdw_handler);

void
_PG_init(void)
{
	ufdw_define_gucs();
	ufdw_auth_init();
	ufdw_http_init();
}

/* The model table a foreign table reads, checked against its connector. */
static int
foreign_table_model(Oid relid, const char *relname, const UfdwConnector **conn_out)
{
	ForeignTable *ft = GetForeignTable(relid);
	ForeignServer *server;
	char	   *table = ufdw_option_value(ft->options, "table");
	char	   *system;
	const UfdwConnector *conn;
	int			ti;

	ufdw_check_connected(ft->serverid);
	server = GetForeignServer(ft->serverid);
	system = ufdw_option_value(server->options, "system");
	conn = system ? ufdw_connector(system) : NULL;

	if (table == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("foreign table \"%s\" has no \"table\" option", relname),
				 errhint("Create foreign tables with IMPORT FOREIGN SCHEMA unified FROM SERVER ... INTO ...")));
	if (conn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("server \"%s\" names an unknown system", server->servername),
				 errhint("Known systems are: %s.", ufdw_known_systems())));
	ti = ufdw_model_table_index(table);
	if (ti < 0 || conn->tables[ti] == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_TABLE_NOT_FOUND),
				 errmsg("%s does not provide table \"%s\"", conn->name, table),
				 errdetail("Foreign table \"%s\" of server \"%s\" reads it.", relname,
						   server->servername)));
	*conn_out = conn;
	return ti;
}

static void
unifiedGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	UfdwRelInfo *info = palloc0(sizeof(UfdwRelInfo));
	RangeTblEntry *rte = planner_rt_fetch(baserel->relid, root);
	Relation	rel = table_open(rte->relid, NoLock);
	TupleDesc	tupdesc = RelationGetDescr(rel);
	const UfdwConnector *conn;
	const UfdwModelTable *mt;
	Bitmapset  *attrs = NULL;
	ListCell   *lc;

	info->table_index = foreign_table_model(foreigntableid, RelationGetRelationName(rel),
											&conn);
	mt = &ufdw_model()->tables[info->table_index];
	info->natts = tupdesc->natts;
	info->attr_column = palloc(sizeof(int) * info->natts);

	pull_varattnos((Node *) baserel->reltarget->exprs, baserel->relid, &attrs);
	foreach(lc, baserel->baserestrictinfo)
		pull_varattnos((Node *) ((RestrictInfo *) lfirst(lc))->clause, baserel->relid, &attrs);

	for (int a = 0; a < info->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, a);
		bool		wholerow = bms_is_member(0 - FirstLowInvalidHeapAttributeNumber, attrs);
		int			c;

		info->attr_column[a] = -1;
		if (att->attisdropped)
			continue;
		for (c = 0; c < mt->ncolumns; c++)
			if (strcmp(mt->columns[c].name, NameStr(att->attname)) == 0)
				break;
		if (c == mt->ncolumns)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_COLUMN_NAME_NOT_FOUND),
					 errmsg("column \"%s\" of foreign table \"%s\" is not a column of unified table \"%s\"",
							NameStr(att->attname), RelationGetRelationName(rel), mt->name),
					 errhint("Re-create the table with IMPORT FOREIGN SCHEMA, or drop the column.")));
		if (wholerow ||
			bms_is_member(att->attnum - FirstLowInvalidHeapAttributeNumber, attrs))
			info->attr_column[a] = c;
	}
	table_close(rel, NoLock);

	baserel->fdw_private = info;
	baserel->rows = DEFAULT_ROWS;
	baserel->tuples = DEFAULT_ROWS;
}

static void
unifiedGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	int			page_size = 1000;
	double		pages = ceil(baserel->rows / page_size);
	Cost		startup = REQUEST_COST;
	Cost		total = startup + Max(pages - 1, 0) * REQUEST_COST + baserel->rows * ROW_COST;

	add_path(baserel, (Path *)
			 ufdw_create_foreignscan_path(root, baserel, NULL, baserel->rows,
										  startup, total, NIL, NULL, NULL, NIL));
}

static ForeignScan *
unifiedGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
					  ForeignPath *best_path, List *tlist, List *scan_clauses,
					  Plan *outer_plan)
{
	UfdwRelInfo *info = baserel->fdw_private;
	List	   *attr_columns = NIL;

	for (int a = 0; a < info->natts; a++)
		attr_columns = lappend_int(attr_columns, info->attr_column[a]);

	/* every qual is checked locally */
	scan_clauses = extract_actual_clauses(scan_clauses, false);
	return make_foreignscan(tlist, scan_clauses, baserel->relid, NIL,
							list_make1(attr_columns), NIL, NIL, outer_plan);
}

static void
unifiedBeginForeignScan(ForeignScanState *node, int eflags)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	EState	   *estate = node->ss.ps.state;
	Relation	rel = node->ss.ss_currentRelation;
	TupleDesc	tupdesc = RelationGetDescr(rel);
	List	   *attr_columns = list_nth(fsplan->fdw_private, UFDW_PRIVATE_ATTR_COLUMNS);
	UfdwScanState *st;
	ForeignTable *ft = GetForeignTable(RelationGetRelid(rel));
	ForeignServer *server = GetForeignServer(ft->serverid);
	UserMapping *um = NULL;
	const UfdwConnector *conn;
	int			ti;
	int		   *attr_column;
	char	   *table_page_size;
	MemoryContext old;

	st = palloc0(sizeof(UfdwScanState));
	node->fdw_state = st;
	st->scan_cxt = AllocSetContextCreate(estate->es_query_cxt, "unified_fdw scan",
										 ALLOCSET_DEFAULT_SIZES);
	st->page_cxt = AllocSetContextCreate(st->scan_cxt, "unified_fdw page",
										 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(st->scan_cxt);

	ti = foreign_table_model(RelationGetRelid(rel), RelationGetRelationName(rel), &conn);
	/* EXPLAIN without ANALYZE shows the request but sends nothing: no mapping needed */
	if (!(eflags & EXEC_FLAG_EXPLAIN_ONLY))
	{
		um = GetUserMapping(ufdw_scan_user(fsplan, estate), server->serverid);
		st->umid = um->umid;
	}
	st->serverid = server->serverid;
	st->opts = ufdw_get_options(server, um);
	if ((table_page_size = ufdw_option_value(ft->options, "page_size")) != NULL)
		st->opts->page_size = atoi(table_page_size);

	st->spec.connector = conn;
	st->spec.table = conn->tables[ti];
	st->spec.page_size = ufdw_effective_page_size(st->opts);
	attr_column = palloc(sizeof(int) * tupdesc->natts);
	for (int a = 0; a < tupdesc->natts; a++)
	{
		attr_column[a] = a < list_length(attr_columns) ? list_nth_int(attr_columns, a) : -1;
		if (attr_column[a] >= 0)
			st->spec.columns = bms_add_member(st->spec.columns, attr_column[a]);
	}

	st->rctx.server_name = st->opts->server_name;
	st->rctx.table_name = pstrdup(RelationGetRelationName(rel));
	st->rctx.secrets = ufdw_secrets(st->opts);
	ufdw_transport_context(st->opts, &st->rctx);

	st->first_req = ufdw_first_request(&st->spec, st->opts);
	st->cur_req = st->first_req;
	st->conv = ufdw_make_converter(&st->spec, st->opts, tupdesc, attr_column,
								   RelationGetRelationName(rel));
	MemoryContextSwitchTo(old);
}

/* Sends st->cur_req; its response is read by fetch_page(). */
static void
start_request(UfdwScanState *st)
{
	MemoryContext old;

	st->xfer_cxt = AllocSetContextCreate(st->scan_cxt, "unified_fdw request",
										 ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(st->xfer_cxt);
	ufdw_check_connected(st->serverid);
	st->inflight = ufdw_start_authenticated(st->cur_req, st->opts, &st->rctx, st->umid);
	st->requests++;
	MemoryContextSwitchTo(old);
}

static void
drop_request(UfdwScanState *st)
{
	if (st->xfer_cxt)
		MemoryContextDelete(st->xfer_cxt);	/* cancels a transfer in flight */
	st->xfer_cxt = NULL;
	st->inflight = NULL;
}

/* Cancels the requests sent ahead. */
static void
drop_ahead(UfdwScanState *st)
{
	for (int i = 0; i < st->nahead; i++)
		MemoryContextDelete(st->ahead[i].cxt);
	st->nahead = 0;
}

/*
 * Sends next, the request for the page after the current one: it is the
 * first request sent ahead if that one asked for the same page (it then
 * becomes the request in flight), else it is sent now and whatever was
 * sent ahead is cancelled (the upstream paged differently than guessed).
 */
static void
advance_request(UfdwScanState *st, UfdwRequest *next)
{
	if (st->nahead > 0 && st->ahead[0].req->offset == next->offset &&
		strcmp(st->ahead[0].req->url, next->url) == 0)
	{
		st->cur_req = st->ahead[0].req;
		st->inflight = st->ahead[0].xfer;
		st->xfer_cxt = st->ahead[0].cxt;
		memmove(&st->ahead[0], &st->ahead[1], sizeof(UfdwAhead) * (st->nahead - 1));
		st->nahead--;
		return;
	}
	drop_ahead(st);
	st->cur_req = next;
	start_request(st);
}

/*
 * Offset-paged dialects (OData V2 $skip, SuiteQL offset): keeps up to
 * max_concurrency requests in flight by sending the requests for the pages
 * after the one in flight, as if every page were full.  Stops at the
 * upstream's total count when a page gave it, and does nothing when the
 * upstream pages by links (the guess would be wrong).  A page that turns
 * out to be the last cancels the rest (advance_request, fetch_page).
 */
static void
fill_ahead(UfdwScanState *st, const UfdwPageInfo *info)
{
	int			want = Min(st->opts->max_concurrency, UFDW_MAX_AHEAD + 1) - 1;

	if (st->spec.connector->dialect == UFDW_DIALECT_ODATA_V4 ||
		info->next_link != NULL || st->inflight == NULL || st->cur_req->limit <= 0)
		return;
	while (st->nahead < want)
	{
		UfdwRequest *last = st->nahead > 0 ? st->ahead[st->nahead - 1].req : st->cur_req;
		UfdwPageInfo full = {0};
		UfdwRequest *req;
		UfdwAhead  *a;
		MemoryContext old;

		if (info->total_count >= 0 && last->offset + last->limit >= info->total_count)
			break;
		if (st->page_no + 1 + st->nahead >= st->opts->max_pages)
			break;
		full.nrecords = last->limit;
		full.has_more = true;
		full.total_count = info->total_count;
		old = MemoryContextSwitchTo(st->scan_cxt);
		req = ufdw_next_request(&st->spec, st->opts, last, st->page_no + 1 + st->nahead,
								&full);
		MemoryContextSwitchTo(old);
		if (req == NULL || req->offset <= last->offset)
			break;
		a = &st->ahead[st->nahead];
		a->req = req;
		a->cxt = AllocSetContextCreate(st->scan_cxt, "unified_fdw request ahead",
									   ALLOCSET_SMALL_SIZES);
		old = MemoryContextSwitchTo(a->cxt);
		a->xfer = ufdw_start_authenticated(req, st->opts, &st->rctx, st->umid);
		MemoryContextSwitchTo(old);
		st->nahead++;
		st->requests++;
	}
}

/* A 64-bit hash of a request's URL and body. */
static uint64
request_hash(const UfdwRequest *req)
{
	uint64		h = hash_bytes_extended((const unsigned char *) req->url,
										strlen(req->url), 0);

	if (req->body)
		h ^= hash_bytes_extended((const unsigned char *) req->body,
								 strlen(req->body), 1);
	return h;
}

/*
 * Checks that next, the request for page st->page_no + 1, stays within the
 * server's max_pages and does not revisit a page of this scan (a next link
 * cycle A -> B -> A); raises an ERROR otherwise.  URLs are remembered as
 * 64-bit hashes, so memory stays small for long scans.
 */
static void
check_next_page(UfdwScanState *st, const UfdwRequest *next)
{
	uint64		h;
	bool		found;

	if (st->page_no >= st->opts->max_pages)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("page limit exceeded reading \"%s\" from server \"%s\"",
						st->rctx.table_name, st->opts->server_name),
				 errdetail("The upstream offered more than %d pages.", st->opts->max_pages),
				 errhint("Raise the server's max_pages option, or raise page_size.")));
	if (st->seen_urls == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(uint64);
		ctl.entrysize = sizeof(uint64);
		ctl.hcxt = st->scan_cxt;
		st->seen_urls = hash_create("unified_fdw page urls", 64, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		h = request_hash(st->first_req);
		(void) hash_search(st->seen_urls, &h, HASH_ENTER, NULL);
	}
	h = request_hash(next);
	(void) hash_search(st->seen_urls, &h, HASH_ENTER, &found);
	if (found)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("pagination loop reading \"%s\" from server \"%s\"",
						st->rctx.table_name, st->opts->server_name),
				 errdetail("Page %d linked back to a page already read; paging stopped.",
						   st->page_no)));
}

/*
 * Reads the response to the request in flight into the page context,
 * converts it to rows, and sends the request for the next page at once.
 */
static void
fetch_page(UfdwScanState *st)
{
	MemoryContext old;
	UfdwResponse *resp;
	UfdwPageInfo info;
	UfdwRequest *next;

	if (st->inflight == NULL)
		start_request(st);

	MemoryContextReset(st->page_cxt);
	st->nrows = st->next_row = 0;
	old = MemoryContextSwitchTo(st->page_cxt);
	resp = ufdw_finish_authenticated(st->inflight, st->cur_req, st->opts, &st->rctx,
									 st->umid);
	drop_request(st);
	st->page_no++;
	st->bytes += resp->len;
	st->upstream_ms += resp->elapsed_ms;

	ufdw_parse_page(st->conv, resp->body, resp->len, &st->nrows, &st->values,
					&st->nulls, &info);
	pfree(resp->body);
	st->records += info.nrecords;
	MemoryContextSwitchTo(old);

	old = MemoryContextSwitchTo(st->scan_cxt);
	next = ufdw_next_request(&st->spec, st->opts, st->cur_req, st->page_no, &info);
	MemoryContextSwitchTo(old);
	if (next == NULL)
	{
		st->last_page = true;
		drop_ahead(st);
	}
	else
	{
		check_next_page(st, next);
		advance_request(st, next);
		fill_ahead(st, &info);
	}
}

static TupleTableSlot *
unifiedIterateForeignScan(ForeignScanState *node)
{
	UfdwScanState *st = node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;

	ExecClearTuple(slot);
	while (st->next_row >= st->nrows)
	{
		if (st->last_page)
			return slot;
		fetch_page(st);
	}
	memcpy(slot->tts_values, st->values[st->next_row], sizeof(Datum) * slot->tts_tupleDescriptor->natts);
	memcpy(slot->tts_isnull, st->nulls[st->next_row], sizeof(bool) * slot->tts_tupleDescriptor->natts);
	ExecStoreVirtualTuple(slot);
	st->next_row++;

	/* let the next page arrive while rows are consumed */
	if (st->inflight && st->next_row % 256 == 0)
		ufdw_http_poll();
	return slot;
}

static void
unifiedReScanForeignScan(ForeignScanState *node)
{
	UfdwScanState *st = node->fdw_state;

	drop_request(st);
	drop_ahead(st);
	MemoryContextReset(st->page_cxt);
	st->cur_req = st->first_req;
	st->nrows = st->next_row = 0;
	st->page_no = 0;
	st->last_page = false;
	if (st->seen_urls)
		hash_destroy(st->seen_urls);
	st->seen_urls = NULL;
}

static void
unifiedEndForeignScan(ForeignScanState *node)
{
	UfdwScanState *st = node->fdw_state;

	if (st)
	{
		drop_request(st);
		drop_ahead(st);
		if (st->page_no > 0)
			ufdw_status_success(st->opts->server_name);
	}
}

static void
unifiedExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	UfdwScanState *st = node->fdw_state;
	ListCell   *lc;

	if (st == NULL)
		return;
	ExplainPropertyText("Upstream System", st->spec.connector->system, es);
	if (es->verbose)
	{
		ExplainPropertyText("Upstream Request",
							psprintf("%s %s", st->first_req->method, st->first_req->url), es);
		foreach(lc, st->first_req->headers)
			ExplainPropertyText("Upstream Header", lfirst(lc), es);
		if (st->first_req->body)
			ExplainPropertyText("Upstream Body", st->first_req->body, es);
	}
	if (es->analyze)
	{
		ExplainPropertyInteger("Upstream Requests", NULL, st->requests, es);
		ExplainPropertyInteger("Upstream Pages", NULL, st->page_no, es);
		ExplainPropertyInteger("Upstream Records", NULL, st->records, es);
		ExplainPropertyInteger("Upstream Bytes", NULL, st->bytes, es);
		if (es->timing)
			ExplainPropertyFloat("Upstream Time", "ms", st->upstream_ms, 3, es);
	}
}

Datum
unified_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	routine->GetForeignRelSize = unifiedGetForeignRelSize;
	routine->GetForeignPaths = unifiedGetForeignPaths;
	routine->GetForeignPlan = unifiedGetForeignPlan;
	routine->BeginForeignScan = unifiedBeginForeignScan;
	routine->IterateForeignScan = unifiedIterateForeignScan;
	routine->ReScanForeignScan = unifiedReScanForeignScan;
	routine->EndForeignScan = unifiedEndForeignScan;
	routine->ExplainForeignScan = unifiedExplainForeignScan;
	routine->ImportForeignSchema = ufdw_import_foreign_schema;

	PG_RETURN_POINTER(routine);
}

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
 * Pushdown (deparse.c renders; this file decides): every restriction
 * clause whose shape can be sent goes to fdw_exprs, and is turned into a
 * filter at BeginForeignScan, when its values (parameters, stable
 * expressions) are known.  Every clause also stays in the local Filter:
 * the upstream narrows, PostgreSQL decides.  A sort is pushed as path
 * keys when the upstream orders exactly like PostgreSQL; a LIMIT (the
 * planner's limit_tuples, for a query over this table alone) is sent only
 * when every clause was rendered exactly, else the Limit node above simply
 * stops reading.  unified_fdw.pushdown = off (at planning) sends only the
 * column list.
 *
 * Planning does no network I/O unless use_remote_estimate asks for the
 * upstream's count of matching records; then equality joins on pushable
 * columns also get parameterized paths, whose filter is rendered again for
 * every outer row (ReScan marks it, the next fetch renders it).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/pg_am.h"
#include "commands/defrem.h"
#include "common/hashfn.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "foreign/fdwapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/cost.h"
#include "optimizer/paths.h"
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

/* Page hashes a scan remembers exactly, for the pagination loop check. */
#define UFDW_RECENT_PAGES 32

/*
 * Default planner figures: every request is expensive.  The server options
 * fdw_startup_cost (the cost of one request) and fdw_tuple_cost (per row)
 * override the costs, as postgres_fdw's options of those names do.
 */
#define DEFAULT_ROWS 1000
#define DEFAULT_REQUEST_COST 1000.0
#define DEFAULT_TUPLE_COST 0.05

/* fdw_private of a ForeignScan, by position. */
enum UfdwPrivateIndex
{
	UFDW_PRIVATE_ATTR_COLUMNS,	/* IntList: model column per attribute, or -1 */
	UFDW_PRIVATE_SORT_COLUMNS,	/* IntList: model columns of a pushed sort */
	UFDW_PRIVATE_SORT_DESC,		/* IntList: 1 = descending, per sort column */
	UFDW_PRIVATE_LIMIT,			/* Integer: rows a pushed LIMIT needs, or 0 */
	UFDW_PRIVATE_ALL_PUSHED		/* Integer: 1 if every clause is in fdw_exprs */
};

/* fdw_private of a ForeignPath, by position. */
enum UfdwPathPrivateIndex
{
	UFDW_PATH_SORT_COLUMNS,		/* as UFDW_PRIVATE_SORT_COLUMNS */
	UFDW_PATH_SORT_DESC,		/* as UFDW_PRIVATE_SORT_DESC */
	UFDW_PATH_LIMIT				/* as UFDW_PRIVATE_LIMIT */
};

/* Planner state, in baserel->fdw_private. */
typedef struct UfdwRelInfo
{
	int			table_index;	/* model table */
	const UfdwConnector *connector;
	int		   *attr_column;	/* per attribute: model column, -1 if unneeded */
	int			natts;
	List	   *pushed;			/* RestrictInfos whose clause can be sent */
	bool		all_pushed;		/* every baserestrictinfo is in pushed */
	Bitmapset  *not_null;		/* model columns a top-level clause makes
								 * non-NULL */
	int			page_size;		/* records per upstream page */
	double		request_cost;	/* fdw_startup_cost: one request */
	double		tuple_cost;		/* fdw_tuple_cost: one row */
	bool		counted;		/* rows come from the upstream's count
								 * (use_remote_estimate) or from ANALYZE */
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
	bool		filter_exact;	/* the upstream filter is exactly the quals */
	int		   *attr_column;	/* per attribute: model column, or -1 */
	int			natts;
	bool		exec_params;	/* fdw_exprs read an outer row (PARAM_EXEC) */
	bool		params_set;		/* ... and its values are available */
	bool		needs_render;	/* render the filter again before fetching */
	MemoryContext req_cxt;		/* the rendered filter and first request */
	/* pagination loop check, in constant memory (check_next_page) */
	uint64		first_hash;		/* the first request */
	uint64		recent[UFDW_RECENT_PAGES];	/* the last pages', a ring */
	int			nrecent;		/* pages in recent (at most its size) */
	uint64		brent_hash;		/* Brent's checkpoint for longer cycles */
	int			brent_power;	/* pages between checkpoints */
	int			brent_steps;	/* pages since the checkpoint */
	/* offset-paged dialects: further pages in flight, in offset order */
	int			nahead;
	UfdwAhead	ahead[UFDW_MAX_CONCURRENCY - 1];
	/* EXPLAIN ANALYZE figures, over all loops */
	int64		total_count;	/* the first page's count of all records, or -1 */
	int64		pages;
	int64		requests;
	int64		retries;		/* attempts beyond the first (429, 5xx, resets) */
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
	/* the transport reports requests and failures; status.c records them */
	ufdw_http_set_report(ufdw_status_report);
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

/*
 * Page size and costs a scan of the table is planned with (no user mapping
 * needed).
 */
static void
plan_options(Oid relid, UfdwRelInfo *info)
{
	ForeignTable *ft = GetForeignTable(relid);
	ForeignServer *server = GetForeignServer(ft->serverid);

	info->page_size = ufdw_page_size(info->connector, server->options, ft->options);
	info->request_cost = ufdw_cost_option("fdw_startup_cost",
										  ufdw_option_value(server->options, "fdw_startup_cost"),
										  DEFAULT_REQUEST_COST);
	info->tuple_cost = ufdw_cost_option("fdw_tuple_cost",
										ufdw_option_value(server->options, "fdw_tuple_cost"),
										DEFAULT_TUPLE_COST);
}

static bool
use_remote_estimate(Oid relid)
{
	ForeignTable *ft = GetForeignTable(relid);
	ForeignServer *server = GetForeignServer(ft->serverid);

	return ufdw_option_bool(ft->options, "use_remote_estimate",
							ufdw_option_bool(server->options, "use_remote_estimate", false));
}

/* Operands for a planning-time count: what the planner can fold to a constant. */
static Datum
estimate_operand(void *expr, void *arg, bool *isnull)
{
	Node	   *e = estimate_expression_value((PlannerInfo *) arg, (Node *) expr);

	if (!IsA(e, Const))
	{
		*isnull = true;			/* not sent: the count is an upper bound */
		return (Datum) 0;
	}
	*isnull = ((Const *) e)->constisnull;
	return ((Const *) e)->constvalue;
}

/*
 * The upstream's count of the records matching the conditions that can be
 * sent (use_remote_estimate): one request for one record, with the
 * dialect's count option ($count=true, $inlinecount=allpages) or a count
 * every page carries (totalResults).  Returns -1 if the upstream did not
 * say or cannot count (capability count).  *exact: every condition was sent
 * exactly.  Upstream errors are raised.
 */
static double
remote_estimate(PlannerInfo *root, RelOptInfo *baserel, UfdwRelInfo *info,
				Oid relid, bool *exact)
{
	ForeignTable *ft = GetForeignTable(relid);
	ForeignServer *server = GetForeignServer(ft->serverid);
	Oid			userid = OidIsValid(baserel->userid) ? baserel->userid : GetUserId();
	UserMapping *um = GetUserMapping(userid, server->serverid);
	UfdwOptions *opts = ufdw_get_options(server, um);
	const UfdwTableMap *tm = info->connector->tables[info->table_index];
	UfdwScanSpec spec = {0};
	UfdwRequestContext rctx;
	List	   *filters = NIL;
	bool		complete = info->all_pushed;
	Relation	rel;
	int		   *no_columns;
	UfdwRequest *req;
	UfdwResponse *resp;
	UfdwPageInfo page;
	int			nrows;
	Datum	  **values;
	bool	  **nulls;
	ListCell   *lc;

	/* capability count: an upstream that cannot count is not asked */
	if (!info->connector->caps.count)
		return -1;
	foreach(lc, info->pushed)
	{
		UfdwFilter *f = ufdw_filter_from_clause(((RestrictInfo *) lfirst(lc))->clause,
												baserel->relid, info->attr_column,
												info->natts, tm, false, estimate_operand, root);

		if (f)
			filters = lappend(filters, f);
		else
			complete = false;
	}
	*exact = ufdw_render_scan_filter(info->connector, tm, filters,
									  ufdw_time_zone(opts), &spec) && complete;

	spec.connector = info->connector;
	spec.table = tm;
	spec.page_size = 1;
	spec.top = 1;
	spec.count = true;
	req = ufdw_first_request(&spec, opts);

	rel = table_open(relid, NoLock);
	ufdw_request_context(opts, pstrdup(RelationGetRelationName(rel)), &rctx);
	resp = ufdw_execute(req, opts, &rctx, um->umid);

	no_columns = palloc(sizeof(int) * info->natts);
	for (int a = 0; a < info->natts; a++)
		no_columns[a] = -1;
	ufdw_parse_page(ufdw_make_converter(&spec, opts, RelationGetDescr(rel), no_columns,
										rctx.table_name),
					resp->body, resp->len, &nrows, &values, &nulls, &page);
	table_close(rel, NoLock);
	if (page.total_count < 0)
		return -1;
	/* read through parents, the upstream counts parents: scale by its guess */
	if (tm->read_through)
		return (double) page.total_count * tm->read_through->children_per_parent;
	return (double) page.total_count;
}

/*
 * Fills attr_column (one entry per attribute of rel) with the model column
 * each attribute reads, or -1 for dropped attributes and those not in
 * attrs (attribute numbers offset by FirstLowInvalidHeapAttributeNumber, as
 * pull_varattnos makes them; a whole-row reference means all), unless
 * all is set.  An attribute that is not a model column is an error.
 */
static void
attribute_columns(Relation rel, const UfdwModelTable *mt, Bitmapset *attrs, bool all,
				  int *attr_column)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);

	all = all || bms_is_member(0 - FirstLowInvalidHeapAttributeNumber, attrs);

	for (int a = 0; a < tupdesc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, a);
		int			c;

		attr_column[a] = -1;
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
		if (all || bms_is_member(att->attnum - FirstLowInvalidHeapAttributeNumber, attrs))
			attr_column[a] = c;
	}
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

	attribute_columns(rel, mt, attrs, false, info->attr_column);
	table_close(rel, NoLock);
	info->connector = conn;

	/* which clauses have a shape that can be sent */
	info->all_pushed = true;
	foreach(lc, baserel->baserestrictinfo)
	{
		RestrictInfo *ri = lfirst(lc);
		UfdwFilter *f = NULL;

		if (ufdw_pushdown_enabled)
			f = ufdw_filter_from_clause(ri->clause, baserel->relid, info->attr_column,
										info->natts, conn->tables[info->table_index],
										false, NULL, NULL);
		if (f == NULL)
		{
			info->all_pushed = false;
			continue;
		}
		info->pushed = lappend(info->pushed, ri);
		if (f->kind != UFDW_FILTER_AND && f->kind != UFDW_FILTER_OR &&
			f->kind != UFDW_FILTER_NOT && f->kind != UFDW_FILTER_IS_NULL)
			info->not_null = bms_add_member(info->not_null, f->column);
	}

	baserel->fdw_private = info;
	plan_options(foreigntableid, info);

	/*
	 * The row count ANALYZE recorded (pg_class.reltuples, -1 before the
	 * first ANALYZE), else a guess; the selectivity uses the column
	 * statistics ANALYZE gathered, if any.
	 */
	if (baserel->tuples >= 0)
		info->counted = true;
	else
		baserel->tuples = DEFAULT_ROWS;
	baserel->rows = clamp_row_est(baserel->tuples *
								  clauselist_selectivity(root, baserel->baserestrictinfo,
														 0, JOIN_INNER, NULL));

	/* opt-in: ask the upstream how many records match what can be sent */
	if (ufdw_pushdown_enabled && use_remote_estimate(foreigntableid))
	{
		bool		exact;
		double		count = remote_estimate(root, baserel, info, foreigntableid, &exact);

		if (count >= 0)
		{
			List	   *local = NIL;

			/* what was not sent exactly narrows further, by PostgreSQL's guess */
			if (!exact)
				foreach(lc, baserel->baserestrictinfo)
					if (!list_member_ptr(info->pushed, lfirst(lc)))
						local = lappend(local, lfirst(lc));
			info->counted = true;
			baserel->tuples = Max(count, 1);
			baserel->rows = clamp_row_est(count *
										  clauselist_selectivity(root, local, 0,
																 JOIN_INNER, NULL));
		}
	}
}

/*
 * The sort the upstream can do for pathkeys, as model columns and
 * directions; false if any key cannot be pushed exactly.
 */
static bool
pushable_sort(PlannerInfo *root, RelOptInfo *baserel, UfdwRelInfo *info,
			  List *pathkeys, List **columns, List **desc)
{
	const UfdwTableMap *tm = info->connector->tables[info->table_index];
	ListCell   *lc;

	*columns = *desc = NIL;
	foreach(lc, pathkeys)
	{
		PathKey    *pk = lfirst(lc);
		EquivalenceClass *ec = pk->pk_eclass;
		ListCell   *lm;
		int			column = -1;
		bool		is_desc = pk->pk_strategy == BTGreaterStrategyNumber;

		if (ec->ec_has_volatile)
			return false;
		foreach(lm, ec->ec_members)
		{
			EquivalenceMember *em = lfirst(lm);
			Expr	   *e = em->em_expr;
			Var		   *v;
			int			c;

			if (!bms_equal(em->em_relids, baserel->relids))
				continue;
			while (IsA(e, RelabelType))
				e = ((RelabelType *) e)->arg;
			if (!IsA(e, Var))
				continue;
			v = (Var *) e;
			if (v->varno != baserel->relid || v->varattno <= 0 || v->varattno > info->natts)
				continue;
			c = info->attr_column[v->varattno - 1];
			if (c < 0)
				continue;
			/* the standard ordering of the column's own type only */
			if (v->vartype != exprType((Node *) em->em_expr) ||
				pk->pk_opfamily != get_opclass_family(GetDefaultOpClass(v->vartype,
																		BTREE_AM_OID)))
				continue;
			if (ufdw_sortable(info->connector, tm, c, is_desc, pk->pk_nulls_first,
							  bms_is_member(c, info->not_null)))
			{
				column = c;
				break;
			}
		}
		if (column < 0)
			return false;
		*columns = lappend_int(*columns, column);
		*desc = lappend_int(*desc, is_desc ? 1 : 0);
	}
	return *columns != NIL;
}

/*
 * The rows a LIMIT lets the scan stop at, when the query reads this table
 * alone with no grouping, aggregates, DISTINCT, window functions or SRFs
 * (the planner's limit_tuples says exactly that), or 0.
 */
static int64
pushable_limit(PlannerInfo *root, RelOptInfo *baserel, UfdwRelInfo *info)
{
	Query	   *parse = root->parse;

	/* read through parents, $top would count parents, not records */
	if (info->connector->tables[info->table_index]->read_through)
		return 0;
	if (!info->all_pushed || root->limit_tuples <= 0 ||
		root->limit_tuples > PG_INT32_MAX ||
		parse->limitOption == LIMIT_OPTION_WITH_TIES ||
		parse->rowMarks != NIL || parse->setOperations != NULL ||
		bms_membership(root->all_baserels) != BMS_SINGLETON ||
		!bms_equal(root->all_baserels, baserel->relids))
		return 0;
	return (int64) root->limit_tuples;
}

static void scan_cost(const UfdwRelInfo *info, double rows, Cost *startup, Cost *total);

/* Is ri "column = outer value" on a column the upstream can filter on? */
static bool
is_join_equality(RelOptInfo *baserel, UfdwRelInfo *info, RestrictInfo *ri)
{
	const UfdwTableMap *tm = info->connector->tables[info->table_index];
	UfdwFilter *f = ufdw_filter_from_clause(ri->clause, baserel->relid, info->attr_column,
											info->natts, tm, true, NULL, NULL);
	const UfdwColumnMap *cm;

	if (f == NULL || f->kind != UFDW_FILTER_CMP || f->op != UFDW_OP_EQ)
		return false;
	cm = &tm->columns[f->column];
	return cm->kind == UFDW_MAP_FIELD && cm->native_type != UFDW_NATIVE_NONE;
}

/* generate_implied_equalities_for_column(): members that are this Var */
static bool
ec_member_is_var(PlannerInfo *root, RelOptInfo *rel, EquivalenceClass *ec,
				 EquivalenceMember *em, void *arg)
{
	Var		   *v = arg;
	Expr	   *e = em->em_expr;

	while (IsA(e, RelabelType))
		e = ((RelabelType *) e)->arg;
	return IsA(e, Var) && ((Var *) e)->varno == v->varno &&
		((Var *) e)->varattno == v->varattno && ((Var *) e)->varlevelsup == 0;
}

/*
 * Parameterized paths: for "column = outer value" join clauses (written or
 * implied by equivalence classes), a scan per outer row that sends the
 * outer value as a filter, e.g. vendors?$filter=id eq <vendor_id>.  Each
 * loop costs a request; the planner compares that with one scan of the
 * whole table.  Not batched: one request per outer row.
 */
static void
add_parameterized_paths(PlannerInfo *root, RelOptInfo *baserel, UfdwRelInfo *info)
{
	List	   *clauses = NIL;
	List	   *seen = NIL;
	ListCell   *lc;

	/*
	 * Only when the table's size is known (ANALYZE, use_remote_estimate):
	 * comparing a
	 * request per outer row with a scan of a table of guessed size can cost
	 * many more requests than it saves.
	 */
	if (!info->counted)
		return;

	foreach(lc, baserel->joininfo)
	{
		RestrictInfo *ri = lfirst(lc);

		if (join_clause_is_movable_to(ri, baserel) && is_join_equality(baserel, info, ri))
			clauses = lappend(clauses, ri);
	}
	if (baserel->has_eclass_joins)
	{
		for (int a = 0; a < info->natts; a++)
		{
			Var			v = {0};
			List	   *implied;

			if (info->attr_column[a] < 0)
				continue;
			v.xpr.type = T_Var;
			v.varno = baserel->relid;
			v.varattno = a + 1;
			implied = generate_implied_equalities_for_column(root, baserel, ec_member_is_var,
															 &v, baserel->lateral_referencers);
			foreach(lc, implied)
				if (is_join_equality(baserel, info, lfirst(lc)))
					clauses = lappend(clauses, lfirst(lc));
		}
	}

	foreach(lc, clauses)
	{
		RestrictInfo *ri = lfirst(lc);
		Relids		required_outer;
		ParamPathInfo *ppi;
		Cost		startup,
					total;

		required_outer = bms_union(ri->clause_relids, baserel->lateral_relids);
		required_outer = bms_del_member(required_outer, baserel->relid);
		if (bms_is_empty(required_outer) || list_member(seen, required_outer))
			continue;
		seen = lappend(seen, required_outer);
		ppi = get_baserel_parampathinfo(root, baserel, required_outer);
		scan_cost(info, ppi->ppi_rows, &startup, &total);
		add_path(baserel, (Path *)
				 ufdw_create_foreignscan_path(root, baserel, NULL, ppi->ppi_rows,
											  startup, total, NIL, required_outer,
											  NULL, list_make3(NIL, NIL, makeInteger(0))));
	}
}

/*
 * Cost of fetching rows: one request per page, each costing
 * fdw_startup_cost (the first before any row), plus fdw_tuple_cost a row.
 */
static void
scan_cost(const UfdwRelInfo *info, double rows, Cost *startup, Cost *total)
{
	double		pages = ceil(rows / info->page_size);

	*startup = info->request_cost;
	*total = *startup + Max(pages - 1, 0) * info->request_cost + rows * info->tuple_cost;
}

/*
 * One path that fetches everything matching the pushed filter; one sorted
 * upstream if the query's order can be pushed; and one that also sends the
 * LIMIT, if every clause can be pushed and the order (if any) too.
 */
static void
unifiedGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	UfdwRelInfo *info = baserel->fdw_private;
	Cost		startup,
				total;
	List	   *columns = NIL,
			   *desc = NIL;
	bool		sorted = false;
	int64		limit;

	scan_cost(info, baserel->rows, &startup, &total);
	add_path(baserel, (Path *)
			 ufdw_create_foreignscan_path(root, baserel, NULL, baserel->rows,
										  startup, total, NIL, NULL, NULL, NIL));
	if (!ufdw_pushdown_enabled)
		return;

	if (root->query_pathkeys &&
		pushable_sort(root, baserel, info, root->query_pathkeys, &columns, &desc))
	{
		sorted = true;
		/* the upstream sorts: a little dearer than not sorting */
		add_path(baserel, (Path *)
				 ufdw_create_foreignscan_path(root, baserel, NULL, baserel->rows,
											  startup, total + baserel->rows * info->tuple_cost,
											  root->query_pathkeys, NULL, NULL,
											  list_make3(columns, desc, makeInteger(0))));
	}

	add_parameterized_paths(root, baserel, info);

	/* a LIMIT applies to the scan only in the order the query asks for */
	limit = pushable_limit(root, baserel, info);
	if (limit > 0 && (root->parse->sortClause == NIL ||
					  (sorted && pathkeys_contained_in(root->sort_pathkeys,
													   root->query_pathkeys))))
	{
		double		rows = Min(baserel->rows, (double) limit);

		/* one request for just the rows needed: cheaper than any other */
		scan_cost(info, rows, &startup, &total);
		startup -= 1.0;
		total -= 1.0;
		add_path(baserel, (Path *)
				 ufdw_create_foreignscan_path(root, baserel, NULL, rows, startup,
											  total, sorted ? root->query_pathkeys : NIL,
											  NULL, NULL,
											  list_make3(columns, desc,
														 makeInteger((int) limit))));
	}
}

static ForeignScan *
unifiedGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
					  ForeignPath *best_path, List *tlist, List *scan_clauses,
					  Plan *outer_plan)
{
	UfdwRelInfo *info = baserel->fdw_private;
	List	   *attr_columns = NIL;
	List	   *fdw_exprs = NIL;
	List	   *path_private = best_path->fdw_private;
	List	   *fdw_private;
	ListCell   *lc;

	for (int a = 0; a < info->natts; a++)
		attr_columns = lappend_int(attr_columns, info->attr_column[a]);

	/* the clauses to send; their values are computed at execution */
	foreach(lc, info->pushed)
		fdw_exprs = lappend(fdw_exprs, ((RestrictInfo *) lfirst(lc))->clause);
	/* a parameterized path's join clauses (outer Vars become parameters) */
	foreach(lc, scan_clauses)
	{
		RestrictInfo *ri = lfirst(lc);

		if (!list_member_ptr(baserel->baserestrictinfo, ri) &&
			is_join_equality(baserel, info, ri))
			fdw_exprs = lappend(fdw_exprs, ri->clause);
	}

	fdw_private = list_make5(attr_columns,
							 path_private ? list_nth(path_private, UFDW_PATH_SORT_COLUMNS) : NIL,
							 path_private ? list_nth(path_private, UFDW_PATH_SORT_DESC) : NIL,
							 makeInteger(path_private ?
										 intVal(list_nth(path_private, UFDW_PATH_LIMIT)) : 0),
							 makeInteger(info->all_pushed ? 1 : 0));

	/* every qual is still checked locally: the upstream only narrows */
	scan_clauses = extract_actual_clauses(scan_clauses, false);
	return make_foreignscan(tlist, scan_clauses, baserel->relid, fdw_exprs,
							fdw_private, NIL, NIL, outer_plan);
}

/* Evaluates an operand of a pushed clause (see UfdwEvalFunc). */
static Datum
eval_operand(void *expr, void *arg, bool *isnull)
{
	ForeignScanState *node = arg;
	UfdwScanState *st = node->fdw_state;
	ExprState  *es;

	/* an outer row's value before there is one (EXPLAIN, BeginForeignScan) */
	if (st->exec_params && !st->params_set && ufdw_contains_exec_param(expr))
	{
		*isnull = true;
		return (Datum) 0;
	}
	es = ExecInitExpr((Expr *) expr, &node->ss.ps);
	return ExecEvalExpr(es, node->ss.ps.ps_ExprContext, isnull);
}

static void push_filter_and_sort(ForeignScanState *node, UfdwScanState *st,
								 ForeignScan *fsplan, int *attr_column, int natts);
static void advance_page(UfdwScanState *st, const UfdwPageInfo *info);

/*
 * (Re)builds the filter, sort and first request in req_cxt: at the start of
 * the scan, and again whenever a parameterized scan gets a new outer row.
 */
static void
render_request(ForeignScanState *node, UfdwScanState *st)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	MemoryContext old;

	MemoryContextReset(st->req_cxt);
	old = MemoryContextSwitchTo(st->req_cxt);
	st->spec.top = 0;
	push_filter_and_sort(node, st, fsplan, st->attr_column, st->natts);
	st->first_req = ufdw_first_request(&st->spec, st->opts);
	st->cur_req = st->first_req;
	MemoryContextSwitchTo(old);
	st->needs_render = false;
}

/*
 * Renders the pushed clauses (fdw_exprs), sort and limit into st->spec.
 * The LIMIT is sent only if every clause was rendered exactly.
 */
static void
push_filter_and_sort(ForeignScanState *node, UfdwScanState *st, ForeignScan *fsplan,
					 int *attr_column, int natts)
{
	List	   *priv = fsplan->fdw_private;
	List	   *filters = NIL;
	bool		complete = intVal(list_nth(priv, UFDW_PRIVATE_ALL_PUSHED)) != 0;
	int			limit = intVal(list_nth(priv, UFDW_PRIVATE_LIMIT));
	bool		exact;
	ListCell   *lc;

	foreach(lc, fsplan->fdw_exprs)
	{
		UfdwFilter *f = ufdw_filter_from_clause(lfirst(lc), fsplan->scan.scanrelid,
												attr_column, natts, st->spec.table,
												false, eval_operand, node);

		if (f)
			filters = lappend(filters, f);
		else
			complete = false;	/* e.g. a parameter that is NULL */
	}
	exact = ufdw_render_scan_filter(st->spec.connector, st->spec.table, filters,
									ufdw_time_zone(st->opts), &st->spec);
	st->spec.orderby = ufdw_render_orderby(st->spec.connector, st->spec.table,
										   list_nth(priv, UFDW_PRIVATE_SORT_COLUMNS),
										   list_nth(priv, UFDW_PRIVATE_SORT_DESC));
	st->filter_exact = complete && exact;
	if (limit > 0 && st->filter_exact)
		st->spec.top = limit;
}

/*
 * A new scan state for rel, owning scan_cxt (a new context, whose parent
 * also holds the state) and a page context in it: the connector's table,
 * the server's options with the user mapping of userid (InvalidOid: none,
 * for EXPLAIN without ANALYZE) and the page size.  Returns with scan_cxt
 * current; *old is the context that was.
 */
static UfdwScanState *
scan_state_create(MemoryContext scan_cxt, Relation rel, Oid userid, MemoryContext *old)
{
	UfdwScanState *st = MemoryContextAllocZero(scan_cxt->parent, sizeof(UfdwScanState));
	ForeignTable *ft = GetForeignTable(RelationGetRelid(rel));
	ForeignServer *server = GetForeignServer(ft->serverid);
	UserMapping *um = NULL;
	const UfdwConnector *conn;
	int			ti;

	st->scan_cxt = scan_cxt;
	st->page_cxt = AllocSetContextCreate(st->scan_cxt, "unified_fdw page",
										 ALLOCSET_DEFAULT_SIZES);
	*old = MemoryContextSwitchTo(st->scan_cxt);
	ti = foreign_table_model(RelationGetRelid(rel), RelationGetRelationName(rel), &conn);
	if (OidIsValid(userid))
	{
		um = GetUserMapping(userid, server->serverid);
		st->umid = um->umid;
	}
	st->serverid = server->serverid;
	st->opts = ufdw_get_options(server, um);
	st->spec.connector = conn;
	st->spec.table = conn->tables[ti];
	st->spec.page_size = ufdw_page_size(conn, server->options, ft->options);
	st->total_count = -1;
	return st;
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
	int		   *attr_column;
	MemoryContext old;

	/* EXPLAIN without ANALYZE shows the request but sends nothing: no mapping needed */
	st = scan_state_create(AllocSetContextCreate(estate->es_query_cxt, "unified_fdw scan",
												 ALLOCSET_DEFAULT_SIZES), rel,
						   (eflags & EXEC_FLAG_EXPLAIN_ONLY) ? InvalidOid :
						   ufdw_scan_user(fsplan, estate), &old);
	node->fdw_state = st;
	attr_column = palloc(sizeof(int) * tupdesc->natts);
	for (int a = 0; a < tupdesc->natts; a++)
	{
		attr_column[a] = a < list_length(attr_columns) ? list_nth_int(attr_columns, a) : -1;
		if (attr_column[a] >= 0)
			st->spec.columns = bms_add_member(st->spec.columns, attr_column[a]);
	}

	st->attr_column = attr_column;
	st->natts = tupdesc->natts;
	st->exec_params = ufdw_contains_exec_param((Node *) fsplan->fdw_exprs);
	st->req_cxt = AllocSetContextCreate(st->scan_cxt, "unified_fdw filter",
										ALLOCSET_SMALL_SIZES);

	ufdw_request_context(st->opts, pstrdup(RelationGetRelationName(rel)), &st->rctx);

	/* outer values, if any, are known at the first fetch */
	render_request(node, st);
	st->needs_render = st->exec_params;
	st->conv = ufdw_make_converter(&st->spec, st->opts, tupdesc, attr_column,
								   RelationGetRelationName(rel));
	MemoryContextSwitchTo(old);
}

/*
 * A context for one request: the UfdwRequest (unless it is the first one,
 * in req_cxt) and its transfer.  Deleting it cancels the transfer and frees
 * the request, so a scan holds only the requests in flight however many
 * pages it reads.
 */
#define request_context(st, name) \
	AllocSetContextCreate((st)->scan_cxt, name, ALLOCSET_SMALL_SIZES)

/*
 * Sends st->cur_req in st->xfer_cxt (made if there is none yet); its
 * response is read by fetch_page().
 */
static void
start_request(UfdwScanState *st)
{
	MemoryContext old;

	if (st->xfer_cxt == NULL)
		st->xfer_cxt = request_context(st, "unified_fdw request");
	old = MemoryContextSwitchTo(st->xfer_cxt);
	ufdw_check_connected(st->serverid);
	st->inflight = ufdw_start_authenticated(st->cur_req, st->opts, &st->rctx, st->umid);
	st->requests++;
	MemoryContextSwitchTo(old);
}

/* Cancels the request in flight and frees it (unless it is the first). */
static void
drop_request(UfdwScanState *st)
{
	if (st->xfer_cxt)
		MemoryContextDelete(st->xfer_cxt);	/* cancels a transfer in flight */
	st->xfer_cxt = NULL;
	st->inflight = NULL;
	st->cur_req = NULL;
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
 * Sends next (built in next_cxt), the request for the page after the
 * current one: it is the first request sent ahead if that one asked for
 * the same page (it then becomes the request in flight, and next_cxt is
 * freed), else it is sent now and whatever was sent ahead is cancelled
 * (the upstream paged differently than guessed).
 */
static void
advance_request(UfdwScanState *st, UfdwRequest *next, MemoryContext next_cxt)
{
	Assert(st->xfer_cxt == NULL);
	if (st->nahead > 0 && st->ahead[0].req->offset == next->offset &&
		strcmp(st->ahead[0].req->url, next->url) == 0)
	{
		MemoryContextDelete(next_cxt);
		st->cur_req = st->ahead[0].req;
		st->inflight = st->ahead[0].xfer;
		st->xfer_cxt = st->ahead[0].cxt;
		memmove(&st->ahead[0], &st->ahead[1], sizeof(UfdwAhead) * (st->nahead - 1));
		st->nahead--;
		return;
	}
	drop_ahead(st);
	st->cur_req = next;
	st->xfer_cxt = next_cxt;
	start_request(st);
}

/*
 * Offset-paged connectors (capability paging "offset"): keeps up to
 * max_concurrency requests in flight by sending the requests for the pages
 * after the one in flight, as if every page were full.  Stops at the
 * upstream's total count when a page gave it, and does nothing when the
 * upstream pages by links (the guess would be wrong).  A page that turns
 * out to be the last cancels the rest (advance_request, fetch_page).
 */
static void
fill_ahead(UfdwScanState *st, const UfdwPageInfo *info)
{
	int			want = Min(st->opts->max_concurrency, UFDW_MAX_CONCURRENCY) - 1;

	if (st->spec.connector->caps.paging != UFDW_PAGING_OFFSET ||
		info->next_link != NULL || st->inflight == NULL || st->cur_req->limit <= 0)
		return;
	while (st->nahead < want)
	{
		UfdwRequest *last = st->nahead > 0 ? st->ahead[st->nahead - 1].req : st->cur_req;
		UfdwPageInfo full = {0};
		UfdwRequest *req;
		UfdwAhead  *a;
		MemoryContext old;

		/* the total counts the records of the query the page belongs to */
		if (info->total_count >= 0 &&
			last->offset - last->window_start + last->limit >= info->total_count)
			break;
		if (st->page_no + 1 + st->nahead >= st->opts->max_pages)
			break;
		full.nrecords = last->limit;
		full.has_more = true;
		full.total_count = info->total_count;
		a = &st->ahead[st->nahead];
		a->cxt = request_context(st, "unified_fdw request ahead");
		old = MemoryContextSwitchTo(a->cxt);
		req = ufdw_next_request(&st->spec, st->opts, last, st->page_no + 1 + st->nahead,
								&full);
		if (req == NULL || req->offset <= last->offset)
		{
			MemoryContextSwitchTo(old);
			MemoryContextDelete(a->cxt);
			break;
		}
		a->req = req;
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
 * cycle A -> B -> A); raises an ERROR otherwise.  Requests are remembered
 * as 64-bit hashes of URL and body, in constant memory however long the
 * scan: the first one and the last UFDW_RECENT_PAGES are compared exactly
 * (a link back to any of them stops the scan at once), and a longer cycle
 * is caught by Brent's algorithm within about twice its length (a
 * checkpoint hash moved to the current page after 1, 2, 4, ... pages).
 */
static void
check_next_page(UfdwScanState *st, const UfdwRequest *next)
{
	uint64		h;
	bool		found = false;

	if (st->page_no >= st->opts->max_pages)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("page limit exceeded reading \"%s\" from server \"%s\"",
						st->rctx.table_name, st->opts->server_name),
				 errdetail("The upstream offered more than %d pages.", st->opts->max_pages),
				 errhint("Raise the server's max_pages option, or raise page_size.")));
	if (st->page_no <= 1)
	{
		st->first_hash = request_hash(st->first_req);
		st->nrecent = 0;
		st->brent_hash = st->first_hash;
		st->brent_power = 1;
		st->brent_steps = 0;
	}
	h = request_hash(next);
	found = h == st->first_hash || h == st->brent_hash;
	for (int i = 0; i < Min(st->nrecent, UFDW_RECENT_PAGES) && !found; i++)
		found = st->recent[i] == h;
	st->recent[st->nrecent++ % UFDW_RECENT_PAGES] = h;
	if (st->nrecent >= 2 * UFDW_RECENT_PAGES)
		st->nrecent -= UFDW_RECENT_PAGES;	/* stays full, no overflow */
	if (++st->brent_steps >= st->brent_power)
	{
		st->brent_hash = h;
		st->brent_power = st->brent_power < PG_INT32_MAX / 2 ? st->brent_power * 2 :
			st->brent_power;
		st->brent_steps = 0;
	}
	if (found)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("pagination loop reading \"%s\" from server \"%s\"",
						st->rctx.table_name, st->opts->server_name),
				 errdetail("Page %d linked back to a page already read; paging stopped.",
						   st->page_no)));
}

/*
 * Reads the response to st->cur_req (sent now if it is not in flight yet)
 * into the page context and converts it to rows; *info describes the page.
 * The request stays in st->xfer_cxt, the caller's to free.
 */
static void
read_page(UfdwScanState *st, UfdwPageInfo *info)
{
	MemoryContext old;
	UfdwResponse *resp;

	if (st->inflight == NULL)
		start_request(st);

	MemoryContextReset(st->page_cxt);
	st->nrows = st->next_row = 0;
	old = MemoryContextSwitchTo(st->page_cxt);
	resp = ufdw_finish_authenticated(st->inflight, st->cur_req, st->opts, &st->rctx,
									 st->umid);
	st->inflight = NULL;
	st->page_no++;
	st->pages++;
	st->retries += resp->attempts - 1;
	st->bytes += resp->len;
	st->upstream_ms += resp->elapsed_ms;

	ufdw_parse_page(st->conv, resp->body, resp->len, &st->nrows, &st->values,
					&st->nulls, info);
	pfree(resp->body);
	st->records += info->nrecords;
	if (st->page_no == 1)
		st->total_count = info->total_count;
	MemoryContextSwitchTo(old);
}

/*
 * Reads the response to the request in flight into the page context,
 * converts it to rows, and sends the request for the next page at once.
 */
static void
fetch_page(UfdwScanState *st)
{
	UfdwPageInfo info;

	read_page(st, &info);
	advance_page(st, &info);
}

/*
 * After read_page: frees the request just read and sends the one for the
 * page after it (or marks the scan's last page).
 */
static void
advance_page(UfdwScanState *st, const UfdwPageInfo *info)
{
	MemoryContext old;
	MemoryContext done_cxt;
	MemoryContext next_cxt;
	UfdwRequest *next;

	/* the finished request is freed once the next one is built from it */
	done_cxt = st->xfer_cxt;
	st->xfer_cxt = NULL;

	/* in a context of its own, freed with the request */
	next_cxt = request_context(st, "unified_fdw request");
	old = MemoryContextSwitchTo(next_cxt);
	next = ufdw_next_request(&st->spec, st->opts, st->cur_req, st->page_no, info);
	MemoryContextSwitchTo(old);
	if (done_cxt)
		MemoryContextDelete(done_cxt);
	st->cur_req = NULL;
	if (next == NULL)
	{
		MemoryContextDelete(next_cxt);
		st->last_page = true;
		drop_ahead(st);
	}
	else
	{
		check_next_page(st, next);
		advance_request(st, next, next_cxt);
		fill_ahead(st, info);
	}
}

static TupleTableSlot *
unifiedIterateForeignScan(ForeignScanState *node)
{
	UfdwScanState *st = node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;

	ExecClearTuple(slot);
	if (st->needs_render)
	{
		/* a parameterized scan: the outer row's values are set now */
		st->params_set = true;
		render_request(node, st);
	}
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
	if (st->exec_params && node->ss.ps.chgParam != NULL)
		st->needs_render = true;	/* another outer row */
	st->cur_req = st->first_req;
	st->nrows = st->next_row = 0;
	st->page_no = 0;
	st->last_page = false;
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
		/* as PostgreSQL's own counters: in text format only when nonzero */
		if (st->retries > 0 || es->format != EXPLAIN_FORMAT_TEXT)
			ExplainPropertyInteger("Upstream Retries", NULL, st->retries, es);
		ExplainPropertyInteger("Upstream Pages", NULL, st->pages, es);
		ExplainPropertyInteger("Upstream Records", NULL, st->records, es);
		ExplainPropertyInteger("Upstream Bytes", NULL, st->bytes, es);
		if (es->timing)
			ExplainPropertyFloat("Upstream Time", "ms", st->upstream_ms, 3, es);
	}
}

/* Adds the current page's rows to rows[n..targrows); returns the new n. */
static int
sample_page_rows(UfdwScanState *st, TupleDesc tupdesc, HeapTuple *rows, int n,
				 int targrows)
{
	for (; n < targrows && st->next_row < st->nrows; st->next_row++)
		rows[n++] = heap_form_tuple(tupdesc, st->values[st->next_row],
									st->nulls[st->next_row]);
	return n;
}

/*
 * ANALYZE's sample (an AcquireSampleRowsFunc), in at most
 * k = ceil(targrows / page_size) requests (docs/sql.md, "ANALYZE").  The
 * first request reads the first page and asks for the upstream's count of
 * all records ($count, $inlinecount; SuiteQL always says).  A table of at
 * most targrows records is then read to its end (and counted exactly);
 * a larger one is sampled by k - 1 further pages at offsets spread evenly
 * over the table (or over what one query reaches: SuiteQL's first 100,000
 * results), so the statistics do not describe only the oldest records.
 * Tables read through parents, and upstreams that do not count, give the
 * first targrows records.  Rows are formed in the caller's memory context;
 * the scan's own memory is freed before returning.  Upstream errors are
 * raised.
 */
static int
acquire_sample_rows(Relation rel, int elevel, HeapTuple *rows, int targrows,
					double *totalrows, double *totaldeadrows)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	MemoryContext old;
	UfdwScanState *st;
	UfdwPageInfo info;
	UfdwScanSpec spread;
	int			n = 0;
	double		total;

	/* as postgres_fdw: the table owner's user mapping */
	st = scan_state_create(AllocSetContextCreate(CurrentMemoryContext, "unified_fdw analyze",
												 ALLOCSET_DEFAULT_SIZES),
						   rel, rel->rd_rel->relowner, &old);
	st->spec.top = targrows;
	st->spec.count = true;
	st->natts = tupdesc->natts;
	st->attr_column = palloc(sizeof(int) * st->natts);
	attribute_columns(rel, st->spec.table->model, NULL, true, st->attr_column);
	for (int a = 0; a < st->natts; a++)
		if (st->attr_column[a] >= 0)
			st->spec.columns = bms_add_member(st->spec.columns, st->attr_column[a]);
	ufdw_request_context(st->opts, pstrdup(RelationGetRelationName(rel)), &st->rctx);
	st->first_req = ufdw_first_request(&st->spec, st->opts);
	st->cur_req = st->first_req;
	st->conv = ufdw_make_converter(&st->spec, st->opts, tupdesc, st->attr_column,
								   RelationGetRelationName(rel));
	/* the further pages of a spread sample: page_size records each, no count */
	spread = st->spec;
	spread.top = 0;
	spread.count = false;
	MemoryContextSwitchTo(old);

	read_page(st, &info);
	n = sample_page_rows(st, tupdesc, rows, n, targrows);
	if (st->total_count > targrows && !st->spec.table->read_through)
	{
		int64		pages = (targrows + st->spec.page_size - 1) / st->spec.page_size;
		int64		reach = ufdw_offset_reach(&spread);
		int64		span = reach > 0 ? Min(reach, st->total_count) : st->total_count;
		int64		prev = 0;

		drop_request(st);
		for (int64 i = 1; i < pages && n < targrows; i++)
		{
			int64		offset = (int64) ((double) i * span / pages);

			offset -= offset % st->spec.page_size;	/* SuiteQL: a multiple of limit */
			if (offset <= prev)
				offset = prev + st->spec.page_size;
			if (offset >= span)
				break;
			st->xfer_cxt = request_context(st, "unified_fdw request");
			old = MemoryContextSwitchTo(st->xfer_cxt);
			st->cur_req = ufdw_sample_request(&spread, st->opts, offset);
			MemoryContextSwitchTo(old);
			if (st->cur_req == NULL)
				break;
			read_page(st, &info);
			n = sample_page_rows(st, tupdesc, rows, n, targrows);
			drop_request(st);
			prev = offset;
		}
		total = (double) st->total_count;
	}
	else
	{
		/* in order, up to targrows records (the LIMIT sent) */
		advance_page(st, &info);
		while (n < targrows && !(st->last_page && st->next_row >= st->nrows))
		{
			if (st->next_row >= st->nrows)
				fetch_page(st);
			n = sample_page_rows(st, tupdesc, rows, n, targrows);
		}
		if (n < targrows)
			total = n;			/* read to the end: exactly this many */
		else if (st->total_count >= 0)
		{
			total = (double) st->total_count;
			/* read through parents, the upstream counts parents: scale */
			if (st->spec.table->read_through)
				total *= st->spec.table->read_through->children_per_parent;
		}
		else
			total = n;			/* no count: at least the sample */
	}
	*totalrows = Max(total, n);
	*totaldeadrows = 0;

	ereport(elevel,
			(errmsg("\"%s\": the upstream holds %.0f records; %d rows in sample, read in " INT64_FORMAT " requests",
					RelationGetRelationName(rel), *totalrows, n, st->requests)));
	drop_request(st);
	drop_ahead(st);
	ufdw_status_success(st->opts->server_name);
	MemoryContextDelete(st->scan_cxt);
	pfree(st);
	return n;
}

/* ANALYZE: every foreign table of unified_fdw can be sampled. */
static bool
unifiedAnalyzeForeignTable(Relation relation, AcquireSampleRowsFunc *func,
						   BlockNumber *totalpages)
{
	/* no request here: the upstream's pages are counted by the sample */
	*func = acquire_sample_rows;
	*totalpages = 1;
	return true;
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
	routine->AnalyzeForeignTable = unifiedAnalyzeForeignTable;

	PG_RETURN_POINTER(routine);
}

/*-------------------------------------------------------------------------
 *
 * deparse.c
 *		Pushdown: restriction clauses to a neutral filter tree, and that tree
 *		and sort keys rendered in each dialect's own query language.
 *
 * ufdw_filter_from_clause() recognises the clause shapes that can be sent
 * upstream (comparisons of a column with a value, IN / NOT IN lists, NULL
 * tests, LIKE / ILIKE with a constant prefix or a contains-pattern, and any
 * nesting of AND / OR / NOT).  The planner calls it without an evaluator
 * to learn which clauses are candidates; BeginForeignScan calls it again
 * with an evaluator that computes the values (constants, query parameters,
 * stable expressions such as now() - interval '7 days').
 *
 * ufdw_render_filter() is pure.  It turns the tree into a condition in
 * the connector's dialect (an OData $filter, a SuiteQL condition with bound
 * parameters), spelled by the dialect's operations table (dialect.h) and
 * shaped by the connector's capabilities, following DESIGN.md §5:
 * what is sent returns a superset of the rows the clauses accept, and the
 * result says whether it is exact.  The executor re-checks every clause
 * locally anyway; exactness only decides whether a LIMIT may be sent.
 *
 * What is never exact, or never sent:
 *	 - text is compared upstream by its own rules (with or without case,
 *	   capability text.case): equality, IN and prefixes narrow but are not
 *	   exact; <>, NOT IN and text ranges are not sent; ILIKE only where
 *	   text compares without case;
 *	 - values that mean NULL (the connector's null_values, e.g. '' or
 *	   0001-01-01) are excluded explicitly from ranges and <>, and IS NULL
 *	   becomes "field in (null values)";
 *	 - GUID ranges and enum ranges are not sent (their upstream order is not
 *	   PostgreSQL's); an enum value becomes the native codes that map to it;
 *	 - where "or" may only join conditions on one field (capability
 *	   or_across_fields false), an OR across fields is sent as the OR of
 *	   the conditions on a field every branch tests, or not at all;
 *	 - fields with an SAP conversion exit (ALPHA, NUMC) are compared, matched
 *	   and sorted upstream in their zero-padded internal form: equality and
 *	   IN are sent (the upstream converts the literal too), a prefix becomes
 *	   a substring test (a superset), text ranges and text order stay
 *	   local; a NUMC field read as an integer gets padded literals, exact;
 *	 - SuiteQL instants (local_datetime: Oracle DATEs holding wall-clock
 *	   time in the server's time_zone) are compared with wall-clock
 *	   TO_DATE literals; exact unless the value lies near a fall-back
 *	   change, whose repeated wall-clock times cannot be told apart
 *	   upstream: then ranges are widened by the change and <> / NOT IN are
 *	   not sent (local_datetime_leaf).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/stratnum.h"
#include "catalog/pg_am.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "mb/pg_wchar.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "pgtime.h"

#include "dialect.h"

/* ----------------------------------------------------------------
 * Clauses to the neutral tree
 * ----------------------------------------------------------------
 */

typedef struct BuildCtx
{
	Index		relid;
	bool		outer_ok;		/* operands may read other relations (join
								 * clauses of a parameterized scan) */
	const int  *attr_column;
	int			natts;
	const UfdwTableMap *tm;
	UfdwEvalFunc eval;
	void	   *eval_arg;
} BuildCtx;

/* The type OID of model column type t. */
Oid
ufdw_coltype_oid(UfdwColType t)
{
	switch (t)
	{
		case UFDW_TYPE_TEXT:
			return TEXTOID;
		case UFDW_TYPE_NUMERIC:
			return NUMERICOID;
		case UFDW_TYPE_INTEGER:
			return INT4OID;
		case UFDW_TYPE_DATE:
			return DATEOID;
		case UFDW_TYPE_TIMESTAMPTZ:
			return TIMESTAMPTZOID;
		case UFDW_TYPE_JSONB:
			return JSONBOID;
	}
	return InvalidOid;
}

/* The model column a Var of our relation reads, or -1. */
static int
var_column(const BuildCtx *ctx, Node *n)
{
	Var		   *v;
	int			c;

	while (n && IsA(n, RelabelType))
		n = (Node *) ((RelabelType *) n)->arg;
	if (n == NULL || !IsA(n, Var))
		return -1;
	v = (Var *) n;
	if (v->varno != ctx->relid || v->varlevelsup != 0 || v->varattno <= 0 ||
		v->varattno > ctx->natts)
		return -1;
	c = ctx->attr_column[v->varattno - 1];
	if (c < 0)
		return -1;
	/* a column declared with another type than the model's stays local */
	if (v->vartype != ufdw_coltype_oid(ctx->tm->model->columns[c].type))
		return -1;
	return c;
}

static bool
param_exec_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Param) && ((Param *) node)->paramkind != PARAM_EXTERN)
		return true;
	return expression_tree_walker(node, param_exec_walker, context);
}

/* Does n read the scanned relation, or hold a PlaceHolderVar? */
static bool
own_var_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
		return ((Var *) node)->varno == *(Index *) context &&
			((Var *) node)->varlevelsup == 0;
	if (IsA(node, PlaceHolderVar))
		return true;
	return expression_tree_walker(node, own_var_walker, context);
}

/* Does n hold a PARAM_EXEC parameter (an outer row's value, an initplan)? */
bool
ufdw_contains_exec_param(Node *n)
{
	return param_exec_walker(n, NULL);
}

/*
 * An operand whose value is fixed for one scan: nothing volatile, no Var
 * of the scanned relation.  Planning: no Var at all (or only other
 * relations' with outer_ok), and no PARAM_EXEC (initplans are left
 * local); execution: the outer Vars have become PARAM_EXEC.
 */
static bool
is_scan_constant(const BuildCtx *ctx, Node *n)
{
	Index		relid = ctx->relid;

	if (contain_volatile_functions(n) || contain_subplans(n) ||
		contain_agg_clause(n) || contain_window_function(n))
		return false;
	if (ctx->outer_ok ? own_var_walker(n, &relid) : contain_var_clause(n))
		return false;
	return ctx->eval != NULL || !param_exec_walker(n, NULL);
}

/* Is type a valid operand type for a column of model type t? */
static bool
operand_type_ok(UfdwColType t, Oid type)
{
	switch (t)
	{
		case UFDW_TYPE_TEXT:
			/* not name or char(n): other comparison semantics */
			return type == TEXTOID || type == VARCHAROID;
		case UFDW_TYPE_NUMERIC:
			return type == NUMERICOID;
		case UFDW_TYPE_INTEGER:
			return type == INT2OID || type == INT4OID || type == INT8OID;
		case UFDW_TYPE_DATE:
			return type == DATEOID;
		case UFDW_TYPE_TIMESTAMPTZ:
			return type == TIMESTAMPTZOID;
		case UFDW_TYPE_JSONB:
			return false;
	}
	return false;
}

/*
 * Canonical text of a value of type "type", or NULL when it has none that
 * an upstream could compare (NaN, infinities, dates before year 1).
 */
static char *
canonical_text(Datum d, Oid type)
{
	switch (type)
	{
		case INT2OID:
			return psprintf("%d", (int) DatumGetInt16(d));
		case INT4OID:
			return psprintf("%d", DatumGetInt32(d));
		case INT8OID:
			return psprintf(INT64_FORMAT, DatumGetInt64(d));
		case NUMERICOID:
			{
				Numeric		n = DatumGetNumeric(d);

				if (numeric_is_nan(n) || numeric_is_inf(n))
					return NULL;
				return DatumGetCString(DirectFunctionCall1(numeric_out, d));
			}
		case DATEOID:
			{
				DateADT		date = DatumGetDateADT(d);
				int			y,
							m,
							dd;

				if (DATE_NOT_FINITE(date))
					return NULL;
				j2date(date + POSTGRES_EPOCH_JDATE, &y, &m, &dd);
				if (y < 1 || y > 9999)
					return NULL;
				return psprintf("%04d-%02d-%02d", y, m, dd);
			}
		case TIMESTAMPTZOID:
			{
				TimestampTz ts = DatumGetTimestampTz(d);
				struct pg_tm tm;
				fsec_t		fsec;

				if (TIMESTAMP_NOT_FINITE(ts) ||
					timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0 ||
					tm.tm_year < 1 || tm.tm_year > 9999)
					return NULL;
				if (fsec != 0)
					return psprintf("%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
									tm.tm_year, tm.tm_mon, tm.tm_mday,
									tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
				return psprintf("%04d-%02d-%02dT%02d:%02d:%02dZ",
								tm.tm_year, tm.tm_mon, tm.tm_mday,
								tm.tm_hour, tm.tm_min, tm.tm_sec);
			}
		default:
			return TextDatumGetCString(d);
	}
}

/*
 * Evaluates an operand to canonical text.  In shape mode (no evaluator)
 * returns a NULL value but *ok = true.  *ok = false: not sendable (NULL
 * value or no canonical text).
 */
static char *
operand_value(const BuildCtx *ctx, Expr *e, bool *ok)
{
	bool		isnull;
	Datum		d;
	char	   *s;

	*ok = true;
	if (ctx->eval == NULL)
		return NULL;
	d = ctx->eval(e, ctx->eval_arg, &isnull);
	if (isnull || (s = canonical_text(d, exprType((Node *) e))) == NULL)
		*ok = false;
	return isnull ? NULL : s;
}

static UfdwFilter *
make_leaf(UfdwFilterKind kind, int column)
{
	UfdwFilter *f = palloc0(sizeof(UfdwFilter));

	f->kind = kind;
	f->column = column;
	return f;
}

/* The comparison a btree strategy stands for; -1 if none. */
static int
strategy_op(int strategy)
{
	switch (strategy)
	{
		case BTLessStrategyNumber:
			return UFDW_OP_LT;
		case BTLessEqualStrategyNumber:
			return UFDW_OP_LE;
		case BTEqualStrategyNumber:
			return UFDW_OP_EQ;
		case BTGreaterEqualStrategyNumber:
			return UFDW_OP_GE;
		case BTGreaterStrategyNumber:
			return UFDW_OP_GT;
	}
	return -1;
}

static UfdwCmpOp
commute_op(UfdwCmpOp op)
{
	switch (op)
	{
		case UFDW_OP_LT:
			return UFDW_OP_GT;
		case UFDW_OP_LE:
			return UFDW_OP_GE;
		case UFDW_OP_GT:
			return UFDW_OP_LT;
		case UFDW_OP_GE:
			return UFDW_OP_LE;
		default:
			return op;
	}
}

/*
 * The comparison operator opno stands for on a column of model type t
 * (a member of the type's default btree family, or the negator of its
 * equality), or -1.
 */
static int
comparison_of(Oid opno, UfdwColType t)
{
	Oid			opclass = GetDefaultOpClass(ufdw_coltype_oid(t), BTREE_AM_OID);
	Oid			family;
	int			strategy;
	Oid			neg;

	if (!OidIsValid(opclass))
		return -1;
	family = get_opclass_family(opclass);
	strategy = get_op_opfamily_strategy(opno, family);
	if (strategy > 0)
		return strategy_op(strategy);
	neg = get_negator(opno);
	if (OidIsValid(neg) &&
		get_op_opfamily_strategy(neg, family) == BTEqualStrategyNumber)
		return UFDW_OP_NE;
	return -1;
}

/* Text comparisons only under a deterministic collation. */
static bool
collation_ok(UfdwColType t, Oid collid)
{
	if (t != UFDW_TYPE_TEXT)
		return true;
	return !OidIsValid(collid) || get_collation_isdeterministic(collid);
}

/*
 * A LIKE pattern: "lit%" gives PREFIX, "%lit%" CONTAINS, "lit" EQ; anything
 * else (wildcards inside, "_") NULL.
 */
static UfdwFilter *
like_filter(int column, const char *pattern, bool icase)
{
	StringInfoData lit;
	const char *p = pattern;
	bool		leading = false;
	bool		trailing = false;
	UfdwFilter *f;

	initStringInfo(&lit);
	while (*p == '%')
	{
		leading = true;
		p++;
	}
	for (; *p; p++)
	{
		if (*p == '\\')
		{
			if (p[1] == '\0')
				return NULL;	/* PostgreSQL rejects this pattern */
			appendStringInfoChar(&lit, *++p);
		}
		else if (*p == '_')
			return NULL;
		else if (*p == '%')
		{
			/* only more % may follow */
			for (; *p; p++)
				if (*p != '%')
					return NULL;
			trailing = true;
			break;
		}
		else
			appendStringInfoChar(&lit, *p);
	}
	if (lit.len == 0 || (leading && !trailing))
		return NULL;			/* "%" or "%lit" (endswith): not sent */
	if (leading)
		f = make_leaf(UFDW_FILTER_CONTAINS, column);
	else if (trailing)
		f = make_leaf(UFDW_FILTER_PREFIX, column);
	else
	{
		if (icase)
			return NULL;
		f = make_leaf(UFDW_FILTER_CMP, column);
		f->op = UFDW_OP_EQ;
	}
	f->icase = icase;
	f->values = list_make1(lit.data);
	return f;
}

static UfdwFilter *build(const BuildCtx *ctx, Node *n);

static UfdwFilter *
build_opexpr(const BuildCtx *ctx, OpExpr *op)
{
	Node	   *l,
			   *r;
	int			c;
	bool		var_left;
	Expr	   *other;
	UfdwColType t;
	int			cmp;
	UfdwFilter *f;
	bool		ok;
	char	   *v;

	if (list_length(op->args) != 2)
		return NULL;
	l = linitial(op->args);
	r = lsecond(op->args);
	if ((c = var_column(ctx, l)) >= 0 && is_scan_constant(ctx, r))
		var_left = true;
	else if ((c = var_column(ctx, r)) >= 0 && is_scan_constant(ctx, l))
		var_left = false;
	else
		return NULL;
	other = (Expr *) (var_left ? r : l);
	t = ctx->tm->model->columns[c].type;
	if (!operand_type_ok(t, exprType((Node *) other)) ||
		!collation_ok(t, op->inputcollid))
		return NULL;

	if ((op->opno == OID_TEXT_LIKE_OP || op->opno == OID_TEXT_ICLIKE_OP) && var_left)
	{
		bool		icase = op->opno == OID_TEXT_ICLIKE_OP;

		v = operand_value(ctx, other, &ok);
		if (!ok)
			return NULL;
		if (v == NULL)
		{
			Const	   *k = (Const *) other;

			/* shape mode: a constant pattern is checked now */
			if (IsA(other, Const))
				return k->constisnull ? NULL :
					like_filter(c, TextDatumGetCString(k->constvalue), icase);
			f = make_leaf(UFDW_FILTER_PREFIX, c);
			f->icase = icase;
			f->values = list_make1(NULL);
			return f;
		}
		return like_filter(c, v, icase);
	}

	cmp = comparison_of(op->opno, t);
	if (cmp < 0)
		return NULL;
	v = operand_value(ctx, other, &ok);
	if (!ok)
		return NULL;
	f = make_leaf(UFDW_FILTER_CMP, c);
	f->op = var_left ? (UfdwCmpOp) cmp : commute_op((UfdwCmpOp) cmp);
	f->values = list_make1(v);
	return f;
}

static UfdwFilter *
build_saop(const BuildCtx *ctx, ScalarArrayOpExpr *sa)
{
	Node	   *l = linitial(sa->args);
	Node	   *r = lsecond(sa->args);
	int			c = var_column(ctx, l);
	UfdwColType t;
	int			cmp;
	UfdwFilter *f;
	Oid			elemtype;

	if (c < 0 || !is_scan_constant(ctx, r))
		return NULL;
	t = ctx->tm->model->columns[c].type;
	elemtype = get_element_type(exprType(r));
	if (!OidIsValid(elemtype) || !operand_type_ok(t, elemtype) ||
		!collation_ok(t, sa->inputcollid))
		return NULL;
	cmp = comparison_of(sa->opno, t);
	if (sa->useOr && cmp == UFDW_OP_EQ)
		f = make_leaf(UFDW_FILTER_IN, c);
	else if (!sa->useOr && cmp == UFDW_OP_NE)
		f = make_leaf(UFDW_FILTER_NOT_IN, c);
	else
		return NULL;

	if (ctx->eval)
	{
		bool		isnull;
		Datum		d = ctx->eval(r, ctx->eval_arg, &isnull);
		ArrayType  *arr;
		Datum	   *elems;
		bool	   *nulls;
		int			n;
		int16		typlen;
		bool		typbyval;
		char		typalign;

		if (isnull)
			return NULL;
		arr = DatumGetArrayTypeP(d);
		get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
		deconstruct_array(arr, elemtype, typlen, typbyval, typalign,
						  &elems, &nulls, &n);
		for (int i = 0; i < n; i++)
		{
			char	   *s;

			if (nulls[i])
			{
				/* x <> ALL (..., NULL) is never true: not sent */
				if (!sa->useOr)
					return NULL;
				continue;		/* x = NULL never matches */
			}
			if ((s = canonical_text(elems[i], elemtype)) == NULL)
				return NULL;
			f->values = lappend(f->values, s);
		}
		if (f->values == NIL)
			return NULL;
	}
	else
		f->values = list_make1(NULL);
	return f;
}

static UfdwFilter *
build(const BuildCtx *ctx, Node *n)
{
	if (n == NULL)
		return NULL;
	switch (nodeTag(n))
	{
		case T_BoolExpr:
			{
				BoolExpr   *b = (BoolExpr *) n;
				UfdwFilter *f = palloc0(sizeof(UfdwFilter));
				ListCell   *lc;
				bool		any = false;

				f->kind = b->boolop == AND_EXPR ? UFDW_FILTER_AND :
					b->boolop == OR_EXPR ? UFDW_FILTER_OR : UFDW_FILTER_NOT;

				foreach(lc, b->args)
				{
					UfdwFilter *a = build(ctx, lfirst(lc));

					/* an AND may leave out what it cannot send: a superset */
					if (a == NULL && f->kind != UFDW_FILTER_AND)
						return NULL;
					if (a == NULL)
						a = make_leaf(UFDW_FILTER_NONE, -1);
					else
						any = true;
					f->args = lappend(f->args, a);
				}
				return any ? f : NULL;
			}
		case T_OpExpr:
			return build_opexpr(ctx, (OpExpr *) n);
		case T_ScalarArrayOpExpr:
			return build_saop(ctx, (ScalarArrayOpExpr *) n);
		case T_NullTest:
			{
				NullTest   *nt = (NullTest *) n;
				int			c;

				if (nt->argisrow || (c = var_column(ctx, (Node *) nt->arg)) < 0)
					return NULL;
				return make_leaf(nt->nulltesttype == IS_NULL ?
								 UFDW_FILTER_IS_NULL : UFDW_FILTER_NOT_NULL, c);
			}
		default:
			return NULL;
	}
}

/*
 * The filter tree of one restriction clause, or NULL when nothing of it can
 * be sent.  attr_column maps attribute numbers - 1 to model columns.  eval
 * NULL: shape mode, values unknown (NULL pointers).  outer_ok: a join
 * clause, whose values come from the outer relation (planning: its Vars;
 * execution: PARAM_EXEC parameters).  The tree may cover
 * less than the clause (an AND that drops a part), never more.
 */
UfdwFilter *
ufdw_filter_from_clause(Expr *clause, Index relid, const int *attr_column,
						int natts, const UfdwTableMap *tm, bool outer_ok,
						UfdwEvalFunc eval, void *eval_arg)
{
	BuildCtx	ctx;

	ctx.relid = relid;
	ctx.outer_ok = outer_ok;
	ctx.attr_column = attr_column;
	ctx.natts = natts;
	ctx.tm = tm;
	ctx.eval = eval;
	ctx.eval_arg = eval_arg;
	return build(&ctx, (Node *) clause);
}

/* ----------------------------------------------------------------
 * Rendering
 * ----------------------------------------------------------------
 */

typedef struct RenderCtx
{
	const UfdwConnector *conn;
	const UfdwTableMap *tm;
	const UfdwDialect *d;		/* conn->dialect */
	const UfdwCapabilities *caps;	/* &conn->caps */
	List	   *params;			/* bound values (dialects that bind) */
	pg_tz	   *tz;				/* zone of local_datetime fields, or NULL:
								 * such conditions are not sent */
} RenderCtx;

/* One rendered node. */
typedef struct Piece
{
	char	   *text;			/* NULL: no condition (true) */
	bool		exact;			/* true upstream iff true in PostgreSQL */
	bool		never_null;		/* PostgreSQL never yields NULL for it */
	const char *field;			/* the one field it tests, or NULL if several */
} Piece;

static Piece
no_piece(void)
{
	Piece		p = {NULL, false, false, NULL};

	return p;
}

static const UfdwColumnMap *
column_map(const RenderCtx *r, int column)
{
	const UfdwColumnMap *cm = &r->tm->columns[column];

	if (cm->kind != UFDW_MAP_FIELD || cm->native_type == UFDW_NATIVE_NONE)
		return NULL;
	return cm;
}

/*
 * The field as written in a condition: its filter expression, else its
 * expression, else its name (expressions only where the dialect has them).
 */
static const char *
field_ref(const RenderCtx *r, const UfdwColumnMap *cm)
{
	if (cm->fields[0].filter_expr)
		return cm->fields[0].filter_expr;
	if (cm->fields[0].expr)
		return cm->fields[0].expr;
	return cm->fields[0].name;
}

/* ----------------------------------------------------------------
 * Instants as wall-clock DATEs (local_datetime)
 * ----------------------------------------------------------------
 */

/* The instant of a canonical value "YYYY-MM-DDTHH:MI:SS[.ffffff]Z". */
static bool
parse_instant(const char *v, TimestampTz *ts)
{
	struct pg_tm tm = {0};
	int			usec = 0;
	int			n = 0;
	int			tz = 0;

	if (sscanf(v, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
		return false;
	if (v[n] == '.' && sscanf(v + n, ".%6dZ", &usec) != 1)
		return false;
	return tm2timestamp(&tm, usec, &tz, ts) == 0;
}

/*
 * The wall-clock text "YYYY-MM-DD HH24:MI:SS" of instant ts in zone tz,
 * moved by shift seconds of wall-clock time; NULL outside years 1..9999.
 */
static char *
wall_clock(TimestampTz ts, pg_tz *tz, int64 shift)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			off;
	Timestamp	wall;

	if (timestamp2tm(ts, &off, &tm, &fsec, NULL, tz) != 0 ||
		tm2timestamp(&tm, 0, NULL, &wall) != 0)
		return NULL;
	wall += shift * USECS_PER_SEC;
	if (timestamp2tm(wall, NULL, &tm, &fsec, NULL, NULL) != 0 ||
		tm.tm_year < 1 || tm.tm_year > 9999)
		return NULL;
	return psprintf("%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year, tm.tm_mon, tm.tm_mday,
					tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/*
 * The largest backward change of tz's UTC offset (a fall-back, in seconds)
 * whose repeated wall-clock times reach instant ts, or 0: then wall-clock
 * time orders every instant exactly as the instants themselves relative
 * to ts.  A change at T by d seconds repeats the wall-clock times of
 * [T - d, T + d); changes within a day of ts are looked at (no zone ever
 * moved back by more).
 */
static int64
fall_back_near(TimestampTz ts, pg_tz *tz)
{
	pg_time_t	v = timestamptz_to_time_t(ts);
	pg_time_t	t = v - 26 * SECS_PER_HOUR;
	int64		worst = 0;

	for (int i = 0; i < 16; i++)	/* a handful of changes a day at most */
	{
		long int	before,
					after;
		int			before_dst,
					after_dst;
		pg_time_t	boundary;

		if (pg_next_dst_boundary(&t, &before, &before_dst, &boundary, &after,
								 &after_dst, tz) != 1 ||
			boundary > v + 26 * SECS_PER_HOUR || boundary <= t)
			break;
		if (before > after && v >= boundary - (before - after) - 1 &&
			v <= boundary + (before - after))
			worst = Max(worst, (int64) (before - after));
		t = boundary;
	}
	return worst;
}

/* "f op <literal of wall-clock text w>"; NULL if the dialect has none. */
static char *
wall_clock_cmp(RenderCtx *r, const char *f, UfdwCmpOp op, char *w)
{
	char	   *lit = r->d->literal(UFDW_NATIVE_LOCAL_DATETIME, w, &r->params);

	return lit ? psprintf("%s %s %s", f, r->d->cmp_ops[op], lit) : NULL;
}

/*
 * A comparison, IN or NOT IN on an instant the upstream keeps as wall-clock
 * time in r->tz.  Upstream values have whole seconds.  Exact where no
 * fall-back is near the value and the value has whole seconds; otherwise a
 * superset: = stays (both passes of a repeated time match), ranges are
 * widened by the fall-back, <> and NOT IN are not sent.
 */
static Piece
local_datetime_leaf(RenderCtx *r, const UfdwFilter *flt, const char *f, Piece p)
{
	ListCell   *lc;
	List	   *walls = NIL;

	if (r->tz == NULL)
		return no_piece();
	if (flt->kind == UFDW_FILTER_CMP)
	{
		TimestampTz ts;
		int64		frac;
		int64		d;
		char	   *w;
		UfdwCmpOp	op = flt->op;

		if (!parse_instant(linitial(flt->values), &ts) || TIMESTAMP_NOT_FINITE(ts))
			return no_piece();
		frac = ((ts % USECS_PER_SEC) + USECS_PER_SEC) % USECS_PER_SEC;
		d = fall_back_near(ts, r->tz);
		p.exact = frac == 0 && d == 0;
		switch (op)
		{
			case UFDW_OP_EQ:
			case UFDW_OP_NE:
				/* whole-second values never equal a fraction */
				if (frac != 0 || (op == UFDW_OP_NE && d != 0) ||
					(w = wall_clock(ts, r->tz, 0)) == NULL)
					return no_piece();
				p.text = wall_clock_cmp(r, f, op, w);
				return p;
			case UFDW_OP_GT:
			case UFDW_OP_GE:
				/* the earliest wall-clock time of the instants from ts on */
				if ((w = wall_clock(ts - frac, r->tz, -d)) == NULL)
					return no_piece();
				p.text = wall_clock_cmp(r, f, op == UFDW_OP_GT && p.exact ? UFDW_OP_GT : UFDW_OP_GE, w);
				return p;
			case UFDW_OP_LT:
			case UFDW_OP_LE:
				/* the latest wall-clock time of the instants up to ts */
				if ((w = wall_clock(ts - frac + (frac ? USECS_PER_SEC : 0), r->tz, d)) == NULL)
					return no_piece();
				p.text = wall_clock_cmp(r, f, op == UFDW_OP_LT && p.exact ? UFDW_OP_LT : UFDW_OP_LE, w);
				return p;
		}
		return no_piece();
	}

	/* IN / NOT IN */
	p.exact = true;
	foreach(lc, flt->values)
	{
		TimestampTz ts;
		char	   *w;

		if (!parse_instant(lfirst(lc), &ts) || TIMESTAMP_NOT_FINITE(ts))
			return no_piece();
		if (ts % USECS_PER_SEC != 0)
		{
			p.exact = false;	/* can never match: left out of IN */
			continue;
		}
		if (fall_back_near(ts, r->tz) != 0)
			p.exact = false;
		if ((w = wall_clock(ts, r->tz, 0)) == NULL)
			return no_piece();
		walls = lappend(walls, w);
	}
	if (flt->kind == UFDW_FILTER_NOT_IN && !p.exact)
		return no_piece();
	if (walls == NIL || r->d->in_word == NULL ||
		(flt->kind == UFDW_FILTER_NOT_IN && r->d->not_in_word == NULL))
		return no_piece();
	{
		StringInfoData buf;

		initStringInfo(&buf);
		appendStringInfo(&buf, "%s %s (", f, flt->kind == UFDW_FILTER_NOT_IN ?
						 r->d->not_in_word : r->d->in_word);
		foreach(lc, walls)
		{
			char	   *lit = r->d->literal(UFDW_NATIVE_LOCAL_DATETIME, lfirst(lc),
											&r->params);

			if (lit == NULL)
				return no_piece();
			appendStringInfo(&buf, "%s%s", foreach_current_index(lc) ? "," : "", lit);
		}
		appendStringInfoChar(&buf, ')');
		p.text = buf.data;
	}
	return p;
}

bool
ufdw_is_guid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++)
	{
		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (s[i] != '-')
				return false;
		}
		else if (!isxdigit((unsigned char) s[i]))
			return false;
	}
	return true;
}

static bool
is_lower(const char *s)
{
	for (; *s; s++)
		if (isupper((unsigned char) *s))
			return false;
	return true;
}

/* Does s look like a native value of type t (to pick its null values)? */
static bool
looks_like(UfdwNativeType t, const char *s)
{
	size_t		len = strlen(s);

	switch (t)
	{
		case UFDW_NATIVE_STRING:
		case UFDW_NATIVE_ENUM:
			return true;
		case UFDW_NATIVE_GUID:
			return ufdw_is_guid(s);
		case UFDW_NATIVE_DATE:
			return len == 10 && s[4] == '-' && s[7] == '-';
		case UFDW_NATIVE_DATETIME:
		case UFDW_NATIVE_DATETIMEOFFSET:
			return len > 10 && s[4] == '-' && s[10] == 'T';
		default:
			return false;
	}
}

/*
 * The literal for unified value v of a field of native type t, or NULL if
 * the dialect cannot spell it; bound values go to r->params.
 */
static char *
literal(RenderCtx *r, UfdwNativeType t, const char *v)
{
	return r->d->literal(t, v, &r->params);
}

/* The native codes whose unified value is v. */
static List *
enum_codes(const UfdwColumnMap *cm, const char *v, bool complement)
{
	List	   *codes = NIL;

	for (int i = 0; i < cm->nmap; i++)
		if ((strcmp(cm->map_to[i], v) == 0) != complement)
			codes = lappend(codes, cm->map_from[i]);
	return codes;
}

/*
 * Fields with a conversion exit (cm->conversion).  Could unified text value
 * v be the external form of a value of the field?  Longer than the field:
 * never (no upstream literal is sent for it).
 */
static bool
conversion_fits(const UfdwColumnMap *cm, const char *v)
{
	/* characters, not bytes (SAP counts UTF-16 units: never fewer) */
	return cm->conversion == UFDW_CONV_NONE ||
		pg_mbstrlen(v) <= cm->conversion_length;
}

/*
 * The literal of integer v for a NUMC field: the internal form, quoted and
 * zero-padded to the field's length ('00010'), which the upstream compares
 * and orders exactly like the numbers; NULL if v has no such form
 * (negative, or more digits than the field).
 */
static char *
numc_literal(const UfdwColumnMap *cm, const char *v)
{
	size_t		len = strlen(v);
	StringInfoData buf;

	if (len == 0 || len > (size_t) cm->conversion_length)
		return NULL;
	for (const char *c = v; *c; c++)
		if (*c < '0' || *c > '9')
			return NULL;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '\'');
	for (size_t i = len; i < (size_t) cm->conversion_length; i++)
		appendStringInfoChar(&buf, '0');
	appendStringInfo(&buf, "%s'", v);
	return buf.data;
}

static char *
cmp_text(RenderCtx *r, const char *f, UfdwCmpOp op, const char *lit)
{
	return psprintf("%s %s %s", f, r->d->cmp_ops[op], lit);
}

static const char *
and_word(const RenderCtx *r)
{
	return r->d->and_word;
}

static const char *
or_word(const RenderCtx *r)
{
	return r->d->or_word;
}

/*
 * "f in (a, b)", or "(f eq a or f eq b)" where the dialect has no "in" or
 * the connector says not to use it ("in_operator"); lits non-empty.
 */
static char *
in_text(RenderCtx *r, const char *f, List *lits)
{
	StringInfoData buf;
	ListCell   *lc;

	if (list_length(lits) == 1)
		return cmp_text(r, f, UFDW_OP_EQ, linitial(lits));
	initStringInfo(&buf);
	if (r->d->in_word == NULL || !r->conn->in_operator)
	{
		appendStringInfoChar(&buf, '(');
		foreach(lc, lits)
			appendStringInfo(&buf, "%s%s", foreach_current_index(lc) ? or_word(r) : "",
							 cmp_text(r, f, UFDW_OP_EQ, lfirst(lc)));
		appendStringInfoChar(&buf, ')');
		return buf.data;
	}
	appendStringInfo(&buf, "%s %s (", f, r->d->in_word);
	foreach(lc, lits)
		appendStringInfo(&buf, "%s%s", foreach_current_index(lc) ? "," : "",
						 (char *) lfirst(lc));
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

static char *
not_text(const RenderCtx *r, const char *s)
{
	return psprintf(r->d->not_format, s);
}

/*
 * The null values of the connector (texts the upstream keeps for "no
 * value") that a field of type t can hold, as literals.
 */
static List *
null_literals(RenderCtx *r, UfdwNativeType t)
{
	List	   *lits = NIL;

	if (t == UFDW_NATIVE_ENUM)
		return NIL;
	for (int i = 0; i < r->conn->nnull_values; i++)
	{
		const char *nv = r->conn->null_values[i];
		char	   *lit;

		if (!looks_like(t, nv))
			continue;
		if ((t == UFDW_NATIVE_DATETIME || t == UFDW_NATIVE_DATETIMEOFFSET) &&
			nv[strlen(nv) - 1] != 'Z')
			continue;
		if ((lit = literal(r, t, nv)) != NULL)
			lits = lappend(lits, lit);
	}
	return lits;
}

/* "(text and f ne N1 and ...)": excludes the values that mean NULL. */
static char *
without_nulls(RenderCtx *r, const char *f, char *text, List *nulls)
{
	StringInfoData buf;
	ListCell   *lc;

	if (nulls == NIL)
		return text;
	initStringInfo(&buf);
	appendStringInfo(&buf, "(%s", text);
	foreach(lc, nulls)
		appendStringInfo(&buf, "%s%s", and_word(r),
						 cmp_text(r, f, UFDW_OP_NE, lfirst(lc)));
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

static Piece
render_leaf(RenderCtx *r, const UfdwFilter *flt)
{
	const UfdwColumnMap *cm = column_map(r, flt->column);
	UfdwNativeType t;
	const char *f;
	Piece		p = no_piece();
	List	   *nulls;
	ListCell   *lc;

	if (cm == NULL)
		return p;
	t = cm->native_type;
	f = field_ref(r, cm);
	p.field = cm->fields[0].name;
	p.never_null = false;
	nulls = null_literals(r, t);

	if (t == UFDW_NATIVE_LOCAL_DATETIME &&
		(flt->kind == UFDW_FILTER_CMP || flt->kind == UFDW_FILTER_IN ||
		 flt->kind == UFDW_FILTER_NOT_IN))
		return local_datetime_leaf(r, flt, f, p);

	switch (flt->kind)
	{
		case UFDW_FILTER_IS_NULL:
		case UFDW_FILTER_NOT_NULL:
			{
				bool		isnull = flt->kind == UFDW_FILTER_IS_NULL;

				p.never_null = true;
				p.exact = true;
				if (nulls == NIL)
				{
					p.text = psprintf(isnull ? r->d->is_null_format :
									  r->d->not_null_format, f);
				}
				else
				{
					p.text = in_text(r, f, nulls);
					if (!isnull)
						p.text = not_text(r, p.text);
				}
				return p;
			}
		case UFDW_FILTER_PREFIX:
		case UFDW_FILTER_CONTAINS:
			{
				const char *v = linitial(flt->values);
				bool		prefix = flt->kind == UFDW_FILTER_PREFIX;

				if (t != UFDW_NATIVE_STRING)
					return no_piece();

				/*
				 * A field with a conversion exit matches patterns in its
				 * internal form (0000017000 does not start with 17): a prefix
				 * of the external form is sent as a substring, which the
				 * internal form (the external one zero-padded, or as typed)
				 * still holds.  A superset.
				 */
				if (cm->conversion != UFDW_CONV_NONE)
					prefix = false;
				/*
				 * ILIKE: only where the upstream compares text without case
				 * (capability text.case).  Case folding beyond ASCII may
				 * differ from PostgreSQL's.
				 */
				if (flt->icase)
				{
					if (!r->caps->text_case_insensitive)
						return no_piece();
					for (const char *s = v; *s; s++)
						if (IS_HIGHBIT_SET(*s))
							return no_piece();
				}
				p.text = r->d->match(f, v, prefix, &r->params);
				return p;		/* text compares its own way upstream: a superset */
			}
		case UFDW_FILTER_CMP:
			{
				const char *v = linitial(flt->values);
				UfdwCmpOp	op = flt->op;
				char	   *lit;

				if (t == UFDW_NATIVE_STRING)
				{
					/* with a conversion exit, the upstream converts the literal too */
					if (op != UFDW_OP_EQ || !conversion_fits(cm, v) ||
						(lit = literal(r, t, v)) == NULL)
						return no_piece();
					p.text = cmp_text(r, f, op, lit);
					return p;	/* case-insensitive: a superset */
				}
				if (t == UFDW_NATIVE_ENUM)
				{
					List	   *codes;
					List	   *lits = NIL;
					bool		dflt = cm->has_default && cm->map_default &&
						strcmp(cm->map_default, v) == 0;

					if (op != UFDW_OP_EQ)
						return no_piece();
					codes = enum_codes(cm, v, dflt);
					foreach(lc, codes)
						lits = lappend(lits, literal(r, t, lfirst(lc)));
					if (dflt)
					{
						/* every code but those mapped elsewhere: a superset */
						p.text = lits ? not_text(r, in_text(r, f, lits)) : NULL;
						return p;
					}
					if (lits == NIL)
						return no_piece();
					p.text = in_text(r, f, lits);
					/* a code that is also a null value reads as NULL */
					p.exact = true;
					foreach(lc, codes)
						for (int i = 0; i < r->conn->nnull_values; i++)
							if (strcmp(lfirst(lc), r->conn->null_values[i]) == 0)
								p.exact = false;
					return p;
				}
				if (t == UFDW_NATIVE_GUID)
				{
					/* equality only; GUIDs do not sort like text */
					if (op != UFDW_OP_EQ || (lit = literal(r, t, v)) == NULL)
						return no_piece();
					p.text = cmp_text(r, f, op, lit);
					p.exact = is_lower(v);
					for (int i = 0; i < r->conn->nnull_values; i++)
						if (strcmp(r->conn->null_values[i], v) == 0)
							p.exact = false;
					return p;
				}
				/* NUMC read as a number: the padded literal compares exactly */
				if (t == UFDW_NATIVE_INTEGER && cm->conversion == UFDW_CONV_NUMC)
				{
					if ((lit = numc_literal(cm, v)) == NULL)
						return no_piece();
					p.text = cmp_text(r, f, op, lit);
					p.exact = true;
					return p;
				}
				/* numbers, dates, instants: exact comparisons */
				if ((lit = literal(r, t, v)) == NULL)
					return no_piece();
				p.text = cmp_text(r, f, op, lit);
				if (op == UFDW_OP_NE || op == UFDW_OP_LT || op == UFDW_OP_LE ||
					(nulls && strcmp(v, "0002") < 0))
					p.text = without_nulls(r, f, p.text, nulls);
				p.exact = true;
				return p;
			}
		case UFDW_FILTER_IN:
		case UFDW_FILTER_NOT_IN:
			{
				List	   *lits = NIL;
				bool		in = flt->kind == UFDW_FILTER_IN;

				p.exact = true;
				foreach(lc, flt->values)
				{
					const char *v = lfirst(lc);
					char	   *lit;

					if (t == UFDW_NATIVE_ENUM)
					{
						List	   *codes;
						ListCell   *lc2;

						if (!in || (cm->has_default && cm->map_default &&
									strcmp(cm->map_default, v) == 0))
							return no_piece();
						codes = enum_codes(cm, v, false);
						foreach(lc2, codes)
							lits = lappend(lits, literal(r, t, lfirst(lc2)));
						continue;
					}
					if (t == UFDW_NATIVE_INTEGER && cm->conversion == UFDW_CONV_NUMC)
					{
						/* a number with no internal form never matches */
						if ((lit = numc_literal(cm, v)) != NULL)
							lits = lappend(lits, lit);
						continue;
					}
					if (!conversion_fits(cm, v))
						continue;	/* longer than the field: never matches */
					if (t == UFDW_NATIVE_STRING && !in)
						return no_piece();
					if (t == UFDW_NATIVE_GUID)
					{
						if (!in)
							return no_piece();
						if (!ufdw_is_guid(v))
							continue;	/* can never equal a GUID */
						if (!is_lower(v))
							p.exact = false;
					}
					if ((lit = literal(r, t, v)) == NULL)
						return no_piece();
					lits = lappend(lits, lit);
				}
				if (lits == NIL)
					return no_piece();
				if (t == UFDW_NATIVE_STRING)
					p.exact = false;
				if (in)
				{
					p.text = in_text(r, f, lits);
					if (nulls && t != UFDW_NATIVE_STRING && t != UFDW_NATIVE_GUID)
						p.text = without_nulls(r, f, p.text, nulls);
				}
				else
					p.text = without_nulls(r, f, not_text(r, in_text(r, f, lits)), nulls);
				return p;
			}
		default:
			return no_piece();
	}
}

static Piece render_node(RenderCtx *r, const UfdwFilter *flt);
static Piece or_on_one_field(RenderCtx *r, const UfdwFilter *flt);

/*
 * AND / OR of the children's pieces.  Two or more are joined inside
 * parentheses, so the piece is one term wherever it is put; outermost (the
 * whole filter, an AND) joins them without, as its text stands alone.  A
 * single child's text is returned as it is.
 */
static Piece
render_bool(RenderCtx *r, const UfdwFilter *flt, bool outermost)
{
	bool		is_and = flt->kind == UFDW_FILTER_AND;
	StringInfoData buf;
	Piece		p;
	ListCell   *lc;
	int			n = 0;
	bool		first_field = true;

	p.exact = true;
	p.never_null = true;
	p.field = NULL;
	initStringInfo(&buf);
	foreach(lc, flt->args)
	{
		int			params_before = list_length(r->params);
		Piece		c = render_node(r, lfirst(lc));

		if (c.text == NULL)
		{
			/* an AND leaves it out (a superset); an OR cannot */
			if (!is_and)
				return no_piece();
			p.exact = false;
			r->params = list_truncate(r->params, params_before);
			continue;
		}
		p.exact &= c.exact;
		p.never_null &= c.never_null;
		if (first_field)
			p.field = c.field;
		else if (p.field && (c.field == NULL || strcmp(p.field, c.field) != 0))
			p.field = NULL;
		first_field = false;
		appendStringInfo(&buf, "%s%s", n++ ? (is_and ? and_word(r) : or_word(r)) : "",
						 c.text);
	}
	if (n == 0)
		return no_piece();
	/* capability or_across_fields: "or" only between conditions on one field */
	if (!is_and && !r->caps->or_across_fields && p.field == NULL)
		return or_on_one_field(r, flt);
	p.text = n > 1 && !(outermost && is_and) ? psprintf("(%s)", buf.data) : buf.data;
	return p;
}

/* The parts of an AND (or the node itself) that test one field each. */
static List *
conjunct_pieces(RenderCtx *r, const UfdwFilter *flt)
{
	List	   *pieces = NIL;
	ListCell   *lc;

	if (flt->kind != UFDW_FILTER_AND)
	{
		Piece	   *p = palloc(sizeof(Piece));

		*p = render_node(r, flt);
		return p->text && p->field ? list_make1(p) : NIL;
	}
	foreach(lc, flt->args)
		pieces = list_concat(pieces, conjunct_pieces(r, lfirst(lc)));
	return pieces;
}

/*
 * An OR across fields, for an upstream whose "or" may only join conditions
 * on one field: if every branch has conditions on one same field, the OR of
 * those conditions is a superset it accepts: (status = 'open' AND total > 100) OR (status = 'draft' AND
 * total < 5) sends status in ('Open') or status in ('Draft'), never exact.
 */
static Piece
or_on_one_field(RenderCtx *r, const UfdwFilter *flt)
{
	List	   *branches = NIL;
	List	   *first;
	ListCell   *lc,
			   *lb,
			   *lp;

	foreach(lc, flt->args)
		branches = lappend(branches, conjunct_pieces(r, lfirst(lc)));
	first = linitial(branches);

	foreach(lc, first)
	{
		const char *field = ((Piece *) lfirst(lc))->field;
		StringInfoData buf;
		bool		all = true;

		initStringInfo(&buf);
		foreach(lb, branches)
		{
			StringInfoData branch;
			int			n = 0;

			initStringInfo(&branch);
			foreach(lp, (List *) lfirst(lb))
			{
				Piece	   *p = lfirst(lp);

				if (strcmp(p->field, field) == 0)
					appendStringInfo(&branch, "%s%s", n++ ? and_word(r) : "", p->text);
			}
			if (n == 0)
			{
				all = false;
				break;
			}
			appendStringInfo(&buf, "%s%s", buf.len ? or_word(r) : "",
							 n > 1 ? psprintf("(%s)", branch.data) : branch.data);
		}
		if (all)
		{
			Piece		p = {psprintf("(%s)", buf.data), false, false, field};

			return p;
		}
	}
	return no_piece();
}

static Piece render_node_kind(RenderCtx *r, const UfdwFilter *flt);

/*
 * Renders one node.  A node that renders to nothing leaves no bound
 * parameters behind (an OR may fail after some of its parts rendered).
 */
static Piece
render_node(RenderCtx *r, const UfdwFilter *flt)
{
	int			params_before = list_length(r->params);
	Piece		p = render_node_kind(r, flt);

	if (p.text == NULL)
		r->params = list_truncate(r->params, params_before);
	return p;
}

static Piece
render_node_kind(RenderCtx *r, const UfdwFilter *flt)
{
	switch (flt->kind)
	{
		case UFDW_FILTER_NONE:
			return no_piece();
		case UFDW_FILTER_AND:
		case UFDW_FILTER_OR:
			return render_bool(r, flt, false);
		case UFDW_FILTER_NOT:
			{
				int			params_before = list_length(r->params);
				Piece		c = render_node(r, linitial(flt->args));

				/*
				 * NOT turns a superset into a subset, and a row PostgreSQL
				 * sees as NULL would match upstream: only exact, never-NULL
				 * children.
				 */
				if (c.text == NULL || !c.exact || !c.never_null)
				{
					r->params = list_truncate(r->params, params_before);
					return no_piece();
				}
				c.text = not_text(r, c.text);
				return c;
			}
		default:
			return render_leaf(r, flt);
	}
}

/*
 * Renders the conjunction of filters (of UfdwFilter *) for conn's dialect.
 * A filter that cannot be sent is left out (the result is then not exact).
 */
UfdwRendered
ufdw_render_filter(const UfdwConnector *conn, const UfdwTableMap *tm, List *filters)
{
	return ufdw_render_filter_tz(conn, tm, filters, NULL);
}

/*
 * The same, with time_zone (a name pg_tzset knows) for fields that hold
 * wall-clock time (local_datetime); NULL: those conditions are not sent.
 */
UfdwRendered
ufdw_render_filter_tz(const UfdwConnector *conn, const UfdwTableMap *tm, List *filters,
					  const char *time_zone)
{
	RenderCtx	r;
	UfdwFilter	and;
	UfdwRendered out;
	Piece		p;

	memset(&r, 0, sizeof(r));
	r.conn = conn;
	r.tm = tm;
	r.d = conn->dialect;
	r.caps = &conn->caps;
	r.tz = time_zone ? pg_tzset(time_zone) : NULL;
	memset(&and, 0, sizeof(and));
	and.kind = UFDW_FILTER_AND;
	and.args = filters;

	out.text = NULL;
	out.params = NIL;
	out.exact = true;
	if (filters == NIL)
		return out;
	p = render_bool(&r, &and, true);
	out.text = p.text;
	out.params = r.params;
	out.exact = p.text != NULL && p.exact;
	return out;
}

/* Does flt (a tree) test column and nothing else? */
static bool
only_column(const UfdwFilter *flt, int column)
{
	ListCell   *lc;

	switch (flt->kind)
	{
		case UFDW_FILTER_AND:
		case UFDW_FILTER_OR:
		case UFDW_FILTER_NOT:
			foreach(lc, flt->args)
				if (!only_column(lfirst(lc), column))
					return false;
			return flt->args != NIL;
		case UFDW_FILTER_NONE:
			return false;
		default:
			return flt->column == column;
	}
}

/*
 * Renders a scan's filters (of UfdwFilter *, AND-ed) into spec->filter and
 * spec->params; time_zone as for ufdw_render_filter_tz().  A table read through its parent (tm->read_through) sends
 * the filters on the link column alone to the parent collection, as
 * conditions on the parent's key (spec->parent_filter: only those parents
 * are read, e.g. purchaseOrders?$filter=id in (...)), and the others into
 * the expanded children's filter.  Returns whether what was sent is exactly
 * the filters (else it selects a superset).
 */
bool
ufdw_render_scan_filter(const UfdwConnector *conn, const UfdwTableMap *tm, List *filters,
						const char *time_zone, UfdwScanSpec *spec)
{
	const UfdwReadThrough *rt = tm->read_through;
	List	   *own = NIL,
			   *parent = NIL;
	UfdwRendered r,
				pr;
	UfdwTableMap ptm;
	UfdwColumnMap *pcols;
	UfdwField  *key;
	ListCell   *lc;

	spec->parent_filter = NULL;
	if (rt == NULL)
	{
		r = ufdw_render_filter_tz(conn, tm, filters, time_zone);
		spec->filter = r.text;
		spec->params = r.params;
		return r.exact || filters == NIL;
	}
	foreach(lc, filters)
	{
		UfdwFilter *f = lfirst(lc);

		if (only_column(f, rt->link_column))
			parent = lappend(parent, f);
		else
			own = lappend(own, f);
	}

	/* the parents' filter: the link column's field is the parent's key */
	ptm = *tm;
	pcols = palloc(sizeof(UfdwColumnMap) * tm->model->ncolumns);
	memcpy(pcols, tm->columns, sizeof(UfdwColumnMap) * tm->model->ncolumns);
	key = palloc0(sizeof(UfdwField));
	key->name = rt->parent_key;
	pcols[rt->link_column].fields = key;
	ptm.columns = pcols;
	ptm.read_through = NULL;
	pr = ufdw_render_filter_tz(conn, &ptm, parent, time_zone);
	r = ufdw_render_filter_tz(conn, tm, own, time_zone);
	spec->parent_filter = pr.text;
	spec->filter = r.text;
	spec->params = r.params;
	return (pr.exact || parent == NIL) && (r.exact || own == NIL);
}

/*
 * Can the upstream sort by column exactly as PostgreSQL would?  Numbers,
 * dates and instants only (text sorts by an upstream collation, GUIDs and
 * enums in their own order, fields with an ALPHA conversion exit in their
 * padded internal form; a NUMC field read as a number sorts like it).
 * Where what PostgreSQL sees as NULL sorts upstream is the capability
 * null_order: "low" (a null value such as 0001-01-01 sorts first in
 * ascending order: NULLS FIRST with ascending, NULLS LAST with descending;
 * a field with no null value of its type is never NULL), "high" (SQL
 * NULLs, like PostgreSQL's defaults), "unknown" (only columns a condition
 * makes non-NULL).  A connector whose queries are capped (max_results)
 * sorts nothing upstream.
 */
bool
ufdw_sortable(const UfdwConnector *conn, const UfdwTableMap *tm, int column,
			  bool desc, bool nulls_first, bool known_not_null)
{
	const UfdwColumnMap *cm = &tm->columns[column];
	RenderCtx	r;

	/* read through parents, records come in the parents' order */
	if (cm->kind != UFDW_MAP_FIELD || tm->read_through)
		return false;

	/*
	 * A query capped by max_results is continued by key (request.c), which
	 * keeps the order of the key only: a scan that may outgrow one query
	 * cannot be sorted upstream.
	 */
	if (conn->max_results > 0 || conn->max_pages > 0)
		return false;
	switch (cm->native_type)
	{
		case UFDW_NATIVE_DECIMAL:
		case UFDW_NATIVE_INTEGER:
		case UFDW_NATIVE_DATE:
		case UFDW_NATIVE_DATETIME:
		case UFDW_NATIVE_DATETIMEOFFSET:
			break;
		default:
			return false;
	}
	if (known_not_null)
		return true;
	switch (conn->caps.null_order)
	{
		case UFDW_NULLS_HIGH:
			return nulls_first == desc;
		case UFDW_NULLS_LOW:
			memset(&r, 0, sizeof(r));
			r.conn = conn;
			r.d = conn->dialect;
			r.caps = &conn->caps;
			if (null_literals(&r, cm->native_type) == NIL)
				return true;
			return nulls_first != desc;
		case UFDW_NULLS_UNKNOWN:
			break;
	}
	return false;
}

/* "$orderby" value / ORDER BY list for columns (IntList) and descending. */
char *
ufdw_render_orderby(const UfdwConnector *conn, const UfdwTableMap *tm,
					List *columns, List *descending)
{
	StringInfoData buf;
	ListCell   *lc,
			   *ld;
	const UfdwDialect *d = conn->dialect;

	if (columns == NIL)
		return NULL;
	initStringInfo(&buf);
	forboth(lc, columns, ld, descending)
	{
		const UfdwColumnMap *cm = &tm->columns[lfirst_int(lc)];
		const char *f = cm->fields[0].expr ? cm->fields[0].expr : cm->fields[0].name;

		appendStringInfo(&buf, "%s%s %s", buf.len ? d->order_separator : "", f,
						 lfirst_int(ld) ? d->desc : d->asc);
	}

	/*
	 * Offset paging ($skip, offset) over a sort with ties could repeat or
	 * skip records between pages: the key (model column 0, "id") breaks
	 * ties.  An upstream that pages by next links (a skip token) breaks ties
	 * itself.
	 */
	if (conn->caps.paging == UFDW_PAGING_OFFSET && tm->columns[0].kind != UFDW_MAP_RAW)
	{
		const UfdwColumnMap *key = &tm->columns[0];

		for (int i = 0; i < key->nfields; i++)
		{
			const char *f = key->fields[i].expr ? key->fields[i].expr :
				key->fields[i].name;

			appendStringInfo(&buf, "%s%s %s", d->order_separator, f, d->asc);
		}
	}
	return buf.data;
}

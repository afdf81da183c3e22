/*-------------------------------------------------------------------------
 *
 * page.c
 *		Turns one upstream page body into rows of the unified model.
 *
 * The body goes through PostgreSQL's own JSON parser (common/jsonapi.h)
 * once, with semantic actions that find the records array of the dialect's
 * envelope, collect the tokens of the mapped fields of each record, and
 * convert them into the row's Datums when the record's object ends.  No
 * tree is built; a record's tokens live in a small context reset at the
 * start of the next record.  The envelope's paging members (next link,
 * hasMore, count) are collected on the way.
 *
 * Conversion rules (docs/connectors.md): JSON null, a missing field and a
 * text listed in the connector's null_values become NULL; value maps apply
 * to the native text; a dialect's own date/time form (OData V2's
 * "/Date(ms[+-hhmm])/", dialect_odata2.c) becomes dates and instants (UTC);
 * everything else goes through the column type's input
 * function, so a value that does not fit is an error naming the column.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/date.h"
#include "utils/fmgroids.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"
#include "pgtime.h"

#include "compat.h"
#include "dialect.h"

/* A native field the scan reads: its name and the current record's token. */
typedef struct Slot
{
	const char *name;
	char	   *token;			/* NULL: absent from the record */
	JsonTokenType type;
	bool		seen;
} Slot;

struct UfdwConverter
{
	const UfdwTableMap *table;
	const UfdwConnector *connector;
	const char *relname;
	const UfdwEnvelope *env;
	int			natts;
	const int  *attr_column;	/* per attribute: model column or -1 */
	FmgrInfo   *in_funcs;		/* per attribute */
	Oid		   *in_ioparams;
	int32	   *in_typmods;
	char	  **option_values;	/* per attribute, for UFDW_MAP_OPTION */
	int		  **attr_slots;		/* per attribute: slot of each field */

	int			nslots;
	Slot	   *slots;
	int			hash_size;		/* power of two */
	int		   *hash;			/* slot index + 1, 0 = empty */

	/* parse state of the current page */
	JsonLexContext *lex;
	char	   *body;
	int			depth;			/* open containers */
	char	   *keys[UFDW_ENVELOPE_DEPTH + 1];	/* envelope key per depth */
	bool		found_records;
	int			records_depth;	/* depth inside the records array, or 0 */
	/* read_through tables: records sit in an array field of parent records */
	const char *expand;			/* the parents' field holding the records */
	int			parents_depth;	/* depth inside the parents array, or 0 */
	bool		in_parent;		/* inside a parent (outside its records) */
	bool		parent_has_records; /* the current parent had its expand field */
	const char *parent_field;	/* the parent's field being parsed */
	bool		in_record;
	const char *record_start;
	bool		build_raw;		/* build "raw" as jsonb while parsing */
	JsonbPair  *raw_pairs;		/* the record's own fields, in arrival order */
	int			raw_npairs;
	int			raw_maxpairs;
	JsonbParseState *raw_state; /* a field's container under construction */
	JsonbValue *raw_value;		/* the finished record, at its object end */
	uint64		raw_in_array;	/* bit d: the container at depth d is an array */
	/* the order jsonb stores the last record's fields in (see raw_object) */
	MemoryContext cxt;			/* the converter's, for the cached order */
	int			order_nkeys;	/* fields of the record the order is for */
	JsonbValue *order_keys;		/* their names, in arrival order */
	int			order_n;		/* fields kept (duplicates keep the last) */
	int		   *order;			/* arrival index of each kept field, sorted */
	int			cur_slot;		/* slot of the current record field, or -1 */
	const char *cur_field;
	MemoryContext record_cxt;	/* tokens of the current record */
	MemoryContext out_cxt;		/* rows of the page */
	MemoryContext envelope_cxt;
	int			nrows;
	int			maxrows;
	Datum	  **values;
	bool	  **nulls;
	UfdwPageInfo *info;
	pg_tz	   *tz;				/* zone of local_datetime values */
	int			nkey;			/* key fields remembered (max_results), or 0 */
	int		   *key_slots;
	StringInfoData *last_key;	/* the last record's key fields */
	/* for the error context */
	int			err_attr;
	const char *err_value;
};

static uint32
hash_name(const char *s, size_t len)
{
	uint32		h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char) s[i]) * 16777619u;
	return h;
}

/* Slot index of field name, or -1. */
static int
find_slot(const UfdwConverter *conv, const char *name)
{
	size_t		len = strlen(name);
	uint32		mask = conv->hash_size - 1;

	for (uint32 h = hash_name(name, len) & mask;; h = (h + 1) & mask)
	{
		int			s = conv->hash[h] - 1;

		if (s < 0)
			return -1;
		if (strcmp(conv->slots[s].name, name) == 0)
			return s;
	}
}

static int
add_slot(UfdwConverter *conv, const char *name)
{
	int			s = find_slot(conv, name);
	uint32		mask = conv->hash_size - 1;
	uint32		h;

	if (s >= 0)
		return s;
	s = conv->nslots++;
	conv->slots[s].name = name;
	for (h = hash_name(name, strlen(name)) & mask; conv->hash[h]; h = (h + 1) & mask)
		;
	conv->hash[h] = s + 1;
	return s;
}

/*
 * Prepares the conversion of pages of spec's table into tuples of tupdesc.
 * attr_column maps each attribute to its model column (-1: always NULL,
 * e.g. a dropped or unused column).  Attributes are converted with their
 * own type's input function, so a user may declare e.g. numeric as text.
 */
UfdwConverter *
ufdw_make_converter(const UfdwScanSpec *spec, const UfdwOptions *opts,
					TupleDesc tupdesc, const int *attr_column, const char *relname)
{
	UfdwConverter *conv = palloc0(sizeof(UfdwConverter));
	const UfdwTableMap *tm = spec->table;
	int			maxslots = 0;

	conv->table = tm;
	conv->connector = spec->connector;
	conv->relname = pstrdup(relname);
	conv->cxt = CurrentMemoryContext;
	conv->env = &spec->connector->dialect->envelope;
	conv->expand = tm->read_through ? tm->read_through->expand : NULL;
	conv->natts = tupdesc->natts;
	conv->attr_column = attr_column;
	conv->in_funcs = palloc0(sizeof(FmgrInfo) * conv->natts);
	conv->in_ioparams = palloc0(sizeof(Oid) * conv->natts);
	conv->in_typmods = palloc0(sizeof(int32) * conv->natts);
	conv->option_values = palloc0(sizeof(char *) * conv->natts);
	conv->attr_slots = palloc0(sizeof(int *) * conv->natts);

	for (int a = 0; a < conv->natts; a++)
		if (attr_column[a] >= 0)
			maxslots += Max(tm->columns[attr_column[a]].nfields, 1);
	/* a query capped by max_results is followed by one after its last key */
	if ((spec->connector->max_results || spec->connector->max_pages) &&
		tm->columns[0].kind != UFDW_MAP_RAW)
		conv->nkey = tm->columns[0].nfields;
	maxslots += conv->nkey;
	conv->slots = palloc0(sizeof(Slot) * (maxslots + 1));
	conv->hash_size = 8;
	while (conv->hash_size < 4 * (maxslots + 1))
		conv->hash_size *= 2;
	conv->hash = palloc0(sizeof(int) * conv->hash_size);

	for (int a = 0; a < conv->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, a);
		const UfdwColumnMap *cm;
		Oid			infunc;

		if (attr_column[a] < 0)
			continue;
		cm = &tm->columns[attr_column[a]];
		getTypeInputInfo(att->atttypid, &infunc, &conv->in_ioparams[a]);
		fmgr_info(infunc, &conv->in_funcs[a]);
		conv->in_typmods[a] = att->atttypmod;
		conv->attr_slots[a] = palloc0(sizeof(int) * Max(cm->nfields, 1));
		for (int f = 0; f < cm->nfields; f++)
			conv->attr_slots[a][f] = add_slot(conv, cm->fields[f].name);
		if (cm->kind == UFDW_MAP_OPTION)
			conv->option_values[a] = ufdw_option_value(opts->server_options, cm->option);
		/* a jsonb "raw" is built from the page's own parse, not parsed again */
		if (cm->kind == UFDW_MAP_RAW && conv->in_funcs[a].fn_oid == F_JSONB_IN)
			conv->build_raw = true;
	}
	if (conv->nkey > 0)
	{
		conv->key_slots = palloc(sizeof(int) * conv->nkey);
		conv->last_key = palloc(sizeof(StringInfoData) * conv->nkey);
		for (int k = 0; k < conv->nkey; k++)
		{
			conv->key_slots[k] = add_slot(conv, tm->columns[0].fields[k].name);
			initStringInfo(&conv->last_key[k]);
		}
	}
	conv->tz = pg_tzset(ufdw_time_zone(opts));
	if (conv->tz == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("server \"%s\" has an unknown time zone \"%s\"",
						opts->server_name, ufdw_time_zone(opts)),
				 errhint("ALTER SERVER %s OPTIONS (SET time_zone '...') with a name from pg_timezone_names.",
						 quote_identifier(opts->server_name))));
	conv->record_cxt = AllocSetContextCreate(CurrentMemoryContext,
											 "unified_fdw record",
											 ALLOCSET_SMALL_SIZES);
	return conv;
}

static bool
path_is(const UfdwConverter *conv, const char *const *path, int depth)
{
	int			len = 0;

	while (len < UFDW_ENVELOPE_DEPTH && path[len])
		len++;
	if (len == 0 || len != depth)
		return false;
	for (int i = 0; i < len; i++)
		if (conv->keys[i + 1] == NULL || strcmp(conv->keys[i + 1], path[i]) != 0)
			return false;
	return true;
}

static void
conversion_error_callback(void *arg)
{
	UfdwConverter *conv = arg;

	if (conv->err_attr >= 0)
		errcontext("column \"%s\" of foreign table \"%s\", native value \"%.100s\"",
				   conv->table->model->columns[conv->attr_column[conv->err_attr]].name,
				   conv->relname, conv->err_value ? conv->err_value : "");
}

/*
 * A date or instant in the dialect's own form (UfdwDialect.native_datetime)
 * for attribute a, of a column read by its type's plain input function:
 * true and *result set, or false (then read text as usual).
 */
static bool
native_datetime(UfdwConverter *conv, int a, UfdwColType type, const char *text,
				Datum *result)
{
	const UfdwDialect *d = conv->connector->dialect;

	if (d->native_datetime == NULL ||
		(type != UFDW_TYPE_DATE && type != UFDW_TYPE_TIMESTAMPTZ) ||
		conv->in_funcs[a].fn_oid != (type == UFDW_TYPE_DATE ? F_DATE_IN : F_TIMESTAMPTZ_IN))
		return false;
	return d->native_datetime(text, type, result);
}

static bool
is_null_value(const UfdwConverter *conv, const char *s)
{
	for (int i = 0; i < conv->connector->nnull_values; i++)
		if (strcmp(conv->connector->null_values[i], s) == 0)
			return true;
	return false;
}

/* The native text of a field: NULL for absent, JSON null or a null value. */
static const char *
slot_text(UfdwConverter *conv, int s)
{
	Slot	   *slot = &conv->slots[s];

	if (slot->token == NULL || slot->type == JSON_TOKEN_NULL)
		return NULL;
	if (slot->type == JSON_TOKEN_STRING && is_null_value(conv, slot->token))
		return NULL;
	return slot->token;
}

/*
 * A wall-clock "YYYY-MM-DDTHH:MI:SS" in the server's time zone as an
 * instant, as PostgreSQL reads such a time itself (DetermineTimeZoneOffset):
 * a time in a spring-forward gap reads with the offset before the change, a
 * time in the repeated hour of a fall-back with the offset after it (the
 * upstream cannot tell its two passes apart).
 */
static Datum
local_datetime(UfdwConverter *conv, const char *text)
{
	struct pg_tm tm = {0};
	int			n = 0;
	int			tz;
	TimestampTz result;

	if (strlen(text) != 19 ||
		sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 || n != 19 ||
		text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' ||
		text[16] != ':' || strspn(text, "0123456789-T:") != 19)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_DATETIME_FORMAT),
				 errmsg("invalid wall-clock date and time \"%.40s\" for foreign table \"%s\"",
						text, conv->relname),
				 errdetail("Expected YYYY-MM-DDTHH:MI:SS.")));
	if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
		tm.tm_mday > day_tab[isleap(tm.tm_year)][tm.tm_mon - 1] ||
		tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 59 || tm.tm_year < 1 ||
		!IS_VALID_JULIAN(tm.tm_year, tm.tm_mon, tm.tm_mday))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("date/time value \"%.40s\" out of range for foreign table \"%s\"",
						text, conv->relname)));
	tz = DetermineTimeZoneOffset(&tm, conv->tz);
	if (tm2timestamp(&tm, 0, &tz, &result) != 0 || !IS_VALID_TIMESTAMP(result))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("date/time value \"%.40s\" out of range for foreign table \"%s\"",
						text, conv->relname)));
	return TimestampTzGetDatum(result);
}

/* Keeps the key fields of the record just converted (max_results paging). */
static void
remember_key(UfdwConverter *conv)
{
	for (int k = 0; k < conv->nkey; k++)
	{
		const Slot *slot = &conv->slots[conv->key_slots[k]];

		resetStringInfo(&conv->last_key[k]);
		if (slot->token)
			appendStringInfoString(&conv->last_key[k], slot->token);
	}
}

/* Converts the current record into the next row of the page. */
static void
finish_record(UfdwConverter *conv)
{
	Datum	   *values;
	bool	   *nulls;
	ErrorContextCallback errcb;
	MemoryContext old = MemoryContextSwitchTo(conv->out_cxt);

	CHECK_FOR_INTERRUPTS();
	if (conv->nrows == conv->maxrows)
	{
		conv->maxrows *= 2;
		conv->values = repalloc(conv->values, sizeof(Datum *) * conv->maxrows);
		conv->nulls = repalloc(conv->nulls, sizeof(bool *) * conv->maxrows);
	}
	values = palloc(sizeof(Datum) * conv->natts);
	nulls = palloc(sizeof(bool) * conv->natts);

	errcb.callback = conversion_error_callback;
	errcb.arg = conv;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	for (int a = 0; a < conv->natts; a++)
	{
		int			c = conv->attr_column[a];
		const UfdwColumnMap *cm;
		const char *text = NULL;
		UfdwColType type;

		nulls[a] = true;
		values[a] = (Datum) 0;
		if (c < 0)
			continue;
		cm = &conv->table->columns[c];
		type = conv->table->model->columns[c].type;
		conv->err_attr = a;
		conv->err_value = NULL;

		switch (cm->kind)
		{
			case UFDW_MAP_NULL:
				continue;
			case UFDW_MAP_RAW:
				if (conv->build_raw && conv->in_funcs[a].fn_oid == F_JSONB_IN)
				{
					values[a] = JsonbPGetDatum(JsonbValueToJsonb(conv->raw_value));
					nulls[a] = false;
					continue;
				}
				text = pnstrdup(conv->record_start,
								conv->lex->prev_token_terminator - conv->record_start);
				break;
			case UFDW_MAP_OPTION:
				text = conv->option_values[a];
				break;
			case UFDW_MAP_FIELD:
				text = slot_text(conv, conv->attr_slots[a][0]);
				break;
			case UFDW_MAP_CONCAT:
				{
					StringInfoData buf;

					initStringInfo(&buf);
					for (int f = 0; f < cm->nfields; f++)
					{
						const char *part = slot_text(conv, conv->attr_slots[a][f]);

						if (part == NULL)
						{
							buf.data = NULL;
							break;
						}
						if (f > 0)
							appendStringInfoString(&buf, cm->separator);
						appendStringInfoString(&buf, part);
					}
					text = buf.data;
				}
				break;
			case UFDW_MAP_ANY_TRUE:
				text = "false";
				for (int f = 0; f < cm->nfields; f++)
				{
					const char *part = slot_text(conv, conv->attr_slots[a][f]);

					if (part && strcmp(part, "true") == 0)
						text = "true";
				}
				break;
		}
		if (text == NULL)
			continue;
		conv->err_value = text;

		if (cm->nmap > 0)
		{
			int			m;

			for (m = 0; m < cm->nmap; m++)
				if (strcmp(cm->map_from[m], text) == 0)
					break;
			if (m < cm->nmap)
				text = cm->map_to[m];
			else if (cm->has_default)
				text = cm->map_default;
			else
				text = NULL;	/* unknown native code: documented as NULL */
			if (text == NULL)
				continue;
		}

		if (cm->native_type == UFDW_NATIVE_LOCAL_DATETIME &&
			type == UFDW_TYPE_TIMESTAMPTZ &&
			conv->in_funcs[a].fn_oid == F_TIMESTAMPTZ_IN)
			values[a] = local_datetime(conv, text);
		else if (!native_datetime(conv, a, type, text, &values[a]))
			values[a] = InputFunctionCall(&conv->in_funcs[a], (char *) text,
										  conv->in_ioparams[a], conv->in_typmods[a]);
		nulls[a] = false;
	}
	error_context_stack = errcb.previous;
	conv->err_attr = -1;

	conv->values[conv->nrows] = values;
	conv->nulls[conv->nrows] = nulls;
	conv->nrows++;
	MemoryContextSwitchTo(old);
}

static void
pg_attribute_noreturn()
shape_error(UfdwConverter *conv, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
			 errmsg("unexpected response shape for foreign table \"%s\": %s",
					conv->relname, what)));
}

/*
 * Building "raw": the record's tokens become a JsonbValue tree as they are
 * parsed, so the record is lexed once; allocations go to the record
 * context, and finish_record() converts the tree to jsonb.  A container
 * inside the record is built with pushJsonbValue, as jsonb_in does.  The
 * record's own fields, though, are collected in arrival order and put into
 * jsonb's order (keys by length, then bytes; of duplicates the last wins)
 * by raw_object(): records of a page almost always carry the same fields in
 * the same order, so the order found for one record is reused for the next
 * after a check that the names match, instead of sorting every record's
 * fields again (the sort was a quarter of a SELECT *'s time).
 */
#define RAW_MAX_DEPTH 63
/* as jsonb's own limit on an object's pairs (jsonb_util.c) */
#define RAW_MAX_PAIRS ((int) Min(MaxAllocSize / sizeof(JsonbPair), JB_CMASK))

static int
compare_raw_keys(const void *a, const void *b, void *arg)
{
	const JsonbPair *pairs = arg;
	int			ia = *(const int *) a;
	int			ib = *(const int *) b;
	const JsonbValue *ka = &pairs[ia].key;
	const JsonbValue *kb = &pairs[ib].key;

	if (ka->val.string.len != kb->val.string.len)
		return ka->val.string.len > kb->val.string.len ? 1 : -1;
	if (ka->val.string.len > 0)
	{
		int			r = memcmp(ka->val.string.val, kb->val.string.val, ka->val.string.len);

		if (r != 0)
			return r;
	}
	return ia > ib ? -1 : 1;	/* a later duplicate first: it is kept */
}

static bool
raw_key_equal(const JsonbValue *a, const JsonbValue *b)
{
	return a->val.string.len == b->val.string.len &&
		memcmp(a->val.string.val, b->val.string.val, a->val.string.len) == 0;
}

/* Finds jsonb's order of the current record's fields and caches it. */
static void
raw_find_order(UfdwConverter *conv)
{
	int			n = conv->raw_npairs;
	int		   *idx;
	int			m = 0;
	size_t		bytes = 0;
	char	   *names;
	MemoryContext old;

	idx = palloc(sizeof(int) * Max(n, 1));
	for (int i = 0; i < n; i++)
		idx[i] = i;
	qsort_arg(idx, n, sizeof(int), compare_raw_keys, conv->raw_pairs);

	if (conv->order_keys)
	{
		pfree(conv->order_keys);
		pfree(conv->order);
	}
	old = MemoryContextSwitchTo(conv->cxt);
	for (int i = 0; i < n; i++)
		bytes += conv->raw_pairs[i].key.val.string.len;
	conv->order_keys = palloc(sizeof(JsonbValue) * Max(n, 1) + bytes);
	conv->order = palloc(sizeof(int) * Max(n, 1));
	MemoryContextSwitchTo(old);
	names = (char *) (conv->order_keys + Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		JsonbValue *k = &conv->order_keys[i];

		*k = conv->raw_pairs[i].key;
		memcpy(names, k->val.string.val, k->val.string.len);
		k->val.string.val = names;
		names += k->val.string.len;
	}
	for (int i = 0; i < n; i++)
		if (m == 0 || !raw_key_equal(&conv->raw_pairs[idx[i]].key,
									 &conv->raw_pairs[conv->order[m - 1]].key))
			conv->order[m++] = idx[i];
	conv->order_nkeys = n;
	conv->order_n = m;
	pfree(idx);
}

/* The record's object, its fields in jsonb's order. */
static JsonbValue *
raw_object(UfdwConverter *conv)
{
	JsonbValue *obj = palloc(sizeof(JsonbValue));
	JsonbPair  *pairs;
	bool		same = conv->order_keys && conv->order_nkeys == conv->raw_npairs;

	for (int i = 0; same && i < conv->raw_npairs; i++)
		same = raw_key_equal(&conv->raw_pairs[i].key, &conv->order_keys[i]);
	if (!same)
		raw_find_order(conv);
	pairs = palloc(sizeof(JsonbPair) * Max(conv->order_n, 1));
	for (int i = 0; i < conv->order_n; i++)
	{
		pairs[i] = conv->raw_pairs[conv->order[i]];
		pairs[i].order = i;
	}
	obj->type = jbvObject;
	obj->val.object.nPairs = conv->order_n;
	obj->val.object.pairs = pairs;
	return obj;
}

/* Adds the value of the record's field whose key came last. */
static void
raw_add_value(UfdwConverter *conv, const JsonbValue *v)
{
	conv->raw_pairs[conv->raw_npairs++].value = *v;
}

static void
raw_push_container(UfdwConverter *conv, JsonbIteratorToken token)
{
	JsonbValue *v;
	int			d = conv->depth - conv->records_depth;

	if (token == WJB_BEGIN_OBJECT || token == WJB_BEGIN_ARRAY)
	{
		if (d > RAW_MAX_DEPTH)
			shape_error(conv, "a record is nested too deeply");
		if (token == WJB_BEGIN_ARRAY)
			conv->raw_in_array |= UINT64CONST(1) << d;
		else
			conv->raw_in_array &= ~(UINT64CONST(1) << d);
		if (d == 0)
		{
			/* the record itself */
			conv->raw_npairs = 0;
			return;
		}
		if (d == 1)
			conv->raw_state = NULL; /* a field's value */
		(void) pushJsonbValue(&conv->raw_state, token, NULL);
		return;
	}
	if (d == 0)
	{
		conv->raw_value = raw_object(conv);
		return;
	}
	v = pushJsonbValue(&conv->raw_state, token, NULL);
	if (d == 1)
		raw_add_value(conv, v);
}

static void
raw_push_key(UfdwConverter *conv, char *fname)
{
	JsonbValue	key;

	key.type = jbvString;
	key.val.string.val = fname;
	key.val.string.len = strlen(fname);
	if (key.val.string.len > JENTRY_OFFLENMASK)
		shape_error(conv, "a key is too long for jsonb");
	if (conv->depth > conv->records_depth + 1)
	{
		(void) pushJsonbValue(&conv->raw_state, WJB_KEY, &key);
		return;
	}
	if (conv->raw_npairs == conv->raw_maxpairs)
	{
		/* in the record context, reset with each record */
		if (conv->raw_maxpairs > RAW_MAX_PAIRS / 2)
			shape_error(conv, "a record has too many fields for jsonb");
		conv->raw_maxpairs = Max(64, conv->raw_maxpairs * 2);
		conv->raw_pairs = conv->raw_npairs == 0 ?
			palloc(sizeof(JsonbPair) * conv->raw_maxpairs) :
			repalloc(conv->raw_pairs, sizeof(JsonbPair) * conv->raw_maxpairs);
	}
	conv->raw_pairs[conv->raw_npairs].key = key;
}

static void
raw_push_scalar(UfdwConverter *conv, char *token, JsonTokenType type)
{
	JsonbValue	v;
	int			d = conv->depth - conv->records_depth - 1;

	switch (type)
	{
		case JSON_TOKEN_STRING:
			if (strlen(token) > JENTRY_OFFLENMASK)
				shape_error(conv, "a string is too long for jsonb");
			v.type = jbvString;
			v.val.string.val = token;
			v.val.string.len = strlen(token);
			break;
		case JSON_TOKEN_NUMBER:
			v.type = jbvNumeric;
			v.val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
																CStringGetDatum(token),
																ObjectIdGetDatum(InvalidOid),
																Int32GetDatum(-1)));
			break;
		case JSON_TOKEN_TRUE:
		case JSON_TOKEN_FALSE:
			v.type = jbvBool;
			v.val.boolean = type == JSON_TOKEN_TRUE;
			break;
		default:
			v.type = jbvNull;
			break;
	}
	if (d == 0)
		raw_add_value(conv, &v);
	else
		(void) pushJsonbValue(&conv->raw_state,
							  (conv->raw_in_array >> d) & 1 ? WJB_ELEM : WJB_VALUE, &v);
}

static UFDW_JSON_ACTION
on_object_start(void *state)
{
	UfdwConverter *conv = state;

	if (conv->in_record)
	{
		if (conv->depth == conv->records_depth + 1 && conv->cur_slot >= 0)
			shape_error(conv, psprintf("field \"%s\" holds an object, not a value",
									   conv->cur_field));
		if (conv->build_raw)
			raw_push_container(conv, WJB_BEGIN_OBJECT);
	}
	else if (conv->records_depth > 0 && conv->depth == conv->records_depth)
	{
		/* a record begins: forget the previous one's tokens */
		MemoryContextReset(conv->record_cxt);
		MemoryContextSwitchTo(conv->record_cxt);
		for (int s = 0; s < conv->nslots; s++)
		{
			conv->slots[s].token = NULL;
			conv->slots[s].seen = false;
		}
		conv->in_record = true;
		conv->record_start = conv->lex->token_start;
		conv->cur_slot = -1;
		if (conv->build_raw)
		{
			conv->raw_maxpairs = 0; /* raw_pairs went with the reset */
			raw_push_container(conv, WJB_BEGIN_OBJECT);
		}
	}
	else if (conv->parents_depth > 0 && conv->depth == conv->parents_depth)
	{
		/* a parent begins; its records come in its expand field */
		conv->in_parent = true;
		conv->parent_has_records = false;
		conv->parent_field = NULL;
	}
	conv->depth++;
	UFDW_JSON_ACTION_RETURN;
}

static UFDW_JSON_ACTION
on_object_end(void *state)
{
	UfdwConverter *conv = state;

	conv->depth--;
	if (conv->in_record && conv->build_raw)
		raw_push_container(conv, WJB_END_OBJECT);
	if (conv->in_record && conv->depth == conv->records_depth)
	{
		finish_record(conv);
		remember_key(conv);
		conv->in_record = false;
		MemoryContextSwitchTo(conv->envelope_cxt);
	}
	else if (!conv->in_record && conv->in_parent && conv->depth == conv->parents_depth)
	{
		/* a parent without its records would silently lose them */
		if (!conv->parent_has_records)
			shape_error(conv, psprintf("a parent record has no \"%s\" array", conv->expand));
		conv->in_parent = false;
	}
	else if (!conv->in_record && conv->depth < UFDW_ENVELOPE_DEPTH)
		conv->keys[conv->depth + 1] = NULL;
	UFDW_JSON_ACTION_RETURN;
}

static UFDW_JSON_ACTION
on_array_start(void *state)
{
	UfdwConverter *conv = state;

	if (conv->in_record)
	{
		if (conv->depth == conv->records_depth + 1 && conv->cur_slot >= 0)
			shape_error(conv, psprintf("field \"%s\" holds an array, not a value",
									   conv->cur_field));
		if (conv->build_raw)
			raw_push_container(conv, WJB_BEGIN_ARRAY);
	}
	else if (conv->in_parent && conv->records_depth == 0 &&
			 conv->depth == conv->parents_depth + 1)
	{
		if (conv->parent_field && strcmp(conv->parent_field, conv->expand) == 0)
		{
			conv->parent_has_records = true;
			conv->records_depth = conv->depth + 1;
		}
	}
	else if (conv->records_depth == 0 && conv->parents_depth == 0 &&
			 path_is(conv, conv->env->records, conv->depth))
	{
		if (conv->found_records)
			shape_error(conv, "more than one records array");
		conv->found_records = true;
		if (conv->expand)
			conv->parents_depth = conv->depth + 1;
		else
			conv->records_depth = conv->depth + 1;
	}
	conv->depth++;
	UFDW_JSON_ACTION_RETURN;
}

static UFDW_JSON_ACTION
on_array_end(void *state)
{
	UfdwConverter *conv = state;

	conv->depth--;
	if (conv->in_record && conv->build_raw)
		raw_push_container(conv, WJB_END_ARRAY);
	if (!conv->in_record && conv->records_depth > 0 &&
		conv->depth == conv->records_depth - 1)
		conv->records_depth = 0;
	else if (!conv->in_record && !conv->in_parent && conv->parents_depth > 0 &&
			 conv->depth == conv->parents_depth - 1)
		conv->parents_depth = 0;
	UFDW_JSON_ACTION_RETURN;
}

static UFDW_JSON_ACTION
on_field_start(void *state, char *fname, bool isnull)
{
	UfdwConverter *conv = state;

	if (conv->in_record)
	{
		if (conv->build_raw)
			raw_push_key(conv, fname);
		if (conv->depth == conv->records_depth + 1)
		{
			conv->cur_slot = find_slot(conv, fname);
			conv->cur_field = fname;
			if (conv->cur_slot >= 0)
			{
				if (conv->slots[conv->cur_slot].seen)
					ereport(ERROR,
							(errcode(ERRCODE_DUPLICATE_JSON_OBJECT_KEY_VALUE),
							 errmsg("duplicate field \"%s\" in a record for foreign table \"%s\"",
									fname, conv->relname)));
				conv->slots[conv->cur_slot].seen = true;
			}
		}
	}
	else if (conv->in_parent && conv->depth == conv->parents_depth + 1)
	{
		size_t		elen = strlen(conv->expand);

		conv->parent_field = fname;
		if (strcmp(fname, conv->expand) == 0 && conv->parent_has_records)
			shape_error(conv, psprintf("a parent record has two \"%s\" arrays", conv->expand));
		/* a server-paged expansion: its records go on elsewhere */
		if (strncmp(fname, conv->expand, elen) == 0 && conv->env->next_link[0] &&
			strcmp(fname + elen, conv->env->next_link[0]) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_ERROR),
					 errmsg("the upstream sent only part of the \"%s\" of a record for foreign table \"%s\"",
							conv->expand, conv->relname),
					 errdetail("The expanded \"%s\" carries a next link (\"%s\"), which unified_fdw does not follow; no partial table is returned.",
							   conv->expand, fname),
					 errhint("Report this upstream behaviour to the unified_fdw maintainers.")));
	}
	else if (conv->depth <= UFDW_ENVELOPE_DEPTH)
	{
		conv->keys[conv->depth] = fname;
		for (int d = conv->depth + 1; d <= UFDW_ENVELOPE_DEPTH; d++)
			conv->keys[d] = NULL;
	}
	UFDW_JSON_ACTION_RETURN;
}

static UFDW_JSON_ACTION
on_scalar(void *state, char *token, JsonTokenType tokentype)
{
	UfdwConverter *conv = state;

	if (conv->in_record)
	{
		if (conv->depth == conv->records_depth + 1 && conv->cur_slot >= 0)
		{
			conv->slots[conv->cur_slot].token = token;
			conv->slots[conv->cur_slot].type = tokentype;
		}
		if (conv->build_raw)
			raw_push_scalar(conv, token, tokentype);
	}
	else if (conv->records_depth > 0 && conv->depth == conv->records_depth)
		shape_error(conv, "a record is not an object");
	else if (conv->parents_depth > 0 && !conv->in_parent && conv->depth == conv->parents_depth)
		shape_error(conv, "a parent record is not an object");
	else if (conv->in_parent && conv->depth == conv->parents_depth + 1 &&
			 conv->parent_field && strcmp(conv->parent_field, conv->expand) == 0)
		shape_error(conv, psprintf("the \"%s\" of a parent record is not an array",
								   conv->expand));
	else if (path_is(conv, conv->env->next_link, conv->depth))
	{
		if (conv->info->next_link)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_JSON_OBJECT_KEY_VALUE),
					 errmsg("duplicate next-page link in a response for foreign table \"%s\"",
							conv->relname)));
		if (tokentype == JSON_TOKEN_STRING)
			conv->info->next_link = MemoryContextStrdup(conv->out_cxt, token);
		else if (tokentype != JSON_TOKEN_NULL)
			shape_error(conv, "the next-page link is not a string");
	}
	else if (path_is(conv, conv->env->has_more, conv->depth))
		conv->info->has_more = tokentype == JSON_TOKEN_TRUE;
	else if (path_is(conv, conv->env->count, conv->depth))
	{
		char	   *end;

		errno = 0;
		conv->info->total_count = strtoll(token, &end, 10);
		/* a count that is no count (or a negative one) is no count */
		if (errno || *end || end == token || conv->info->total_count < 0)
			conv->info->total_count = -1;
	}
	UFDW_JSON_ACTION_RETURN;
}

/*
 * Finds the key of the value that starts at value in body: a value is
 * preceded by "key" and a colon.  Sets *flen and returns the key's first
 * character, or NULL when the text before value is not of that shape.
 */
static const char *
value_key(const char *body, const char *value, int *flen)
{
	const char *p = value - 1;

	while (p > body && isspace((unsigned char) *p))
		p--;
	if (p > body && *p == ':')
	{
		p--;
		while (p > body && isspace((unsigned char) *p))
			p--;
		if (p > body && *p == '"')
		{
			const char *end = p;

			p--;
			while (p >= body && *p != '"' && *p != '\\' && end - p <= 100)
				p--;
			if (p >= body && *p == '"')
			{
				*flen = (int) (end - p - 1);
				return p + 1;
			}
		}
	}
	return NULL;
}

/*
 * Raises the ERROR for a page the JSON parser rejected.  A NUL character
 * (\\u0000) is 22P05, like PostgreSQL's own json functions; inside a
 * record the field and record number are named.
 */
static void
pg_attribute_noreturn()
json_error(UfdwConverter *conv, JsonParseErrorType rc)
{
	bool		untranslatable = rc == JSON_UNICODE_CODE_POINT_ZERO;
	const char *detail = json_errdetail(rc, conv->lex);
	const char *field = NULL;
	int			flen = 0;

	/* the lexer fails on a value before its field is reported */
	if (conv->in_record && conv->lex->token_start &&
		conv->lex->token_start > conv->body)
		field = value_key(conv->body, conv->lex->token_start, &flen);
	if (field)
		ereport(ERROR,
				(errcode(untranslatable ? ERRCODE_UNTRANSLATABLE_CHARACTER :
						 ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("invalid JSON in field \"%.*s\" of record %d for foreign table \"%s\"",
						flen, field, conv->nrows + 1, conv->relname),
				 errdetail("%.300s", detail)));
	ereport(ERROR,
			(errcode(untranslatable ? ERRCODE_UNTRANSLATABLE_CHARACTER :
					 ERRCODE_FDW_INVALID_DATA_TYPE),
			 errmsg("invalid JSON in response for foreign table \"%s\"", conv->relname),
			 errdetail("%.300s", detail)));
}

/*
 * Raises 22021 for a page that is not valid UTF-8 (the first valid bytes of
 * body are valid), naming the field whose string value holds the bad bytes
 * (found in the text: the value's opening quote, a colon, "key").
 */
static void
pg_attribute_noreturn()
encoding_error(UfdwConverter *conv, const char *body, size_t len, int valid)
{
	const char *bad = body + valid;
	const char *p = bad - 1;
	const char *field = NULL;
	int			flen = 0;
	int			l = Min(pg_encoding_mblen_bounded(PG_UTF8, bad), (int) (len - valid));
	StringInfoData bytes;

	initStringInfo(&bytes);
	for (int i = 0; i < Max(l, 1); i++)
		appendStringInfo(&bytes, "%s0x%02x", i ? " " : "", (unsigned char) bad[i]);

	/* back to the opening quote of the string (at most 1000 bytes) */
	while (p >= body && bad - p <= 1000 && !(*p == '"' && (p == body || p[-1] != '\\')))
		p--;
	if (p > body && *p == '"')
		field = value_key(body, p, &flen);
	if (field)
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("invalid UTF-8 in field \"%.*s\" for foreign table \"%s\"",
						flen, field, conv->relname),
				 errdetail("invalid byte sequence for encoding \"UTF8\": %s", bytes.data)));
	ereport(ERROR,
			(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
			 errmsg("invalid UTF-8 in response for foreign table \"%s\"", conv->relname),
			 errdetail("invalid byte sequence for encoding \"UTF8\": %s", bytes.data)));
}

/*
 * Parses one page.  body must stay valid until the rows are no longer
 * needed (raw values are copied, other values are converted).  Rows are
 * allocated in the current memory context.
 */
void
ufdw_parse_page(UfdwConverter *conv, char *body, size_t len,
				int *nrows, Datum ***values, bool ***nulls, UfdwPageInfo *info)
{
	JsonSemAction sem = {0};
	JsonParseErrorType rc;
	char	   *text;
	int			valid;

	if (len > (size_t) MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("response for foreign table \"%s\" is too large", conv->relname)));

	/* validate UTF-8 (and convert, in a non-UTF-8 database) */
	valid = pg_encoding_verifymbstr(PG_UTF8, body, (int) len);
	if (valid < (int) len)
		encoding_error(conv, body, len, valid);
	text = GetDatabaseEncoding() == PG_UTF8 ? body :
		pg_any_to_server(body, (int) len, PG_UTF8);
	if (text != body)
		len = strlen(text);

	memset(info, 0, sizeof(*info));
	info->total_count = -1;
	conv->info = info;
	conv->body = text;
	conv->depth = 0;
	memset(conv->keys, 0, sizeof(conv->keys));
	conv->found_records = false;
	conv->records_depth = 0;
	conv->parents_depth = 0;
	conv->in_parent = false;
	conv->in_record = false;
	conv->err_attr = -1;
	conv->out_cxt = CurrentMemoryContext;
	conv->envelope_cxt = CurrentMemoryContext;
	conv->nrows = 0;
	conv->maxrows = 64;
	conv->values = palloc(sizeof(Datum *) * conv->maxrows);
	conv->nulls = palloc(sizeof(bool *) * conv->maxrows);

	conv->lex = ufdw_make_json_lex(text, len, true);
	sem.semstate = conv;
	sem.object_start = on_object_start;
	sem.object_end = on_object_end;
	sem.array_start = on_array_start;
	sem.array_end = on_array_end;
	sem.object_field_start = on_field_start;
	sem.scalar = on_scalar;

	rc = pg_parse_json(conv->lex, &sem);
	MemoryContextSwitchTo(conv->out_cxt);

	if (rc != JSON_SUCCESS)
		json_error(conv, rc);
	if (!conv->found_records)
	{
		const char *const *p = conv->env->records;

		shape_error(conv, psprintf("no \"%s%s%s\" array of records",
								   p[0], p[1] ? "." : "", p[1] ? p[1] : ""));
	}
	MemoryContextReset(conv->record_cxt);
	info->nrecords = conv->nrows;
	if (conv->nkey > 0 && conv->nrows > 0)
		for (int k = 0; k < conv->nkey; k++)
			info->last_key = lappend(info->last_key, pstrdup(conv->last_key[k].data));
	*nrows = conv->nrows;
	*values = conv->values;
	*nulls = conv->nulls;
}

/*-------------------------------------------------------------------------
 *
 * ufdw_fuzz.c
 *		libFuzzer targets for the connector engine, run inside a backend.
 *
 * The engine (page.c, deparse.c) needs the PostgreSQL backend (its JSON
 * parser, input functions, jsonb, ereport), so the targets run inside one:
 * this module holds the engine sources built with coverage and sanitizer
 * instrumentation plus libFuzzer, and the SQL function
 *
 *	 ufdw_fuzz(target text, connector_dir text, args text[]) returns int
 *
 * hands the backend to LLVMFuzzerRunDriver() with args as its command line.
 * libFuzzer exits the process when it is done (status 0) or when it finds
 * a crash, a sanitizer report, a timeout or a property violation (abort()),
 * after writing the input as an artifact.  test/fuzz/run drives it.
 *
 * Targets:
 *	 page	byte 0 picks the system, byte 1 the table; the rest is a page
 *			body converted as a scan of all the table's columns would
 *	 filter	the bytes decode into a bounded filter tree (and sort keys)
 *			over the table's model columns, rendered for every system
 *
 * Each input runs in an internal subtransaction and a memory context reset
 * afterwards: an ERROR for bad input is an expected outcome, except an
 * internal error (XX000), which is a bug.  The properties checked are
 * listed at check_rows() and check_rendered().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "access/tupdesc.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/ilist.h"
#include "mb/pg_wchar.h"
#include "nodes/makefuncs.h"
#include "nodes/value.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "dialect.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(ufdw_fuzz);

extern int	LLVMFuzzerRunDriver(int *argc, char ***argv,
								int (*cb) (const uint8_t *data, size_t size));

/* The systems, in the order the selector byte counts them. */
static const char *const connector_files[] = {
	"dynamics365_bc.json", "sap_s4hana.json", "netsuite.json"
};
#define NCONN lengthof(connector_files)

static UfdwModel *model;
static UfdwConnector *conns[NCONN];
static MemoryContext input_cxt;		/* reset after every input */
static MemoryContext guard_cxt;		/* the same, for what the subtransaction
									 * and error handling leave behind */
static const char *company_id = "bb6d48b6-c7b2-4a38-9a93-ad5506407f12";

/* A property violation: print it and abort() so libFuzzer keeps the input. */
static void
pg_attribute_noreturn()
violation(const char *fmt,...)
pg_attribute_printf(1, 2);

static void
violation(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "ufdw_fuzz: property violated: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	abort();
}

/* ----------------------------------------------------------------
 * A memory context ASan can check
 * ----------------------------------------------------------------
 *
 * An AllocSet carves chunks out of large malloc'd blocks, so ASan cannot
 * see a read or write past the end of a palloc'd chunk.  In this context
 * every chunk is its own allocation from ASan's allocator (called directly:
 * the runtime is loaded with this module, after libc, so "malloc" here is
 * libc's), with ASan's redzones around it and freed memory quarantined.
 * The engine sources are compiled with AllocSetContextCreateInternal
 * renamed to ufdw_fuzz_context_create (Makefile), so the contexts page.c
 * makes are of this kind too; the harness runs every input in one.
 */

extern void *__interceptor_malloc(size_t size);
extern void *__interceptor_realloc(void *ptr, size_t size);
extern void __interceptor_free(void *ptr);

typedef struct CheckedChunk
{
	dlist_node	node;			/* in the context's list of chunks */
	Size		size;			/* as requested */
	MemoryContext context;		/* last: GetMemoryChunkContext() reads it */
} CheckedChunk;

typedef struct CheckedContext
{
	MemoryContextData header;
	dlist_head	chunks;
} CheckedContext;

#define CHUNK_OF(ptr) ((CheckedChunk *) (ptr) - 1)

static void *
checked_alloc(MemoryContext context, Size size)
{
	CheckedContext *cxt = (CheckedContext *) context;
	CheckedChunk *chunk = __interceptor_malloc(sizeof(CheckedChunk) + size);

	if (chunk == NULL)
		return NULL;
	chunk->size = size;
	chunk->context = context;
	dlist_push_tail(&cxt->chunks, &chunk->node);
	context->mem_allocated += size;
	return chunk + 1;
}

static void
checked_free(MemoryContext context, void *pointer)
{
	CheckedChunk *chunk = CHUNK_OF(pointer);

	dlist_delete(&chunk->node);
	context->mem_allocated -= chunk->size;
	__interceptor_free(chunk);
}

static void *
checked_realloc(MemoryContext context, void *pointer, Size size)
{
	CheckedContext *cxt = (CheckedContext *) context;
	CheckedChunk *chunk = CHUNK_OF(pointer);
	CheckedChunk *moved;

	dlist_delete(&chunk->node);
	moved = __interceptor_realloc(chunk, sizeof(CheckedChunk) + size);
	if (moved == NULL)
	{
		dlist_push_tail(&cxt->chunks, &chunk->node);
		return NULL;
	}
	context->mem_allocated += size - moved->size;
	moved->size = size;
	dlist_push_tail(&cxt->chunks, &moved->node);
	return moved + 1;
}

static void
checked_reset(MemoryContext context)
{
	CheckedContext *cxt = (CheckedContext *) context;
	dlist_mutable_iter iter;

	dlist_foreach_modify(iter, &cxt->chunks)
	{
		dlist_delete(iter.cur);
		__interceptor_free(dlist_container(CheckedChunk, node, iter.cur));
	}
	context->mem_allocated = 0;
}

static void
checked_delete(MemoryContext context)
{
	checked_reset(context);
	__interceptor_free(context);
}

static Size
checked_chunk_space(MemoryContext context, void *pointer)
{
	return sizeof(CheckedChunk) + CHUNK_OF(pointer)->size;
}

static bool
checked_is_empty(MemoryContext context)
{
	return dlist_is_empty(&((CheckedContext *) context)->chunks);
}

static void
checked_stats(MemoryContext context, MemoryStatsPrintFunc printfunc, void *passthru,
			  MemoryContextCounters *totals, bool print_to_stderr)
{
	if (printfunc)
		printfunc(context, passthru, "ASan-checked chunks", print_to_stderr);
	if (totals)
		totals->totalspace += context->mem_allocated;
}

static const MemoryContextMethods checked_methods = {
	checked_alloc, checked_free, checked_realloc, checked_reset, checked_delete,
	checked_chunk_space, checked_is_empty, checked_stats
};

/* Takes the place of AllocSetContextCreateInternal in the engine sources. */
MemoryContext ufdw_fuzz_context_create(MemoryContext parent, const char *name,
									   Size minContextSize, Size initBlockSize,
									   Size maxBlockSize);

MemoryContext
ufdw_fuzz_context_create(MemoryContext parent, const char *name,
						 Size minContextSize, Size initBlockSize, Size maxBlockSize)
{
	CheckedContext *cxt = __interceptor_malloc(sizeof(CheckedContext));

	if (cxt == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	dlist_init(&cxt->chunks);
	MemoryContextCreate((MemoryContext) cxt, T_AllocSetContext, &checked_methods,
						parent, name);
	return (MemoryContext) cxt;
}

/* ----------------------------------------------------------------
 * Running one input
 * ----------------------------------------------------------------
 */

/*
 * Stage of the current input: ERRORs in STAGE_INPUT are bad input; in
 * STAGE_CHECK, after the input was accepted, they are violations.
 */
typedef enum Stage
{
	STAGE_INPUT,
	STAGE_CHECK
} Stage;

static volatile Stage stage;

/*
 * Runs fn(arg) in a subtransaction, rolled back afterwards (a committed
 * one would keep its memory until the end of the transaction, and the
 * whole run is one); an ERROR raised for bad input is forgotten.
 */
static void
run_guarded(void (*fn) (void *arg), void *arg)
{
	MemoryContext callercxt = MemoryContextSwitchTo(guard_cxt);
	ResourceOwner oldowner = CurrentResourceOwner;

	stage = STAGE_INPUT;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(input_cxt);
	PG_TRY();
	{
		fn(arg);
		MemoryContextSwitchTo(guard_cxt);
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(guard_cxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(guard_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(guard_cxt);
		CurrentResourceOwner = oldowner;
		if (stage != STAGE_INPUT)
			violation("ERROR after the input was accepted: %s", edata->message);
		if (edata->sqlerrcode == ERRCODE_INTERNAL_ERROR ||
			edata->sqlerrcode == ERRCODE_OUT_OF_MEMORY)
			violation("internal ERROR (SQLSTATE %s): %s",
					  unpack_sql_state(edata->sqlerrcode), edata->message);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(callercxt);
	MemoryContextReset(input_cxt);
	MemoryContextReset(guard_cxt);
}

/* Reads the fuzz input a byte at a time; zeros once it is used up. */
typedef struct Reader
{
	const uint8_t *p;
	size_t		n;
} Reader;

static uint8_t
next_byte(Reader *rd)
{
	if (rd->n == 0)
		return 0;
	rd->n--;
	return *rd->p++;
}

static uint32
next_u16(Reader *rd)
{
	uint32		hi = next_byte(rd);

	return (hi << 8) | next_byte(rd);
}

static const UfdwTableMap *
pick_table(int system, int table)
{
	return conns[system % NCONN]->tables[table % model->ntables];
}

/* ----------------------------------------------------------------
 * Target "page": page bodies to rows
 * ----------------------------------------------------------------
 */

typedef struct PageInput
{
	const UfdwConnector *conn;
	const UfdwTableMap *tm;
	char	   *body;			/* malloc'd to its exact size + NUL */
	size_t		len;
} PageInput;

/* The rows of one conversion. */
typedef struct Rows
{
	TupleDesc	tupdesc;
	int			nrows;
	Datum	  **values;
	bool	  **nulls;
	UfdwPageInfo info;
} Rows;

/*
 * Converts the page as a scan of every column would; raw_type is the type
 * "raw" is declared with (jsonb: built while parsing; text: the record's
 * text).
 */
static void
convert(const PageInput *in, Oid raw_type, Rows *rows)
{
	const UfdwModelTable *mt = in->tm->model;
	UfdwScanSpec spec;
	UfdwOptions opts;
	int		   *attr_column = palloc(sizeof(int) * mt->ncolumns);

	rows->tupdesc = CreateTemplateTupleDesc(mt->ncolumns);
	for (int c = 0; c < mt->ncolumns; c++)
	{
		Oid			type = ufdw_coltype_oid(mt->columns[c].type);

		if (type == JSONBOID)
			type = raw_type;
		TupleDescInitEntry(rows->tupdesc, c + 1, mt->columns[c].name, type, -1, 0);
		attr_column[c] = c;
	}
	memset(&spec, 0, sizeof(spec));
	spec.connector = in->conn;
	spec.table = in->tm;
	memset(&opts, 0, sizeof(opts));
	opts.server_name = "fuzz";
	opts.connector = in->conn;
	opts.server_options = list_make1(makeDefElem("company_id",
												 (Node *) makeString((char *) company_id), -1));
	ufdw_parse_page(ufdw_make_converter(&spec, &opts, rows->tupdesc, attr_column, "fuzz"),
					in->body, in->len,
					&rows->nrows, &rows->values, &rows->nulls, &rows->info);
}

/*
 * Properties of the rows of an accepted page:
 *	 - one row per record (nrows = info.nrecords), info.total_count >= -1;
 *	 - text values are valid UTF-8 without NUL; a column with a value map
 *	   holds only the map's values (or its default);
 *	 - numeric, date, timestamptz and jsonb values print, and numerics
 *	   read back equal; dates and instants are in PostgreSQL's range;
 *	   raw is a jsonb object.
 */
static void
check_rows(const PageInput *in, const Rows *rows)
{
	const UfdwModelTable *mt = in->tm->model;

	if (rows->nrows != rows->info.nrecords || rows->nrows < 0)
		violation("%d rows for %d records", rows->nrows, rows->info.nrecords);
	if (rows->info.total_count < -1)
		violation("total_count %lld", (long long) rows->info.total_count);
	for (int r = 0; r < rows->nrows; r++)
	{
		for (int c = 0; c < mt->ncolumns; c++)
		{
			const UfdwColumnMap *cm = &in->tm->columns[c];
			Datum		d = rows->values[r][c];

			if (rows->nulls[r][c])
				continue;
			switch (mt->columns[c].type)
			{
				case UFDW_TYPE_TEXT:
					{
						text	   *t = DatumGetTextPP(d);
						const char *s = VARDATA_ANY(t);
						int			len = VARSIZE_ANY_EXHDR(t);

						if (memchr(s, '\0', len))
							violation("NUL in column %s", mt->columns[c].name);
						if (!pg_verify_mbstr(PG_UTF8, s, len, true))
							violation("invalid UTF-8 in column %s", mt->columns[c].name);
						if (cm->nmap > 0)
						{
							char	   *v = text_to_cstring(t);
							bool		found = cm->has_default && cm->map_default &&
								strcmp(v, cm->map_default) == 0;

							for (int m = 0; m < cm->nmap && !found; m++)
								found = strcmp(v, cm->map_to[m]) == 0;
							if (!found)
								violation("column %s holds \"%s\", not a value of its map",
										  mt->columns[c].name, v);
						}
						break;
					}
				case UFDW_TYPE_NUMERIC:
					{
						char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out, d));
						Datum		back = DirectFunctionCall3(numeric_in, CStringGetDatum(s),
															   ObjectIdGetDatum(InvalidOid),
															   Int32GetDatum(-1));

						if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, d, back)) != 0)
							violation("numeric %s of column %s does not read back",
									  s, mt->columns[c].name);
						break;
					}
				case UFDW_TYPE_INTEGER:
					break;
				case UFDW_TYPE_DATE:
					if (!DATE_NOT_FINITE(DatumGetDateADT(d)) &&
						!IS_VALID_DATE(DatumGetDateADT(d)))
						violation("date %d of column %s out of range",
								  (int) DatumGetDateADT(d), mt->columns[c].name);
					(void) DirectFunctionCall1(date_out, d);
					break;
				case UFDW_TYPE_TIMESTAMPTZ:
					if (!TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(d)) &&
						!IS_VALID_TIMESTAMP(DatumGetTimestampTz(d)))
						violation("timestamptz of column %s out of range",
								  mt->columns[c].name);
					(void) DirectFunctionCall1(timestamptz_out, d);
					break;
				case UFDW_TYPE_JSONB:
					if (!JB_ROOT_IS_OBJECT(DatumGetJsonbP(d)))
						violation("raw is not an object");
					(void) DirectFunctionCall1(jsonb_out, d);
					break;
			}
		}
	}
}

/*
 * The same page with raw declared as text must give the same rows, and
 * raw's text must read as the jsonb built while parsing.
 */
static void
check_raw_as_text(const PageInput *in, const Rows *rows, const Rows *text_rows)
{
	const UfdwModelTable *mt = in->tm->model;

	if (text_rows->nrows != rows->nrows)
		violation("%d rows with raw as jsonb, %d as text", rows->nrows, text_rows->nrows);
	for (int r = 0; r < rows->nrows; r++)
		for (int c = 0; c < mt->ncolumns; c++)
		{
			Datum		a = rows->values[r][c];
			Datum		b = text_rows->values[r][c];
			Form_pg_attribute att = TupleDescAttr(text_rows->tupdesc, c);

			if (rows->nulls[r][c] != text_rows->nulls[r][c])
				violation("column %s of row %d is NULL in one conversion only",
						  mt->columns[c].name, r);
			if (rows->nulls[r][c])
				continue;
			if (mt->columns[c].type == UFDW_TYPE_JSONB && att->atttypid == TEXTOID)
			{
				Datum		parsed = DirectFunctionCall1(jsonb_in,
														 CStringGetDatum(TextDatumGetCString(b)));

				if (!DatumGetBool(DirectFunctionCall2(jsonb_eq, a, parsed)))
					violation("raw of row %d differs from its text read as jsonb", r);
				continue;
			}
			if (!datumIsEqual(a, b, att->attbyval, att->attlen))
				violation("column %s of row %d differs between conversions",
						  mt->columns[c].name, r);
		}
}

static void
page_input(void *arg)
{
	const PageInput *in = arg;
	Rows		rows;
	Rows		text_rows;

	convert(in, JSONBOID, &rows);
	stage = STAGE_CHECK;
	check_rows(in, &rows);
	convert(in, TEXTOID, &text_rows);
	check_raw_as_text(in, &rows, &text_rows);
}

static int
fuzz_page(const uint8_t *data, size_t size)
{
	PageInput	in;

	if (size < 2)
		return -1;
	in.conn = conns[data[0] % NCONN];
	in.tm = pick_table(data[0], data[1]);
	if (in.tm == NULL)
		return -1;
	/* exactly sized, so that ASan sees a read past the terminator */
	in.len = size - 2;
	in.body = __interceptor_malloc(in.len + 1);
	memcpy(in.body, data + 2, in.len);
	in.body[in.len] = '\0';
	run_guarded(page_input, &in);
	__interceptor_free(in.body);
	return 0;
}

/* ----------------------------------------------------------------
 * Target "filter": filter trees and sorts rendered in each dialect
 * ----------------------------------------------------------------
 */

#define MAX_DEPTH 4				/* nesting of AND / OR / NOT */
#define MAX_ARGS 4				/* children of an AND / OR */
#define MAX_VALUES 5			/* values of an IN list */
#define MAX_FILTERS 4			/* top-level filters */
#define MAX_TEXT 6000			/* bytes of a text value */

typedef struct FilterInput
{
	Reader		rd;
	int			system;
	int			table;
	const UfdwModelTable *mt;
	List	   *filters;
	List	   *values;			/* every value in the tree, of char * */
} FilterInput;

/* Texts an upstream value may well be, for text values. */
static const char *const special_texts[] = {
	"", "'", "''", "%", "_", "\\", "\\%", "a'b", "O'Brien", "50%_off",
	"(", ")", " or 1 eq 1", "') or ('1' eq '1", "?", "--", "\"", "\xc3\xa9",
	"\xe2\x82\xac", "\xf0\x9f\x98\x80", "\t\n\r", "0001-01-01",
	"00000000-0000-0000-0000-000000000000", "2024-01-31",
	"C2A2E0D4-6B8D-EE11-8A7F-6045BDC89D67", "c2a2e0d4-6b8d-ee11-8a7f-6045bdc89d67",
};

/* A text value: a special, a value of the column's maps, or input bytes. */
static char *
gen_text(FilterInput *fi, int column)
{
	uint8_t		mode = next_byte(&fi->rd);
	const UfdwTableMap *tm = pick_table(mode / 16, fi->table);
	const UfdwColumnMap *cm;
	StringInfoData buf;
	int			len;

	/* the map of this column in one of the systems */
	for (int i = 1; tm == NULL && i < NCONN; i++)
		tm = pick_table(mode / 16 + i, fi->table);
	cm = &tm->columns[column];

	if (mode < 40)
		return pstrdup(special_texts[mode % lengthof(special_texts)]);
	if (mode < 80 && cm->nmap > 0)
		return pstrdup(cm->map_to[mode % cm->nmap]);
	if (mode < 90 && cm->nmap > 0)
		return pstrdup(cm->map_from[mode % cm->nmap]);
	initStringInfo(&buf);
	if (mode < 100)
	{
		/* a long repetition of a few bytes */
		int			reps = 1 + next_u16(&fi->rd) % 2000;
		char		unit[3];

		len = 1 + next_byte(&fi->rd) % 3;
		for (int i = 0; i < len; i++)
			unit[i] = (char) next_byte(&fi->rd);
		for (int i = 0; i < reps && buf.len < MAX_TEXT; i++)
			appendBinaryStringInfo(&buf, unit, len);
	}
	else
	{
		len = Min(next_byte(&fi->rd), fi->rd.n);
		appendBinaryStringInfo(&buf, (const char *) fi->rd.p, len);
		fi->rd.p += len;
		fi->rd.n -= len;
	}
	/* a text value in a UTF-8 database: keep the valid prefix */
	buf.data[pg_encoding_verifymbstr(PG_UTF8, buf.data, buf.len)] = '\0';
	return buf.data;
}

/* The canonical text of a value of model type t (unified_fdw.h). */
static char *
gen_value(FilterInput *fi, int column)
{
	UfdwColType t = fi->mt->columns[column].type;
	Reader	   *rd = &fi->rd;
	char	   *v = NULL;

	switch (t)
	{
		case UFDW_TYPE_TEXT:
		case UFDW_TYPE_JSONB:
			v = gen_text(fi, column);
			break;
		case UFDW_TYPE_INTEGER:
			{
				int64		i = 0;
				uint8_t		n = next_byte(rd);

				for (int k = 0; k < n % 9; k++)
					i = (i << 8) | next_byte(rd);
				v = psprintf(INT64_FORMAT, (n & 0x80) ? -i : i);
				break;
			}
		case UFDW_TYPE_NUMERIC:
			{
				StringInfoData buf;
				uint8_t		n = next_byte(rd);
				int			ndig = 1 + n % 24;
				int			point = next_byte(rd) % (ndig + 1);

				initStringInfo(&buf);
				if (n & 0x80)
					appendStringInfoChar(&buf, '-');
				for (int k = 0; k < ndig; k++)
				{
					if (k == point && k > 0)
						appendStringInfoChar(&buf, '.');
					appendStringInfoChar(&buf, '0' + next_byte(rd) % 10);
				}
				/* as PostgreSQL prints it */
				v = DatumGetCString(DirectFunctionCall1(numeric_out,
														DirectFunctionCall3(numeric_in,
																			CStringGetDatum(buf.data),
																			ObjectIdGetDatum(InvalidOid),
																			Int32GetDatum(-1))));
				break;
			}
		case UFDW_TYPE_DATE:
		case UFDW_TYPE_TIMESTAMPTZ:
			{
				int			y = 1 + next_u16(rd) % 9999;
				int			m = 1 + next_byte(rd) % 12;
				int			d = 1 + next_byte(rd) % day_tab[isleap(y)][m - 1];

				if (t == UFDW_TYPE_DATE)
					v = psprintf("%04d-%02d-%02d", y, m, d);
				else
				{
					int			hh = next_byte(rd) % 24;
					int			mi = next_byte(rd) % 60;
					int			ss = next_byte(rd) % 60;
					uint32		us = next_u16(rd) % 4 == 0 ? 0 : (next_u16(rd) * 16) % 1000000;

					if (us)
						v = psprintf("%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", y, m, d, hh, mi, ss, us);
					else
						v = psprintf("%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d, hh, mi, ss);
				}
				break;
			}
	}
	fi->values = lappend(fi->values, v);
	return v;
}

static UfdwFilter *
gen_leaf(FilterInput *fi)
{
	UfdwFilter *f = palloc0(sizeof(UfdwFilter));
	int			c = next_byte(&fi->rd) % fi->mt->ncolumns;
	UfdwColType t = fi->mt->columns[c].type;
	uint8_t		k = next_byte(&fi->rd);

	f->column = c;
	/* as ufdw_filter_from_clause builds them: jsonb only in NULL tests */
	if (t == UFDW_TYPE_JSONB)
		k = k % 2;
	else if (t != UFDW_TYPE_TEXT)
		k = k % 5;
	switch (k % 7)
	{
		case 0:
			f->kind = UFDW_FILTER_IS_NULL;
			break;
		case 1:
			f->kind = UFDW_FILTER_NOT_NULL;
			break;
		case 2:
			f->kind = UFDW_FILTER_CMP;
			f->op = (UfdwCmpOp) (next_byte(&fi->rd) % 6);
			f->values = list_make1(gen_value(fi, c));
			break;
		case 3:
		case 4:
			{
				int			n = 1 + next_byte(&fi->rd) % MAX_VALUES;

				f->kind = k % 7 == 3 ? UFDW_FILTER_IN : UFDW_FILTER_NOT_IN;
				for (int i = 0; i < n; i++)
					f->values = lappend(f->values, gen_value(fi, c));
				break;
			}
		default:
			{
				/* LIKE 'lit%' / '%lit%': a non-empty literal */
				char	   *v = gen_value(fi, c);

				f->kind = k % 7 == 5 ? UFDW_FILTER_PREFIX : UFDW_FILTER_CONTAINS;
				f->icase = (k & 0x80) != 0;
				if (v[0] == '\0')
				{
					v = pstrdup("x");
					fi->values = lappend(fi->values, v);
				}
				f->values = list_make1(v);
				break;
			}
	}
	return f;
}

/* A node; in_and: it may be a part an AND could not send (NONE). */
static UfdwFilter *
gen_node(FilterInput *fi, int depth, bool in_and)
{
	uint8_t		k = next_byte(&fi->rd);
	UfdwFilter *f;

	if (depth >= MAX_DEPTH || k < 128 || fi->rd.n == 0)
	{
		if (in_and && k % 16 == 15)
		{
			f = palloc0(sizeof(UfdwFilter));
			f->kind = UFDW_FILTER_NONE;
			f->column = -1;
			return f;
		}
		return gen_leaf(fi);
	}
	f = palloc0(sizeof(UfdwFilter));
	switch (k % 3)
	{
		case 0:
		case 1:
			{
				int			n = 1 + next_byte(&fi->rd) % MAX_ARGS;
				bool		is_and = k % 3 == 0;

				f->kind = is_and ? UFDW_FILTER_AND : UFDW_FILTER_OR;
				for (int i = 0; i < n; i++)
					f->args = lappend(f->args, gen_node(fi, depth + 1, is_and));
				break;
			}
		default:
			f->kind = UFDW_FILTER_NOT;
			f->args = list_make1(gen_node(fi, depth + 1, false));
			break;
	}
	return f;
}

/*
 * Splits text into quoted literals (SQL and OData quoting: '' inside) and
 * the rest.  Appends the literals' contents to *lits, counts ? outside
 * them, sets *depth_out to the parentheses left open and *bad_char to the
 * first character outside literals that is no name, number, operator or
 * punctuation.  False: an unterminated literal or a ) without its (.
 */
static bool
tokenize(const char *text, List **lits, int *placeholders, int *depth_out,
		 char *bad_char)
{
	int			depth = 0;

	*placeholders = 0;
	*bad_char = 0;
	for (const char *p = text; *p; p++)
	{
		if (*p == '\'')
		{
			StringInfoData lit;

			initStringInfo(&lit);
			for (p++;; p++)
			{
				if (*p == '\0')
					return false;	/* unterminated */
				if (*p == '\'' && p[1] == '\'')
				{
					appendStringInfoChar(&lit, '\'');
					p++;
				}
				else if (*p == '\'')
					break;
				else
					appendStringInfoChar(&lit, *p);
			}
			if (lits)
				*lits = lappend(*lits, lit.data);
			continue;
		}
		if (*p == '(')
			depth++;
		else if (*p == ')')
		{
			if (--depth < 0)
				return false;
		}
		else if (*p == '?')
			(*placeholders)++;
		else if (!isalnum((unsigned char) *p) && !strchr(" ,.:-+_/=<>!*\"|", *p) &&
				 !*bad_char)
			*bad_char = *p;
	}
	*depth_out = depth;
	return true;
}

/*
 * Is param a value of the tree, a native code of the table's value maps, or
 * a LIKE pattern made of a value ('%' around it, '%', '_' and '\' escaped)?
 */
static bool
bound_value_ok(FilterInput *fi, const UfdwTableMap *tm, const char *param)
{
	ListCell   *lc;

	if (ufdw_string_in_list(fi->values, param))
		return true;
	for (int c = 0; c < tm->model->ncolumns; c++)
		for (int m = 0; m < tm->columns[c].nmap; m++)
			if (strcmp(param, tm->columns[c].map_from[m]) == 0)
				return true;
	foreach(lc, fi->values)
	{
		StringInfoData pat;

		initStringInfo(&pat);
		for (const char *s = lfirst(lc); *s; s++)
		{
			if (*s == '%' || *s == '_' || *s == '\\')
				appendStringInfoChar(&pat, '\\');
			appendStringInfoChar(&pat, *s);
		}
		appendStringInfoChar(&pat, '%');
		if (strcmp(param, pat.data) == 0 ||
			(param[0] == '%' && strcmp(param + 1, pat.data) == 0))
			return true;
	}
	return false;
}

/*
 * Properties of a rendered filter (text, params) for conn:
 *	 - quoted literals are closed (quotes doubled inside), parentheses
 *	   balance outside them, and outside them there is nothing but
 *	   names, numbers, operators and punctuation;
 *	 - OData: every plain literal is a value of the tree, a native code of
 *	   the table's value maps or a null value of the connector (a value
 *	   whose quotes were not doubled would show up as other literals);
 *	 - SuiteQL: values are bound, never in the text: every literal is one
 *	   of the connector's own expressions' or the date format, there are as
 *	   many ? as params, and each param is a value of the tree, a native
 *	   code or a LIKE pattern made of a value;
 *	 - the conjunction is exact iff every filter alone renders exactly.
 */
static void
check_rendered(FilterInput *fi, const UfdwConnector *conn, const UfdwTableMap *tm,
			   const char *what, const char *text, List *params)
{
	List	   *lits = NIL;
	List	   *allowed = NIL;
	int			placeholders;
	int			depth = 0;
	char		bad;
	ListCell   *lc;
	/* SuiteQL binds its values; the OData dialects write them as literals */
	bool		binds = strcmp(conn->dialect->name, "suiteql") == 0;

	if (text == NULL)
	{
		if (params != NIL)
			violation("%s: params without a %s", conn->system, what);
		return;
	}
	if (!tokenize(text, &lits, &placeholders, &depth, &bad) || depth != 0)
		violation("%s: %s does not tokenise: %s", conn->system, what, text);
	if (bad)
		violation("%s: %s holds '%c' outside literals: %s", conn->system, what, bad, text);
	if (binds)
	{
		int			n,
					d;
		char		b;

		for (int c = 0; c < tm->model->ncolumns; c++)
			for (int f = 0; f < tm->columns[c].nfields; f++)
				if (tm->columns[c].fields[f].expr)
					(void) tokenize(tm->columns[c].fields[f].expr, &allowed, &n, &d, &b);
		allowed = lappend(allowed, "YYYY-MM-DD");
		allowed = lappend(allowed, "\\");
		if (placeholders != list_length(params))
			violation("%s: %d placeholders, %d params: %s", conn->system,
					  placeholders, list_length(params), text);
		foreach(lc, params)
		{
			if (!bound_value_ok(fi, tm, lfirst(lc)))
				violation("%s: param \"%s\" is no value of the filter: %s",
						  conn->system, (char *) lfirst(lc), text);
		}
	}
	else
	{
		if (params != NIL)
			violation("%s: params in OData", conn->system);
		allowed = list_copy(fi->values);
		for (int c = 0; c < tm->model->ncolumns; c++)
			for (int m = 0; m < tm->columns[c].nmap; m++)
				allowed = lappend(allowed, tm->columns[c].map_from[m]);
		for (int i = 0; i < conn->nnull_values; i++)
			allowed = lappend(allowed, conn->null_values[i]);
		/* a NUMC field's literals are the values zero-padded to its length */
		for (int c = 0; c < tm->model->ncolumns; c++)
		{
			int			len = tm->columns[c].conversion_length;

			if (tm->columns[c].conversion != UFDW_CONV_NUMC)
				continue;
			foreach(lc, fi->values)
			{
				const char *v = lfirst(lc);

				StringInfoData pad;

				if (v == NULL || *v == '\0' || strspn(v, "0123456789") != strlen(v) ||
					(int) strlen(v) > len)
					continue;
				initStringInfo(&pad);
				appendStringInfoSpaces(&pad, len - (int) strlen(v));
				for (int i = 0; i < pad.len; i++)
					pad.data[i] = '0';
				appendStringInfoString(&pad, v);
				allowed = lappend(allowed, pad.data);
			}
		}
	}
	foreach(lc, lits)
	{
		const char *lit = lfirst(lc);

		/* typed OData literals (guid'', datetime'') are checked by shape only */
		if (!binds && !ufdw_string_in_list(allowed, lit) &&
			strstr(text, psprintf("guid'%s'", lit)) == NULL &&
			strstr(text, psprintf("datetime'%s'", lit)) == NULL &&
			strstr(text, psprintf("datetimeoffset'%s'", lit)) == NULL)
			violation("%s: literal '%s' is no value of the filter: %s",
					  conn->system, lit, text);
		if (binds && !ufdw_string_in_list(allowed, lit))
			violation("%s: literal '%s' in SuiteQL text: %s", conn->system, lit, text);
	}
}

static void
filter_input(void *arg)
{
	FilterInput *fi = arg;
	int			nfilters;
	List	   *sort_cols = NIL;
	List	   *sort_desc = NIL;
	uint8_t		nsort;

	fi->system = next_byte(&fi->rd);
	fi->table = next_byte(&fi->rd);
	fi->mt = &model->tables[fi->table % model->ntables];
	nfilters = 1 + next_byte(&fi->rd) % MAX_FILTERS;
	for (int i = 0; i < nfilters; i++)
		fi->filters = lappend(fi->filters, gen_node(fi, 0, true));
	nsort = next_byte(&fi->rd) % 4;

	stage = STAGE_CHECK;
	for (int s = 0; s < NCONN; s++)
	{
		const UfdwConnector *conn = conns[s];
		const UfdwTableMap *tm = pick_table(s, fi->table);
		UfdwRendered all;
		bool		each_exact = true;
		ListCell   *lc;

		if (tm == NULL)
			continue;
		all = ufdw_render_filter(conn, tm, fi->filters);
		check_rendered(fi, conn, tm, "filter", all.text, all.params);
		foreach(lc, fi->filters)
		{
			UfdwRendered one = ufdw_render_filter(conn, tm, list_make1(lfirst(lc)));

			check_rendered(fi, conn, tm, "filter", one.text, one.params);
			each_exact &= one.exact;
		}
		if (all.exact != each_exact)
			violation("%s: the conjunction is %sexact, its filters alone %s: %s",
					  conn->system, all.exact ? "" : "not ",
					  each_exact ? "all exact" : "not", all.text ? all.text : "(none)");
		if (all.exact && all.text == NULL)
			violation("%s: exact without a filter", conn->system);
	}

	/* sort keys, where ufdw_sortable allows them */
	stage = STAGE_INPUT;
	for (int i = 0; i < nsort; i++)
	{
		uint8_t		b = next_byte(&fi->rd);

		sort_cols = lappend_int(sort_cols, b % fi->mt->ncolumns);
		sort_desc = lappend_int(sort_desc, (b & 0x80) != 0);
	}
	stage = STAGE_CHECK;
	for (int s = 0; s < NCONN && sort_cols; s++)
	{
		const UfdwTableMap *tm = pick_table(s, fi->table);
		List	   *cols = NIL;
		List	   *desc = NIL;
		ListCell   *lc,
				   *ld;
		char	   *text;

		if (tm == NULL)
			continue;
		forboth(lc, sort_cols, ld, sort_desc)
		{
			if (ufdw_sortable(conns[s], tm, lfirst_int(lc), lfirst_int(ld),
							  lfirst_int(ld), true))
			{
				cols = lappend_int(cols, lfirst_int(lc));
				desc = lappend_int(desc, lfirst_int(ld));
			}
		}
		text = ufdw_render_orderby(conns[s], tm, cols, desc);
		if ((text == NULL) != (cols == NIL))
			violation("%s: orderby for %d keys: %s", conns[s]->system,
					  list_length(cols), text ? text : "(none)");
		check_rendered(fi, conns[s], tm, "orderby", text, NIL);
	}
}

static int
fuzz_filter(const uint8_t *data, size_t size)
{
	FilterInput fi;

	if (size < 3)
		return -1;
	memset(&fi, 0, sizeof(fi));
	fi.rd.p = data;
	fi.rd.n = size;
	run_guarded(filter_input, &fi);
	return 0;
}

/* ----------------------------------------------------------------
 * The SQL function
 * ----------------------------------------------------------------
 */

static void
load_connectors(const char *dir)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	ufdw_load_connector_file(psprintf("%s/model.json", dir), NULL, NULL, &model);
	for (int i = 0; i < NCONN; i++)
		ufdw_load_connector_file(psprintf("%s/%s", dir, connector_files[i]), model,
								 &conns[i], NULL);
	MemoryContextSwitchTo(old);
}

/*
 * ufdw_fuzz(target, connector_dir, args): runs target with libFuzzer's
 * command line args; never returns (libFuzzer exits the process).
 */
Datum
ufdw_fuzz(PG_FUNCTION_ARGS)
{
	char	   *target = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *dir = text_to_cstring(PG_GETARG_TEXT_PP(1));
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(2);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			argc;
	char	  **argv;
	int			(*cb) (const uint8_t *, size_t);

	if (strcmp(target, "page") == 0)
		cb = fuzz_page;
	else if (strcmp(target, "filter") == 0)
		cb = fuzz_filter;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown fuzz target \"%s\"", target),
				 errhint("The targets are page and filter.")));
	if (GetDatabaseEncoding() != PG_UTF8)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the fuzz targets need a UTF8 database")));
	load_connectors(dir);
	input_cxt = ufdw_fuzz_context_create(TopMemoryContext, "ufdw_fuzz input",
										 ALLOCSET_DEFAULT_SIZES);
	guard_cxt = AllocSetContextCreate(TopMemoryContext, "ufdw_fuzz guard",
									  ALLOCSET_DEFAULT_SIZES);

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	argc = n + 1;
	argv = palloc0(sizeof(char *) * (argc + 1));
	/* -merge=1 runs argv[0] for its inner passes: test/fuzz/backend */
	argv[0] = getenv("UFDW_FUZZ_ARGV0") ? getenv("UFDW_FUZZ_ARGV0") :
		psprintf("ufdw_fuzz_%s", target);
	for (int i = 0; i < n; i++)
		argv[i + 1] = nulls[i] ? "" : TextDatumGetCString(elems[i]);
	fflush(stderr);
	PG_RETURN_INT32(LLVMFuzzerRunDriver(&argc, &argv, cb));
}

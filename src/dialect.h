/*-------------------------------------------------------------------------
 *
 * dialect.h
 *		The operations table of a query language (dialect), and the engine
 *		helpers the dialect modules build on.
 *
 * One module per query language exports one const UfdwDialect:
 *
 *	 dialect_odata4.c   OData v4 (JSON format 4.0)
 *	 dialect_odata2.c   OData V2 (JSON verbose format)
 *	 dialect_suiteql.c  SuiteQL (SQL text with bound parameters, POSTed)
 *	 dialect_odata.c    what both OData modules share: URL query options,
 *	                    paging by next link or $skip, quoted literals
 *
 * A dialect says how things are spelled and which native types and
 * connector keys its language has.  What differs between two systems that
 * speak the same dialect (how they page, whether "or" may span fields, how
 * text compares, how NULLs sort, which values mean NULL) is data: the
 * capabilities of the connector file (UfdwCapabilities).  Generic code
 * (deparse.c, request.c, page.c, the glue) asks the table or a
 * capability, never which dialect or system it is.
 *
 * Every function of the table is pure: no I/O, no catalog access; results
 * are palloc'd in the current memory context; errors are ereport()s.
 *
 *-------------------------------------------------------------------------
 */
#ifndef UNIFIED_FDW_DIALECT_H
#define UNIFIED_FDW_DIALECT_H

#include "unified_fdw.h"

#define UFDW_ENVELOPE_DEPTH 4

/* Where a page puts its records and paging members (paths of member names). */
typedef struct UfdwEnvelope
{
	const char *records[UFDW_ENVELOPE_DEPTH];	/* the records array */
	const char *next_link[UFDW_ENVELOPE_DEPTH]; /* the next page's URL */
	const char *has_more[UFDW_ENVELOPE_DEPTH];	/* a "more pages" boolean */
	const char *count[UFDW_ENVELOPE_DEPTH]; /* the total count */
} UfdwEnvelope;

/* Bit of a UfdwNativeType in UfdwDialect.native_types. */
#define UFDW_NATIVE_BIT(t) (1u << (t))

struct UfdwDialect
{
	const char *name;			/* connector key "dialect", e.g. "odata_v4" */

	/* ---- what a connector file of this dialect may say ---- */
	uint32		native_types;	/* UFDW_NATIVE_BITs it can spell */
	bool		field_exprs;	/* fields may be expressions ("expr",
								 * "filter_expr") and tables have a fixed
								 * "where" */
	bool		conversions;	/* fields may have a conversion exit */
	bool		read_through;	/* tables may be read through their parent */
	bool		key_continuation;	/* a capped query (paging "max_results",
									 * "max_pages") can be continued after
									 * its last key */
	bool		nextlink_paging;	/* the language can page by next links */

	/*
	 * Checks a native field name: NULL if fine, else why not (for the
	 * connector file error).  NULL: any non-empty name.
	 */
	const char *(*check_field_name) (const char *name);

	/* ---- filters ---- */
	const char *const *cmp_ops; /* by UfdwCmpOp: "eq" / "=" ... */
	const char *and_word;		/* " and " */
	const char *or_word;		/* " or " */
	const char *not_format;		/* "not (%s)" */
	const char *in_word;		/* "in" (f in (a,b)), or NULL: the language
								 * has none ("(f eq a or f eq b)") */
	const char *not_in_word;	/* "NOT IN", or NULL */
	const char *is_null_format; /* "%s eq null": the field is NULL */
	const char *not_null_format;	/* "%s ne null" */

	/*
	 * The literal of unified value v (canonical text, deparse.c) for a field
	 * of native type t, or NULL if the language cannot spell it.  A language
	 * with bound parameters appends the value to *params and returns the
	 * placeholder.  For UFDW_NATIVE_LOCAL_DATETIME, v is a wall-clock
	 * "YYYY-MM-DD HH24:MI:SS".
	 */
	char	   *(*literal) (UfdwNativeType t, const char *v, List **params);

	/*
	 * The literal of enumeration member code of the upstream type type
	 * (column key "enum_type"), e.g. Namespace.Type'Member'.  NULL: the
	 * language has no typed enumerations (then "enum_type" is invalid).
	 */
	char	   *(*enum_literal) (const char *type, const char *code);

	/*
	 * A text pattern test of field f: starts with v (prefix) or contains v;
	 * v is literal text (no wildcards).
	 */
	char	   *(*match) (const char *f, const char *v, bool prefix, List **params);

	/* ---- sorting ---- */
	const char *asc;			/* "asc" */
	const char *desc;			/* "desc" */
	const char *order_separator;	/* "," */

	/* ---- requests and pages ---- */
	UfdwRequest *(*first_request) (const UfdwScanSpec *spec, const UfdwOptions *opts);
	UfdwRequest *(*next_request) (const UfdwScanSpec *spec, const UfdwOptions *opts,
								  const UfdwRequest *prev, int page_no,
								  const UfdwPageInfo *page);

	/*
	 * ANALYZE's request for the page_size records from offset on, in the
	 * upstream's order (spec has no LIMIT and asks for no count).  NULL: the
	 * language cannot ask for records at an offset.
	 */
	UfdwRequest *(*offset_request) (const UfdwScanSpec *spec, const UfdwOptions *opts,
									int64 offset);
	UfdwEnvelope envelope;
	const char *count_param;	/* query option asking for the total count
								 * ("$count"), or NULL: every page says */
	const char *count_value;	/* its value ("true") */

	/*
	 * The capabilities of a connector of this dialect that declares none
	 * ("capabilities", "paging": "kind"): the language's usual paging, and
	 * every other capability absent.
	 */
	UfdwCapabilities defaults;

	/*
	 * A native date/time form the language sends instead of ISO 8601 text
	 * (OData V2's "/Date(ms)/"): true and *result set if text has it, false
	 * if text is to be read by the column type's input function.  Errors
	 * for malformed values.  NULL: the language has no such form.
	 */
	bool		(*native_datetime) (const char *text, UfdwColType type, Datum *result);
};

/*
 * The defaults of a dialect's connectors: paging as given, every other
 * capability absent (what a connector does not declare, it does not have).
 */
#define UFDW_CAPABILITIES_NONE(paging_kind) { \
	.paging = (paging_kind), \
	.or_across_fields = false, \
	.text_case = UFDW_CASE_UNKNOWN, \
	.text_blanks_significant = false, \
	.text_binary = false, \
	.text_eq_wildcards = "", \
	.null_order = UFDW_NULLS_UNKNOWN, \
	.count = false, \
}

/* The modules. */
extern const UfdwDialect ufdw_dialect_odata_v4;
extern const UfdwDialect ufdw_dialect_odata_v2;
extern const UfdwDialect ufdw_dialect_suiteql;

/* ----------------------------------------------------------------
 * Engine helpers for the dialect modules (request.c, deparse.c)
 * ----------------------------------------------------------------
 */

/* request.c */
extern List *ufdw_needed_fields(const UfdwScanSpec *spec, bool *all);
extern List *ufdw_all_fields(const UfdwTableMap *tm);
extern char *ufdw_query_escape(const char *s);
extern void ufdw_append_param(StringInfo buf, const char *name, const char *value);
extern void ufdw_add_connector_extras(UfdwRequest *req, StringInfo url,
									  const UfdwOptions *opts);
extern char *ufdw_base_url(const UfdwOptions *opts);
extern UfdwRequest *ufdw_follow_link(const UfdwOptions *opts, const UfdwRequest *prev,
									 int page_no, const UfdwPageInfo *page);
extern bool ufdw_query_capped(const UfdwScanSpec *spec);
extern int64 ufdw_query_window(const UfdwScanSpec *spec);

/* deparse.c */
extern bool ufdw_is_guid(const char *s);

/* dialect_odata.c: shared by the OData modules */
extern const char *const ufdw_odata_cmp_ops[];
extern char *ufdw_odata_quoted(const char *s);
extern UfdwRequest *ufdw_odata_first_request(const UfdwScanSpec *spec,
											 const UfdwOptions *opts);
extern UfdwRequest *ufdw_odata_offset_request(const UfdwScanSpec *spec,
												const UfdwOptions *opts, int64 offset);
extern UfdwRequest *ufdw_odata_next_request(const UfdwScanSpec *spec,
											const UfdwOptions *opts,
											const UfdwRequest *prev, int page_no,
											const UfdwPageInfo *page);

#endif							/* UNIFIED_FDW_DIALECT_H */

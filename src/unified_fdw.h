/*-------------------------------------------------------------------------
 *
 * unified_fdw.h
 *		Types and prototypes shared by the unified_fdw source files.
 *
 * The code has three layers and data flows through them in one direction:
 *
 *	 glue       unified_fdw.c (FDW callbacks, EXPLAIN), option.c (validator,
 *	            GUCs), import.c (IMPORT FOREIGN SCHEMA, column comments),
 *	            connect.c (unified.connect, disconnect, status probe),
 *	            status.c (connection status written outside the transaction)
 *	 engine     connector.c (loading connector files), deparse.c (quals to
 *	            filters, and filters and sorts in each dialect), request.c (scans to
 *	            native requests), page.c (page bodies to rows)
 *	 transport  http.c (libcurl multi, latch waits, HTTP errors), auth.c
 *	            (credentials, OAuth tokens), oauth1.c (NetSuite TBA request
 *	            signing), upstream_json.c (token and error bodies)
 *
 * Files that use jansson (connector.c, upstream_json.c) must never include
 * utils/builtins.h: both declare json_object (see STYLE.md).  This header
 * therefore includes neither jansson nor builtins.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef UNIFIED_FDW_H
#define UNIFIED_FDW_H

#include "fmgr.h"
#include "access/tupdesc.h"
#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "nodes/bitmapset.h"
#include "nodes/pg_list.h"
#include "utils/timestamp.h"

/* ----------------------------------------------------------------
 * Unified model and connector definitions (connector.c)
 * ----------------------------------------------------------------
 */

/* Column types of the unified model. */
typedef enum UfdwColType
{
	UFDW_TYPE_TEXT,
	UFDW_TYPE_NUMERIC,
	UFDW_TYPE_INTEGER,
	UFDW_TYPE_DATE,
	UFDW_TYPE_TIMESTAMPTZ,
	UFDW_TYPE_JSONB
} UfdwColType;

typedef struct UfdwModelColumn
{
	char	   *name;			/* column name, e.g. "vendor_name" */
	UfdwColType type;			/* SQL type of the column */
	char	   *description;	/* becomes the column comment on import */
} UfdwModelColumn;

typedef struct UfdwModelTable
{
	char	   *name;			/* e.g. "purchase_orders" */
	char	   *description;	/* becomes the table comment on import */
	int			ncolumns;
	UfdwModelColumn *columns;	/* in the order they are imported */
	char	   *changed_at;		/* "sync": column stamped on every upstream
								 * change (incremental syncs), or NULL */
	char	   *follows;		/* "sync": parent table whose changes this
								 * table follows (e.g. lines), or NULL */
	char	   *follows_link;	/* "sync": column holding the parent's id */
} UfdwModelTable;

typedef struct UfdwModel
{
	int			ntables;
	UfdwModelTable *tables;
} UfdwModel;

/*
 * A query language: its operations table (dialect.h), one module each
 * (dialect_*.c).
 */
typedef struct UfdwDialect UfdwDialect;

/* How an upstream pages a collection (capability "paging"). */
typedef enum UfdwPagingKind
{
	UFDW_PAGING_NEXTLINK,		/* each page links the next; page size asked
								 * for, not dictated */
	UFDW_PAGING_OFFSET			/* the client asks for records K..K+N */
} UfdwPagingKind;

/* Where the values PostgreSQL sees as NULL sort upstream (capability). */
typedef enum UfdwNullOrder
{
	UFDW_NULLS_UNKNOWN,			/* not documented: never sorted upstream
								 * unless known not NULL */
	UFDW_NULLS_LOW,				/* below every value (a sentinel such as
								 * 0001-01-01); a field without a null value
								 * of its type is never NULL */
	UFDW_NULLS_HIGH				/* above every value (SQL databases' NULL) */
} UfdwNullOrder;

/* How text compares upstream, by case (capability text.case). */
typedef enum UfdwTextCase
{
	UFDW_CASE_UNKNOWN,			/* not documented: neither ILIKE nor exact */
	UFDW_CASE_SENSITIVE,
	UFDW_CASE_INSENSITIVE		/* ILIKE can be sent; equality a superset */
} UfdwTextCase;

/*
 * What one system can do, beyond its dialect's spelling (connector key
 * "capabilities", docs/connectors.md).  Generic code asks these, never the
 * system or dialect.
 */
typedef struct UfdwCapabilities
{
	UfdwPagingKind paging;		/* "paging": "kind" */
	bool		or_across_fields;	/* "or" may join conditions on different
									 * fields */
	UfdwTextCase text_case;		/* text.case */
	bool		text_blanks_significant;	/* text.trailing_blanks
											 * "significant" ("a " <> "a") */
	bool		text_binary;	/* text.collation "binary": equal means the
								 * same characters */
	char	   *text_eq_wildcards;	/* text.eq_wildcards: characters that act
									 * as wildcards in an equality literal
									 * ("*"), or "" */
	UfdwNullOrder null_order;	/* where NULLs (null values) sort */
	bool		count;			/* the upstream can count a query's records
								 * ($count, $inlinecount, totalResults) */
} UfdwCapabilities;

/* Authentication methods, as a bitmask of what a connector accepts. */
#define UFDW_AUTH_BASIC			0x01	/* username, password */
#define UFDW_AUTH_BEARER		0x02	/* token */
#define UFDW_AUTH_API_KEY		0x04	/* api_key */
#define UFDW_AUTH_OAUTH2_CC		0x08	/* client_id, client_secret */
#define UFDW_AUTH_TBA			0x10	/* consumer_key/secret, token_id/secret */
#define UFDW_AUTH_OAUTH2_CODE	0x20	/* client_id, client_secret, refresh_token
										 * (authorization code grant, authorize.c) */

/*
 * The OAuth 2.0 authorization code grant of a connector (its file's
 * "auth"."authorization_code"): where the customer's browser goes to sign
 * in and consent, and how the refresh tokens it yields behave.
 */
typedef struct UfdwAuthCode
{
	char	   *authorization_url;	/* template, e.g. "{instance_url}/authorize" */
	char	   *scope;			/* space-separated scopes asked for */
	bool		client_secret_basic;	/* client authenticates with HTTP Basic
										 * (else client_secret in the form) */
	bool		scope_on_refresh;	/* the refresh request repeats scope */
	bool		rotates_refresh_tokens; /* a refresh may return a new one */
	int			refresh_token_lifetime_days;	/* documented; 0: unlimited */
} UfdwAuthCode;

/* Where a unified column's value comes from. */
typedef enum UfdwMapKind
{
	UFDW_MAP_NULL,				/* not provided by this system: always NULL */
	UFDW_MAP_FIELD,				/* one native field */
	UFDW_MAP_CONCAT,			/* several native fields joined by separator */
	UFDW_MAP_ANY_TRUE,			/* "true" if any native boolean is true */
	UFDW_MAP_OPTION,			/* a server option, e.g. company_id */
	UFDW_MAP_RAW				/* the whole native record (jsonb "raw") */
} UfdwMapKind;

/* A native field: its name in the response, and for SuiteQL its SELECT expression. */
typedef struct UfdwField
{
	char	   *name;
	char	   *expr;			/* NULL unless the dialect selects expressions */
	char	   *filter_expr;	/* SuiteQL: what conditions compare (NULL:
								 * expr), e.g. the DATE column that expr
								 * formats with TO_CHAR */
} UfdwField;

/*
 * Native type of a mapped field, for rendering filter literals (optional
 * connector key "native_type"; a column without it is never filtered or
 * sorted upstream).
 */
typedef enum UfdwNativeType
{
	UFDW_NATIVE_NONE,			/* unknown: not pushed */
	UFDW_NATIVE_STRING,			/* text, compared case-insensitively upstream */
	UFDW_NATIVE_GUID,			/* OData Edm.Guid */
	UFDW_NATIVE_ENUM,			/* a code set: only the map's codes are sent */
	UFDW_NATIVE_DECIMAL,		/* exact decimal */
	UFDW_NATIVE_INTEGER,		/* integer */
	UFDW_NATIVE_DATE,			/* calendar date (OData v4 Edm.Date, SuiteQL date) */
	UFDW_NATIVE_DATETIME,		/* OData V2 Edm.DateTime: an instant in UTC, no zone */
	UFDW_NATIVE_DATETIMEOFFSET,	/* OData Edm.DateTimeOffset */
	UFDW_NATIVE_LOCAL_DATETIME	/* SuiteQL: wall-clock YYYY-MM-DDTHH:MI:SS in
								 * the server's time_zone (an Oracle DATE) */
} UfdwNativeType;

/*
 * SAP conversion exit of a field (connector key "conversion"): the upstream
 * stores, compares and sorts the internal form, and shows the external one.
 * ALPHA: a purely numeric value is stored right-aligned with leading zeros
 * to the field length (external 17000, internal 0000017000), anything else
 * as typed; NUMC: digits only, always zero-padded; MATN1 (material numbers):
 * like ALPHA, where the system's material number settings pad (or not).
 * Equality literals are
 * converted upstream too; prefixes, text ranges and text order are not
 * those of the external form.
 */
typedef enum UfdwConversion
{
	UFDW_CONV_NONE,
	UFDW_CONV_ALPHA,
	UFDW_CONV_NUMC,
	UFDW_CONV_MATN1
} UfdwConversion;

typedef struct UfdwColumnMap
{
	UfdwMapKind kind;
	UfdwNativeType native_type; /* FIELD only; UFDW_NATIVE_NONE if not given */
	UfdwConversion conversion;	/* FIELD only */
	int			conversion_length;	/* internal length, with a conversion */
	char	   *enum_type;		/* ENUM: the upstream's enumeration type, whose
								 * literals are typed (dialect's enum_literal),
								 * or NULL: codes are plain strings */
	int			nfields;		/* FIELD: 1; CONCAT, ANY_TRUE: >= 1 */
	UfdwField  *fields;
	char	   *separator;		/* CONCAT only */
	char	   *option;			/* OPTION only: server option name */
	int			nmap;			/* value map: native text -> unified text */
	char	  **map_from;
	char	  **map_to;
	bool		has_default;	/* unmapped values: map_default (NULL = SQL NULL) */
	char	   *map_default;
} UfdwColumnMap;

/*
 * A table the upstream serves only per parent record (connector key
 * "read_through"; Business Central's document lines): it is read through
 * the parent collection with the children expanded, e.g.
 * purchaseOrders?$select=id&$expand=purchaseOrderLines(...), paged by the
 * parents.  Conditions on the link column alone filter the parents (as
 * conditions on the parent's key), the others the expanded children.
 */
typedef struct UfdwReadThrough
{
	char	   *parent;			/* parent collection, path below base_url */
	char	   *parent_key;		/* the parent's key field, e.g. "id" */
	char	   *expand;			/* navigation property holding the children */
	int			link_column;	/* model column holding the parent's key */
	int			children_per_parent;	/* expected children of a parent: the
										 * parent page is page_size / this */
} UfdwReadThrough;

typedef struct UfdwTableMap
{
	const UfdwModelTable *model;
	char	   *entity;			/* path below base_url, or SuiteQL FROM clause */
	char	   *where;			/* SuiteQL: fixed condition, or NULL */
	UfdwColumnMap *columns;		/* one per model column, same order */
	UfdwReadThrough *read_through;	/* OData v4: read via the parent, or NULL */
} UfdwTableMap;

typedef struct UfdwNameValue
{
	char	   *name;
	char	   *value;			/* may hold {option} placeholders */
} UfdwNameValue;

/* How a declared server option's value is checked (option.c). */
typedef enum UfdwOptionKind
{
	UFDW_OPTION_IDENT,			/* letters, digits, "-", "_", "." */
	UFDW_OPTION_DIGITS,			/* digits only */
	UFDW_OPTION_TIME_ZONE,		/* a zone of the IANA database */
	UFDW_OPTION_URL,			/* http(s) URL without credentials or query */
	UFDW_OPTION_TEXT			/* non-empty, no control characters */
} UfdwOptionKind;

/* A server option a connector declares (connector key "options.declared"). */
typedef struct UfdwOptionDecl
{
	char	   *name;
	UfdwOptionKind kind;
	bool		required;
	char	   *dflt;			/* used when not set, or NULL */
	char	   *pattern;		/* POSIX regular expression the value must
								 * match, or NULL */
	char	   *detail;			/* says what a valid value is, or NULL */
	char	   *hint;			/* says where to find it, or NULL */
} UfdwOptionDecl;

/*
 * A member of a JSON document: keys of objects, or positions in arrays
 * (key NULL), from the root (connector key "error_body").
 */
#define UFDW_PATH_MAX 8
typedef struct UfdwJsonPath
{
	int			n;				/* steps; 0: no path */
	const char *key[UFDW_PATH_MAX];	/* object member, or NULL: ... */
	int			index[UFDW_PATH_MAX];	/* ... array element */
} UfdwJsonPath;

/* Where a system's error bodies keep what is worth showing. */
typedef struct UfdwErrorBody
{
	UfdwJsonPath code;			/* e.g. o:errorDetails[0].o:errorCode */
	UfdwJsonPath message;
	UfdwJsonPath request_id;	/* the upstream's id of the request */
} UfdwErrorBody;

typedef struct UfdwConnector
{
	char	   *system;			/* connector id, e.g. "dynamics365_bc" */
	char	   *name;			/* display name */
	char	   *file;			/* file it was loaded from, for messages */
	const UfdwDialect *dialect;
	UfdwCapabilities caps;
	char	   *instance_url_example;
	char	   *base_url;		/* template, e.g. "{instance_url}/api/v2.0/" */
	List	   *required_options;	/* of char *, server options */
	List	   *optional_options;	/* of char * */
	int			ndeclared;		/* the system's own server options */
	UfdwOptionDecl *declared;
	char	   *instance_host;	/* template of instance_url's host, when its
								 * host is on the template's domain, or NULL */
	int			auth_methods;	/* UFDW_AUTH_* bitmask */
	char	   *token_url;		/* OAuth 2.0 token URL template, or NULL */
	char	   *scope;			/* OAuth 2.0 scope (template), or NULL */
	char	   *realm;			/* OAuth 1.0a realm (template), or NULL */
	char	   *reauthorize;	/* where an app whose tokens are refused is
								 * authorized again, for the hint; or NULL */
	char	   *api_key_header; /* header that carries api_key, or NULL */
	UfdwAuthCode *auth_code;	/* if auth_methods has UFDW_AUTH_OAUTH2_CODE */
	int			default_page_size;
	int			max_page_size;
	int64		max_results;	/* records one query can return however it
								 * is paged (0: no cap); a scan reads past
								 * it by key (request.c) */
	int			max_pages;		/* pages one query can return (0: no cap) */
	int			nheaders;		/* extra request headers (templates) */
	UfdwNameValue *headers;
	int			nquery;			/* extra query parameters (templates) */
	UfdwNameValue *query;
	bool		in_operator;	/* filters may say "f in (a, b)"; else "f eq a
								 * or f eq b" (connector key "in_operator") */
	List	   *request_id_headers; /* of char *: response headers that carry
									 * the upstream's request id, besides
									 * the usual request-id, x-request-id,
									 * x-correlation-id */
	UfdwErrorBody error_body;	/* paths in error bodies, besides the
								 * standard shapes (upstream_json.c) */
	int			nnull_values;	/* native texts that mean "no value" */
	char	  **null_values;
	List	   *setup_steps;	/* of char * */
	UfdwTableMap **tables;		/* indexed like the model; NULL = not provided */
} UfdwConnector;

extern const UfdwModel *ufdw_model(void);
extern const UfdwModelTable *ufdw_model_table(const char *name);
extern int	ufdw_model_table_index(const char *name);
extern const UfdwConnector *ufdw_connector(const char *system);
extern List *ufdw_connectors(void);
extern char *ufdw_known_systems(void);
extern const char *ufdw_coltype_sql(UfdwColType type);
extern bool ufdw_string_in_list(List *list, const char *s);
extern const UfdwOptionDecl *ufdw_declared_option(const UfdwConnector *conn,
												  const char *name);
extern void ufdw_load_connector_file(const char *path, const UfdwModel *model,
									 UfdwConnector **connector, UfdwModel **model_out);

/* ----------------------------------------------------------------
 * IMPORT FOREIGN SCHEMA and model introspection (import.c)
 * ----------------------------------------------------------------
 */

struct ImportForeignSchemaStmt;
extern List *ufdw_import_foreign_schema(struct ImportForeignSchemaStmt *stmt,
										Oid serverOid);

/* ----------------------------------------------------------------
 * Options (option.c)
 * ----------------------------------------------------------------
 */

/*
 * Most requests one scan keeps in flight: the upper bound of the server
 * option max_concurrency, and the size of the scan's read-ahead array.
 */
#define UFDW_MAX_CONCURRENCY 16

/* Everything a scan needs from the server, user mapping and table options. */
typedef struct UfdwOptions
{
	char	   *server_name;
	const UfdwConnector *connector;
	List	   *server_options; /* of DefElem, as given */
	char	   *instance_url;	/* without trailing slash */
	char	   *token_url;		/* NULL: connector default */
	bool		allow_insecure;
	char	   *ca_file;		/* CA bundle for TLS verification, or NULL */
	/* transport limits (server options, defaults in option.c) */
	int			connect_timeout_s;	/* connect, incl. DNS and TLS */
	int			request_timeout_s;	/* one whole request */
	int			low_speed_limit;	/* bytes/s below which ... */
	int			low_speed_time_s;	/* ... for this long aborts */
	int			max_retries;	/* retries after the first attempt */
	int			retry_max_wait_s;	/* total sleep between attempts */
	int64		max_response_bytes; /* body cap, after decompression */
	int			max_pages;		/* pages per scan */
	int			max_concurrency;	/* offset-paged requests in flight */
	/* credentials, from the user mapping only */
	char	   *username;
	char	   *password;
	char	   *token;
	char	   *api_key;
	char	   *client_id;
	char	   *client_secret;
	char	   *consumer_key;
	char	   *consumer_secret;
	char	   *token_id;
	char	   *token_secret;
	char	   *refresh_token;	/* as the user mapping holds it (see auth.c) */
	int			auth_method;	/* one UFDW_AUTH_* chosen from the credentials */
} UfdwOptions;

extern bool ufdw_pushdown_enabled;
extern bool ufdw_option_bool(List *options, const char *name, bool dflt);
extern char *ufdw_extra_connector_dir;
extern int	ufdw_connection_credits;

extern void ufdw_define_gucs(void);
extern UfdwOptions *ufdw_get_options(ForeignServer *server, UserMapping *um);
extern char *ufdw_option_value(List *options, const char *name);
extern bool ufdw_option_is_general(const char *name);
extern const char *ufdw_server_option(const UfdwOptions *opts, const char *name);
extern int	ufdw_page_size(const UfdwConnector *conn, List *server_options,
						   List *table_options);
extern double ufdw_cost_option(const char *name, const char *value, double dflt);
extern const char *ufdw_time_zone(const UfdwOptions *opts);
struct UfdwRequestContext;
extern void ufdw_request_context(const UfdwOptions *opts, const char *table_name,
								 struct UfdwRequestContext *rctx);
extern List *ufdw_secrets(const UfdwOptions *opts);

/* ----------------------------------------------------------------
 * Native requests (request.c); pure functions, no I/O
 * ----------------------------------------------------------------
 */

/* What a scan asks for, before any dialect is involved. */
typedef struct UfdwScanSpec
{
	const UfdwConnector *connector;
	const UfdwTableMap *table;
	Bitmapset  *columns;		/* model column indexes the query needs */
	int			page_size;
	char	   *filter;			/* rendered filter (OData $filter, SuiteQL
								 * condition), or NULL */
	List	   *params;			/* SuiteQL: bound values (char *) of filter */
	char	   *orderby;		/* rendered sort, or NULL */
	char	   *parent_filter;	/* read_through tables: the parents' filter,
								 * or NULL */
	int64		top;			/* records wanted in all (0: all) */
	bool		count;			/* ask for the total count too ($count=true,
								 * $inlinecount; SuiteQL always says) */
} UfdwScanSpec;

/* One native HTTP request, free of secrets (shown by EXPLAIN). */
typedef struct UfdwRequest
{
	const char *method;			/* "GET" or "POST" */
	char	   *url;
	List	   *headers;		/* of char *, "Name: value" */
	char	   *body;			/* NULL for GET */
	int64		offset;			/* records before this page */
	int			limit;			/* records asked for (0: server decides) */
	int64		window_start;	/* offset of the first record of this query
								 * (a query capped by max_results is followed
								 * by one for the records after its last key) */
	List	   *after;			/* of char *: key of the record before
								 * window_start, NIL for the first query */
	bool		read_only;		/* a POST that only reads (SuiteQL): may be
								 * retried like a GET */
} UfdwRequest;

/* What page.c found in a page besides the records. */
typedef struct UfdwPageInfo
{
	int			nrecords;		/* records in this page */
	char	   *next_link;		/* OData nextLink / __next, or NULL */
	bool		has_more;		/* SuiteQL hasMore */
	int64		total_count;	/* -1 when the page did not say */
	List	   *last_key;		/* of char *: key fields of the last record
								 * (dialects with max_results), or NIL */
} UfdwPageInfo;

extern char *ufdw_expand_template(const char *tmpl, const UfdwOptions *opts,
								  bool *missing);
extern char *ufdw_expand_template_named(const char *tmpl, const UfdwOptions *opts,
										bool *missing, const char **missing_name);
extern bool ufdw_template_filter(const char *name, char *s);
extern UfdwRequest *ufdw_first_request(const UfdwScanSpec *spec,
									   const UfdwOptions *opts);
extern UfdwRequest *ufdw_next_request(const UfdwScanSpec *spec,
									  const UfdwOptions *opts,
									  const UfdwRequest *prev, int page_no,
									  const UfdwPageInfo *page);
extern int64 ufdw_offset_reach(const UfdwScanSpec *spec);
extern UfdwRequest *ufdw_sample_request(const UfdwScanSpec *spec,
										const UfdwOptions *opts, int64 offset);
extern char *ufdw_url_escape(const char *s);

/* ----------------------------------------------------------------
 * Pushdown: quals to a neutral filter tree, and its rendering per
 * dialect (deparse.c); rendering is pure
 * ----------------------------------------------------------------
 */

typedef enum UfdwFilterKind
{
	UFDW_FILTER_AND,			/* args */
	UFDW_FILTER_OR,				/* args */
	UFDW_FILTER_NOT,			/* args: one */
	UFDW_FILTER_CMP,			/* column op values[0] */
	UFDW_FILTER_IN,				/* column = any of values */
	UFDW_FILTER_NOT_IN,			/* column <> all of values */
	UFDW_FILTER_IS_NULL,		/* column IS NULL */
	UFDW_FILTER_NOT_NULL,		/* column IS NOT NULL */
	UFDW_FILTER_PREFIX,			/* column LIKE values[0] || '%' */
	UFDW_FILTER_CONTAINS,		/* column LIKE '%' || values[0] || '%' */
	UFDW_FILTER_NONE			/* a part of an AND that cannot be sent */
} UfdwFilterKind;

typedef enum UfdwCmpOp
{
	UFDW_OP_EQ,
	UFDW_OP_NE,
	UFDW_OP_LT,
	UFDW_OP_LE,
	UFDW_OP_GT,
	UFDW_OP_GE
} UfdwCmpOp;

/*
 * A node of the neutral filter tree.  Values are unified (model) values in
 * canonical text: integers and numerics as printed by PostgreSQL, dates
 * YYYY-MM-DD, instants YYYY-MM-DDTHH:MM:SS[.ffffff]Z in UTC.  A NULL value
 * pointer in values means "not known at planning time".
 */
typedef struct UfdwFilter
{
	UfdwFilterKind kind;
	List	   *args;			/* AND, OR, NOT: of UfdwFilter * */
	int			column;			/* leaves: model column index */
	UfdwCmpOp	op;				/* CMP */
	List	   *values;			/* leaves: of char * */
	bool		icase;			/* PREFIX, CONTAINS: from ILIKE */
} UfdwFilter;

/* A filter rendered for one dialect. */
typedef struct UfdwRendered
{
	char	   *text;			/* NULL: no condition could be sent */
	List	   *params;			/* SuiteQL bound values, of char * */
	bool		exact;			/* upstream matches exactly the rows the
								 * quals accept (else a superset) */
} UfdwRendered;

/* Evaluates an operand expression (a Const, Param or stable expression). */
typedef Datum (*UfdwEvalFunc) (void *expr, void *arg, bool *isnull);

struct Expr;
extern UfdwFilter *ufdw_filter_from_clause(struct Expr *clause, Index relid,
										   const int *attr_column, int natts,
										   const UfdwTableMap *tm, bool outer_ok,
										   UfdwEvalFunc eval, void *eval_arg);
struct Node;
extern bool ufdw_contains_exec_param(struct Node *n);
extern Oid	ufdw_coltype_oid(UfdwColType t);
extern UfdwRendered ufdw_render_filter(const UfdwConnector *conn,
									   const UfdwTableMap *tm, List *filters);
extern UfdwRendered ufdw_render_filter_tz(const UfdwConnector *conn,
										  const UfdwTableMap *tm, List *filters,
										  const char *time_zone);
extern bool ufdw_render_scan_filter(const UfdwConnector *conn, const UfdwTableMap *tm,
									List *filters, const char *time_zone,
									UfdwScanSpec *spec);
extern bool ufdw_sortable(const UfdwConnector *conn, const UfdwTableMap *tm,
						  int column, bool desc, bool nulls_first,
						  bool known_not_null);
extern char *ufdw_render_orderby(const UfdwConnector *conn, const UfdwTableMap *tm,
								 List *columns, List *descending);

/* ----------------------------------------------------------------
 * Page bodies to rows (page.c)
 * ----------------------------------------------------------------
 */

typedef struct UfdwConverter UfdwConverter;

extern UfdwConverter *ufdw_make_converter(const UfdwScanSpec *spec,
										  const UfdwOptions *opts,
										  TupleDesc tupdesc, const int *attr_column,
										  const char *relname);

/*
 * Parses one page into rows allocated in the current memory context.  Sets
 * *nrows and returns arrays of values/nulls, one per row.  Raises an ERROR
 * on malformed bodies or values that do not convert.
 */
extern void ufdw_parse_page(UfdwConverter *conv, char *body, size_t len,
							int *nrows, Datum ***values, bool ***nulls,
							UfdwPageInfo *info);

/* ----------------------------------------------------------------
 * Transport (http.c)
 * ----------------------------------------------------------------
 */

/* What an HTTP 401 means, as far as auth.c can tell (for the message). */
typedef enum UfdwAuthFailure
{
	UFDW_AUTHFAIL_REJECTED = 0, /* credentials changed or revoked */
	UFDW_AUTHFAIL_NOT_REFRESHED,	/* a token expired and no new one was had */
	UFDW_AUTHFAIL_REAUTHORIZE,	/* a fresh token was refused too */
	UFDW_AUTHFAIL_CODE_EXCHANGE /* an authorization code was refused */
} UfdwAuthFailure;

/*
 * Who a request is made for (used in messages and for redaction), and the
 * server's transport limits.  ufdw_request_context() fills it all;
 * zero fields mean the built-in defaults.
 */
typedef struct UfdwRequestContext
{
	const char *server_name;
	const char *table_name;		/* NULL for requests outside a scan */
	List	   *secrets;		/* of char *, redacted from any message */
	bool		allow_insecure;
	const char *ca_file;		/* CA bundle, or NULL: the system's */
	long		connect_timeout_ms;
	long		request_timeout_ms;
	long		low_speed_limit;	/* bytes per second */
	long		low_speed_time_s;
	int			max_retries;
	long		retry_max_wait_ms;	/* total backoff sleep per request */
	int64		max_response_bytes;
	UfdwAuthFailure auth_failure;	/* how to explain a 401 */
	List	   *request_id_headers; /* of char *: the connector's (long-lived) */
	const struct UfdwErrorBody *error_body; /* the connector's, or NULL */
	const char *reauthorize_where;	/* where an app is authorized again
									 * (connector), or NULL */
	bool		user_grant;		/* credentials authorized by a user in the
								 * browser (unified.authorize()) */
} UfdwRequestContext;

/* A transfer in flight or finished; owned by the memory context it was made in. */
typedef struct UfdwTransfer UfdwTransfer;

/* Response of a finished transfer; body is NUL-terminated. */
typedef struct UfdwResponse
{
	long		status;
	char	   *body;
	size_t		len;
	char	   *content_type;	/* or NULL */
	char	   *request_id;		/* what we sent as X-Request-ID */
	char	   *upstream_request_id;	/* request-id & co., or NULL */
	char	   *www_authenticate;	/* or NULL */
	char	   *retry_after;	/* Retry-After header, or NULL */
	char	   *location;		/* Location header (redirects), or NULL */
	int			attempts;		/* attempts made for this response */
	double		elapsed_ms;
} UfdwResponse;

extern UfdwTransfer *ufdw_http_start(const UfdwRequest *req,
									 const UfdwRequestContext *rctx,
									 List *auth_headers,
									 const char *username, const char *password,
									 Oid umid);
extern void ufdw_mapping_hashes(Oid umid, uint32 *server_hashvalue,
								uint32 *mapping_hashvalue);
extern bool ufdw_hash_matches(int cacheid, uint32 hashvalue,
							  uint32 server_hashvalue, uint32 mapping_hashvalue);
extern UfdwResponse *ufdw_http_finish(UfdwTransfer *xfer);
extern void ufdw_http_wait(UfdwTransfer *xfer);
/* Starts one more attempt of a request (credentials applied afresh). */
typedef UfdwTransfer *(*UfdwAttemptStarter) (void *arg);
extern UfdwResponse *ufdw_http_finish_with_retries(UfdwTransfer *xfer,
												   const UfdwRequest *req,
												   const UfdwRequestContext *rctx,
												   UfdwAttemptStarter start, void *arg);

/* What the transport tells the glue (ufdw_http_set_report). */
typedef enum UfdwReportKind
{
	UFDW_REPORT_REQUEST,		/* a request is being sent: request_id */
	UFDW_REPORT_FAILURE			/* a failure is about to be raised:
								 * http_status (0: no response), table (or
								 * NULL), request_id, what (sanitised),
								 * reauthorize (a user's grant was refused) */
} UfdwReportKind;
typedef void (*UfdwHttpReport) (UfdwReportKind kind, const char *server,
								const char *table, long http_status,
								const char *request_id, const char *what,
								bool reauthorize);
extern void ufdw_http_set_report(UfdwHttpReport hook);
extern void ufdw_http_init(void);
extern void ufdw_http_poll(void);
extern void ufdw_http_cancel(UfdwTransfer *xfer);
extern void ufdw_http_raise(const UfdwRequestContext *rctx, const UfdwRequest *req,
							const UfdwResponse *resp) pg_attribute_noreturn();
extern char *ufdw_redact(const char *text, List *secrets, int maxlen);

/* ----------------------------------------------------------------
 * Authentication (auth.c)
 * ----------------------------------------------------------------
 */

extern UfdwResponse *ufdw_execute(const UfdwRequest *req, const UfdwOptions *opts,
								  const UfdwRequestContext *rctx, Oid umid);
extern UfdwTransfer *ufdw_start_authenticated(const UfdwRequest *req,
											  const UfdwOptions *opts,
											  const UfdwRequestContext *rctx,
											  Oid umid);
extern UfdwResponse *ufdw_finish_authenticated(UfdwTransfer *xfer,
											   const UfdwRequest *req,
											   const UfdwOptions *opts,
											   const UfdwRequestContext *rctx,
											   Oid umid);
extern void ufdw_auth_init(void);
extern void ufdw_forget_token(Oid umid);
extern void ufdw_seed_token(Oid umid, const char *access_token, int64 expires_in);
struct UfdwTokenResponse;
extern UfdwResponse *ufdw_token_request(const UfdwOptions *opts,
										const UfdwRequestContext *rctx,
										const char *form,
										struct UfdwTokenResponse *tok);
extern char *ufdw_auth_code_token_url(const UfdwOptions *opts);

/* ----------------------------------------------------------------
 * Durable refresh tokens (token_store.c)
 * ----------------------------------------------------------------
 */

extern void ufdw_refresh_lock(Oid umid);
extern void ufdw_refresh_unlock(Oid umid);
extern char *ufdw_stored_refresh_token(Oid umid, const char *mapping_token);
extern void ufdw_store_refresh_token(Oid umid, const char *mapping_token,
									 const char *token);
extern void ufdw_forget_refresh_token(Oid umid);
extern bool ufdw_claim_state(const char *state);
extern void ufdw_purge_states(int older_than_s);
#define UFDW_SHA256_LEN 32
extern void ufdw_sha256(const char *s, uint8 *digest);
extern char *ufdw_sha256_hex(const char *s);
extern char *ufdw_b64url(const char *src, int len);

/* ----------------------------------------------------------------
 * Connections (connect.c) and their authorization (authorize.c)
 * ----------------------------------------------------------------
 */

/*
 * Called by ufdw_create_connection() just before the live check: obtains
 * credentials (an authorization code's tokens) and returns the credential
 * list to check and store.
 */
typedef List *(*UfdwCredentialHook) (void *arg, List *creds, ForeignServer *server);

extern int	ufdw_hide_statement(const char *shown);
extern const UfdwConnector *ufdw_system_connector(const char *system);
extern List *ufdw_jsonb_options(Datum jsonb, const char *argname);
extern void ufdw_check_connection_inputs(const UfdwConnector *conn, List *options,
										 List *server_options, List *creds,
										 const char **method);
extern void ufdw_check_connection_name(const char *name);
extern Datum ufdw_create_connection(const UfdwConnector *conn, const char *instance_url,
									List *creds, const char *name, List *options,
									const char *method, UfdwCredentialHook hook,
									void *arg);

/* ----------------------------------------------------------------
 * Connection status outside the transaction (status.c)
 * ----------------------------------------------------------------
 */

extern void ufdw_status_report(UfdwReportKind kind, const char *server,
							   const char *table, long http_status,
							   const char *request_id, const char *what,
							   bool reauthorize);
extern void ufdw_status_request(const char *server, const char *request_id);
extern void ufdw_status_success(const char *server);
extern void ufdw_status_failure(const char *server, const char *table,
								long http_status, const char *request_id,
								const char *what, bool reauthorize);
extern void ufdw_status_sync(void);
extern void ufdw_check_connected(Oid serverid);
extern int64 ufdw_backend_requests;	/* requests this backend has sent */

/* ----------------------------------------------------------------
 * OAuth 1.0a signing for NetSuite TBA (oauth1.c); pure functions
 * ----------------------------------------------------------------
 */

#define UFDW_OAUTH1_NONCE_LEN 32

/* What one signature covers; every member is required. */
typedef struct UfdwOAuth1Params
{
	const char *consumer_key;
	const char *consumer_secret;
	const char *token;			/* the token id */
	const char *token_secret;
	const char *realm;			/* sent, but not signed */
	const char *nonce;
	const char *timestamp;		/* Unix seconds, as text */
} UfdwOAuth1Params;

extern char *ufdw_oauth1_base_string(const char *method, const char *url,
									 const UfdwOAuth1Params *p);
extern char *ufdw_oauth1_signature(const char *base, const char *consumer_secret,
								   const char *token_secret);
extern char *ufdw_oauth1_header(const char *method, const char *url,
								const UfdwOAuth1Params *p);
extern void ufdw_oauth1_fresh(char *nonce, char *timestamp);

/* ----------------------------------------------------------------
 * Small JSON documents with jansson (upstream_json.c)
 * ----------------------------------------------------------------
 */

/* An OAuth 2.0 token response, or the reason it could not be read. */
typedef struct UfdwTokenResponse
{
	char	   *access_token;	/* palloc'd, or NULL on failure */
	char	   *refresh_token;	/* palloc'd, or NULL if none came */
	int64		expires_in;		/* seconds; 0 if absent */
	char	   *error;			/* why it could not be read, or NULL */
} UfdwTokenResponse;

/* The parts of an upstream error body worth showing. */
typedef struct UfdwUpstreamError
{
	char	   *code;			/* e.g. "BadRequest_NotFound", "invalid_client" */
	char	   *message;		/* upstream's message, unsanitised */
	char	   *upstream_id;	/* transaction/correlation id in the body */
	List	   *error_codes;	/* OAuth (Entra ID) "error_codes", of int */
} UfdwUpstreamError;

extern void ufdw_parse_token_response(const char *body, size_t len,
									  UfdwTokenResponse *out);
extern void ufdw_parse_error_body(const char *body, size_t len,
								  const UfdwErrorBody *paths,
								  UfdwUpstreamError *out);

#endif							/* UNIFIED_FDW_H */

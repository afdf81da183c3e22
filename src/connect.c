/*-------------------------------------------------------------------------
 *
 * connect.c
 *		The connection lifecycle in schema "unified": connect (checked
 *		inputs, a credit, a live check, then server, user mapping, schema
 *		and the unified.connections row), disconnect, the live probe behind
 *		unified.status(live => true), and the credit total.
 *
 * Everything runs as the caller, in the caller's transaction, so any
 * failure leaves nothing behind: the server, mapping, schema and row roll
 * back with it, and a credit is simply a row of unified.connections without
 * disconnected_at.  Only unified.connections itself is written as its owner
 * (callers have no privileges on it), with search_path pinned to
 * pg_catalog, pg_temp for the whole call.
 *
 * Secrets: the user mapping is created with CreateUserMapping() on a
 * statement built here, never through SQL text, so no error context, log
 * line or debug_print_* output can carry the credentials.  Errors name
 * credential fields, never their values.  The calling statement's own text
 * (which holds them) is replaced in pg_stat_activity, and kept out of the
 * log when the call fails by raising log_min_error_statement for the call.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "commands/dbcommands.h"
#include "catalog/pg_class.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_type.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "unified_fdw.h"

PG_FUNCTION_INFO_V1(unified_connect);
PG_FUNCTION_INFO_V1(unified_disconnect);
PG_FUNCTION_INFO_V1(unified_probe);
PG_FUNCTION_INFO_V1(unified_status_sync);
PG_FUNCTION_INFO_V1(unified_credit_total);

/* The credential fields of each authentication method. */
static const struct
{
	int			method;
	const char *name;			/* as in unified.systems.auth_methods */
	const char *fields[5];
}			auth_fields[] =
{
	{UFDW_AUTH_OAUTH2_CC, "oauth2_client_credentials", {"client_id", "client_secret"}},
	{UFDW_AUTH_BASIC, "basic", {"username", "password"}},
	{UFDW_AUTH_BEARER, "bearer", {"token"}},
	{UFDW_AUTH_API_KEY, "api_key", {"api_key"}},
	{UFDW_AUTH_TBA, "tba", {"consumer_key", "consumer_secret", "token_id", "token_secret"}},
	{UFDW_AUTH_OAUTH2_CODE, "oauth2_authorization_code", {"client_id", "client_secret", "refresh_token"}},
};

/* ---- helpers ---- */

/* The object of a jsonb argument as DefElems of text values. */
List *
ufdw_jsonb_options(Datum jsonb, const char *argname)
{
	Jsonb	   *jb = DatumGetJsonbP(jsonb);
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	List	   *out = NIL;
	char	   *key = NULL;

	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"%s\" must be a JSON object", argname)));
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *s;

		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (tok != WJB_VALUE)
			continue;
		switch (v.type)
		{
			case jbvString:
				s = pnstrdup(v.val.string.val, v.val.string.len);
				break;
			case jbvNumeric:
				s = DatumGetCString(DirectFunctionCall1(numeric_out,
														NumericGetDatum(v.val.numeric)));
				break;
			case jbvBool:
				s = pstrdup(v.val.boolean ? "true" : "false");
				break;
			default:
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("field \"%s\" of argument \"%s\" must be a string, number or boolean",
								key, argname)));
		}
		out = lappend(out, makeDefElem(key, (Node *) makeString(s), -1));
	}
	return out;
}

/* Whether credential field name is given, as itself or as name_file. */
static bool
has_key(List *options, const char *name)
{
	return ufdw_option_value(options, name) != NULL ||
		ufdw_option_value(options, psprintf("%s_file", name)) != NULL;
}

/* Whether key is credential field field, or field_file (read from a file). */
static bool
is_field(const char *key, const char *field)
{
	size_t		len = strlen(field);

	return strncmp(key, field, len) == 0 &&
		(key[len] == '\0' || strcmp(key + len, "_file") == 0);
}

static bool
is_credential_field(const char *name)
{
	for (int m = 0; m < lengthof(auth_fields); m++)
		for (int f = 0; auth_fields[m].fields[f]; f++)
			if (is_field(name, auth_fields[m].fields[f]))
				return true;
	return false;
}

/* "client_id and client_secret (oauth2_client_credentials); or ..." */
static char *
accepted_credentials(const UfdwConnector *conn)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int m = 0; m < lengthof(auth_fields); m++)
	{
		if (!(conn->auth_methods & auth_fields[m].method))
			continue;
		appendStringInfoString(&buf, buf.len ? "; or {" : "{");
		for (int f = 0; auth_fields[m].fields[f]; f++)
			appendStringInfo(&buf, "%s\"%s\": \"...\"", f ? ", " : "",
							 auth_fields[m].fields[f]);
		appendStringInfo(&buf, "} (%s)", auth_fields[m].name);
	}
	appendStringInfoString(&buf, "; any field may instead name a server file holding it, as \"<field>_file\" (superusers and members of pg_read_server_files; keeps the secret out of the statement text)");
	return buf.data;
}

/*
 * Checks that the credential fields are exactly those of one method the
 * connector accepts; returns that method's name.  Messages name fields,
 * never values.
 */
static const char *
check_credentials(const UfdwConnector *conn, List *creds)
{
	ListCell   *lc;
	int			best = -1;
	int			best_hits = 0;
	StringInfoData missing;
	StringInfoData unexpected;
	int			nunexpected = 0;

	foreach(lc, creds)
	{
		DefElem    *d = lfirst(lc);

		if (!is_credential_field(d->defname))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unexpected credential field \"%s\"", d->defname),
					 errdetail("Server options such as company_id or tenant_id go in the \"options\" argument."),
					 errhint("%s accepts credentials %s.", conn->name,
							 accepted_credentials(conn))));
		if (strlen(d->defname) > 5 &&
			strcmp(d->defname + strlen(d->defname) - 5, "_file") == 0 &&
			ufdw_option_value(creds, pnstrdup(d->defname, strlen(d->defname) - 5)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("credential fields \"%s\" and \"%s\" cannot both be given",
							pnstrdup(d->defname, strlen(d->defname) - 5), d->defname),
					 errhint("Give the credential either inline or in a file, not both.")));
	}
	for (int m = 0; m < lengthof(auth_fields); m++)
	{
		int			hits = 0;
		int			nfields = 0;

		if (!(conn->auth_methods & auth_fields[m].method))
			continue;
		for (int f = 0; auth_fields[m].fields[f]; f++, nfields++)
			if (has_key(creds, auth_fields[m].fields[f]))
				hits++;
		if (hits == nfields && hits == list_length(creds))
			return auth_fields[m].name;
		if (hits > best_hits)
		{
			best = m;
			best_hits = hits;
		}
	}

	if (creds == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"credentials\" is empty"),
				 errhint("%s accepts credentials %s.", conn->name,
						 accepted_credentials(conn))));
	initStringInfo(&missing);
	initStringInfo(&unexpected);
	if (best >= 0)
		for (int f = 0; auth_fields[best].fields[f]; f++)
			if (!has_key(creds, auth_fields[best].fields[f]))
				appendStringInfo(&missing, "%s\"%s\"", missing.len ? ", " : "",
								 auth_fields[best].fields[f]);
	foreach(lc, creds)
	{
		DefElem    *d = lfirst(lc);
		bool		in_best = false;

		if (best >= 0)
			for (int f = 0; auth_fields[best].fields[f]; f++)
				in_best = in_best || is_field(d->defname, auth_fields[best].fields[f]);
		if (!in_best)
		{
			appendStringInfo(&unexpected, "%s\"%s\"", unexpected.len ? ", " : "",
							 d->defname);
			nunexpected++;
		}
	}
	if (best >= 0 && missing.len > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("credentials for %s lack %s", auth_fields[best].name, missing.data),
				 unexpected.len ? errdetail("Unexpected besides: %s.", unexpected.data) : 0,
				 errhint("%s accepts credentials %s.", conn->name,
						 accepted_credentials(conn))));
	if (best >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("credentials for %s have unexpected field%s %s", auth_fields[best].name,
						nunexpected == 1 ? "" : "s", unexpected.data),
				 errdetail("Give the fields of one authentication method only."),
				 errhint("%s accepts credentials %s.", conn->name,
						 accepted_credentials(conn))));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s does not accept credential field%s %s", conn->name,
					nunexpected == 1 ? "" : "s", unexpected.data),
			 errhint("%s accepts credentials %s.", conn->name,
					 accepted_credentials(conn))));
	return NULL;				/* keep compiler quiet */
}

/* OID and owner of unified.connections. */
static Oid
connections_table(Oid *owner)
{
	Oid			nsp = get_namespace_oid("unified", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("connections", nsp) : InvalidOid;
	HeapTuple	tup;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table unified.connections does not exist"),
				 errhint("CREATE EXTENSION unified_fdw in this database.")));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	*owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return relid;
}

/*
 * Runs sql on unified.connections as the table's owner (callers have no
 * privileges on it).  SPI must be connected; returns SPI's result code.
 */
static int
exec_as_owner(const char *sql, int nargs, Oid *argtypes, Datum *values,
			  const char *nulls)
{
	Oid			owner;
	Oid			save_uid;
	int			save_sec;
	int			rc;

	(void) connections_table(&owner);
	GetUserIdAndSecContext(&save_uid, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	rc = SPI_execute_with_args(sql, nargs, argtypes, values, nulls, false, 0);
	SetUserIdAndSecContext(save_uid, save_sec);
	return rc;
}

/* Pins search_path for the rest of the call; undo with AtEOXact_GUC. */
static int
pin_search_path(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return level;
}

static bool
connection_row_exists(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};

	exec_as_owner("SELECT 1 FROM unified.connections WHERE name = $1",
				  1, argtypes, values, NULL);
	return SPI_processed > 0;
}

static bool
name_taken(const char *name)
{
	return GetForeignServerByName(name, true) != NULL ||
		OidIsValid(get_namespace_oid(name, true)) ||
		connection_row_exists(name);
}

/* Checks a connection name given by the caller. */
void
ufdw_check_connection_name(const char *name)
{
	if (name[0] == '\0' || strlen(name) >= NAMEDATALEN ||
		!(name[0] == '_' || (name[0] >= 'a' && name[0] <= 'z')) ||
		strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(name) ||
		strncmp(name, "pg_", 3) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid connection name \"%s\"", name),
				 errhint("Use lower-case letters, digits and underscores, starting with a letter and not with \"pg_\", at most %d characters: the name is used for the server and the schema.",
						 NAMEDATALEN - 1)));
	if (connection_row_exists(name))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("connection \"%s\" already exists", name),
				 errhint("Names are never reused, not even after unified.disconnect(): choose another name.")));
	if (GetForeignServerByName(name, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("server \"%s\" already exists", name),
				 errhint("Choose another connection name.")));
	if (OidIsValid(get_namespace_oid(name, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_SCHEMA),
				 errmsg("schema \"%s\" already exists", name),
				 errhint("Choose another connection name: the connection gets a schema of its own.")));
}

/* The default name: the system id, then system_2, system_3, ... */
static char *
default_name(const UfdwConnector *conn)
{
	for (int i = 1; i < 1000; i++)
	{
		char	   *name = i == 1 ? pstrdup(conn->system) : psprintf("%s_%d", conn->system, i);

		if (!name_taken(name))
			return name;
	}
	ereport(ERROR,
			(errcode(ERRCODE_DUPLICATE_OBJECT),
			 errmsg("could not choose a connection name"),
			 errhint("Pass a name to unified.connect().")));
	return NULL;				/* keep compiler quiet */
}

/* Credits in use, and their names for the message, under the credit lock. */
static int
credits_used(char **names)
{
	Oid			owner;

	/* serialises connects until commit; does not block status updates */
	LockRelationOid(connections_table(&owner), ShareUpdateExclusiveLock);
	exec_as_owner("SELECT count(*)::int4, string_agg(name, ', ' ORDER BY name) "
				  "FROM unified.connections WHERE disconnected_at IS NULL",
				  0, NULL, NULL, NULL);
	*names = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	return atoi(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
}

/*
 * Reads one record of the first table the connector provides: the
 * cheapest request that proves the instance, company or account and the
 * credentials.  Raises the transport's error on failure.
 */
static const char *
probe(ForeignServer *server, UserMapping *um)
{
	UfdwOptions *opts = ufdw_get_options(server, um);
	const UfdwModel *model = ufdw_model();
	UfdwScanSpec spec = {0};
	UfdwRequestContext rctx;
	UfdwRequest *req;
	int			ti;

	for (ti = 0; ti < model->ntables; ti++)
		if (opts->connector->tables[ti])
			break;
	if (ti == model->ntables)
		elog(ERROR, "connector \"%s\" provides no table", opts->connector->system);
	spec.connector = opts->connector;
	spec.table = opts->connector->tables[ti];
	spec.columns = bms_make_singleton(0);
	spec.page_size = 1;
	ufdw_request_context(opts, model->tables[ti].name, &rctx);
	req = ufdw_first_request(&spec, opts);
	(void) ufdw_execute(req, opts, &rctx, um->umid);
	return model->tables[ti].name;
}

/* What the live check's error context names. */
typedef struct CheckContext
{
	const char *function;		/* "unified.connect()", ... */
	const char *name;			/* the connection's */
} CheckContext;

static void
connect_context_cb(void *arg)
{
	CheckContext *cc = arg;

	errcontext("%s: checking the credentials of connection \"%s\"; nothing was created",
			   cc->function, cc->name);
}

/*
 * Keeps the calling statement's text, which holds secrets, out of
 * pg_stat_activity (shown instead) and out of the server log should the
 * call fail (log_min_error_statement would log it with any ERROR), and
 * pins search_path.  Returns the GUC nest level to restore with
 * AtEOXact_GUC(true, level) when the call returns; an error restores it.
 */
int
ufdw_hide_statement(const char *shown)
{
	int			guclevel;

	pgstat_report_activity(STATE_RUNNING, shown);
	guclevel = pin_search_path();
	(void) set_config_option("log_min_error_statement", "panic", PGC_SUSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return guclevel;
}

/*
 * Checks the inputs of a connection before anything is created: the
 * options argument, privileges, and the server options and credentials
 * as the validator sees them.  *method, if NULL, is set to the
 * authentication method the credentials are exactly the fields of.
 * Raises an ERROR naming what to fix.
 */
void
ufdw_check_connection_inputs(const UfdwConnector *conn, List *options,
							 List *srv_options, List *creds, const char **method)
{
	ListCell   *lc;
	ForeignDataWrapper *fdw;

	foreach(lc, options)
	{
		DefElem    *d = lfirst(lc);

		if (strcmp(d->defname, "system") == 0 || strcmp(d->defname, "instance_url") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" is an argument of unified.connect(), not an option",
							d->defname)));
		if (is_credential_field(d->defname))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("credential field \"%s\" belongs in argument \"credentials\", not \"options\"",
							d->defname)));
		if (strcmp(d->defname, "disconnected") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"disconnected\" is set by unified.disconnect() only")));
	}
	if (*method == NULL)
		*method = check_credentials(conn, creds);
	fdw = GetForeignDataWrapperByName("unified_fdw", false);
	if (!DatumGetBool(DirectFunctionCall2(has_foreign_data_wrapper_privilege_name,
										  CStringGetTextDatum("unified_fdw"),
										  CStringGetTextDatum("USAGE"))))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for foreign-data wrapper unified_fdw"),
				 errhint("A superuser can GRANT USAGE ON FOREIGN DATA WRAPPER unified_fdw TO %s.",
						 quote_identifier(GetUserNameFromId(GetUserId(), false)))));
	if (!DatumGetBool(DirectFunctionCall2(has_database_privilege_id,
										  ObjectIdGetDatum(MyDatabaseId),
										  CStringGetTextDatum("CREATE"))))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to create schemas in database \"%s\"",
						get_database_name(MyDatabaseId)),
				 errhint("A connection gets a schema of its own: a superuser or the database owner can GRANT CREATE ON DATABASE %s TO %s.",
						 quote_identifier(get_database_name(MyDatabaseId)),
						 quote_identifier(GetUserNameFromId(GetUserId(), false)))));
	/* the validator: option names, values, superuser-only options */
	(void) transformGenericOptions(ForeignServerRelationId, (Datum) 0, srv_options,
								   fdw->fdwvalidator);
	(void) transformGenericOptions(UserMappingRelationId, (Datum) 0, creds,
								   fdw->fdwvalidator);
}

/* ---- SQL functions ---- */

/* The connector of system; an unknown one is an error listing the known. */
const UfdwConnector *
ufdw_system_connector(const char *system)
{
	const UfdwConnector *conn = ufdw_connector(system);

	if (conn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown system \"%s\"", system),
				 errhint("Known systems are: %s. SELECT * FROM unified.systems shows what each needs.",
						 ufdw_known_systems())));
	return conn;
}

/*
 * unified.connect(system, instance_url, credentials, name, options)
 * returns the new unified.connections row.  See docs/sql.md.
 */
Datum
unified_connect(PG_FUNCTION_ARGS)
{
	const UfdwConnector *conn;
	char	   *system;
	char	   *instance_url;
	List	   *creds;
	List	   *options = NIL;
	int			guclevel;
	Datum		result;

	guclevel = ufdw_hide_statement("SELECT unified.connect(...)  -- statement text hidden by unified_fdw: it holds credentials");

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"system\" must not be null"),
				 errhint("Known systems are: %s.", ufdw_known_systems())));
	system = text_to_cstring(PG_GETARG_TEXT_PP(0));
	conn = ufdw_system_connector(system);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"instance_url\" must not be null"),
				 errhint("For %s it looks like \"%s\".", conn->name,
						 conn->instance_url_example)));
	instance_url = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"credentials\" must not be null"),
				 errhint("%s accepts credentials %s.", conn->name,
						 accepted_credentials(conn))));
	creds = ufdw_jsonb_options(PG_GETARG_DATUM(2), "credentials");
	if (!PG_ARGISNULL(4))
		options = ufdw_jsonb_options(PG_GETARG_DATUM(4), "options");

	result = ufdw_create_connection(conn, instance_url, creds,
									PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3)),
									options, NULL, NULL, NULL);
	AtEOXact_GUC(true, guclevel);
	return result;
}

/*
 * Creates a connection as unified.connect() describes, step by step with
 * a NOTICE each: checked inputs, a credit, the live check, then server,
 * user mapping, schema with the imported tables and the row.  name NULL
 * picks the default.  method names the authentication method for the
 * NOTICE (NULL: the one the credentials are checked against).  hook, if
 * set, is called just before the live check and returns the credentials
 * to check and store (unified.complete_authorization() exchanges its code
 * there).  Returns the unified.connections row as a composite Datum.  Any
 * failure raises an ERROR and leaves nothing behind (the caller's
 * transaction rolls back).
 */
Datum
ufdw_create_connection(const UfdwConnector *conn, const char *instance_url,
					   List *creds, const char *name, List *options,
					   const char *method, UfdwCredentialHook hook, void *arg)
{
	List	   *srv_options;
	ForeignServer fake_server = {0};
	UserMapping fake_um = {0};
	CreateForeignServerStmt *cs;
	CreateUserMappingStmt *cu;
	RoleSpec   *role;
	char	   *in_use;
	int			used;
	const char *volatile probed = NULL;
	ErrorContextCallback errcb;
	CheckContext cc;
	MemoryContext oldcxt = CurrentMemoryContext;
	StringInfoData tables;
	Oid			argtypes[4] = {TEXTOID, TEXTOID, TEXTOID, OIDOID};
	Datum		values[4];
	HeapTupleHeader result;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/* 1. inputs, before anything is created */
	srv_options = list_concat(list_make2(makeDefElem("system", (Node *) makeString(conn->system), -1),
										 makeDefElem("instance_url", (Node *) makeString(pstrdup(instance_url)), -1)),
							  options);
	ufdw_check_connection_inputs(conn, options, srv_options, creds, &method);
	if (name == NULL)
		name = default_name(conn);
	else
		ufdw_check_connection_name(name);
	ereport(NOTICE,
			(errmsg("checked the inputs of connection \"%s\": %s, %s credentials",
					name, conn->name, method)));

	/* 2. a credit */
	used = credits_used(&in_use);
	if (used >= ufdw_connection_credits)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("no connection credit left: all %d are in use", ufdw_connection_credits),
				 used > 0 ? errdetail("Connections holding a credit: %s.", in_use) : 0,
				 errhint("Free one with unified.disconnect(name), or have a superuser raise unified_fdw.connection_credits.")));
	ereport(NOTICE,
			(errmsg("reserved a connection credit: %d of %d left after this one",
					ufdw_connection_credits - used - 1, ufdw_connection_credits)));

	/* 3. the credentials, live, before anything exists */
	fake_server.servername = (char *) name;
	fake_server.options = srv_options;
	fake_um.umid = InvalidOid;
	fake_um.userid = GetUserId();
	fake_um.options = creds;
	cc.function = hook ? "unified.complete_authorization()" : "unified.connect()";
	cc.name = name;
	errcb.callback = connect_context_cb;
	errcb.arg = &cc;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	ufdw_forget_token(InvalidOid);
	PG_TRY();
	{
		if (hook)
			fake_um.options = creds = hook(arg, creds, &fake_server);
		probed = probe(&fake_server, &fake_um);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		ufdw_forget_token(InvalidOid);
		/* the transport's advice is about user mappings, which do not exist yet */
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		if (edata->hint && strstr(edata->hint, "USER MAPPING"))
			edata->hint = pstrdup(hook ?
								  "The upstream did not accept the authorization: start again with unified.authorize()." :
								  "The upstream rejected the credentials given to unified.connect(): check them (secrets expire, and some are shown only once, when created) and call unified.connect() again.");
		ReThrowError(edata);
	}
	PG_END_TRY();
	ufdw_forget_token(InvalidOid);
	error_context_stack = errcb.previous;
	ereport(NOTICE,
			(errmsg("%s accepted the credentials (read 1 record of %s)", conn->name, probed)));

	/* 4. server, user mapping, schema, tables */
	cs = makeNode(CreateForeignServerStmt);
	cs->servername = (char *) name;
	cs->fdwname = "unified_fdw";
	cs->options = srv_options;
	CreateForeignServer(cs);
	CommandCounterIncrement();
	ereport(NOTICE, (errmsg("created server \"%s\"", name)));

	role = makeNode(RoleSpec);
	role->roletype = ROLESPEC_CURRENT_USER;
	role->location = -1;
	cu = makeNode(CreateUserMappingStmt);
	cu->user = role;
	cu->servername = (char *) name;
	cu->options = creds;
	CreateUserMapping(cu);
	CommandCounterIncrement();
	ereport(NOTICE,
			(errmsg("created the user mapping for \"%s\" on server \"%s\" with the credentials",
					GetUserNameFromId(GetUserId(), false), name)));

	if (SPI_execute(psprintf("CREATE SCHEMA %s", quote_identifier(name)), false, 0) != SPI_OK_UTILITY ||
		SPI_execute(psprintf("IMPORT FOREIGN SCHEMA unified FROM SERVER %s INTO %s",
							 quote_identifier(name), quote_identifier(name)), false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not create schema \"%s\"", name);
	initStringInfo(&tables);
	for (int ti = 0; ti < ufdw_model()->ntables; ti++)
		if (conn->tables[ti])
			appendStringInfo(&tables, "%s%s", tables.len ? ", " : "",
							 ufdw_model()->tables[ti].name);
	ereport(NOTICE,
			(errmsg("created schema \"%s\" with foreign tables %s", name, tables.data)));

	/* 5. the row */
	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(conn->system);
	values[2] = CStringGetTextDatum(instance_url);
	values[3] = ObjectIdGetDatum(GetUserId());
	if (exec_as_owner("INSERT INTO unified.connections (name, system, instance_url, owner, last_success_at) "
					  "VALUES ($1, $2, $3, $4::regrole, now()) RETURNING *",
					  4, argtypes, values, NULL) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not record connection \"%s\"", name);
	result = SPI_returntuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc);
	ereport(NOTICE,
			(errmsg("connection \"%s\" is active: query it as %s.purchase_orders and friends; see unified.status()",
					name, quote_identifier(name))));

	SPI_finish();
	return PointerGetDatum(result);
}

/*
 * unified.disconnect(name): marks the server disconnected, drops every
 * user mapping on it, and records disconnected_at, returning the credit.
 * The server, its foreign tables and the schema stay.  Only the server's
 * owner (or a superuser) can do this: ALTER SERVER checks it.
 */
Datum
unified_disconnect(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			argtypes[2] = {TEXTOID, OIDOID};
	Datum		values[2] = {CStringGetTextDatum(name), ObjectIdGetDatum(GetUserId())};
	ForeignServer *server;
	int			guclevel;
	HeapTupleHeader result;
	char	   *in_use;
	int			used;
	uint64		nmappings;

	guclevel = pin_search_path();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* visible to the caller: a member of the role that connected */
	exec_as_owner("SELECT disconnected_at IS NOT NULL, pg_has_role($2, owner, 'USAGE') "
				  "FROM unified.connections WHERE name = $1",
				  2, argtypes, values, NULL);
	if (SPI_processed == 0 ||
		strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2), "t") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("connection \"%s\" does not exist", name),
				 errhint("SELECT name FROM unified.status() lists the connections you can see.")));
	if (strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), "t") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("connection \"%s\" is already disconnected", name),
				 errhint("Reconnect with unified.connect(...) under a new name.")));

	server = GetForeignServerByName(name, true);
	if (server)
	{
		Oid			srvtype[1] = {OIDOID};
		Datum		srvid[1] = {ObjectIdGetDatum(server->serverid)};
		SPITupleTable *maps;

		if (SPI_execute(psprintf("ALTER SERVER %s OPTIONS (ADD disconnected 'true')",
								 quote_identifier(name)), false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "could not mark server \"%s\" disconnected", name);
		ereport(NOTICE,
				(errmsg("marked server \"%s\" disconnected: every session's next query on it fails",
						name)));
		if (SPI_execute_with_args("SELECT CASE WHEN umuser = 0 THEN 'PUBLIC' ELSE quote_ident(usename::text) END, umid "
								  "FROM pg_user_mappings WHERE srvid = $1",
								  1, srvtype, srvid, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not list the user mappings of server \"%s\"", name);
		nmappings = SPI_processed;
		maps = SPI_tuptable;
		for (uint64 i = 0; i < nmappings; i++)
		{
			char	   *who = SPI_getvalue(maps->vals[i], maps->tupdesc, 1);

			/* a refresh token kept for it (token_store.c) goes too */
			ufdw_forget_refresh_token(atooid(SPI_getvalue(maps->vals[i], maps->tupdesc, 2)));

			if (SPI_execute(psprintf("DROP USER MAPPING FOR %s SERVER %s", who,
									 quote_identifier(name)), false, 0) != SPI_OK_UTILITY)
				elog(ERROR, "could not drop a user mapping of server \"%s\"", name);
		}
		ereport(NOTICE,
				(errmsg("dropped the credentials: " UINT64_FORMAT " user mapping(s) of server \"%s\"",
						nmappings, name)));
	}

	if (exec_as_owner("UPDATE unified.connections SET status = 'disconnected', "
					  "disconnected_at = now() WHERE name = $1 RETURNING *",
					  1, argtypes, values, NULL) != SPI_OK_UPDATE_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "could not record the disconnection of \"%s\"", name);
	result = SPI_returntuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc);
	used = credits_used(&in_use);
	ereport(NOTICE,
			(errmsg("returned the connection credit: %d of %d available",
					Max(ufdw_connection_credits - used, 0), ufdw_connection_credits)));
	ereport(NOTICE,
			(errmsg("kept schema \"%s\" with its foreign tables and local tables", name)));

	SPI_finish();
	AtEOXact_GUC(true, guclevel);
	PG_RETURN_HEAPTUPLEHEADER(result);
}

/*
 * unified._probe(name): the live check of unified.status(live => true),
 * with the caller's user mapping.  Its success or failure is recorded like
 * any scan's; failures are raised.
 */
Datum
unified_probe(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ForeignServer *server = GetForeignServerByName(name, false);
	UserMapping *um;

	ufdw_check_connected(server->serverid);
	um = GetUserMapping(GetUserId(), server->serverid);
	(void) probe(server, um);
	ufdw_status_success(server->servername);
	PG_RETURN_VOID();
}

/* unified._status_sync(): waits until recorded status has been written. */
Datum
unified_status_sync(PG_FUNCTION_ARGS)
{
	ufdw_status_sync();
	PG_RETURN_VOID();
}

/* unified._credit_total(): the setting unified_fdw.connection_credits. */
Datum
unified_credit_total(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(ufdw_connection_credits);
}

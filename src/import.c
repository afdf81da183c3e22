/*-------------------------------------------------------------------------
 *
 * import.c
 *		IMPORT FOREIGN SCHEMA unified, and the SQL functions that describe
 *		the model and the connectors.
 *
 * IMPORT creates one foreign table per model table that the server's
 * connector provides, honouring LIMIT TO and EXCEPT; naming a table that
 * is not in the model, or that the connector does not provide, is an
 * error.  The model's descriptions become table and column comments
 * through the extension's event trigger, which reads them from
 * unified.model_columns() (CREATE FOREIGN TABLE cannot carry comments).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "nodes/parsenodes.h"
#include "utils/array.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "unified_fdw.h"

PG_FUNCTION_INFO_V1(unified_check_connector);
PG_FUNCTION_INFO_V1(unified_model_columns);
PG_FUNCTION_INFO_V1(unified_systems);

static bool
name_listed(List *tables, const char *name)
{
	ListCell   *lc;

	foreach(lc, tables)
		if (strcmp(((RangeVar *) lfirst(lc))->relname, name) == 0)
			return true;
	return false;
}

List *
ufdw_import_foreign_schema(ImportForeignSchemaStmt *stmt, Oid serverOid)
{
	ForeignServer *server = GetForeignServer(serverOid);
	char	   *system = ufdw_option_value(server->options, "system");
	const UfdwConnector *conn = system ? ufdw_connector(system) : NULL;
	const UfdwModel *model = ufdw_model();
	List	   *commands = NIL;
	ListCell   *lc;

	if (strcmp(stmt->remote_schema, "unified") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_SCHEMA_NOT_FOUND),
				 errmsg("schema \"%s\" does not exist on server \"%s\"",
						stmt->remote_schema, server->servername),
				 errhint("unified_fdw provides one schema: IMPORT FOREIGN SCHEMA unified FROM SERVER %s INTO ...",
						 quote_identifier(server->servername))));
	if (conn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("server \"%s\" names an unknown system", server->servername)));

	foreach(lc, stmt->table_list)
	{
		const char *name = ((RangeVar *) lfirst(lc))->relname;
		int			ti = ufdw_model_table_index(name);

		if (ti < 0)
		{
			StringInfoData names;

			initStringInfo(&names);
			for (int i = 0; i < model->ntables; i++)
				appendStringInfo(&names, "%s%s", i ? ", " : "", model->tables[i].name);
			ereport(ERROR,
					(errcode(ERRCODE_FDW_TABLE_NOT_FOUND),
					 errmsg("table \"%s\" is not part of the unified model", name),
					 errhint("Tables of the unified model are: %s.", names.data)));
		}
		if (stmt->list_type == FDW_IMPORT_SCHEMA_LIMIT_TO && conn->tables[ti] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_TABLE_NOT_FOUND),
					 errmsg("%s does not provide table \"%s\"", conn->name, name)));
	}

	for (int ti = 0; ti < model->ntables; ti++)
	{
		const UfdwModelTable *mt = &model->tables[ti];
		StringInfoData cmd;

		if (conn->tables[ti] == NULL)
			continue;
		if (stmt->list_type == FDW_IMPORT_SCHEMA_LIMIT_TO &&
			!name_listed(stmt->table_list, mt->name))
			continue;
		if (stmt->list_type == FDW_IMPORT_SCHEMA_EXCEPT &&
			name_listed(stmt->table_list, mt->name))
			continue;

		initStringInfo(&cmd);
		appendStringInfo(&cmd, "CREATE FOREIGN TABLE %s (", quote_identifier(mt->name));
		for (int c = 0; c < mt->ncolumns; c++)
			appendStringInfo(&cmd, "%s%s %s", c ? ", " : "",
							 quote_identifier(mt->columns[c].name),
							 ufdw_coltype_sql(mt->columns[c].type));
		appendStringInfo(&cmd, ") SERVER %s OPTIONS (\"table\" %s)",
						 quote_identifier(server->servername),
						 quote_literal_cstr(mt->name));
		commands = lappend(commands, cmd.data);
	}
	return commands;
}

/*
 * unified.check_connector(path): loads a connector file the way the
 * extension would, against the installed model, and returns its system id;
 * an invalid file raises the loader's error, which names the place.  For
 * connector authors; reading server files needs pg_read_server_files.
 */
Datum
unified_check_connector(PG_FUNCTION_ARGS)
{
	char	   *path = text_to_cstring(PG_GETARG_TEXT_PP(0));
	UfdwConnector *conn = NULL;

	if (!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to read connector files"),
				 errhint("Only roles with privileges of pg_read_server_files may check connector files.")));
	ufdw_load_connector_file(path, ufdw_model(), &conn, NULL);
	PG_RETURN_TEXT_P(cstring_to_text(conn->system));
}

/*
 * unified.model_columns(): table_name, table_description, column_name,
 * data_type, description, ordinal; one row per model column.
 */
Datum
unified_model_columns(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const UfdwModel *model = ufdw_model();

	InitMaterializedSRF(fcinfo, 0);
	for (int t = 0; t < model->ntables; t++)
	{
		const UfdwModelTable *mt = &model->tables[t];

		for (int c = 0; c < mt->ncolumns; c++)
		{
			Datum		values[6];
			bool		nulls[6] = {0};

			values[0] = CStringGetTextDatum(mt->name);
			values[1] = CStringGetTextDatum(mt->description);
			values[2] = CStringGetTextDatum(mt->columns[c].name);
			values[3] = CStringGetTextDatum(ufdw_coltype_sql(mt->columns[c].type));
			values[4] = CStringGetTextDatum(mt->columns[c].description);
			values[5] = Int32GetDatum(c + 1);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}

static Datum
text_array(List *strings)
{
	Datum	   *elems = palloc(sizeof(Datum) * (list_length(strings) + 1));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, strings)
		elems[n++] = CStringGetTextDatum(lfirst(lc));
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * unified._systems(): system, name, auth_methods, required_options,
 * tables, setup_steps, optional_options; one row per installed connector.
 */
Datum
unified_systems(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const UfdwModel *model = ufdw_model();
	static const struct
	{
		int			method;
		const char *name;
	}			methods[] =
	{
		{UFDW_AUTH_OAUTH2_CC, "oauth2_client_credentials"},
		{UFDW_AUTH_BASIC, "basic"},
		{UFDW_AUTH_API_KEY, "api_key"},
		{UFDW_AUTH_BEARER, "bearer"},
		{UFDW_AUTH_TBA, "tba"},
		{UFDW_AUTH_OAUTH2_CODE, "oauth2_authorization_code"},
	};
	/* methods where the customer signs in and consents in a browser */
	const int	browser = UFDW_AUTH_OAUTH2_CODE;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	foreach(lc, ufdw_connectors())
	{
		const UfdwConnector *conn = lfirst(lc);
		Datum		values[8];
		bool		nulls[8] = {0};
		List	   *auth = NIL;
		List	   *browser_auth = NIL;
		List	   *required = list_make1("instance_url");
		List	   *tables = NIL;
		ListCell   *lc2;

		for (int i = 0; i < lengthof(methods); i++)
		{
			if (conn->auth_methods & methods[i].method)
				auth = lappend(auth, (char *) methods[i].name);
			if (conn->auth_methods & methods[i].method & browser)
				browser_auth = lappend(browser_auth, (char *) methods[i].name);
		}
		foreach(lc2, conn->required_options)
			if (strcmp(lfirst(lc2), "instance_url") != 0)
				required = lappend(required, lfirst(lc2));
		for (int t = 0; t < model->ntables; t++)
			if (conn->tables[t])
				tables = lappend(tables, model->tables[t].name);

		values[0] = CStringGetTextDatum(conn->system);
		values[1] = CStringGetTextDatum(conn->name);
		values[2] = text_array(auth);
		values[3] = text_array(required);
		values[4] = text_array(tables);
		values[5] = text_array(conn->setup_steps);
		values[6] = text_array(conn->optional_options);
		values[7] = text_array(browser_auth);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

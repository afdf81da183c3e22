/*-------------------------------------------------------------------------
 *
 * sync.c
 *		The C side of scheduled syncs: the facts the SQL functions of
 *		section "Scheduled syncs" of the extension script need from the
 *		model and the connectors, and the backend's request counter.
 *
 * The sync engine itself is SQL (unified.start_sync, unified.sync_now, ...):
 * it reads the foreign tables like any query, so pushdown, paging, retries
 * and errors are the scan's.  Which tables are read incrementally is
 * declared, never guessed: the model names a table's change stamp
 * ("sync": {"changed_at": ...}) and the tables that follow a parent
 * ("follows", "link"); a table is incremental only where the connector maps
 * the change stamp to a native field, else it is read whole.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "foreign/foreign.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "unified_fdw.h"

PG_FUNCTION_INFO_V1(unified_sync_tables);
PG_FUNCTION_INFO_V1(unified_backend_requests);

/*
 * unified._sync_tables(server name): table_name, mode ('incremental',
 * 'follows', 'full'), change_column, parent_table, link_column; one row per
 * table the server's connector provides, parents before their followers.
 */
Datum
unified_sync_tables(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ForeignServer *server = GetForeignServerByName(name, false);
	char	   *system = ufdw_option_value(server->options, "system");
	const UfdwConnector *conn = system ? ufdw_connector(system) : NULL;
	const UfdwModel *model = ufdw_model();

	if (conn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("server \"%s\" is not a unified_fdw connection", name)));
	InitMaterializedSRF(fcinfo, 0);
	for (int pass = 0; pass < 2; pass++)
	{
		for (int t = 0; t < model->ntables; t++)
		{
			const UfdwModelTable *mt = &model->tables[t];
			Datum		values[5];
			bool		nulls[5] = {0};
			const char *mode = "full";

			if (conn->tables[t] == NULL || (mt->follows != NULL) != (pass == 1))
				continue;
			if (mt->follows)
				mode = "follows";
			else if (mt->changed_at)
			{
				for (int c = 0; c < mt->ncolumns; c++)
					if (strcmp(mt->columns[c].name, mt->changed_at) == 0 &&
						conn->tables[t]->columns[c].kind == UFDW_MAP_FIELD)
						mode = "incremental";
			}
			values[0] = CStringGetTextDatum(mt->name);
			values[1] = CStringGetTextDatum(mode);
			nulls[2] = strcmp(mode, "incremental") != 0;
			if (!nulls[2])
				values[2] = CStringGetTextDatum(mt->changed_at);
			nulls[3] = nulls[4] = (mt->follows == NULL);
			if (mt->follows)
			{
				values[3] = CStringGetTextDatum(mt->follows);
				values[4] = CStringGetTextDatum(mt->follows_link);
			}
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}

/* unified._backend_requests(): upstream requests this backend has sent. */
Datum
unified_backend_requests(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(ufdw_backend_requests);
}

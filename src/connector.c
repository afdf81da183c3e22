/*-------------------------------------------------------------------------
 *
 * connector.c
 *		Loads the unified model and the connector definition files.
 *
 * The files live in $sharedir/extension/unified_fdw/: model.json describes
 * the unified tables, every other *.json file describes one upstream system
 * (format: docs/connectors.md).  They are read once per backend, on first
 * use, into a memory context that lives as long as the backend.
 *
 * Loading is strict: an unknown key, a value of the wrong type or a
 * reference to something that does not exist is an ERROR naming the file
 * and the place in it ("tables.vendors.columns.status.map").  A backend
 * that failed to load keeps no partial state and tries again next time.
 *
 * This file uses jansson and so must not include utils/builtins.h.  Every
 * jansson tree is released before an error propagates (PG_CATCH below).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <jansson.h>

#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"

#include "dialect.h"

#define UFDW_FORMAT_VERSION 1

/* The dialect modules, by connector key "dialect". */
static const UfdwDialect *const dialects[] = {
	&ufdw_dialect_odata_v4,
	&ufdw_dialect_odata_v2,
	&ufdw_dialect_suiteql,
};

/* Everything loaded, allocated in loaded_cxt. */
static MemoryContext loaded_cxt = NULL;
static UfdwModel *loaded_model = NULL;
static List *loaded_connectors = NIL;	/* of UfdwConnector *, by system */

/* Where a value sits in the file being loaded, for error messages. */
typedef struct LoadPos
{
	const char *file;
	char		path[256];
} LoadPos;

static void load_all(void);

/*
 * Raise a connector file error at pos, with the place appended to the
 * path.  Never returns.
 */
static void
pg_attribute_noreturn()
load_error(const LoadPos *pos, const char *what, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONFIG_FILE_ERROR),
			 errmsg("invalid connector file \"%s\" at \"%s\": %s",
					pos->file, pos->path[0] ? pos->path : "(top level)", what),
			 detail ? errdetail_internal("%s", detail) : 0,
			 errhint("Fix the file, or reinstall unified_fdw; the format is described in docs/connectors.md.")));
}

/* A child position: pos.path + "." + key. */
static LoadPos
pos_child(const LoadPos *pos, const char *key)
{
	LoadPos		child;

	child.file = pos->file;
	if (pos->path[0])
		snprintf(child.path, sizeof(child.path), "%s.%s", pos->path, key);
	else
		snprintf(child.path, sizeof(child.path), "%s", key);
	return child;
}

static LoadPos
pos_index(const LoadPos *pos, size_t i)
{
	LoadPos		child;

	child.file = pos->file;
	snprintf(child.path, sizeof(child.path), "%s[%zu]", pos->path, i);
	return child;
}

/* Reject keys of obj that are not in allowed (NULL-terminated). */
static void
check_keys(const LoadPos *pos, json_t *obj, const char *const *allowed)
{
	const char *key;
	json_t	   *value;

	json_object_foreach(obj, key, value)
	{
		const char *const *a;
		bool		found = false;

		for (a = allowed; *a; a++)
			if (strcmp(*a, key) == 0)
				found = true;
		if (!found)
		{
			StringInfoData valid;

			initStringInfo(&valid);
			for (a = allowed; *a; a++)
				appendStringInfo(&valid, "%s%s", a == allowed ? "" : ", ", *a);
			load_error(pos, psprintf("unknown key \"%s\"", key),
					   psprintf("Valid keys here are: %s.", valid.data));
		}
	}
}

/*
 * Member key of obj, which must have JSON type type (what names it in the
 * error); NULL if it is absent and not required.
 */
static json_t *
get_member(const LoadPos *pos, json_t *obj, const char *key, bool required,
		   json_type type, const char *what)
{
	json_t	   *v = json_object_get(obj, key);
	LoadPos		p = pos_child(pos, key);

	if (v == NULL)
	{
		if (required)
			load_error(pos, psprintf("missing key \"%s\"", key), NULL);
		return NULL;
	}
	if (json_typeof(v) != type)
		load_error(&p, psprintf("expected %s", what), NULL);
	return v;
}

static json_t *
get_object(const LoadPos *pos, json_t *obj, const char *key, bool required)
{
	return get_member(pos, obj, key, required, JSON_OBJECT, "an object");
}

static json_t *
get_array(const LoadPos *pos, json_t *obj, const char *key, bool required)
{
	return get_member(pos, obj, key, required, JSON_ARRAY, "an array");
}

static char *
get_string(const LoadPos *pos, json_t *obj, const char *key, bool required)
{
	json_t	   *v = get_member(pos, obj, key, required, JSON_STRING, "a string");

	return v ? pstrdup(json_string_value(v)) : NULL;
}

/*
 * The position of the required string member key of obj in names
 * (NULL-terminated); an unknown value is an error naming the valid ones.
 */
static int
get_keyword(const LoadPos *pos, json_t *obj, const char *key,
			const char *const *names, const char *what, const char *whats)
{
	const char *s = get_string(pos, obj, key, true);
	StringInfoData valid;
	LoadPos		p;

	for (int i = 0; names[i]; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	initStringInfo(&valid);
	for (int i = 0; names[i]; i++)
		appendStringInfo(&valid, "%s%s", i ? ", " : "", names[i]);
	p = pos_child(pos, key);
	load_error(&p, psprintf("unknown %s \"%s\"", what, s),
			   psprintf("Valid %s are: %s.", whats, valid.data));
	return -1;					/* keep compiler quiet */
}

static int
get_int(const LoadPos *pos, json_t *obj, const char *key, int min, int max)
{
	json_t	   *v = json_object_get(obj, key);
	LoadPos		p = pos_child(pos, key);

	if (v == NULL)
		load_error(pos, psprintf("missing key \"%s\"", key), NULL);
	if (!json_is_integer(v) || json_integer_value(v) < min ||
		json_integer_value(v) > max)
		load_error(&p, psprintf("expected an integer between %d and %d", min, max),
				   NULL);
	return (int) json_integer_value(v);
}

/* An array of strings as a List of char *. */
static List *
get_string_list(const LoadPos *pos, json_t *obj, const char *key, bool required)
{
	json_t	   *arr = get_array(pos, obj, key, required);
	LoadPos		p = pos_child(pos, key);
	List	   *result = NIL;
	size_t		i;
	json_t	   *v;

	if (arr == NULL)
		return NIL;
	json_array_foreach(arr, i, v)
	{
		LoadPos		pi = pos_index(&p, i);

		if (!json_is_string(v))
			load_error(&pi, "expected a string", NULL);
		result = lappend(result, pstrdup(json_string_value(v)));
	}
	return result;
}

/* An object of string values as name/value pairs. */
static UfdwNameValue *
get_name_values(const LoadPos *pos, json_t *obj, const char *key, int *n)
{
	json_t	   *o = get_object(pos, obj, key, false);
	LoadPos		p = pos_child(pos, key);
	UfdwNameValue *result;
	const char *k;
	json_t	   *v;
	int			i = 0;

	*n = 0;
	if (o == NULL)
		return NULL;
	result = palloc0(sizeof(UfdwNameValue) * (json_object_size(o) + 1));
	json_object_foreach(o, k, v)
	{
		LoadPos		pk = pos_child(&p, k);

		if (!json_is_string(v))
			load_error(&pk, "expected a string", NULL);
		result[i].name = pstrdup(k);
		result[i].value = pstrdup(json_string_value(v));
		i++;
	}
	*n = i;
	return result;
}

/* Is s (by strcmp) one of the strings of list? */
bool
ufdw_string_in_list(List *list, const char *s)
{
	ListCell   *lc;

	foreach(lc, list)
		if (strcmp(lfirst(lc), s) == 0)
			return true;
	return false;
}

static UfdwColType
parse_coltype(const LoadPos *pos, const char *s)
{
	static const struct
	{
		const char *name;
		UfdwColType type;
	}			types[] =
	{
		{"text", UFDW_TYPE_TEXT},
		{"numeric", UFDW_TYPE_NUMERIC},
		{"integer", UFDW_TYPE_INTEGER},
		{"date", UFDW_TYPE_DATE},
		{"timestamptz", UFDW_TYPE_TIMESTAMPTZ},
		{"jsonb", UFDW_TYPE_JSONB},
	};

	for (int i = 0; i < lengthof(types); i++)
		if (strcmp(types[i].name, s) == 0)
			return types[i].type;
	load_error(pos, psprintf("unknown type \"%s\"", s),
			   "Valid types are: text, numeric, integer, date, timestamptz, jsonb.");
}

const char *
ufdw_coltype_sql(UfdwColType type)
{
	switch (type)
	{
		case UFDW_TYPE_TEXT:
			return "text";
		case UFDW_TYPE_NUMERIC:
			return "numeric";
		case UFDW_TYPE_INTEGER:
			return "integer";
		case UFDW_TYPE_DATE:
			return "date";
		case UFDW_TYPE_TIMESTAMPTZ:
			return "timestamp with time zone";
		case UFDW_TYPE_JSONB:
			return "jsonb";
	}
	elog(ERROR, "unknown column type %d", (int) type);
}

/* Checks the "format" and "format_version" header of a file. */
static void
check_header(const LoadPos *pos, json_t *root, const char *format)
{
	char	   *f = get_string(pos, root, "format", true);

	if (strcmp(f, format) != 0)
		load_error(pos, psprintf("expected \"format\": \"%s\", found \"%s\"", format, f),
				   NULL);
	if (get_int(pos, root, "format_version", 1, 1000) != UFDW_FORMAT_VERSION)
		load_error(pos, "unsupported format_version",
				   psprintf("This build of unified_fdw reads format_version %d.",
							UFDW_FORMAT_VERSION));
}

static UfdwModel *
parse_model(const LoadPos *pos, json_t *root)
{
	static const char *const top_keys[] = {"format", "format_version", "model_version", "tables", NULL};
	static const char *const table_keys[] = {"description", "columns", NULL};
	static const char *const col_keys[] = {"name", "type", "description", "enum", NULL};
	UfdwModel  *model = palloc0(sizeof(UfdwModel));
	json_t	   *tables;
	LoadPos		ptables = pos_child(pos, "tables");
	const char *tname;
	json_t	   *tdef;
	int			t = 0;

	check_keys(pos, root, top_keys);
	check_header(pos, root, "unified_fdw/model");
	(void) get_int(pos, root, "model_version", 1, 1000);
	tables = get_object(pos, root, "tables", true);
	model->tables = palloc0(sizeof(UfdwModelTable) * (json_object_size(tables) + 1));

	json_object_foreach(tables, tname, tdef)
	{
		LoadPos		pt = pos_child(&ptables, tname);
		LoadPos		pcols = pos_child(&pt, "columns");
		UfdwModelTable *mt = &model->tables[t++];
		json_t	   *cols;
		size_t		i;
		json_t	   *c;

		if (!json_is_object(tdef))
			load_error(&pt, "expected an object", NULL);
		check_keys(&pt, tdef, table_keys);
		mt->name = pstrdup(tname);
		mt->description = get_string(&pt, tdef, "description", true);
		cols = get_array(&pt, tdef, "columns", true);
		mt->ncolumns = json_array_size(cols);
		mt->columns = palloc0(sizeof(UfdwModelColumn) * (mt->ncolumns + 1));
		json_array_foreach(cols, i, c)
		{
			LoadPos		pc = pos_index(&pcols, i);
			UfdwModelColumn *mc = &mt->columns[i];

			if (!json_is_object(c))
				load_error(&pc, "expected an object", NULL);
			check_keys(&pc, c, col_keys);
			mc->name = get_string(&pc, c, "name", true);
			mc->type = parse_coltype(&pc, get_string(&pc, c, "type", true));
			mc->description = get_string(&pc, c, "description", true);
			(void) get_string_list(&pc, c, "enum", false);
			for (int j = 0; j < (int) i; j++)
				if (strcmp(mt->columns[j].name, mc->name) == 0)
					load_error(&pc, psprintf("duplicate column \"%s\"", mc->name), NULL);
		}
	}
	model->ntables = t;
	return model;
}

/* A field reference: "name" or {"name": ..., "expr": ...}. */
static void
parse_field(const LoadPos *pos, json_t *v, UfdwField *f, const UfdwDialect *dialect)
{
	static const char *const field_keys[] = {"name", "expr", "filter_expr", NULL};

	if (json_is_string(v))
	{
		f->name = pstrdup(json_string_value(v));
		f->expr = NULL;
	}
	else if (json_is_object(v))
	{
		check_keys(pos, v, field_keys);
		f->name = get_string(pos, v, "name", true);
		f->expr = get_string(pos, v, "expr", false);
		f->filter_expr = get_string(pos, v, "filter_expr", false);
	}
	else
		load_error(pos, "expected a field name or an object with \"name\" and \"expr\"", NULL);
	if (f->name[0] == '\0')
		load_error(pos, "field name must not be empty", NULL);
	if ((f->expr || f->filter_expr) && !dialect->field_exprs)
		load_error(pos, psprintf("\"expr\" and \"filter_expr\" are not valid for the %s dialect",
								 dialect->name), NULL);
	if (dialect->check_field_name)
	{
		const char *why = dialect->check_field_name(f->name);

		if (why)
			load_error(pos, why, NULL);
	}
}

/*
 * The "native_type" of a field, checked against the column's model type,
 * its value map and the dialect (which literals it can spell).
 */
static UfdwNativeType
parse_native_type(const LoadPos *pos, json_t *v, const UfdwModelColumn *mc,
				  const UfdwColumnMap *cm, const UfdwDialect *dialect)
{
	static const struct
	{
		const char *name;
		UfdwNativeType type;
		UfdwColType coltype;
	}			types[] =
	{
		{"string", UFDW_NATIVE_STRING, UFDW_TYPE_TEXT},
		{"guid", UFDW_NATIVE_GUID, UFDW_TYPE_TEXT},
		{"enum", UFDW_NATIVE_ENUM, UFDW_TYPE_TEXT},
		{"decimal", UFDW_NATIVE_DECIMAL, UFDW_TYPE_NUMERIC},
		{"integer", UFDW_NATIVE_INTEGER, UFDW_TYPE_INTEGER},
		{"date", UFDW_NATIVE_DATE, UFDW_TYPE_DATE},
		{"datetime", UFDW_NATIVE_DATETIME, UFDW_TYPE_TIMESTAMPTZ},
		{"datetimeoffset", UFDW_NATIVE_DATETIMEOFFSET, UFDW_TYPE_TIMESTAMPTZ},
		{"local_datetime", UFDW_NATIVE_LOCAL_DATETIME, UFDW_TYPE_TIMESTAMPTZ},
	};
	const char *s;

	if (!json_is_string(v))
		load_error(pos, "expected a string", NULL);
	s = json_string_value(v);
	for (int i = 0; i < lengthof(types); i++)
	{
		if (strcmp(types[i].name, s) != 0)
			continue;
		/* SAP's Edm.DateTime may also carry a date column (midnight UTC) */
		if (types[i].coltype != mc->type &&
			!(types[i].type == UFDW_NATIVE_DATETIME && mc->type == UFDW_TYPE_DATE))
			load_error(pos, psprintf("native type \"%s\" does not fit a %s column",
									 s, ufdw_coltype_sql(mc->type)), NULL);
		if ((types[i].type == UFDW_NATIVE_ENUM) != (cm->nmap > 0))
			load_error(pos, "a column with a \"map\" has native type \"enum\", "
					   "and only such a column", NULL);
		if ((dialect->native_types & UFDW_NATIVE_BIT(types[i].type)) == 0)
			load_error(pos, psprintf("native type \"%s\" is not valid for the %s dialect",
									 s, dialect->name), NULL);
		return types[i].type;
	}
	load_error(pos, psprintf("unknown native type \"%s\"", s),
			   "Valid native types are: string, guid, enum, decimal, integer, "
			   "date, datetime, datetimeoffset, local_datetime.");
	return UFDW_NATIVE_NONE;	/* keep compiler quiet */
}

/*
 * The "conversion" of a field: {"exit": "alpha" | "numc" | "matn1", "length": n},
 * checked against the column's model type and native type.
 */
static void
parse_conversion(const LoadPos *pos, json_t *v, const UfdwModelColumn *mc,
				 UfdwColumnMap *cm, const UfdwDialect *dialect)
{
	static const char *const conv_keys[] = {"exit", "length", NULL};
	static const char *const exits[] = {"alpha", "numc", "matn1", NULL};
	const char *exit;
	json_t	   *len;

	if (!dialect->conversions)
		load_error(pos, psprintf("\"conversion\" is not valid for the %s dialect",
								 dialect->name), NULL);
	if (!json_is_object(v))
		load_error(pos, "expected an object", NULL);
	check_keys(pos, v, conv_keys);
	cm->conversion = UFDW_CONV_ALPHA +
		get_keyword(pos, v, "exit", exits, "conversion exit", "conversion exits");
	exit = exits[cm->conversion - UFDW_CONV_ALPHA];
	len = json_object_get(v, "length");
	if (len == NULL || !json_is_integer(len) ||
		json_integer_value(len) < 1 || json_integer_value(len) > 255)
	{
		LoadPos		p = pos_child(pos, "length");

		load_error(&p, "expected the field's length, an integer from 1 to 255", NULL);
	}
	cm->conversion_length = (int) json_integer_value(len);
	if (cm->nmap > 0)
		load_error(pos, "\"conversion\" is not valid with \"map\"", NULL);
	/* ALPHA, MATN1: text; NUMC: digits, read as text or as an integer */
	if (!(mc->type == UFDW_TYPE_TEXT ||
		  (cm->conversion == UFDW_CONV_NUMC && mc->type == UFDW_TYPE_INTEGER)))
		load_error(pos, psprintf("conversion exit \"%s\" does not fit a %s column",
								 exit, ufdw_coltype_sql(mc->type)), NULL);
	if (cm->native_type != UFDW_NATIVE_NONE &&
		cm->native_type != UFDW_NATIVE_STRING &&
		cm->native_type != UFDW_NATIVE_INTEGER)
		load_error(pos, "a field with a \"conversion\" has native type \"string\" or \"integer\"",
				   NULL);
}

static void
parse_column_map(const LoadPos *pos, json_t *v, const UfdwModelColumn *mc,
				 const UfdwConnector *conn, UfdwColumnMap *cm)
{
	static const char *const map_keys[] = {"field", "fields", "separator", "any_true",
	"option", "map", "default", "native_type", "conversion", NULL};
	json_t	   *src;
	int			nsources = 0;

	memset(cm, 0, sizeof(*cm));
	if (json_is_null(v))
	{
		cm->kind = UFDW_MAP_NULL;
		return;
	}
	if (!json_is_object(v))
		load_error(pos, "expected an object or null", NULL);
	check_keys(pos, v, map_keys);

	if ((src = json_object_get(v, "field")) != NULL)
	{
		LoadPos		p = pos_child(pos, "field");

		cm->kind = UFDW_MAP_FIELD;
		cm->nfields = 1;
		cm->fields = palloc0(sizeof(UfdwField));
		parse_field(&p, src, &cm->fields[0], conn->dialect);
		nsources++;
	}
	if ((src = json_object_get(v, "fields")) != NULL ||
		(src = json_object_get(v, "any_true")) != NULL)
	{
		bool		concat = json_object_get(v, "fields") != NULL;
		LoadPos		p = pos_child(pos, concat ? "fields" : "any_true");
		size_t		i;
		json_t	   *f;

		if (!json_is_array(src) || json_array_size(src) == 0)
			load_error(&p, "expected a non-empty array of fields", NULL);
		cm->kind = concat ? UFDW_MAP_CONCAT : UFDW_MAP_ANY_TRUE;
		cm->nfields = json_array_size(src);
		cm->fields = palloc0(sizeof(UfdwField) * cm->nfields);
		json_array_foreach(src, i, f)
		{
			LoadPos		pi = pos_index(&p, i);

			parse_field(&pi, f, &cm->fields[i], conn->dialect);
		}
		nsources++;
		if (json_object_get(v, "fields") && json_object_get(v, "any_true"))
			nsources++;
	}
	if ((src = json_object_get(v, "option")) != NULL)
	{
		cm->kind = UFDW_MAP_OPTION;
		cm->option = get_string(pos, v, "option", true);
		if (!ufdw_string_in_list(conn->required_options, cm->option) &&
			!ufdw_string_in_list(conn->optional_options, cm->option))
			load_error(pos, psprintf("option \"%s\" is not among the connector's options",
									 cm->option), NULL);
		nsources++;
	}
	if (nsources != 1)
		load_error(pos, "expected exactly one of \"field\", \"fields\", \"any_true\" or \"option\"",
				   NULL);

	cm->separator = get_string(pos, v, "separator", cm->kind == UFDW_MAP_CONCAT);
	if (cm->separator && cm->kind != UFDW_MAP_CONCAT)
		load_error(pos, "\"separator\" is only valid with \"fields\"", NULL);

	if ((src = json_object_get(v, "map")) != NULL)
	{
		LoadPos		p = pos_child(pos, "map");
		const char *k;
		json_t	   *to;
		int			i = 0;

		if (!json_is_object(src))
			load_error(&p, "expected an object", NULL);
		if (mc->type != UFDW_TYPE_TEXT)
			load_error(&p, "value maps are only valid on text columns", NULL);
		cm->nmap = json_object_size(src);
		cm->map_from = palloc0(sizeof(char *) * (cm->nmap + 1));
		cm->map_to = palloc0(sizeof(char *) * (cm->nmap + 1));
		json_object_foreach(src, k, to)
		{
			LoadPos		pk = pos_child(&p, k);

			if (!json_is_string(to))
				load_error(&pk, "expected a string", NULL);
			cm->map_from[i] = pstrdup(k);
			cm->map_to[i] = pstrdup(json_string_value(to));
			i++;
		}
	}
	if ((src = json_object_get(v, "default")) != NULL)
	{
		LoadPos		p = pos_child(pos, "default");

		if (cm->nmap == 0)
			load_error(&p, "\"default\" is only valid with \"map\"", NULL);
		if (!json_is_string(src) && !json_is_null(src))
			load_error(&p, "expected a string or null", NULL);
		cm->has_default = true;
		cm->map_default = json_is_string(src) ? pstrdup(json_string_value(src)) : NULL;
	}
	if (cm->kind == UFDW_MAP_ANY_TRUE && cm->nmap == 0)
		load_error(pos, "\"any_true\" needs a \"map\" from \"true\"/\"false\" to values", NULL);

	if ((src = json_object_get(v, "native_type")) != NULL)
	{
		LoadPos		p = pos_child(pos, "native_type");

		if (cm->kind != UFDW_MAP_FIELD)
			load_error(&p, "\"native_type\" is only valid with \"field\"", NULL);
		cm->native_type = parse_native_type(&p, src, mc, cm, conn->dialect);
		if (cm->native_type == UFDW_NATIVE_LOCAL_DATETIME &&
			!ufdw_string_in_list(conn->required_options, "time_zone") &&
			!ufdw_string_in_list(conn->optional_options, "time_zone"))
			load_error(&p, "native type \"local_datetime\" needs the server option \"time_zone\" in \"options\"",
					   "Add \"time_zone\" to \"options\" \"optional\": it names the zone of the wall-clock values.");
	}
	if ((src = json_object_get(v, "conversion")) != NULL)
	{
		LoadPos		p = pos_child(pos, "conversion");

		if (cm->kind != UFDW_MAP_FIELD)
			load_error(&p, "\"conversion\" is only valid with \"field\"", NULL);
		parse_conversion(&p, src, mc, cm, conn->dialect);
	}
}

static int
parse_auth_method(const LoadPos *pos, const char *s)
{
	if (strcmp(s, "basic") == 0)
		return UFDW_AUTH_BASIC;
	if (strcmp(s, "bearer") == 0)
		return UFDW_AUTH_BEARER;
	if (strcmp(s, "api_key") == 0)
		return UFDW_AUTH_API_KEY;
	if (strcmp(s, "oauth2_client_credentials") == 0)
		return UFDW_AUTH_OAUTH2_CC;
	if (strcmp(s, "tba") == 0)
		return UFDW_AUTH_TBA;
	if (strcmp(s, "oauth2_authorization_code") == 0)
		return UFDW_AUTH_OAUTH2_CODE;
	load_error(pos, psprintf("unknown auth method \"%s\"", s),
			   "Valid methods are: basic, bearer, api_key, oauth2_client_credentials, tba, oauth2_authorization_code.");
}

static bool
get_bool(const LoadPos *pos, json_t *obj, const char *key)
{
	json_t	   *v = json_object_get(obj, key);
	LoadPos		p = pos_child(pos, key);

	if (v == NULL)
		load_error(pos, psprintf("missing key \"%s\"", key), NULL);
	if (!json_is_boolean(v))
		load_error(&p, "expected true or false", NULL);
	return json_is_true(v);
}

/*
 * "authorization_code": {"authorization_url": "...", "scope": "...",
 * "client_authentication": "client_secret_post" | "client_secret_basic",
 * "scope_on_refresh": bool, "rotates_refresh_tokens": bool,
 * "refresh_token_lifetime_days": n} (see UfdwAuthCode); the token endpoint
 * is the auth section's token_url.
 */
static UfdwAuthCode *
parse_auth_code(const LoadPos *pauth, json_t *auth)
{
	static const char *const keys[] = {"authorization_url", "scope",
		"client_authentication", "scope_on_refresh", "rotates_refresh_tokens",
	"refresh_token_lifetime_days", NULL};
	static const char *const client_auth[] = {"client_secret_post",
	"client_secret_basic", NULL};
	LoadPos		p = pos_child(pauth, "authorization_code");
	json_t	   *obj = get_object(pauth, auth, "authorization_code", true);
	UfdwAuthCode *ac = palloc0(sizeof(UfdwAuthCode));
	check_keys(&p, obj, keys);
	ac->authorization_url = get_string(&p, obj, "authorization_url", true);
	ac->scope = get_string(&p, obj, "scope", true);
	ac->client_secret_basic = get_keyword(&p, obj, "client_authentication", client_auth,
										  "client authentication",
										  "client authentications") == 1;
	ac->scope_on_refresh = get_bool(&p, obj, "scope_on_refresh");
	ac->rotates_refresh_tokens = get_bool(&p, obj, "rotates_refresh_tokens");
	ac->refresh_token_lifetime_days = get_int(&p, obj, "refresh_token_lifetime_days",
											  0, 36500);
	return ac;
}

/*
 * "read_through": {"parent": "purchaseOrders", "parent_key": "id", "expand":
 * "purchaseOrderLines", "link_column": "purchase_order_id",
 * "children_per_parent": 4} for a table the upstream serves only per parent
 * (see UfdwReadThrough).  OData v4 only; the link column must be mapped to
 * one native field.
 */
static UfdwReadThrough *
parse_read_through(const LoadPos *pos, json_t *tdef, const UfdwConnector *conn,
				   const UfdwTableMap *tm)
{
	static const char *const keys[] = {"parent", "parent_key", "expand", "link_column",
	"children_per_parent", NULL};
	LoadPos		p = pos_child(pos, "read_through");
	json_t	   *obj = get_object(pos, tdef, "read_through", true);
	UfdwReadThrough *rt = palloc0(sizeof(UfdwReadThrough));
	char	   *link;
	int			c;

	check_keys(&p, obj, keys);
	if (!conn->dialect->read_through)
		load_error(&p, psprintf("\"read_through\" is not valid for the %s dialect",
								conn->dialect->name), NULL);
	rt->parent = get_string(&p, obj, "parent", true);
	rt->parent_key = get_string(&p, obj, "parent_key", true);
	rt->expand = get_string(&p, obj, "expand", true);
	link = get_string(&p, obj, "link_column", true);
	rt->children_per_parent = get_int(&p, obj, "children_per_parent", 1, 10000);
	for (c = 0; c < tm->model->ncolumns; c++)
		if (strcmp(tm->model->columns[c].name, link) == 0)
			break;
	if (c == tm->model->ncolumns || tm->columns[c].kind != UFDW_MAP_FIELD ||
		tm->columns[c].nfields != 1)
		load_error(&p, psprintf("\"link_column\" \"%s\" is not a column mapped to one field",
								link), NULL);
	rt->link_column = c;
	return rt;
}

static UfdwConnector *
parse_connector(const LoadPos *pos, json_t *root, const UfdwModel *model)
{
	static const char *const top_keys[] = {"format", "format_version", "system", "name",
		"dialect", "instance_url_example", "base_url", "options", "auth", "paging",
	"headers", "query", "in_operator", "null_values", "setup_steps", "tables", NULL};
	static const char *const opt_keys[] = {"required", "optional", NULL};
	static const char *const auth_keys[] = {"methods", "token_url", "scope", "api_key_header",
	"authorization_code", NULL};
	static const char *const paging_keys[] = {"default_page_size", "max_page_size",
	"max_results", "max_pages", NULL};
	static const char *const table_keys[] = {"entity", "where", "read_through", "columns", NULL};
	const char *dialect_names[lengthof(dialects) + 1];
	UfdwConnector *conn = palloc0(sizeof(UfdwConnector));
	LoadPos		popt = pos_child(pos, "options");
	LoadPos		pauth = pos_child(pos, "auth");
	LoadPos		ppaging = pos_child(pos, "paging");
	LoadPos		ptables = pos_child(pos, "tables");
	json_t	   *obj;
	List	   *methods;
	ListCell   *lc;
	const char *tname;
	json_t	   *tdef;

	check_keys(pos, root, top_keys);
	check_header(pos, root, "unified_fdw/connector");
	conn->file = pstrdup(pos->file);
	conn->system = get_string(pos, root, "system", true);
	conn->name = get_string(pos, root, "name", true);
	for (int i = 0; i < lengthof(dialects); i++)
		dialect_names[i] = dialects[i]->name;
	dialect_names[lengthof(dialects)] = NULL;
	conn->dialect = dialects[get_keyword(pos, root, "dialect", dialect_names,
										 "dialect", "dialects")];
	conn->caps = conn->dialect->defaults;
	conn->instance_url_example = get_string(pos, root, "instance_url_example", true);
	conn->base_url = get_string(pos, root, "base_url", true);

	obj = get_object(pos, root, "options", true);
	check_keys(&popt, obj, opt_keys);
	conn->required_options = get_string_list(&popt, obj, "required", true);
	conn->optional_options = get_string_list(&popt, obj, "optional", false);

	obj = get_object(pos, root, "auth", true);
	check_keys(&pauth, obj, auth_keys);
	methods = get_string_list(&pauth, obj, "methods", true);
	foreach(lc, methods)
	{
		LoadPos		pm = pos_child(&pauth, "methods");

		conn->auth_methods |= parse_auth_method(&pm, lfirst(lc));
	}
	if (conn->auth_methods == 0)
		load_error(&pauth, "at least one auth method is required", NULL);
	conn->token_url = get_string(&pauth, obj, "token_url", false);
	conn->scope = get_string(&pauth, obj, "scope", false);
	conn->api_key_header = get_string(&pauth, obj, "api_key_header", false);
	if ((conn->auth_methods & UFDW_AUTH_API_KEY) && conn->api_key_header == NULL)
		load_error(&pauth, "method \"api_key\" needs \"api_key_header\"", NULL);
	if (conn->auth_methods & UFDW_AUTH_OAUTH2_CODE)
	{
		conn->auth_code = parse_auth_code(&pauth, obj);
		if (conn->token_url == NULL)
			load_error(&pauth, "method \"oauth2_authorization_code\" needs \"token_url\"", NULL);
	}
	else if (json_object_get(obj, "authorization_code"))
		load_error(&pauth, "\"authorization_code\" needs method \"oauth2_authorization_code\"", NULL);

	obj = get_object(pos, root, "paging", true);
	check_keys(&ppaging, obj, paging_keys);
	conn->max_page_size = get_int(&ppaging, obj, "max_page_size", 1, 1000000);
	conn->default_page_size = get_int(&ppaging, obj, "default_page_size", 1,
									  conn->max_page_size);
	/* caps on one query: a scan goes on after the last key (request.c) */
	if (json_object_get(obj, "max_results"))
		conn->max_results = get_int(&ppaging, obj, "max_results", 1, PG_INT32_MAX);
	if (json_object_get(obj, "max_pages"))
		conn->max_pages = get_int(&ppaging, obj, "max_pages", 1, PG_INT32_MAX);
	if ((conn->max_results || conn->max_pages) && !conn->dialect->key_continuation)
		load_error(&ppaging, psprintf("\"max_results\" and \"max_pages\" are not valid for the %s dialect",
									  conn->dialect->name),
				   "Only dialects that can go on after the last key of a capped query can read past such a cap.");

	obj = json_object_get(root, "in_operator");
	if (obj && !json_is_boolean(obj))
	{
		LoadPos		pin = pos_child(pos, "in_operator");

		load_error(&pin, "expected true or false", NULL);
	}
	conn->in_operator = obj == NULL || json_is_true(obj);

	conn->headers = get_name_values(pos, root, "headers", &conn->nheaders);
	conn->query = get_name_values(pos, root, "query", &conn->nquery);
	{
		List	   *nulls = get_string_list(pos, root, "null_values", false);
		int			i = 0;

		conn->nnull_values = list_length(nulls);
		conn->null_values = palloc0(sizeof(char *) * (conn->nnull_values + 1));
		foreach(lc, nulls)
			conn->null_values[i++] = lfirst(lc);
	}
	conn->setup_steps = get_string_list(pos, root, "setup_steps", true);

	obj = get_object(pos, root, "tables", true);
	conn->tables = palloc0(sizeof(UfdwTableMap *) * model->ntables);
	json_object_foreach(obj, tname, tdef)
	{
		LoadPos		pt = pos_child(&ptables, tname);
		LoadPos		pcols = pos_child(&pt, "columns");
		const UfdwModelTable *mt = NULL;
		UfdwTableMap *tm;
		json_t	   *cols;
		const char *cname;
		json_t	   *cdef;
		int			ti;

		for (ti = 0; ti < model->ntables; ti++)
			if (strcmp(model->tables[ti].name, tname) == 0)
			{
				mt = &model->tables[ti];
				break;
			}
		if (mt == NULL)
			load_error(&pt, psprintf("unknown table \"%s\"", tname),
					   "Tables must be among those of model.json.");
		if (!json_is_object(tdef))
			load_error(&pt, "expected an object", NULL);
		check_keys(&pt, tdef, table_keys);

		tm = palloc0(sizeof(UfdwTableMap));
		tm->model = mt;
		tm->entity = get_string(&pt, tdef, "entity", true);
		tm->where = get_string(&pt, tdef, "where", false);
		if (tm->where && !conn->dialect->field_exprs)
			load_error(&pt, psprintf("\"where\" is not valid for the %s dialect",
									 conn->dialect->name), NULL);
		tm->columns = palloc0(sizeof(UfdwColumnMap) * mt->ncolumns);
		for (int c = 0; c < mt->ncolumns; c++)
			tm->columns[c].kind = mt->columns[c].type == UFDW_TYPE_JSONB ?
				UFDW_MAP_RAW : (UfdwMapKind) -1;

		cols = get_object(&pt, tdef, "columns", true);
		json_object_foreach(cols, cname, cdef)
		{
			LoadPos		pc = pos_child(&pcols, cname);
			int			c;

			for (c = 0; c < mt->ncolumns; c++)
				if (strcmp(mt->columns[c].name, cname) == 0)
					break;
			if (c == mt->ncolumns)
				load_error(&pc, psprintf("unknown column \"%s\" of table \"%s\"", cname, tname),
						   NULL);
			if (mt->columns[c].type == UFDW_TYPE_JSONB)
				load_error(&pc, "the jsonb column always holds the native record and is not mapped",
						   NULL);
			parse_column_map(&pc, cdef, &mt->columns[c], conn, &tm->columns[c]);
		}
		for (int c = 0; c < mt->ncolumns; c++)
			if ((int) tm->columns[c].kind == -1)
				load_error(&pcols, psprintf("column \"%s\" is not mapped", mt->columns[c].name),
						   "Map every column of the model; use null for a column the system does not have.");
		if (json_object_get(tdef, "read_through"))
			tm->read_through = parse_read_through(&pt, tdef, conn, tm);
		conn->tables[ti] = tm;
	}
	return conn;
}

/*
 * Loads one file.  For model.json, returns the model in *model_out;
 * otherwise the connector in *connector (model must be loaded).  The file
 * is parsed with duplicate keys rejected.
 */
void
ufdw_load_connector_file(const char *path, const UfdwModel *model,
						 UfdwConnector **connector, UfdwModel **model_out)
{
	json_error_t jerr;
	json_t	   *volatile root;
	LoadPos		pos;

	pos.file = path;
	pos.path[0] = '\0';
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL && jerr.line < 1)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("could not read connector file \"%s\": %s", path, jerr.text)));
	if (root == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("could not read connector file \"%s\" at line %d: %s",
						path, jerr.line, jerr.text)));
	PG_TRY();
	{
		if (!json_is_object(root))
			load_error(&pos, "expected a JSON object", NULL);
		if (model_out)
			*model_out = parse_model(&pos, root);
		else
			*connector = parse_connector(&pos, root, model);
	}
	PG_CATCH();
	{
		json_decref(root);
		PG_RE_THROW();
	}
	PG_END_TRY();
	json_decref(root);
}

/* The directory the files are installed in. */
static char *
connector_dir(void)
{
	char		share[MAXPGPATH];

	get_share_path(my_exec_path, share);
	return psprintf("%s/extension/unified_fdw", share);
}

static int
cmp_names(const ListCell *a, const ListCell *b)
{
	return strcmp(lfirst(a), lfirst(b));
}

/* The connector files (*.json but model.json) of dir, sorted by name. */
static List *
connector_files(const char *dir)
{
	DIR		   *d;
	struct dirent *de;
	List	   *files = NIL;

	d = AllocateDir(dir);
	while ((de = ReadDir(d, dir)) != NULL)
	{
		size_t		len = strlen(de->d_name);

		if (len > 5 && strcmp(de->d_name + len - 5, ".json") == 0 &&
			strcmp(de->d_name, "model.json") != 0)
			files = lappend(files, psprintf("%s/%s", dir, de->d_name));
	}
	FreeDir(d);
	list_sort(files, cmp_names);
	return files;
}

static void
load_all(void)
{
	MemoryContext cxt;
	MemoryContext old;
	char	   *dir;
	List	   *files = NIL;
	ListCell   *lc;
	UfdwModel  *model = NULL;
	List	   *connectors = NIL;

	cxt = AllocSetContextCreate(TopMemoryContext, "unified_fdw connectors",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		dir = connector_dir();
		ufdw_load_connector_file(psprintf("%s/model.json", dir), NULL, NULL, &model);

		files = connector_files(dir);
		if (ufdw_extra_connector_dir && ufdw_extra_connector_dir[0])
			files = list_concat(files, connector_files(ufdw_extra_connector_dir));

		foreach(lc, files)
		{
			UfdwConnector *conn = NULL;
			ListCell   *lc2;

			ufdw_load_connector_file(lfirst(lc), model, &conn, NULL);
			foreach(lc2, connectors)
				if (strcmp(((UfdwConnector *) lfirst(lc2))->system, conn->system) == 0)
					ereport(ERROR,
							(errcode(ERRCODE_CONFIG_FILE_ERROR),
							 errmsg("connector \"%s\" is defined twice, in \"%s\" and \"%s\"",
									conn->system, ((UfdwConnector *) lfirst(lc2))->file,
									conn->file)));
			connectors = lappend(connectors, conn);
		}
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);

	loaded_cxt = cxt;
	loaded_model = model;
	loaded_connectors = connectors;
}

const UfdwModel *
ufdw_model(void)
{
	if (loaded_cxt == NULL)
		load_all();
	return loaded_model;
}

int
ufdw_model_table_index(const char *name)
{
	const UfdwModel *model = ufdw_model();

	for (int i = 0; i < model->ntables; i++)
		if (strcmp(model->tables[i].name, name) == 0)
			return i;
	return -1;
}

const UfdwModelTable *
ufdw_model_table(const char *name)
{
	int			i = ufdw_model_table_index(name);

	return i < 0 ? NULL : &ufdw_model()->tables[i];
}

/* All connectors, sorted by file name; do not modify. */
List *
ufdw_connectors(void)
{
	if (loaded_cxt == NULL)
		load_all();
	return loaded_connectors;
}

/* "a, b, c": the known system ids, for hints. */
char *
ufdw_known_systems(void)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, ufdw_connectors())
		appendStringInfo(&buf, "%s%s", buf.len ? ", " : "",
						 ((UfdwConnector *) lfirst(lc))->system);
	return buf.data;
}

/* The connector with that id, or NULL. */
const UfdwConnector *
ufdw_connector(const char *system)
{
	ListCell   *lc;

	foreach(lc, ufdw_connectors())
	{
		UfdwConnector *conn = lfirst(lc);

		if (strcmp(conn->system, system) == 0)
			return conn;
	}
	return NULL;
}

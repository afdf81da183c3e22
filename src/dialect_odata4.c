/*-------------------------------------------------------------------------
 *
 * dialect_odata4.c
 *		The OData v4 dialect (JSON format 4.0): literals, operators and the
 *		page envelope.  Requests and paging: dialect_odata.c.
 *
 * Literals: 'text' (quotes doubled), GUIDs, numbers, dates and instants
 * bare (2024-01-31, 2024-01-31T10:00:00Z), members of a typed enumeration
 * Namespace.Type'Member'.  Text patterns are
 * startswith(f,'v') and contains(f,'v').  Records are in "value", the next
 * page's URL in "@odata.nextLink", the total in "@odata.count"
 * ($count=true).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "dialect.h"

static char *
odata4_literal(UfdwNativeType t, const char *v, List **params)
{
	switch (t)
	{
		case UFDW_NATIVE_STRING:
		case UFDW_NATIVE_ENUM:
			return ufdw_odata_quoted(v);
		case UFDW_NATIVE_GUID:
			return ufdw_is_guid(v) ? pstrdup(v) : NULL;
		case UFDW_NATIVE_DECIMAL:
		case UFDW_NATIVE_INTEGER:
		case UFDW_NATIVE_DATE:
		case UFDW_NATIVE_DATETIMEOFFSET:
			return pstrdup(v);	/* numbers, bare dates and instants */
		default:
			return NULL;
	}
}

/* Namespace.Type'Member' */
static char *
odata4_enum_literal(const char *type, const char *code)
{
	return psprintf("%s%s", type, ufdw_odata_quoted(code));
}

static char *
odata4_match(const char *f, const char *v, bool prefix, List **params)
{
	return psprintf("%s(%s,%s)", prefix ? "startswith" : "contains", f,
					ufdw_odata_quoted(v));
}

const UfdwDialect ufdw_dialect_odata_v4 = {
	.name = "odata_v4",
	.native_types = UFDW_NATIVE_BIT(UFDW_NATIVE_STRING) | UFDW_NATIVE_BIT(UFDW_NATIVE_GUID) |
	UFDW_NATIVE_BIT(UFDW_NATIVE_ENUM) | UFDW_NATIVE_BIT(UFDW_NATIVE_DECIMAL) |
	UFDW_NATIVE_BIT(UFDW_NATIVE_INTEGER) | UFDW_NATIVE_BIT(UFDW_NATIVE_DATE) |
	UFDW_NATIVE_BIT(UFDW_NATIVE_DATETIMEOFFSET),
	.field_exprs = false,
	.conversions = true,
	.read_through = true,
	.key_continuation = false,
	.nextlink_paging = true,
	.check_field_name = NULL,
	.cmp_ops = ufdw_odata_cmp_ops,
	.and_word = " and ",
	.or_word = " or ",
	.not_format = "not (%s)",
	.in_word = "in",
	.not_in_word = NULL,
	.is_null_format = "%s eq null",
	.not_null_format = "%s ne null",
	.literal = odata4_literal,
	.enum_literal = odata4_enum_literal,
	.match = odata4_match,
	.asc = "asc",
	.desc = "desc",
	.order_separator = ",",
	.first_request = ufdw_odata_first_request,
	.next_request = ufdw_odata_next_request,
	.offset_request = ufdw_odata_offset_request,
	.envelope = {{"value"}, {"@odata.nextLink"}, {NULL}, {"@odata.count"}},
	.count_param = "$count",
	.count_value = "true",
	.native_datetime = NULL,
	.defaults = UFDW_CAPABILITIES_NONE(UFDW_PAGING_NEXTLINK),
};

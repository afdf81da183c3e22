/*-------------------------------------------------------------------------
 *
 * dialect_odata2.c
 *		The OData V2 dialect (JSON verbose format): literals, operators,
 *		the page envelope and "/Date(ms)/" values.  Requests and paging:
 *		dialect_odata.c.
 *
 * Literals are typed: 'text', guid'…', 12.5M, datetime'2024-01-31T00:00:00'
 * (UTC without zone), datetimeoffset'…Z'; V2 has no bare date literal and
 * no "in" operator.  Text patterns are startswith(f,'v') eq true and
 * substringof('v',f) eq true.  Records are in d.results, the next page's
 * URL in d.__next, the total in d.__count ($inlinecount=allpages).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/date.h"
#include "utils/timestamp.h"

#include "dialect.h"

/* milliseconds from 1970-01-01 (OData V2) to 2000-01-01 (PostgreSQL) */
#define UNIX_TO_POSTGRES_MS \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000)

static char *
odata2_literal(UfdwNativeType t, const char *v, List **params)
{
	switch (t)
	{
		case UFDW_NATIVE_STRING:
		case UFDW_NATIVE_ENUM:
			return ufdw_odata_quoted(v);
		case UFDW_NATIVE_GUID:
			return ufdw_is_guid(v) ? psprintf("guid'%s'", v) : NULL;
		case UFDW_NATIVE_DECIMAL:
			return psprintf("%sM", v);
		case UFDW_NATIVE_INTEGER:
			return pstrdup(v);
		case UFDW_NATIVE_DATETIME:
			/* a date column: midnight; an instant: UTC without zone */
			if (strlen(v) == 10)
				return psprintf("datetime'%sT00:00:00'", v);
			return psprintf("datetime'%.*s'", (int) strlen(v) - 1, v);
		case UFDW_NATIVE_DATETIMEOFFSET:
			return psprintf("datetimeoffset'%s'", v);
		default:
			return NULL;
	}
}

static char *
odata2_match(const char *f, const char *v, bool prefix, List **params)
{
	if (prefix)
		return psprintf("startswith(%s,%s) eq true", f, ufdw_odata_quoted(v));
	return psprintf("substringof(%s,%s) eq true", ufdw_odata_quoted(v), f);
}

static void
pg_attribute_noreturn()
bad_date(const char *token)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_DATETIME_FORMAT),
			 errmsg("invalid OData date value \"%.100s\"", token)));
}

/*
 * Converts an OData V2 "/Date(ms)/" or "/Date(ms+hhmm)/" value; false
 * for any other text (ISO 8601, read by the column's input function).  The
 * milliseconds count from 1970-01-01 UTC; an offset, if any, says in which
 * zone the value was entered and does not move the instant.
 */
static bool
odata2_native_datetime(const char *token, UfdwColType type, Datum *result)
{
	const char *p = token + 6;
	char	   *end;
	int64		ms;
	TimestampTz ts;

	if (strncmp(token, "/Date(", 6) != 0)
		return false;
	errno = 0;
	ms = strtoll(p, &end, 10);
	if (errno || end == p)
		bad_date(token);
	if (*end == '+' || *end == '-')
	{
		if (strspn(end + 1, "0123456789") != 4)
			bad_date(token);
		end += 5;
	}
	if (strcmp(end, ")/") != 0)
		bad_date(token);
	/*
	 * PostgreSQL's timestamp range (MIN_TIMESTAMP .. END_TIMESTAMP) in Unix
	 * milliseconds; the check also keeps the arithmetic below from
	 * overflowing, which is why the epoch is moved before scaling.
	 */
	if (ms < INT64CONST(-210866803200000) || ms > INT64CONST(9224318016000000))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("OData date value \"%.100s\" is out of range", token)));
	ts = (ms - UNIX_TO_POSTGRES_MS) * 1000;
	if (!IS_VALID_TIMESTAMP(ts))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("OData date value \"%.100s\" is out of range", token)));
	if (type == UFDW_TYPE_DATE)
	{
		int64		days = ts / USECS_PER_DAY;

		if (ts < 0 && ts % USECS_PER_DAY != 0)
			days--;
		*result = DateADTGetDatum((DateADT) days);
	}
	else
		*result = TimestampTzGetDatum(ts);
	return true;
}

const UfdwDialect ufdw_dialect_odata_v2 = {
	.name = "odata_v2",
	.native_types = UFDW_NATIVE_BIT(UFDW_NATIVE_STRING) | UFDW_NATIVE_BIT(UFDW_NATIVE_GUID) |
	UFDW_NATIVE_BIT(UFDW_NATIVE_ENUM) | UFDW_NATIVE_BIT(UFDW_NATIVE_DECIMAL) |
	UFDW_NATIVE_BIT(UFDW_NATIVE_INTEGER) | UFDW_NATIVE_BIT(UFDW_NATIVE_DATE) |
	UFDW_NATIVE_BIT(UFDW_NATIVE_DATETIME) | UFDW_NATIVE_BIT(UFDW_NATIVE_DATETIMEOFFSET),
	.field_exprs = false,
	.conversions = true,
	.read_through = false,
	.key_continuation = false,
	.nextlink_paging = false,
	.check_field_name = NULL,
	.cmp_ops = ufdw_odata_cmp_ops,
	.and_word = " and ",
	.or_word = " or ",
	.not_format = "not (%s)",
	.in_word = NULL,
	.not_in_word = NULL,
	.is_null_format = "%s eq null",
	.not_null_format = "%s ne null",
	.literal = odata2_literal,
	.enum_literal = NULL,
	.match = odata2_match,
	.asc = "asc",
	.desc = "desc",
	.order_separator = ",",
	.first_request = ufdw_odata_first_request,
	.next_request = ufdw_odata_next_request,
	.offset_request = ufdw_odata_offset_request,
	.envelope = {{"d", "results"}, {"d", "__next"}, {NULL}, {"d", "__count"}},
	.count_param = "$inlinecount",
	.count_value = "allpages",
	.native_datetime = odata2_native_datetime,
	.defaults = UFDW_CAPABILITIES_NONE(UFDW_PAGING_OFFSET),
};

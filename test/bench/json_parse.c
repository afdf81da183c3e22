/*
 * json_parse.c: the parse limit of test/bench/throughput.sh.
 *
 * Reads page bodies (files named on the command line) into memory, then
 * times parsing all of them with one parser, and prints
 *
 *     <mode> <seconds> <bytes> <records>
 *
 * Modes:
 *   pg       PostgreSQL's parser (common/jsonapi.h, the frontend build in
 *            libpgcommon) with semantic actions, as src/page.c drives it:
 *            de-escaped field names and scalars are handed to callbacks,
 *            which count the records and free the tokens.  No conversion
 *            to Datums: that is the FDW's own work on top of parsing.
 *   pgnull   the same parser with no semantic actions (validation only,
 *            as json_in uses it): the lexer's floor.
 *   jansson  json_loadb + json_decref: a full tree per page (reference).
 *
 * Files are read before the clock starts, so disk speed does not count.
 * Build: see throughput.sh (links libpgcommon, libpgport and jansson).
 */
#include "postgres_fe.h"

#include <time.h>

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"

/* jansson declares json_object too; this file never includes builtins.h */
#include <jansson.h>

typedef struct Body
{
	char	   *data;
	size_t		len;
} Body;

/* Parser state of the "pg" mode: depth and the number of records seen. */
typedef struct Count
{
	int			depth;
	long		records;
} Count;

static void
on_object_start(void *state)
{
	Count	   *c = state;

	/* records: objects in the array in the envelope (depth 3) */
	if (++c->depth == 3)
		c->records++;
}

static void
on_object_end(void *state)
{
	((Count *) state)->depth--;
}

static void
on_array_start(void *state)
{
	((Count *) state)->depth++;
}

static void
on_array_end(void *state)
{
	((Count *) state)->depth--;
}

static void
on_field_start(void *state, char *fname, bool isnull)
{
	free(fname);
}

static void
on_scalar(void *state, char *token, JsonTokenType tokentype)
{
	free(token);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static Body
read_file(const char *path)
{
	Body		b = {NULL, 0};
	FILE	   *f = fopen(path, "rb");
	long		n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0)
	{
		fprintf(stderr, "json_parse: cannot read %s\n", path);
		exit(2);
	}
	rewind(f);
	b.data = malloc(n + 1);
	if (b.data == NULL || fread(b.data, 1, n, f) != (size_t) n)
	{
		fprintf(stderr, "json_parse: cannot read %s\n", path);
		exit(2);
	}
	b.data[n] = '\0';
	b.len = n;
	fclose(f);
	return b;
}

int
main(int argc, char **argv)
{
	const char *mode;
	Body	   *bodies;
	int			n = argc - 2;
	size_t		bytes = 0;
	long		records = 0;
	double		t0;

	if (argc < 3)
	{
		fprintf(stderr, "usage: json_parse pg|pgnull|jansson FILE...\n");
		return 2;
	}
	mode = argv[1];
	bodies = malloc(sizeof(Body) * n);
	for (int i = 0; i < n; i++)
	{
		bodies[i] = read_file(argv[i + 2]);
		bytes += bodies[i].len;
	}

	t0 = now();
	for (int i = 0; i < n; i++)
	{
		if (strcmp(mode, "jansson") == 0)
		{
			json_error_t err;
			json_t	   *root = json_loadb(bodies[i].data, bodies[i].len, 0, &err);
			json_t	   *value = root ? json_object_get(root, "value") : NULL;

			if (value == NULL)
			{
				fprintf(stderr, "json_parse: %s: %s\n", argv[i + 2], err.text);
				return 1;
			}
			records += json_array_size(value);
			json_decref(root);
		}
		else
		{
			bool		sem_actions = strcmp(mode, "pg") == 0;
			Count		count = {0, 0};
			JsonSemAction sem = {0};
			JsonLexContext *lex;
			JsonParseErrorType rc;

			lex = makeJsonLexContextCstringLen(bodies[i].data, bodies[i].len,
											   PG_UTF8, sem_actions);
			sem.semstate = &count;
			if (sem_actions)
			{
				sem.object_start = on_object_start;
				sem.object_end = on_object_end;
				sem.array_start = on_array_start;
				sem.array_end = on_array_end;
				sem.object_field_start = on_field_start;
				sem.scalar = on_scalar;
			}
			rc = pg_parse_json(lex, sem_actions ? &sem : &nullSemAction);
			if (rc != JSON_SUCCESS)
			{
				/* json_errdetail is backend-only in PostgreSQL 15 */
				fprintf(stderr, "json_parse: %s: parse error %d\n",
						argv[i + 2], (int) rc);
				return 1;
			}
			records += count.records;
			if (lex->strval)
			{
				free(lex->strval->data);
				free(lex->strval);
			}
			free(lex);
		}
	}
	printf("%s %.6f %zu %ld\n", mode, now() - t0, bytes, records);
	return 0;
}

/*-------------------------------------------------------------------------
 *
 * status.c
 *		Connection status that outlives the querying transaction, and the
 *		"is this connection disconnected?" check at scan start.
 *
 * The transport reports three things here: every request sent
 * (ufdw_status_request), every upstream failure just before it is raised
 * (ufdw_status_failure), and every scan that finished
 * (ufdw_status_success).  They are collected per server name in backend
 * memory and written to unified.connections by a short-lived dynamic
 * background worker, in a transaction of its own, so a failure is recorded
 * even when the query's transaction rolls back, is visible to every
 * session, and survives a restart.  The events travel to the worker in a
 * pinned dynamic shared memory segment; the worker unpins it.  This needs
 * no shared_preload_libraries.
 *
 * Cost on the hot path: a hash lookup per request.  Failures start a worker
 * at once (they are rare and must not be lost); successes are coalesced: a
 * worker is started at scan end only when this backend last wrote another
 * state for the connection (or nothing yet), or when at least
 * STATUS_FLUSH_INTERVAL_MS have passed and the previous worker of this
 * backend has finished.  Workers share max_worker_processes with parallel
 * query, hence the long interval.  Request
 * counts not yet written when a backend exits are lost, so "requests" is a
 * lower bound.  Events are applied in timestamp order whatever order the
 * workers run in.  Nothing is recorded on a standby.
 *
 * The text recorded is the sanitised DETAIL the transport shows (secrets
 * already redacted), never a credential.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "unified_fdw.h"

#define STATUS_FLUSH_INTERVAL_MS 10000
#define STATUS_ERROR_LEN 600
#define STATUS_REQUEST_ID_LEN 40

typedef enum StatusKind
{
	STATUS_SUCCESS,				/* a scan or probe succeeded */
	STATUS_FAILURE,				/* an upstream failure was raised */
	STATUS_COUNT				/* only requests to count */
} StatusKind;

/* One status change for one connection, as written by the worker. */
typedef struct StatusEvent
{
	char		name[NAMEDATALEN];	/* connection (= server) name */
	StatusKind	kind;
	TimestampTz at;				/* when it happened */
	int64		requests;		/* requests sent since the previous event */
	int32		http_status;	/* 0: no HTTP response */
	char		new_status[32]; /* failure: status to set, "" = unchanged */
	char		request_id[STATUS_REQUEST_ID_LEN];	/* last X-Request-ID, or "" */
	char		error[STATUS_ERROR_LEN];	/* failure: sanitised reason */
} StatusEvent;

/* What the worker finds in its segment. */
typedef struct StatusPayload
{
	Oid			dboid;
	int			nevents;
	StatusEvent events[FLEXIBLE_ARRAY_MEMBER];
} StatusPayload;

/* Not yet written figures of one connection, in this backend. */
typedef struct PendingEntry
{
	char		name[NAMEDATALEN];	/* hash key */
	int64		requests;		/* sent since the last event written */
	char		request_id[STATUS_REQUEST_ID_LEN];
	bool		success;		/* a success not yet written */
	TimestampTz success_at;
	bool		written_active; /* the last event written was a success */
} PendingEntry;

static HTAB *pending = NULL;
static List *workers = NIL;		/* of BackgroundWorkerHandle *, ours */
static TimestampTz last_flush = 0;

PGDLLEXPORT void ufdw_status_worker_main(Datum arg);

static PendingEntry *
pending_entry(const char *name)
{
	char		key[NAMEDATALEN] = {0};
	bool		found;
	PendingEntry *e;

	if (pending == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = NAMEDATALEN;
		ctl.entrysize = sizeof(PendingEntry);
		pending = hash_create("unified_fdw status", 16, &ctl,
							  HASH_ELEM | HASH_STRINGS);
	}
	strlcpy(key, name, NAMEDATALEN);
	e = hash_search(pending, key, HASH_ENTER, &found);
	if (!found)
	{
		e->requests = 0;
		e->request_id[0] = '\0';
		e->success = false;
		e->success_at = 0;
		e->written_active = false;
	}
	return e;
}

/* Forgets handles of workers that have exited; true if none is left. */
static bool
reap_workers(void)
{
	List	   *alive = NIL;
	ListCell   *lc;
	pid_t		pid;

	foreach(lc, workers)
	{
		BackgroundWorkerHandle *h = lfirst(lc);

		if (GetBackgroundWorkerPid(h, &pid) == BGWH_STOPPED)
			pfree(h);
		else
			alive = lappend(alive, h);
	}
	list_free(workers);
	workers = NIL;
	if (alive)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		workers = list_copy(alive);
		MemoryContextSwitchTo(old);
		list_free(alive);
	}
	return workers == NIL;
}

/*
 * Hands events to a new worker.  Returns false (and the caller keeps its
 * figures) when none can be started; never raises for that.
 */
static bool
launch_worker(StatusEvent *events, int n)
{
	Size		size = offsetof(StatusPayload, events) + n * sizeof(StatusEvent);
	dsm_segment *seg;
	dsm_handle	handle;
	StatusPayload *p;
	BackgroundWorker w;
	BackgroundWorkerHandle *h;
	MemoryContext old;
	bool		ok;

	if (n == 0 || !IsUnderPostmaster || !OidIsValid(MyDatabaseId) ||
		RecoveryInProgress())
		return false;
	(void) reap_workers();
	seg = dsm_create(size, DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (seg == NULL)
		return false;
	p = dsm_segment_address(seg);
	p->dboid = MyDatabaseId;
	p->nevents = n;
	memcpy(p->events, events, n * sizeof(StatusEvent));
	dsm_pin_segment(seg);
	handle = dsm_segment_handle(seg);
	dsm_detach(seg);

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "unified_fdw");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "ufdw_status_worker_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "unified_fdw status writer");
	snprintf(w.bgw_type, BGW_MAXLEN, "unified_fdw status writer");
	w.bgw_main_arg = UInt32GetDatum(handle);
	w.bgw_notify_pid = MyProcPid;

	old = MemoryContextSwitchTo(TopMemoryContext);
	ok = RegisterDynamicBackgroundWorker(&w, &h);
	if (ok)
		workers = lappend(workers, h);
	MemoryContextSwitchTo(old);
	if (!ok)
	{
		dsm_unpin_segment(handle);
		ereport(DEBUG1,
				(errmsg_internal("unified_fdw: no background worker slot to record connection status")));
	}
	return ok;
}

static void
fill_event(StatusEvent *ev, PendingEntry *e)
{
	memset(ev, 0, sizeof(StatusEvent));
	strlcpy(ev->name, e->name, NAMEDATALEN);
	ev->requests = e->requests;
	strlcpy(ev->request_id, e->request_id, STATUS_REQUEST_ID_LEN);
}

/* Writes every pending success (and request count); see file header. */
static void
flush_pending(void)
{
	HASH_SEQ_STATUS scan;
	PendingEntry *e;
	StatusEvent *events;
	int			n = 0;

	if (pending == NULL)
		return;
	events = palloc(sizeof(StatusEvent) * hash_get_num_entries(pending));
	hash_seq_init(&scan, pending);
	while ((e = hash_seq_search(&scan)) != NULL)
	{
		if (!e->success && e->requests == 0)
			continue;
		fill_event(&events[n], e);
		events[n].kind = e->success ? STATUS_SUCCESS : STATUS_COUNT;
		events[n].at = e->success ? e->success_at : GetCurrentTimestamp();
		events[n].http_status = e->success ? 200 : 0;
		n++;
	}
	if (launch_worker(events, n))
	{
		hash_seq_init(&scan, pending);
		while ((e = hash_seq_search(&scan)) != NULL)
		{
			if (e->success)
				e->written_active = true;
			e->success = false;
			e->requests = 0;
		}
		last_flush = GetCurrentTimestamp();
	}
	pfree(events);
}

/* A request is being sent for server; request_id is its X-Request-ID. */
void
ufdw_status_request(const char *server, const char *request_id)
{
	PendingEntry *e = pending_entry(server);

	e->requests++;
	strlcpy(e->request_id, request_id, STATUS_REQUEST_ID_LEN);
}

/*
 * A scan of server finished without error.  Written at once if this
 * backend last wrote something else for it, else coalesced.
 */
void
ufdw_status_success(const char *server)
{
	PendingEntry *e = pending_entry(server);
	TimestampTz now = GetCurrentTimestamp();

	e->success = true;
	e->success_at = now;
	if (!e->written_active ||
		(TimestampDifferenceExceeds(last_flush, now, STATUS_FLUSH_INTERVAL_MS) &&
		 reap_workers()))
		flush_pending();
}

/*
 * An upstream failure of server is about to be raised.  http_status is 0
 * when there was no HTTP response; what is the sanitised reason.  401 sets
 * reauthorization_required; no response, 404 and 5xx set error; other
 * statuses are recorded without changing the status.
 */
void
ufdw_status_failure(const char *server, const char *table, long http_status,
					const char *request_id, const char *what)
{
	PendingEntry *e = pending_entry(server);
	StatusEvent events[2];
	int			n = 0;

	if (e->success)
	{
		fill_event(&events[n], e);
		events[n].kind = STATUS_SUCCESS;
		events[n].at = e->success_at;
		events[n].http_status = 200;
		events[n].requests = 0;
		n++;
	}
	fill_event(&events[n], e);
	events[n].kind = STATUS_FAILURE;
	events[n].at = GetCurrentTimestamp();
	events[n].http_status = (int32) http_status;
	if (request_id)
		strlcpy(events[n].request_id, request_id, STATUS_REQUEST_ID_LEN);
	if (http_status == 401)
		strlcpy(events[n].new_status, "reauthorization_required", 32);
	else if (http_status == 0 || http_status == 404 || http_status >= 500)
		strlcpy(events[n].new_status, "error", 32);
	if (http_status > 0)
		snprintf(events[n].error, STATUS_ERROR_LEN, "HTTP status %ld%s%s%s: %s",
				 http_status, table ? " while reading \"" : "", table ? table : "",
				 table ? "\"" : "", what ? what : "");
	else
		snprintf(events[n].error, STATUS_ERROR_LEN, "could not connect: %s",
				 what ? what : "");
	n++;
	if (launch_worker(events, n))
	{
		e->success = false;
		e->requests = 0;
		e->written_active = false;
	}
}

/* Writes what is pending now and waits until every worker of ours is done. */
void
ufdw_status_sync(void)
{
	ListCell   *lc;

	flush_pending();
	foreach(lc, workers)
		(void) WaitForBackgroundWorkerShutdown(lfirst(lc));
	(void) reap_workers();
}

/*
 * Raises the "is disconnected" error if server serverid was disconnected
 * by unified.disconnect() (server option disconnected 'true').  Pending
 * invalidations are read first, so a disconnect committed by another
 * session is seen even inside an open transaction.
 */
void
ufdw_check_connected(Oid serverid)
{
	ForeignServer *server;
	char	   *v;
	bool		disconnected = false;

	AcceptInvalidationMessages();
	server = GetForeignServer(serverid);
	v = ufdw_option_value(server->options, "disconnected");
	if (v && parse_bool(v, &disconnected) && disconnected)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
				 errmsg("connection \"%s\" is disconnected", server->servername),
				 errdetail("unified.disconnect() dropped its credentials."),
				 errhint("Reconnect with unified.connect(...) under a new name; the foreign tables and local tables in schema \"%s\" were kept.",
						 server->servername)));
}

/* ---- the worker ---- */

static const char *const update_sql =
"UPDATE unified.connections SET "
"  requests = requests + $2, "
"  last_request_id = CASE WHEN $4 >= coalesce(greatest(last_success_at, last_error_at), '-infinity') "
"    THEN coalesce($3, last_request_id) ELSE last_request_id END, "
"  last_http_status = CASE WHEN $4 >= coalesce(greatest(last_success_at, last_error_at), '-infinity') "
"    THEN coalesce($7, last_http_status) ELSE last_http_status END, "
"  last_success_at = CASE WHEN $5 THEN greatest(last_success_at, $4) ELSE last_success_at END, "
"  last_error_at = CASE WHEN NOT $5 THEN greatest(last_error_at, $4) ELSE last_error_at END, "
"  last_error = CASE WHEN NOT $5 AND $4 >= coalesce(last_error_at, '-infinity') "
"    THEN $6 ELSE last_error END, "
"  status = CASE WHEN status = 'disconnected' THEN status "
"    WHEN $5 AND $4 >= coalesce(last_error_at, '-infinity') THEN 'active' "
"    WHEN NOT $5 AND $8 IS NOT NULL AND $4 >= coalesce(last_success_at, '-infinity') THEN $8 "
"    ELSE status END "
"WHERE name = $1";

/*
 * Entry point of the status writer: copies its events out of the segment,
 * unpins it, and applies them in one transaction as the bootstrap
 * superuser, with a safe search_path and bounded lock waits.
 */
void
ufdw_status_worker_main(Datum arg)
{
	dsm_handle	handle = DatumGetUInt32(arg);
	dsm_segment *seg;
	StatusPayload *p;
	Size		len;
	Oid			argtypes[8] = {TEXTOID, INT8OID, TEXTOID, TIMESTAMPTZOID, BOOLOID,
	TEXTOID, INT4OID, TEXTOID};

	BackgroundWorkerUnblockSignals();
	seg = dsm_attach(handle);
	if (seg == NULL)
	{
		ereport(LOG, (errmsg("unified_fdw status writer: its events are gone")));
		proc_exit(0);
	}
	len = dsm_segment_map_length(seg);
	p = MemoryContextAlloc(TopMemoryContext, len);
	memcpy(p, dsm_segment_address(seg), len);
	dsm_unpin_segment(handle);
	dsm_detach(seg);

	BackgroundWorkerInitializeConnectionByOid(p->dboid, InvalidOid, 0);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "unified_fdw: recording connection status");
	SPI_execute("SET LOCAL search_path = pg_catalog, pg_temp", false, 0);
	SPI_execute("SET LOCAL lock_timeout = '10s'", false, 0);
	SPI_execute("SET LOCAL statement_timeout = '30s'", false, 0);
	if (SPI_execute("SELECT 1 FROM pg_extension WHERE extname = 'unified_fdw'", true, 1) ==
		SPI_OK_SELECT && SPI_processed == 1)
	{
		for (int i = 0; i < p->nevents; i++)
		{
			StatusEvent *ev = &p->events[i];
			Datum		values[8];
			char		nulls[8] = "        ";

			values[0] = CStringGetTextDatum(ev->name);
			values[1] = Int64GetDatum(ev->requests);
			values[2] = CStringGetTextDatum(ev->request_id);
			if (ev->request_id[0] == '\0')
				nulls[2] = 'n';
			values[3] = TimestampTzGetDatum(ev->at);
			/* $5: true success, false failure, NULL only a request count */
			values[4] = BoolGetDatum(ev->kind == STATUS_SUCCESS);
			if (ev->kind == STATUS_COUNT)
				nulls[4] = 'n';
			values[5] = CStringGetTextDatum(ev->error);
			values[6] = Int32GetDatum(ev->http_status);
			if (ev->http_status == 0)
				nulls[6] = 'n';
			values[7] = CStringGetTextDatum(ev->new_status);
			if (ev->new_status[0] == '\0')
				nulls[7] = 'n';
			if (SPI_execute_with_args(update_sql, 8, argtypes, values, nulls,
									  false, 0) != SPI_OK_UPDATE)
				elog(ERROR, "could not record the status of connection \"%s\"", ev->name);
		}
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}

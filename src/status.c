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
 * memory and written to unified.connections by a dynamic background worker,
 * the status writer, in a transaction of its own, so a failure is recorded
 * even when the query's transaction rolls back, is visible to every
 * session, and survives a restart.  This needs no shared_preload_libraries.
 *
 * Batching: backends hand their events to a small queue in shared memory
 * (StatusShared, created on first use with ShmemInitStruct from the main
 * segment's spare space), merged per database, connection and kind (the
 * writer's UPDATE is order-independent: timestamps decide, request counts
 * add up).  Each database has at most one status writer at a time: the
 * backend that queues an event starts one only if none is running for its
 * database; the writer drains the queue, stays STATUS_WRITER_LINGER_MS
 * after the last event it found (so a burst of failures in any number of
 * sessions is written by one writer), and exits after at most
 * STATUS_WRITER_MAX_LIFE_MS.  Taking the last events and leaving happen
 * under the queue's lock, so no event is left without a writer.  Workers
 * share max_worker_processes with parallel query: without a free slot the
 * events stay queued (not lost) and the next event of any session tries
 * again; a full queue leaves events pending in the backend until its next
 * event.  A writer that died is noticed (its pid is gone) and replaced.
 *
 * Cost on the hot path: a hash lookup per request.  Failures are queued at
 * once; successes are coalesced: queued at scan end only when this backend
 * last queued another state for the connection (or nothing yet), or when at
 * least STATUS_FLUSH_INTERVAL_MS have passed.  What a backend still holds
 * when it exits is queued by an exit callback.  Nothing is recorded on a
 * standby.
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
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "unified_fdw.h"

#define STATUS_FLUSH_INTERVAL_MS 10000
#define STATUS_QUEUE_LEN 32		/* merged events in shared memory */
#define STATUS_MAX_WRITERS 8	/* databases with a writer at once */
#define STATUS_WRITER_LINGER_MS 1000
#define STATUS_WRITER_MAX_LIFE_MS 60000
#define STATUS_WRITER_START_MS 10000	/* registered, not started: dead */
#define STATUS_SYNC_WAIT_MS 10000
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

/* An event waiting in shared memory. */
typedef struct QueuedEvent
{
	Oid			dboid;			/* InvalidOid: a free slot */
	StatusEvent ev;
} QueuedEvent;

/* The status writer of one database. */
typedef struct StatusWriter
{
	Oid			dboid;			/* InvalidOid: a free slot */
	pid_t		pid;			/* 0 until the writer has started */
	TimestampTz registered;		/* when its start was requested */
	int			applying;		/* events taken, not yet committed */
} StatusWriter;

/* Shared by every backend; protected by mutex. */
typedef struct StatusShared
{
	slock_t		mutex;
	uint64		writers_started;	/* since the server started */
	StatusWriter writers[STATUS_MAX_WRITERS];
	QueuedEvent queue[STATUS_QUEUE_LEN];
} StatusShared;

/* Not yet written figures of one connection, in this backend. */
typedef struct PendingEntry
{
	char		name[NAMEDATALEN];	/* hash key */
	int64		requests;		/* sent since the last event written */
	char		request_id[STATUS_REQUEST_ID_LEN];
	bool		success;		/* a success not yet written */
	TimestampTz success_at;
	bool		failure;		/* a failure not yet written: */
	StatusEvent failure_ev;		/* the latest */
	bool		written_active; /* the last event written was a success */
} PendingEntry;

static HTAB *pending = NULL;
static TimestampTz last_flush = 0;
static StatusShared *shared = NULL;
static bool exit_callback = false;

static void flush_pending(void);

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
		e->failure = false;
		e->written_active = false;
	}
	return e;
}

/*
 * The shared queue and writer table, created on first use (NULL, with a
 * DEBUG1 message, if the main shared memory segment has no room left).
 */
static StatusShared *
status_shared(void)
{
	bool		found;

	if (shared)
		return shared;
	PG_TRY();
	{
		LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
		shared = ShmemInitStruct("unified_fdw status queue", sizeof(StatusShared), &found);
		if (!found)
		{
			memset(shared, 0, sizeof(StatusShared));
			SpinLockInit(&shared->mutex);
		}
		LWLockRelease(AddinShmemInitLock);
	}
	PG_CATCH();
	{
		/* ShmemInitStruct raised "out of shared memory" */
		LWLockReleaseAll();
		FlushErrorState();
		shared = NULL;
		ereport(DEBUG1,
				(errmsg_internal("unified_fdw: no shared memory for the status queue")));
	}
	PG_END_TRY();
	return shared;
}

/* The writer slot of database dboid (under the mutex), or NULL. */
static StatusWriter *
writer_of(Oid dboid)
{
	for (int i = 0; i < STATUS_MAX_WRITERS; i++)
		if (shared->writers[i].dboid == dboid)
			return &shared->writers[i];
	return NULL;
}

/* Registers a status writer for this database; false if none can start. */
static bool
register_writer(void)
{
	BackgroundWorker w;
	BackgroundWorkerHandle *h;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "unified_fdw");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "ufdw_status_worker_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "unified_fdw status writer");
	snprintf(w.bgw_type, BGW_MAXLEN, "unified_fdw status writer");
	w.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	w.bgw_notify_pid = 0;
	if (RegisterDynamicBackgroundWorker(&w, &h))
	{
		pfree(h);
		return true;
	}
	ereport(DEBUG1,
			(errmsg_internal("unified_fdw: no background worker slot to record connection status; the events stay queued")));
	return false;
}

/*
 * Queues events (n may be 0) for this database's status writer, starting
 * one if none is running and something is queued.  Returns false (and queues nothing) when the queue has no
 * room or there is no shared memory; the caller keeps its events.  Never
 * raises for that.
 */
static bool
enqueue(StatusEvent *events, int n)
{
	StatusWriter *w;
	bool		start = false;
	int			free_slots = 0;
	int			needed = 0;
	pid_t		pid = 0;
	TimestampTz registered = 0;
	TimestampTz now = GetCurrentTimestamp();

	if (!IsUnderPostmaster || !OidIsValid(MyDatabaseId) || RecoveryInProgress() ||
		status_shared() == NULL)
		return false;

	/*
	 * A writer registered but never started, or started and gone (an ERROR
	 * while writing), or older than any writer lives (its pid reused):
	 * forget it.
	 */
	SpinLockAcquire(&shared->mutex);
	if ((w = writer_of(MyDatabaseId)) != NULL)
	{
		pid = w->pid;
		registered = w->registered;
	}
	SpinLockRelease(&shared->mutex);
	if (w && ((pid != 0 && kill(pid, 0) != 0 && errno == ESRCH) ||
			  (pid == 0 && TimestampDifferenceExceeds(registered, now, STATUS_WRITER_START_MS)) ||
			  TimestampDifferenceExceeds(registered, now,
										 STATUS_WRITER_MAX_LIFE_MS + STATUS_WRITER_START_MS +
										 STATUS_SYNC_WAIT_MS)))
	{
		SpinLockAcquire(&shared->mutex);
		if (w->dboid == MyDatabaseId && w->pid == pid && w->registered == registered)
			w->dboid = InvalidOid;
		SpinLockRelease(&shared->mutex);
	}

	SpinLockAcquire(&shared->mutex);
	/* room: each event merges into its slot or takes a free one */
	for (int i = 0; i < STATUS_QUEUE_LEN; i++)
		if (!OidIsValid(shared->queue[i].dboid))
			free_slots++;
	for (int j = 0; j < n; j++)
	{
		bool		merges = false;

		for (int i = 0; i < STATUS_QUEUE_LEN && !merges; i++)
			merges = shared->queue[i].dboid == MyDatabaseId &&
				shared->queue[i].ev.kind == events[j].kind &&
				strcmp(shared->queue[i].ev.name, events[j].name) == 0;
		needed += merges ? 0 : 1;
	}
	if (needed > free_slots)
	{
		SpinLockRelease(&shared->mutex);
		return false;
	}
	for (int j = 0; j < n; j++)
	{
		QueuedEvent *slot = NULL;

		for (int i = 0; i < STATUS_QUEUE_LEN && slot == NULL; i++)
			if (shared->queue[i].dboid == MyDatabaseId &&
				shared->queue[i].ev.kind == events[j].kind &&
				strcmp(shared->queue[i].ev.name, events[j].name) == 0)
				slot = &shared->queue[i];
		if (slot == NULL)
		{
			for (int i = 0; i < STATUS_QUEUE_LEN && slot == NULL; i++)
				if (!OidIsValid(shared->queue[i].dboid))
					slot = &shared->queue[i];
			slot->dboid = MyDatabaseId;
			slot->ev = events[j];
		}
		else
		{
			/* the later event's details, both request counts */
			int64		requests = slot->ev.requests + events[j].requests;

			if (events[j].at >= slot->ev.at)
				slot->ev = events[j];
			slot->ev.requests = requests;
		}
	}
	for (int i = 0; i < STATUS_QUEUE_LEN && !start; i++)
		start = shared->queue[i].dboid == MyDatabaseId;
	if (!start)
		;						/* nothing to write */
	else if (writer_of(MyDatabaseId) != NULL || (w = writer_of(InvalidOid)) == NULL)
		start = false;			/* one is running, or no slot: queued */
	else
	{
		w->dboid = MyDatabaseId;
		w->pid = 0;
		w->registered = now;
		w->applying = 0;
		shared->writers_started++;
	}
	SpinLockRelease(&shared->mutex);

	if (start && !register_writer())
	{
		SpinLockAcquire(&shared->mutex);
		if (w->dboid == MyDatabaseId && w->pid == 0)
			w->dboid = InvalidOid;
		shared->writers_started--;
		SpinLockRelease(&shared->mutex);
	}
	return true;
}

/* Backend exit: queue what this backend still holds. */
static void
flush_at_exit(int code, Datum arg)
{
	if (code == 0 && pending != NULL)
		flush_pending();
}

static void
fill_event(StatusEvent *ev, PendingEntry *e)
{
	memset(ev, 0, sizeof(StatusEvent));
	strlcpy(ev->name, e->name, NAMEDATALEN);
	ev->requests = e->requests;
	strlcpy(ev->request_id, e->request_id, STATUS_REQUEST_ID_LEN);
}

/*
 * Queues every pending failure, success and request count; see file
 * header.  Kept pending if the queue has no room.
 */
static void
flush_pending(void)
{
	HASH_SEQ_STATUS scan;
	PendingEntry *e;
	StatusEvent *events;
	int			n = 0;

	if (pending == NULL)
		return;
	if (!exit_callback && IsUnderPostmaster)
	{
		before_shmem_exit(flush_at_exit, (Datum) 0);
		exit_callback = true;
	}
	events = palloc(sizeof(StatusEvent) * 2 * hash_get_num_entries(pending));
	hash_seq_init(&scan, pending);
	while ((e = hash_seq_search(&scan)) != NULL)
	{
		bool		counted = false;

		if (e->failure)
		{
			events[n] = e->failure_ev;
			events[n].requests = e->requests;
			counted = true;
			n++;
		}
		if (e->success || (e->requests > 0 && !counted))
		{
			fill_event(&events[n], e);
			if (counted)
				events[n].requests = 0;
			events[n].kind = e->success ? STATUS_SUCCESS : STATUS_COUNT;
			events[n].at = e->success ? e->success_at : GetCurrentTimestamp();
			events[n].http_status = e->success ? 200 : 0;
			n++;
		}
	}
	if (enqueue(events, n))
	{
		hash_seq_init(&scan, pending);
		while ((e = hash_seq_search(&scan)) != NULL)
		{
			if (e->success || e->failure)
				e->written_active = e->success &&
					(!e->failure || e->success_at >= e->failure_ev.at);
			e->success = false;
			e->failure = false;
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
		TimestampDifferenceExceeds(last_flush, now, STATUS_FLUSH_INTERVAL_MS))
		flush_pending();
}

/*
 * An upstream failure of server is about to be raised.  http_status is 0
 * when there was no HTTP response; what is the sanitised reason.  401 sets
 * reauthorization_required, and so does reauthorize (a refresh token the
 * identity provider refused with invalid_grant, whatever the status);
 * no response, 404 and 5xx set error; other
 * statuses are recorded without changing the status.
 */
void
ufdw_status_failure(const char *server, const char *table, long http_status,
					const char *request_id, const char *what, bool reauthorize)
{
	PendingEntry *e = pending_entry(server);
	StatusEvent *ev = &e->failure_ev;

	/* the latest failure; queued at once with whatever else is pending */
	fill_event(ev, e);
	ev->kind = STATUS_FAILURE;
	ev->at = GetCurrentTimestamp();
	ev->http_status = (int32) http_status;
	if (request_id)
		strlcpy(ev->request_id, request_id, STATUS_REQUEST_ID_LEN);
	if (http_status == 401 || reauthorize)
		strlcpy(ev->new_status, "reauthorization_required", 32);
	else if (http_status == 0 || http_status == 404 || http_status >= 500)
		strlcpy(ev->new_status, "error", 32);
	if (http_status > 0)
		snprintf(ev->error, STATUS_ERROR_LEN, "HTTP status %ld%s%s%s: %s",
				 http_status, table ? " while reading \"" : "", table ? table : "",
				 table ? "\"" : "", what ? what : "");
	else
		snprintf(ev->error, STATUS_ERROR_LEN, "could not connect: %s",
				 what ? what : "");
	e->failure = true;
	flush_pending();
}

/*
 * Queues what is pending now and waits (at most STATUS_SYNC_WAIT_MS) until
 * this database's queued events have been written.
 */
void
ufdw_status_sync(void)
{
	TimestampTz start = GetCurrentTimestamp();

	flush_pending();
	if (status_shared() == NULL)
		return;
	for (;;)
	{
		bool		busy = false;
		StatusWriter *w;

		SpinLockAcquire(&shared->mutex);
		for (int i = 0; i < STATUS_QUEUE_LEN; i++)
			busy = busy || shared->queue[i].dboid == MyDatabaseId;
		w = writer_of(MyDatabaseId);
		busy = busy || (w && w->applying > 0);
		SpinLockRelease(&shared->mutex);
		if (!busy ||
			TimestampDifferenceExceeds(start, GetCurrentTimestamp(), STATUS_SYNC_WAIT_MS))
			break;
		/* no writer (no slot, or it died): try to start one */
		if (w == NULL)
			(void) enqueue(NULL, 0);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
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

/* Applies events in one transaction, as the bootstrap superuser. */
static void
apply_events(StatusEvent *events, int n)
{
	Oid			argtypes[8] = {TEXTOID, INT8OID, TEXTOID, TIMESTAMPTZOID, BOOLOID,
	TEXTOID, INT4OID, TEXTOID};

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
		for (int i = 0; i < n; i++)
		{
			StatusEvent *ev = &events[i];
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
}

/*
 * Entry point of the status writer of database arg: takes this database's
 * events from the shared queue and applies them, until it has found none
 * for STATUS_WRITER_LINGER_MS (or has run STATUS_WRITER_MAX_LIFE_MS); it
 * gives up its slot under the queue's lock, after finding it empty.
 */
void
ufdw_status_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	StatusWriter *w;
	StatusEvent events[STATUS_QUEUE_LEN];
	TimestampTz born = GetCurrentTimestamp();
	TimestampTz last_event = born;

	BackgroundWorkerUnblockSignals();
	if (status_shared() == NULL)
		proc_exit(0);
	SpinLockAcquire(&shared->mutex);
	w = writer_of(dboid);
	if (w && w->pid == 0)
		w->pid = MyProcPid;
	else
		w = NULL;				/* taken over by another writer */
	SpinLockRelease(&shared->mutex);
	if (w == NULL)
		proc_exit(0);
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	for (;;)
	{
		int			n = 0;
		TimestampTz now = GetCurrentTimestamp();

		SpinLockAcquire(&shared->mutex);
		for (int i = 0; i < STATUS_QUEUE_LEN; i++)
			if (shared->queue[i].dboid == dboid)
			{
				events[n++] = shared->queue[i].ev;
				shared->queue[i].dboid = InvalidOid;
			}
		w->applying = n;
		if (n == 0 &&
			(TimestampDifferenceExceeds(last_event, now, STATUS_WRITER_LINGER_MS) ||
			 TimestampDifferenceExceeds(born, now, STATUS_WRITER_MAX_LIFE_MS)))
		{
			w->dboid = InvalidOid;	/* the next event starts a new writer */
			SpinLockRelease(&shared->mutex);
			break;
		}
		SpinLockRelease(&shared->mutex);
		if (n > 0)
		{
			apply_events(events, n);
			SpinLockAcquire(&shared->mutex);
			w->applying = 0;
			SpinLockRelease(&shared->mutex);
			last_event = GetCurrentTimestamp();
			continue;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 20,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	proc_exit(0);
}

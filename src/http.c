/*-------------------------------------------------------------------------
 *
 * http.c
 *		HTTP transport: libcurl's multi interface driven from the backend's
 *		latch, and upstream failures turned into PostgreSQL errors.
 *
 * One multi handle per backend, created on first use (never in the
 * postmaster).  Connections are cached per user mapping, as postgres_fdw
 * caches its connections: each mapping has a curl share object holding its
 * connection cache, so keep-alive connections are reused across requests
 * and scans of that mapping.  Each
 * request gets its own easy handle, owned by a UfdwTransfer that lives in
 * the memory context current when the request was started: a reset
 * callback on that context removes the handle from the multi handle and
 * frees everything libcurl allocated, so an ERROR anywhere (cancel,
 * statement_timeout, a conversion error) leaks nothing.
 *
 * Waiting: curl's socket and timer callbacks only record which sockets to
 * watch and when curl wants to be called back.  ufdw_http_finish() waits on
 * the latch and those sockets with WaitEventSetWait(), at most one second
 * at a time, calls CHECK_FOR_INTERRUPTS() after every wake-up and only then
 * hands the events to curl_multi_socket_action().  No error is ever raised
 * inside a libcurl callback; callbacks set flags that are checked after
 * libcurl returns.
 *
 * Limits come from the request context (the server's options): connect,
 * whole-request and low-speed timeouts, and a cap on the body enforced in
 * the write callback on decompressed bytes.  Retries are decided by the
 * caller (auth.c) with the helpers below; their backoff sleeps on the latch
 * like every other wait.  An ALTER or DROP of a server or user mapping
 * retires the connection caches of the mappings it concerns (matched by
 * syscache hash values, see ufdw_hash_matches): their next request opens a
 * new connection, and the old connections are closed once no transfer uses
 * them.  Other mappings keep their connections.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <curl/curl.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "common/pg_prng.h"
#include "mb/pg_wchar.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "access/htup_details.h"
#include "catalog/pg_user_mapping.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "compat.h"
#include "unified_fdw.h"

/* first size of the table of watched sockets; it doubles as needed */
#define UFDW_WATCHED_INITIAL 64
/*
 * Defaults for request contexts that leave a limit at zero; the server
 * options' defaults are in option.c.
 */
#define UFDW_MAX_RESPONSE_BYTES ((int64) 256 * 1024 * 1024)
#define UFDW_CONNECT_TIMEOUT_MS 30000L
#define UFDW_REQUEST_TIMEOUT_MS 300000L
#define UFDW_LOW_SPEED_TIME_S 60L
#define UFDW_HEADER_MAX 256
#define UFDW_SHORT_SECRET 6		/* shorter secrets withhold the whole text */

/*
 * Microsoft Entra ID's error code (the token response's "error_codes") for
 * an expired client secret: AADSTS7000222 InvalidClientSecretExpiredKeysProvided
 * (learn.microsoft.com/entra/identity-platform/reference-error-codes).
 */
#define ENTRA_CLIENT_SECRET_EXPIRED 7000222
/* retry backoff: first delay, cap; each delay is jittered to 50-100% */
#define UFDW_BACKOFF_BASE_MS 500L
#define UFDW_BACKOFF_MAX_MS 30000L

/*
 * A connection cache (a curl share object) and the transfers using it.  In
 * TopMemoryContext; a retired one is freed when its last transfer ends.
 */
typedef struct ConnShare
{
	CURLSH	   *share;
	int			active;			/* transfers using it */
	bool		retired;		/* replaced: clean up when active drops to 0 */
} ConnShare;

/* The connection cache of one user mapping. */
typedef struct ConnCacheEntry
{
	Oid			umid;			/* hash key (InvalidOid: unified.connect's
								 * check) */
	ConnShare  *current;		/* for new transfers, or NULL */
	bool		stale;			/* its server or mapping changed */
	uint32		server_hashvalue;	/* see ufdw_mapping_hashes */
	uint32		mapping_hashvalue;
} ConnCacheEntry;

struct UfdwTransfer
{
	CURL	   *easy;			/* NULL once cleaned up */
	ConnShare  *conn;			/* the connection cache it uses */
	struct curl_slist *headers;
	char	   *buf;			/* response body, malloc'd */
	size_t		len;
	size_t		cap;
	size_t		max_bytes;		/* body cap (after decompression) */
	bool		overflow;		/* body exceeded max_bytes */
	bool		blocked;		/* connect refused by the address check */
	bool		no_fd;			/* no file descriptor left for a socket */
	bool		allow_insecure;
	bool		done;
	CURLcode	result;
	char		errbuf[CURL_ERROR_SIZE];
	char		content_type[UFDW_HEADER_MAX];
	char		upstream_id[UFDW_HEADER_MAX];
	char		www_authenticate[UFDW_HEADER_MAX];
	char		retry_after[UFDW_HEADER_MAX];
	char		location[UFDW_HEADER_MAX];
	char		request_id[40];
	int			attempts;		/* for messages: attempts made so far */
	TimestampTz started;
	/* for messages raised by ufdw_http_finish */
	const char *server_name;
	const char *method;
	char	   *url;
	List	   *secrets;
	MemoryContextCallback cleanup;
};

/* The sockets curl asked us to watch. */
typedef struct WatchedSocket
{
	curl_socket_t fd;
	int			what;			/* CURL_POLL_IN / OUT / INOUT */
} WatchedSocket;

static CURLM *multi = NULL;
static WatchedSocket *watched = NULL;	/* malloc'd: grown in socket_cb */
static int	nwatched = 0;
static int	watched_cap = 0;
static bool watch_overflow = false; /* the table could not grow */
static WaitEvent *wait_events = NULL;	/* for drive(); in TopMemoryContext */
static int	wait_events_cap = 0;
static TimestampTz timer_deadline = 0;	/* 0: no timer */
static int	active_transfers = 0;
static HTAB *conn_caches = NULL;	/* ConnCacheEntry by user mapping OID */

/* ---- libcurl callbacks: record only, never raise ---- */

static int
socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	int			i;

	for (i = 0; i < nwatched; i++)
		if (watched[i].fd == fd)
			break;
	if (what == CURL_POLL_REMOVE)
	{
		if (i < nwatched)
			watched[i] = watched[--nwatched];
		return 0;
	}
	if (i == nwatched)
	{
		/* as many sockets as transfers in flight: grow, never a fixed cap */
		if (nwatched == watched_cap)
		{
			int			cap = watched_cap ? watched_cap * 2 : UFDW_WATCHED_INITIAL;
			WatchedSocket *w = realloc(watched, sizeof(WatchedSocket) * cap);

			if (w == NULL)
			{
				watch_overflow = true;	/* raised after curl returns */
				return -1;
			}
			watched = w;
			watched_cap = cap;
		}
		nwatched++;
	}
	watched[i].fd = fd;
	watched[i].what = what;
	return 0;
}

static int
timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	if (timeout_ms < 0)
		timer_deadline = 0;
	else
		timer_deadline = GetCurrentTimestamp() + timeout_ms * 1000;
	return 0;
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	UfdwTransfer *x = userp;
	size_t		n = size * nmemb;

	if (x->len + n > x->max_bytes)
	{
		x->overflow = true;
		return 0;
	}
	if (x->len + n + 1 > x->cap)
	{
		size_t		cap = Max(x->cap * 2, x->len + n + 1);
		char	   *buf;

		cap = Max(cap, 65536);
		buf = realloc(x->buf, cap);
		if (buf == NULL)
			return 0;
		x->buf = buf;
		x->cap = cap;
	}
	memcpy(x->buf + x->len, data, n);
	x->len += n;
	x->buf[x->len] = '\0';
	return n;
}

/* Copies a header value, trimmed, into dst if the line is "name: value". */
static void
capture_header(const char *line, size_t len, const char *name, char *dst)
{
	size_t		nlen = strlen(name);
	const char *v;
	const char *end = line + len;

	if (len <= nlen || pg_strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
		return;
	v = line + nlen + 1;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	snprintf(dst, UFDW_HEADER_MAX, "%.*s", (int) (end - v), v);
}

static size_t
header_cb(char *line, size_t size, size_t nmemb, void *userp)
{
	UfdwTransfer *x = userp;
	size_t		len = size * nmemb;

	if (len >= 5 && strncmp(line, "HTTP/", 5) == 0)
	{
		/* a new response (after 100 Continue, say): forget the old headers */
		x->content_type[0] = x->upstream_id[0] = x->www_authenticate[0] = '\0';
		x->retry_after[0] = x->location[0] = '\0';
		return len;
	}
	capture_header(line, len, "content-type", x->content_type);
	capture_header(line, len, "www-authenticate", x->www_authenticate);
	capture_header(line, len, "retry-after", x->retry_after);
	capture_header(line, len, "location", x->location);
	/* upstream request ids: Business Central, SAP, NetSuite, generic */
	capture_header(line, len, "request-id", x->upstream_id);
	capture_header(line, len, "x-request-id", x->upstream_id);
	capture_header(line, len, "x-correlation-id", x->upstream_id);
	capture_header(line, len, "sap-request-id", x->upstream_id);
	capture_header(line, len, "x-netsuite-jobid", x->upstream_id);
	return len;
}

/*
 * True for an IPv4 address (host byte order) that is not a public unicast
 * address: "this network" 0/8, private 10/8, 172.16/12 and 192.168/16,
 * shared (carrier-grade NAT) 100.64/10, loopback 127/8, link-local
 * 169.254/16, IETF protocol assignments 192.0.0/24, benchmarking
 * 198.18/15, multicast 224/4, reserved 240/4 and broadcast.
 */
static bool
ipv4_is_internal(uint32 a)
{
	return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 22) == (100 << 2 | 1) ||
		(a >> 24) == 127 || (a >> 16) == (169 << 8 | 254) ||
		(a >> 20) == (172 << 4 | 1) || (a >> 8) == (192u << 16 | 0 << 8 | 0) ||
		(a >> 16) == (192 << 8 | 168) || (a >> 17) == (198 << 7 | 18 >> 1) ||
		(a >> 28) >= 0xe;
}

/* The 32 bits of b at offset off, as an IPv4 address in host byte order. */
static uint32
embedded_ipv4(const uint8 *b, int off)
{
	return (uint32) b[off] << 24 | (uint32) b[off + 1] << 16 |
		(uint32) b[off + 2] << 8 | b[off + 3];
}

/*
 * True for loopback, private, link-local, unspecified and other
 * non-public addresses.  IPv6 addresses that reach IPv4 space are judged
 * by the IPv4 address they embed: IPv4-mapped ::ffff:0:0/96, IPv4-
 * translated ::ffff:0:0:0/96 (SIIT), IPv4-compatible ::/96, the NAT64
 * well-known prefix 64:ff9b::/96 (RFC 6052) and 6to4 2002::/16 (the IPv4
 * address in bits 16-47); the local-use NAT64 prefix 64:ff9b:1::/48
 * (RFC 8215) is internal.  Also internal: unique local fc00::/7,
 * link-local fe80::/10, site-local fec0::/10 and multicast ff00::/8.
 */
static bool
address_is_internal(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ipv4_is_internal(ntohl(((const struct sockaddr_in *) sa)->sin_addr.s_addr));
	if (sa->sa_family == AF_INET6)
	{
		const uint8 *b = ((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr;
		static const uint8 v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		static const uint8 v4translated[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
		static const uint8 v4compatible[12] = {0};
		static const uint8 nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
		static const uint8 nat64_local[6] = {0, 0x64, 0xff, 0x9b, 0, 1};

		/* ::/96 (::, ::1, deprecated IPv4-compatible) is never public */
		if (memcmp(b, v4mapped, 12) == 0 || memcmp(b, v4translated, 12) == 0 ||
			memcmp(b, v4compatible, 12) == 0 || memcmp(b, nat64, 12) == 0)
			return ipv4_is_internal(embedded_ipv4(b, 12)) ||
				memcmp(b, v4compatible, 12) == 0;
		if (b[0] == 0x20 && b[1] == 0x02)
			return ipv4_is_internal(embedded_ipv4(b, 2));
		if (memcmp(b, nat64_local, 6) == 0)
			return true;
		return (b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0x80) == 0x80) ||
			b[0] == 0xff;
	}
	return true;
}

/* Checks the address actually connected to, after DNS. */
static curl_socket_t
opensocket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
	UfdwTransfer *x = clientp;

	curl_socket_t fd;

	if (!x->allow_insecure && address_is_internal(&addr->addr))
	{
		x->blocked = true;
		return CURL_SOCKET_BAD;
	}
	/* sockets count against max_files_per_process, like postgres_fdw's */
	if (!AcquireExternalFD())
	{
		x->no_fd = true;
		return CURL_SOCKET_BAD;
	}
	fd = socket(addr->family, addr->socktype, addr->protocol);
	if (fd == CURL_SOCKET_BAD)
		ReleaseExternalFD();
	return fd;
}

/*
 * Closes a socket opened by opensocket_cb.  It may be called after the
 * transfer that opened it is gone (cached connections), so clientp is not
 * used.
 */
static int
closesocket_cb(void *clientp, curl_socket_t fd)
{
	int			rc;

	/* a connection cache being cleaned up closes idle sockets: unwatch them */
	for (int i = 0; i < nwatched; i++)
		if (watched[i].fd == fd)
		{
			watched[i] = watched[--nwatched];
			break;
		}
	rc = close(fd);

	ReleaseExternalFD();
	return rc;
}

/* ---- lifecycle ---- */

static void
transfer_cleanup(void *arg)
{
	UfdwTransfer *x = arg;

	if (x->easy)
	{
		curl_multi_remove_handle(multi, x->easy);
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
		active_transfers--;
	}
	if (x->conn)
	{
		ConnShare  *c = x->conn;

		x->conn = NULL;
		if (--c->active == 0 && c->retired)
		{
			curl_share_cleanup(c->share);
			pfree(c);
		}
	}
	curl_slist_free_all(x->headers);
	x->headers = NULL;
	free(x->buf);
	x->buf = NULL;
}

/*
 * The syscache hash values of user mapping umid's server and of umid, for
 * matching invalidations (0 and 0 if umid is invalid or gone: every
 * invalidation matches).
 */
void
ufdw_mapping_hashes(Oid umid, uint32 *server_hashvalue, uint32 *mapping_hashvalue)
{
	HeapTuple	tup;
	Oid			serverid;

	*server_hashvalue = *mapping_hashvalue = 0;
	if (!OidIsValid(umid))
		return;
	tup = SearchSysCache1(USERMAPPINGOID, ObjectIdGetDatum(umid));
	if (!HeapTupleIsValid(tup))
		return;
	serverid = ((Form_pg_user_mapping) GETSTRUCT(tup))->umserver;
	ReleaseSysCache(tup);
	*server_hashvalue = GetSysCacheHashValue1(FOREIGNSERVEROID, ObjectIdGetDatum(serverid));
	*mapping_hashvalue = GetSysCacheHashValue1(USERMAPPINGOID, ObjectIdGetDatum(umid));
}

/*
 * Whether a syscache invalidation (cacheid, hashvalue) concerns a cache
 * entry of a mapping with these hash values (ufdw_mapping_hashes): as
 * postgres_fdw's pgfdw_inval_callback, by hash value; hash value 0 is a
 * cache reset, which concerns every entry.
 */
bool
ufdw_hash_matches(int cacheid, uint32 hashvalue, uint32 server_hashvalue,
				  uint32 mapping_hashvalue)
{
	if (hashvalue == 0 || (server_hashvalue == 0 && mapping_hashvalue == 0))
		return true;
	if (cacheid == FOREIGNSERVEROID)
		return hashvalue == server_hashvalue;
	return hashvalue == mapping_hashvalue;
}

/*
 * Syscache callback: a server or user mapping changed (ALTER, DROP, a new
 * ca_file, new credentials).  Connections of the mappings it concerns were
 * made under the old settings: those caches are retired before their next
 * request.
 */
static void
invalidate_connections(Datum arg, int cacheid, uint32 hashvalue)
{
	HASH_SEQ_STATUS scan;
	ConnCacheEntry *e;

	if (conn_caches == NULL)
		return;
	hash_seq_init(&scan, conn_caches);
	while ((e = hash_seq_search(&scan)) != NULL)
		if (ufdw_hash_matches(cacheid, hashvalue, e->server_hashvalue,
							  e->mapping_hashvalue))
			e->stale = true;
}

/*
 * The connection cache for a new transfer of user mapping umid: a fresh
 * one when the mapping changed since (the old one is closed once unused).
 */
static ConnShare *
conn_share(Oid umid)
{
	ConnCacheEntry *e;
	bool		found;

	if (conn_caches == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(ConnCacheEntry);
		conn_caches = hash_create("unified_fdw connections", 16, &ctl,
								  HASH_ELEM | HASH_BLOBS);
	}
	e = hash_search(conn_caches, &umid, HASH_ENTER, &found);
	if (!found)
	{
		e->current = NULL;
		e->stale = false;
	}
	if (e->current && e->stale)
	{
		if (e->current->active == 0)
		{
			curl_share_cleanup(e->current->share);
			pfree(e->current);
		}
		else
			e->current->retired = true;
		e->current = NULL;
	}
	if (e->current == NULL)
	{
		ConnShare  *c = MemoryContextAllocZero(TopMemoryContext, sizeof(ConnShare));

		c->share = curl_share_init();
		if (c->share == NULL ||
			curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK)
		{
			if (c->share)
				curl_share_cleanup(c->share);
			pfree(c);
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		}
		e->current = c;
		e->stale = false;
		ufdw_mapping_hashes(umid, &e->server_hashvalue, &e->mapping_hashvalue);
	}
	return e->current;
}

void
ufdw_http_init(void)
{
	CacheRegisterSyscacheCallback(FOREIGNSERVEROID, invalidate_connections, (Datum) 0);
	CacheRegisterSyscacheCallback(USERMAPPINGOID, invalidate_connections, (Datum) 0);
}

static void
ensure_multi(void)
{
	if (multi)
		return;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
				 errmsg("could not initialize the HTTP client library")));
	if (!(curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_ASYNCHDNS))
		ereport(WARNING,
				(errmsg("libcurl was built without an asynchronous resolver"),
				 errdetail("Host name lookups cannot be cancelled.")));
	multi = curl_multi_init();
	if (multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	if (curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb) != CURLM_OK ||
		curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb) != CURLM_OK)
		elog(ERROR, "could not configure the HTTP client library");
}

/* A random UUID (version 4) for X-Request-ID. */
static void
make_request_id(char *dst)
{
	uint8		b[16];

	if (!pg_strong_random(b, sizeof(b)))
		for (int i = 0; i < 16; i++)
			b[i] = (uint8) pg_prng_uint32(&pg_global_prng_state);
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(dst, 40, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
			 b[11], b[12], b[13], b[14], b[15]);
}

/*
 * Starts req.  auth_headers ("Name: value") and username/password (HTTP
 * Basic, may be NULL) carry the credentials and are never shown; the
 * connection comes from user mapping umid's cache.  The returned transfer
 * belongs to the current memory context.
 */
UfdwTransfer *
ufdw_http_start(const UfdwRequest *req, const UfdwRequestContext *rctx,
				List *auth_headers, const char *username, const char *password,
				Oid umid)
{
	UfdwTransfer *x;
	CURL	   *e;
	bool		ok = true;
	ListCell   *lc;
	char		idheader[64];

	ensure_multi();
	x = palloc0(sizeof(UfdwTransfer));
	x->allow_insecure = rctx->allow_insecure;
	x->max_bytes = rctx->max_response_bytes > 0 ?
		(size_t) rctx->max_response_bytes : (size_t) UFDW_MAX_RESPONSE_BYTES;
	x->attempts = 1;
	x->server_name = pstrdup(rctx->server_name);
	x->method = req->method;
	x->url = pstrdup(req->url);
	x->secrets = rctx->secrets;
	make_request_id(x->request_id);
	ufdw_status_request(rctx->server_name, x->request_id);
	x->cleanup.func = transfer_cleanup;
	x->cleanup.arg = x;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &x->cleanup);

	x->easy = e = curl_easy_init();
	if (e == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	active_transfers++;
	x->conn = conn_share(umid);
	x->conn->active++;

#define SETOPT(opt, val) (ok = ok && curl_easy_setopt(e, opt, val) == CURLE_OK)
	SETOPT(CURLOPT_URL, req->url);
	SETOPT(CURLOPT_PRIVATE, x);
	SETOPT(CURLOPT_SHARE, x->conn->share);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_ERRORBUFFER, x->errbuf);
	SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
	SETOPT(CURLOPT_WRITEDATA, x);
	SETOPT(CURLOPT_HEADERFUNCTION, header_cb);
	SETOPT(CURLOPT_HEADERDATA, x);
	SETOPT(CURLOPT_OPENSOCKETFUNCTION, opensocket_cb);
	SETOPT(CURLOPT_OPENSOCKETDATA, x);
	SETOPT(CURLOPT_CLOSESOCKETFUNCTION, closesocket_cb);
	SETOPT(UFDW_CURLOPT_PROTOCOLS, UFDW_CURL_PROTOCOLS(rctx->allow_insecure));
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS, rctx->connect_timeout_ms > 0 ?
		   rctx->connect_timeout_ms : UFDW_CONNECT_TIMEOUT_MS);
	SETOPT(CURLOPT_TIMEOUT_MS, rctx->request_timeout_ms > 0 ?
		   rctx->request_timeout_ms : UFDW_REQUEST_TIMEOUT_MS);
	SETOPT(CURLOPT_LOW_SPEED_LIMIT, rctx->low_speed_limit > 0 ? rctx->low_speed_limit : 1L);
	SETOPT(CURLOPT_LOW_SPEED_TIME, rctx->low_speed_time_s > 0 ?
		   rctx->low_speed_time_s : UFDW_LOW_SPEED_TIME_S);
	/* a declared Content-Length over the cap fails before the body is read */
	SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) x->max_bytes);
	SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	if (rctx->ca_file)
		SETOPT(CURLOPT_CAINFO, rctx->ca_file);
	SETOPT(CURLOPT_ACCEPT_ENCODING, "");
	SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(CURLOPT_USERAGENT, "unified_fdw/0.1");
	if (strcmp(req->method, "POST") == 0)
		SETOPT(CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
	if (username)
	{
		SETOPT(CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
		SETOPT(CURLOPT_USERNAME, username);
		SETOPT(CURLOPT_PASSWORD, password ? password : "");
	}

	snprintf(idheader, sizeof(idheader), "X-Request-ID: %s", x->request_id);
	x->headers = curl_slist_append(x->headers, idheader);
	foreach(lc, req->headers)
		x->headers = curl_slist_append(x->headers, lfirst(lc));
	foreach(lc, auth_headers)
		x->headers = curl_slist_append(x->headers, lfirst(lc));
	/* curl adds "Expect: 100-continue" to large POSTs; upstreams do not need it */
	x->headers = curl_slist_append(x->headers, "Expect:");
	if (x->headers == NULL)
		ok = false;
	SETOPT(CURLOPT_HTTPHEADER, x->headers);
#undef SETOPT

	if (!ok)
		elog(ERROR, "could not configure an HTTP request");
	x->started = GetCurrentTimestamp();
	if (curl_multi_add_handle(multi, e) != CURLM_OK)
		elog(ERROR, "could not start an HTTP request");
	return x;
}

/* Marks finished transfers. */
static void
collect_finished(void)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
	{
		UfdwTransfer *x = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &x);
		if (x)
		{
			x->done = true;
			x->result = msg->data.result;
		}
	}
}

/*
 * Waits up to max_wait_ms for socket activity, curl's timer, or the latch,
 * and lets curl make progress.  Raises an ERROR if an interrupt is pending.
 */
static void
drive(long max_wait_ms)
{
	WaitEvent  *events;
	int			nevents = 0;
	long		timeout = max_wait_ms;
	int			running;
	bool		timer_due;

	if (timer_deadline != 0)
	{
		long		secs;
		int			usecs;

		TimestampDifference(GetCurrentTimestamp(), timer_deadline, &secs, &usecs);
		timeout = Min(timeout, secs * 1000 + usecs / 1000);
	}

	if (wait_events_cap < nwatched + 2)
	{
		int			cap = Max(nwatched + 2, 2 * wait_events_cap);

		wait_events = wait_events ?
			repalloc(wait_events, sizeof(WaitEvent) * cap) :
			MemoryContextAlloc(TopMemoryContext, sizeof(WaitEvent) * cap);
		wait_events_cap = cap;
	}
	events = wait_events;

	if (timeout > 0 || nwatched > 0)
	{
		WaitEventSet *set = ufdw_create_wait_event_set(nwatched + 2);

		AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		for (int i = 0; i < nwatched; i++)
		{
			uint32		ev = 0;

			if (watched[i].what & CURL_POLL_IN)
				ev |= WL_SOCKET_READABLE;
			if (watched[i].what & CURL_POLL_OUT)
				ev |= WL_SOCKET_WRITEABLE;
			AddWaitEventToSet(set, ev, watched[i].fd, NULL, NULL);
		}
		nevents = WaitEventSetWait(set, timeout, events, nwatched + 2,
								   ufdw_upstream_wait_event());
		FreeWaitEventSet(set);
	}

	for (int i = 0; i < nevents; i++)
		if (events[i].events & WL_LATCH_SET)
			ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();

	for (int i = 0; i < nevents; i++)
	{
		int			mask = 0;

		if (events[i].events & WL_LATCH_SET)
			continue;
		if (events[i].events & WL_SOCKET_READABLE)
			mask |= CURL_CSELECT_IN;
		if (events[i].events & WL_SOCKET_WRITEABLE)
			mask |= CURL_CSELECT_OUT;
		curl_multi_socket_action(multi, events[i].fd, mask, &running);
	}
	timer_due = timer_deadline != 0 && GetCurrentTimestamp() >= timer_deadline;
	if (timer_due || (nevents == 0 && nwatched == 0))
		curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	collect_finished();
	if (watch_overflow)
	{
		watch_overflow = false;
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Could not grow the table of %d sockets of upstream requests in flight.",
						   nwatched)));
	}
}

/* Lets transfers in flight make progress without waiting. */
void
ufdw_http_poll(void)
{
	if (multi && active_transfers > 0)
		drive(0);
}

/* Stops a transfer and frees its resources now. */
void
ufdw_http_cancel(UfdwTransfer *xfer)
{
	transfer_cleanup(xfer);
}

/* The URL without its query string, for messages about connections. */
static char *
url_without_query(const char *url)
{
	const char *q = strchr(url, '?');

	return q ? pnstrdup(url, q - url) : pstrdup(url);
}

/* Waits until xfer has finished (successfully or not). */
void
ufdw_http_wait(UfdwTransfer *xfer)
{
	while (!xfer->done)
		drive(1000);
}

/*
 * True if xfer failed in a way worth retrying for a request that only
 * reads: the connection was reset or closed before a complete response
 * arrived (a stale keep-alive connection, a restarting load balancer).
 * Timeouts are not retried: the time budget is the user's.
 */
bool
ufdw_http_failed_retryably(UfdwTransfer *xfer)
{
	if (!xfer->done || xfer->blocked || xfer->overflow)
		return false;
	return xfer->result == CURLE_RECV_ERROR || xfer->result == CURLE_SEND_ERROR ||
		xfer->result == CURLE_GOT_NOTHING;
}

/* Records how many attempts led to xfer, for its error messages. */
void
ufdw_http_set_attempts(UfdwTransfer *xfer, int attempts)
{
	xfer->attempts = attempts;
}

/* HTTP statuses that say "try again later": throttling and gateway trouble. */
bool
ufdw_http_retryable_status(long status)
{
	return status == 429 || status == 502 || status == 503 || status == 504;
}

/*
 * Milliseconds to wait before retry number attempt (1, 2, ...): the
 * response's Retry-After when it is valid (delta-seconds or an HTTP-date;
 * a date in the past means now), else exponential backoff with jitter.
 * The caller clamps the result to its budget.
 */
long
ufdw_http_retry_delay(const UfdwResponse *resp, int attempt)
{
	long		base;

	if (resp && resp->retry_after && resp->retry_after[0])
	{
		const char *v = resp->retry_after;

		if (strspn(v, "0123456789") == strlen(v))
		{
			if (strlen(v) > 7)	/* over 115 days: clamped by the caller */
				return LONG_MAX / 2;
			return atol(v) * 1000L;
		}
		else
		{
			time_t		when = curl_getdate(v, NULL);

			if (when != (time_t) -1)
			{
				double		secs = difftime(when, time(NULL));

				return secs <= 0 ? 0 : (long) Min(secs, (double) (LONG_MAX / 2000)) * 1000L;
			}
		}
		/* negative or unreadable: ignored */
	}
	base = UFDW_BACKOFF_BASE_MS << Min(Max(attempt - 1, 0), 10);
	base = Min(base, UFDW_BACKOFF_MAX_MS);
	return base / 2 + (long) pg_prng_uint64_range(&pg_global_prng_state, 0, base / 2);
}

/*
 * Sleeps ms milliseconds on the latch, at most a second per wait, with
 * CHECK_FOR_INTERRUPTS() after each: cancel and statement_timeout end a
 * retry's backoff at once.  Transfers in flight keep progressing.
 */
void
ufdw_http_sleep(long ms)
{
	TimestampTz end = GetCurrentTimestamp() + (TimestampTz) ms * 1000;

	for (;;)
	{
		long		left = (long) ((end - GetCurrentTimestamp()) / 1000);

		CHECK_FOR_INTERRUPTS();
		if (left <= 0)
			break;
		if (multi && active_transfers > 0)
			drive(Min(left, 1000));
		else
		{
			int			rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
									   Min(left, 1000), ufdw_upstream_wait_event());

			if (rc & WL_LATCH_SET)
				ResetLatch(MyLatch);
		}
	}
}

/* " after N attempts" for messages, or "". */
static char *
attempts_note(int attempts)
{
	return attempts > 1 ? psprintf(" after %d attempts", attempts) : pstrdup("");
}

/*
 * Waits for xfer to finish and returns its response (body copied into the
 * current memory context).  Transport failures (DNS, connect, TLS, timeouts,
 * resets, oversized or cut-short bodies) raise an ERROR here; HTTP statuses
 * are left to the caller.  The transfer's resources are freed either way.
 */
UfdwResponse *
ufdw_http_finish(UfdwTransfer *xfer)
{
	UfdwResponse *resp;

	ufdw_http_wait(xfer);

	if (xfer->result != CURLE_OK)
	{
		const char *why = xfer->errbuf[0] ? xfer->errbuf : curl_easy_strerror(xfer->result);
		char	   *safe_why = ufdw_redact(why, xfer->secrets, 300);
		char	   *where = ufdw_redact(url_without_query(xfer->url), xfer->secrets, 300);
		CURLcode	result = xfer->result;
		bool		blocked = xfer->blocked;
		bool		no_fd = xfer->no_fd;
		bool		overflow = xfer->overflow || result == CURLE_FILESIZE_EXCEEDED;
		char	   *after = attempts_note(xfer->attempts);
		double		pretransfer = 0;

		/* zero if the request was never sent: DNS, connect or TLS failed */
		curl_easy_getinfo(xfer->easy, CURLINFO_PRETRANSFER_TIME, &pretransfer);
		transfer_cleanup(xfer);
		ufdw_status_failure(xfer->server_name, NULL, 0, xfer->request_id, safe_why, false);
		if (no_fd)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("could not connect to server \"%s\": too many open files",
							xfer->server_name),
					 errhint("Raise max_files_per_process, or run fewer foreign scans at once.")));
		if (blocked)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("destination address not allowed for server \"%s\"",
							xfer->server_name),
					 errdetail("\"%s\" resolves to an address that is not public (loopback, private, link-local, multicast, reserved, or an IPv6 form of one).", where),
					 errhint("Only a superuser can allow such destinations, with the server option allow_insecure 'true' (meant for test servers).")));
		if (overflow)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("response from server \"%s\" exceeds max_response_bytes (%zu bytes)",
							xfer->server_name, xfer->max_bytes),
					 errdetail("%s %s; the limit applies to the decompressed body.",
							   xfer->method, where),
					 errhint("Lower the page_size option, or raise the server's max_response_bytes option.")));
		if (result == CURLE_OPERATION_TIMEDOUT && pretransfer <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
					 errmsg("could not connect to server \"%s\": timed out", xfer->server_name),
					 errdetail("%s (%s %s)", safe_why, xfer->method, where),
					 errhint("Check that the upstream is reachable, or raise the server's connect_timeout option.")));
		if (result == CURLE_OPERATION_TIMEDOUT)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_ERROR),
					 errmsg("upstream request to server \"%s\" timed out", xfer->server_name),
					 errdetail("%s (%s %s)", safe_why, xfer->method, where),
					 errhint("The upstream did not answer in time; try again later, or raise the server's connect_timeout, request_timeout or low_speed_time option.")));
		if (result == CURLE_PARTIAL_FILE || result == CURLE_BAD_CONTENT_ENCODING)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_ERROR),
					 errmsg("incomplete response from server \"%s\"", xfer->server_name),
					 errdetail("%s (%s %s)", safe_why, xfer->method, where),
					 errhint("The upstream closed the connection before the whole body arrived; try again later.")));
		if (result == CURLE_RECV_ERROR || result == CURLE_SEND_ERROR ||
			result == CURLE_GOT_NOTHING)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
					 errmsg("connection to server \"%s\" was lost%s", xfer->server_name, after),
					 errdetail("%s (%s %s)", safe_why, xfer->method, where),
					 errhint("The upstream or a proxy closed the connection; try again later.")));
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
				 errmsg("could not connect to server \"%s\"", xfer->server_name),
				 errdetail("%s (%s %s)", safe_why, xfer->method, where),
				 errhint("Check the server's instance_url and that the upstream is reachable.")));
	}

	resp = palloc0(sizeof(UfdwResponse));
	curl_easy_getinfo(xfer->easy, CURLINFO_RESPONSE_CODE, &resp->status);
	resp->len = xfer->len;
	resp->body = palloc(xfer->len + 1);
	if (xfer->len > 0)
		memcpy(resp->body, xfer->buf, xfer->len);
	resp->body[xfer->len] = '\0';
	resp->content_type = xfer->content_type[0] ? pstrdup(xfer->content_type) : NULL;
	resp->request_id = pstrdup(xfer->request_id);
	resp->upstream_request_id = xfer->upstream_id[0] ? pstrdup(xfer->upstream_id) : NULL;
	resp->www_authenticate = xfer->www_authenticate[0] ? pstrdup(xfer->www_authenticate) : NULL;
	resp->retry_after = xfer->retry_after[0] ? pstrdup(xfer->retry_after) : NULL;
	resp->location = xfer->location[0] ? pstrdup(xfer->location) : NULL;
	resp->attempts = xfer->attempts;
	resp->elapsed_ms = (GetCurrentTimestamp() - xfer->started) / 1000.0;
	transfer_cleanup(xfer);
	return resp;
}

/* list_sort comparator: longer strings first. */
static int
longer_first(const ListCell *a, const ListCell *b)
{
	size_t		la = strlen(lfirst(a));
	size_t		lb = strlen(lfirst(b));

	return la > lb ? -1 : la < lb ? 1 : 0;
}

/*
 * Text safe to show: secrets replaced (longest first, so an encoded form
 * goes whole), control characters blanked, at most maxlen bytes (cut on a
 * character boundary).  A secret shorter than UFDW_SHORT_SECRET bytes
 * would leave too little text if every occurrence were cut out, and could
 * still be guessed from what remains: text that holds one is withheld
 * entirely.
 */
char *
ufdw_redact(const char *text, List *secrets, int maxlen)
{
	StringInfoData buf;
	ListCell   *lc;
	char	   *s = pstrdup(text ? text : "");
	List	   *sorted = list_copy(secrets);

	list_sort(sorted, longer_first);
	foreach(lc, sorted)
	{
		const char *secret = lfirst(lc);
		size_t		slen = strlen(secret);
		char	   *hit;

		if (slen == 0)
			continue;
		if (slen < UFDW_SHORT_SECRET && strstr(s, secret) != NULL)
			return pstrdup("[withheld: the text contains a credential]");
		if (strstr(s, secret) == NULL)
			continue;
		/* one pass from left to right: a replacement is never searched again */
		initStringInfo(&buf);
		for (const char *p = s; p != NULL;)
		{
			hit = strstr(p, secret);
			if (hit == NULL)
			{
				appendStringInfoString(&buf, p);
				break;
			}
			appendBinaryStringInfo(&buf, p, hit - p);
			appendStringInfoString(&buf, "[redacted]");
			p = hit + slen;
		}
		s = buf.data;
	}
	initStringInfo(&buf);
	for (char *p = s; *p; p++)
		appendStringInfoChar(&buf, ((unsigned char) *p < 0x20 || *p == 0x7f) ? ' ' : *p);
	if (buf.len > maxlen)
	{
		int			cut = pg_mbcliplen(buf.data, buf.len, maxlen);

		buf.data[cut] = '\0';
		appendStringInfoString(&buf, "...");
	}
	return buf.data;
}

static const char *
status_hint(long status, bool token_request)
{
	if (status == 401)
		return token_request ?
			"The identity provider rejected the client credentials: check client_id and client_secret in the user mapping (secrets expire), then ALTER USER MAPPING ... OPTIONS (SET client_secret '...')." :
			"The upstream rejected the credentials: they may have been changed, revoked or expired. Update the user mapping (ALTER USER MAPPING ... OPTIONS (SET ...)) or reconnect.";
	if (status == 403)
		return "The credentials are valid but lack permission for this data: grant the integration user or app read access upstream.";
	if (status == 404)
		return "Check the server's instance_url and company or account options.";
	if (status == 408 || status == 429)
		return "The upstream is throttling or busy: try again later, or raise the server's max_retries or retry_max_wait option.";
	if (status >= 300 && status < 400)
		return "Redirects are never followed (they could carry credentials elsewhere): set instance_url to the address the upstream redirects to, if it is trustworthy.";
	if (status >= 500)
		return "The upstream failed: try again later; if it persists, give the request ids to the upstream's support.";
	if (status == 400 && token_request)
		return "The identity provider rejected the token request: check client_id, tenant_id, token_url and that the app is registered for this API.";
	return "The upstream rejected the request; if the request looks wrong, report it to the unified_fdw developers with the request ids.";
}

static void
request_context_cb(void *arg)
{
	errcontext("upstream request: %s", (const char *) arg);
}

/*
 * Raises the ERROR for an unsuccessful HTTP response: SQLSTATE by status,
 * the upstream's code and message (sanitised, bounded) and both request ids
 * in DETAIL, advice in HINT, the request line in CONTEXT.
 */
void
ufdw_http_raise(const UfdwRequestContext *rctx, const UfdwRequest *req,
				const UfdwResponse *resp)
{
	UfdwUpstreamError uerr = {0};
	bool		token_request = rctx->table_name == NULL;
	bool		grant_refused;
	int			sqlstate;
	char	   *upstream;
	StringInfoData detail;
	ErrorContextCallback errcb;

	ufdw_parse_error_body(resp->body, resp->len, &uerr);
	initStringInfo(&detail);
	if (uerr.code || uerr.message)
	{
		upstream = ufdw_redact(psprintf("%s%s%s", uerr.code ? uerr.code : "",
										uerr.code && uerr.message ? ": " : "",
										uerr.message ? uerr.message : ""),
							   rctx->secrets, 400);
		/* the upstream's own final period would double ours */
		while (strlen(upstream) > 0 && (upstream[strlen(upstream) - 1] == '.' ||
										upstream[strlen(upstream) - 1] == ' '))
			upstream[strlen(upstream) - 1] = '\0';
		appendStringInfo(&detail, "Upstream error: %s. ", upstream);
	}
	else if (resp->len > 0 && resp->content_type &&
			 pg_strncasecmp(resp->content_type, "text/html", 9) == 0)
		appendStringInfoString(&detail, "The upstream answered with an HTML page. ");
	if (resp->status >= 300 && resp->status < 400 && resp->location)
		appendStringInfo(&detail, "Redirect to: %s (not followed). ",
						 ufdw_redact(url_without_query(resp->location), rctx->secrets, 300));
	appendStringInfo(&detail, "Request id: %s", resp->request_id);
	if (resp->upstream_request_id)
		appendStringInfo(&detail, "; upstream request id: %s",
						 ufdw_redact(resp->upstream_request_id, rctx->secrets, 100));
	if (uerr.upstream_id && (!resp->upstream_request_id ||
							 strcmp(uerr.upstream_id, resp->upstream_request_id) != 0))
		appendStringInfo(&detail, "; upstream transaction id: %s",
						 ufdw_redact(uerr.upstream_id, rctx->secrets, 100));
	appendStringInfoChar(&detail, '.');

	if (resp->status == 401)
		sqlstate = ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION;
	else if (resp->status == 403)
		sqlstate = ERRCODE_INSUFFICIENT_PRIVILEGE;
	else
		sqlstate = ERRCODE_FDW_ERROR;

	/* a refresh token refused: the user must authorize again */
	grant_refused = token_request && rctx->user_grant &&
		rctx->auth_failure != UFDW_AUTHFAIL_CODE_EXCHANGE && uerr.code &&
		strcmp(uerr.code, "invalid_grant") == 0;
	ufdw_status_failure(rctx->server_name, rctx->table_name, resp->status,
						resp->request_id, detail.data, grant_refused);
	errcb.callback = request_context_cb;
	errcb.arg = psprintf("%s %s", req->method, ufdw_redact(req->url, rctx->secrets, 1000));
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	if (token_request && rctx->auth_failure == UFDW_AUTHFAIL_CODE_EXCHANGE)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
				 errmsg("the identity provider refused the authorization code for connection \"%s\": HTTP status %ld",
						rctx->server_name, resp->status),
				 errdetail_internal("%s", detail.data),
				 errhint("A code is single-use and short-lived, and is only valid with the redirect URI and PKCE verifier it was issued for: start again with unified.authorize().")));
	if (grant_refused)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
				 errmsg("server \"%s\" requires reauthorization: the identity provider refused its refresh token (HTTP status %ld)",
						rctx->server_name, resp->status),
				 errdetail_internal("%s", detail.data),
				 errhint("The authorization was revoked, expired, or the user's password or consent changed: authorize again with unified.authorize() and unified.complete_authorization(), which make a new connection (as reconnecting does); then unified.disconnect('%s').",
						 rctx->server_name)));
	if (token_request && rctx->auth_failure == UFDW_AUTHFAIL_NOT_REFRESHED &&
		(resp->status == 401 || resp->status == 400))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
				 errmsg("access token for server \"%s\" expired or was revoked, and could not be renewed: HTTP status %ld",
						rctx->server_name, resp->status),
				 errdetail_internal("%s", detail.data),
				 errhint("The identity provider no longer accepts the client credentials (the secret expired, was rotated or revoked, or the app was removed): create a new client secret and ALTER USER MAPPING ... OPTIONS (SET client_secret '...'), or reconnect with unified.connect().")));
	if (token_request && list_member_int(uerr.error_codes, ENTRA_CLIENT_SECRET_EXPIRED))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
				 errmsg("client secret for server \"%s\" has expired: HTTP status %ld",
						rctx->server_name, resp->status),
				 errdetail_internal("%s", detail.data),
				 errhint("Create a new client secret for the app (Microsoft Entra admin center: App registrations > Certificates & secrets), then ALTER USER MAPPING ... OPTIONS (SET client_secret '...'), or reconnect with unified.connect().")));
	if (token_request)
		ereport(ERROR,
				(errcode(sqlstate),
				 resp->status == 401 || (uerr.code && strcmp(uerr.code, "invalid_client") == 0) ?
				 errmsg("credentials for server \"%s\" were rejected: HTTP status %ld",
						rctx->server_name, resp->status) :
				 errmsg("could not obtain an access token for server \"%s\": HTTP status %ld%s",
						rctx->server_name, resp->status, attempts_note(resp->attempts)),
				 errdetail_internal("%s", detail.data),
				 errhint("%s", status_hint(resp->status, true))));
	if (resp->status == 401 && rctx->auth_failure == UFDW_AUTHFAIL_REAUTHORIZE &&
		rctx->user_grant)
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg("server \"%s\" requires reauthorization to read \"%s\": a new access token was refused too (HTTP status 401)",
						rctx->server_name, rctx->table_name),
				 errdetail_internal("%s", detail.data),
				 errhint("The user who authorized the connection may no longer have access: authorize again with unified.authorize() and unified.complete_authorization(), which make a new connection; then unified.disconnect('%s').",
						 rctx->server_name)));
	if (resp->status == 401 && rctx->auth_failure == UFDW_AUTHFAIL_REAUTHORIZE)
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg("server \"%s\" requires reauthorization to read \"%s\": a new access token was refused too (HTTP status 401)",
						rctx->server_name, rctx->table_name),
				 errdetail_internal("%s", detail.data),
				 errhint("The app obtains tokens but is no longer authorized upstream (disabled, consent or permissions withdrawn): authorize it again in the system's admin screens (Business Central: the Microsoft Entra Applications page), then reconnect.")));
	if (resp->status == 401 && rctx->auth_failure == UFDW_AUTHFAIL_NOT_REFRESHED)
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg("access token for server \"%s\" expired or was revoked while reading \"%s\": HTTP status 401",
						rctx->server_name, rctx->table_name),
				 errdetail_internal("%s", detail.data),
				 errhint("A static token cannot be renewed: put a new one in the user mapping (ALTER USER MAPPING ... OPTIONS (SET token '...')), or use credentials that can obtain tokens.")));
	ereport(ERROR,
			(errcode(sqlstate),
			 resp->status == 401 ?
			 errmsg("credentials for server \"%s\" were rejected while reading \"%s\": HTTP status %ld",
					rctx->server_name, rctx->table_name, resp->status) :
			 resp->status == 403 ?
			 errmsg("server \"%s\" denied access to \"%s\": HTTP status 403",
					rctx->server_name, rctx->table_name) :
			 resp->status >= 300 && resp->status < 400 ?
			 errmsg("server \"%s\" redirected the request for \"%s\" (HTTP status %ld); redirects are not followed",
					rctx->server_name, rctx->table_name, resp->status) :
			 errmsg("could not fetch \"%s\" from server \"%s\": HTTP status %ld%s",
					rctx->table_name, rctx->server_name, resp->status,
					attempts_note(resp->attempts)),
			 errdetail_internal("%s", detail.data),
			 errhint("%s", status_hint(resp->status, false))));
}

/*-------------------------------------------------------------------------
 *
 * compat.h
 *		Every PostgreSQL and libcurl version difference unified_fdw cares
 *		about, in one place.  Call sites use the UFDW_* names below and never
 *		test PG_VERSION_NUM or LIBCURL_VERSION_NUM themselves.
 *
 * PostgreSQL 15 is the floor.
 *
 *-------------------------------------------------------------------------
 */
#ifndef UFDW_COMPAT_H
#define UFDW_COMPAT_H

#include "common/jsonapi.h"
#include "storage/latch.h"
#include "utils/wait_event.h"

#if PG_VERSION_NUM < 150000
#error "unified_fdw requires PostgreSQL 15 or later"
#endif

/*
 * JSON semantic actions return JsonParseErrorType from PostgreSQL 16 on and
 * void before.  Callbacks are declared with UFDW_JSON_ACTION and end with
 * UFDW_JSON_ACTION_RETURN.
 */
#if PG_VERSION_NUM >= 160000
#define UFDW_JSON_ACTION JsonParseErrorType
#define UFDW_JSON_ACTION_RETURN return JSON_SUCCESS
#else
#define UFDW_JSON_ACTION void
#define UFDW_JSON_ACTION_RETURN return
#endif

/* makeJsonLexContextCstringLen gained a leading "lex" argument in 17. */
#if PG_VERSION_NUM >= 170000
#define ufdw_make_json_lex(json, len, need_escapes) \
	makeJsonLexContextCstringLen(NULL, (json), (len), GetDatabaseEncoding(), (need_escapes))
#else
#define ufdw_make_json_lex(json, len, need_escapes) \
	makeJsonLexContextCstringLen((json), (len), GetDatabaseEncoding(), (need_escapes))
#endif

/* CreateWaitEventSet takes a ResourceOwner from 17 on. */
#if PG_VERSION_NUM >= 170000
#define ufdw_create_wait_event_set(nevents) \
	CreateWaitEventSet(CurrentResourceOwner, (nevents))
#else
#define ufdw_create_wait_event_set(nevents) \
	CreateWaitEventSet(CurrentMemoryContext, (nevents))
#endif

/*
 * Wait event shown in pg_stat_activity while waiting for an upstream.
 * Custom names (WaitEventExtensionNew) exist from 17 on; before that every
 * extension wait is reported as "Extension".
 */
#if PG_VERSION_NUM >= 170000
#define UFDW_HAVE_CUSTOM_WAIT_EVENTS 1
/* "UnifiedFdwUpstream", registered on first use (compiled only on 17+) */
static inline uint32
ufdw_upstream_wait_event(void)
{
	static uint32 wait_event = 0;

	if (wait_event == 0)
		wait_event = WaitEventExtensionNew("UnifiedFdwUpstream");
	return wait_event;
}
#else
#define ufdw_upstream_wait_event() PG_WAIT_EXTENSION
#endif

/* create_foreignscan_path gained fdw_restrictinfo in 17. */
#if PG_VERSION_NUM >= 170000
#define ufdw_create_foreignscan_path(root, rel, target, rows, startup, total, \
									 pathkeys, outer, outerpath, priv) \
	create_foreignscan_path(root, rel, target, rows, startup, total, pathkeys, \
							outer, outerpath, NIL, priv)
#else
#define ufdw_create_foreignscan_path(root, rel, target, rows, startup, total, \
									 pathkeys, outer, outerpath, priv) \
	create_foreignscan_path(root, rel, target, rows, startup, total, pathkeys, \
							outer, outerpath, priv)
#endif

/* The role a foreign scan runs as: in the plan from 16 on, in the RTE before. */
#if PG_VERSION_NUM >= 160000
#define ufdw_scan_user(fsplan, estate) \
	(OidIsValid((fsplan)->checkAsUser) ? (fsplan)->checkAsUser : GetUserId())
#else
#define ufdw_scan_user(fsplan, estate) \
	(OidIsValid(exec_rt_fetch((fsplan)->scan.scanrelid, (estate))->checkAsUser) ? \
	 exec_rt_fetch((fsplan)->scan.scanrelid, (estate))->checkAsUser : GetUserId())
#endif

/*
 * Restricting protocols: CURLOPT_PROTOCOLS_STR from libcurl 7.85, the
 * bitmask CURLOPT_PROTOCOLS before (deprecated since).
 */
#include <curl/curl.h>
#if LIBCURL_VERSION_NUM >= 0x075500
#define UFDW_CURLOPT_PROTOCOLS CURLOPT_PROTOCOLS_STR
#define UFDW_CURL_PROTOCOLS(allow_http) ((allow_http) ? "http,https" : "https")
#else
#define UFDW_CURLOPT_PROTOCOLS CURLOPT_PROTOCOLS
#define UFDW_CURL_PROTOCOLS(allow_http) \
	((long) ((allow_http) ? (CURLPROTO_HTTP | CURLPROTO_HTTPS) : CURLPROTO_HTTPS))
#endif

/* pg_b64_encode takes uint8 source bytes from PostgreSQL 18 on. */
#if PG_VERSION_NUM >= 180000
#define ufdw_b64_encode(src, len, dst, dstlen) \
	pg_b64_encode((const uint8 *) (src), (len), (dst), (dstlen))
#else
#define ufdw_b64_encode(src, len, dst, dstlen) \
	pg_b64_encode((const char *) (src), (len), (dst), (dstlen))
#endif

#endif							/* UFDW_COMPAT_H */

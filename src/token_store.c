/*-------------------------------------------------------------------------
 *
 * token_store.c
 *		Refresh tokens kept durably outside any transaction, the lock that
 *		serialises their renewal, and the single-use marks of
 *		authorization states.
 *
 * A provider that rotates refresh tokens (Microsoft Entra ID) answers a
 * renewal with a new one.  It must be kept at once and must survive a
 * rollback of the query that happened to renew it, and a server restart:
 * so it is not written to the user mapping (a catalog row, rolled back
 * with the query) but to a file of its own,
 *
 *		$PGDATA/unified_fdw/<database oid>_<user mapping oid>
 *
 * mode 0600, written to a temporary file, fsync'd and renamed into place
 * (durable_rename).  The file also holds the SHA-256 of the refresh_token
 * option it was derived from: once the mapping holds another token (a new
 * authorization, ALTER USER MAPPING), or the OID names another mapping,
 * the file is stale and ignored.
 *
 * Renewals of one mapping are serialised across backends by an advisory
 * lock on (database, mapping OID, 0x75666477 "ufdw"), held by the
 * transaction (released explicitly when the renewal is done, or by the
 * abort): a backend that waited reads the file again and uses the token
 * the other one stored.
 *
 * Authorization states (authorize.c) are made single-use by a mark file
 * unified_fdw/state_<sha256 of the state>, created exclusively: a failed
 * completion rolls its transaction back, but not the mark.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cryptohash.h"
#include "common/sha2.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/lock.h"

#include "unified_fdw.h"

#define STORE_DIR "unified_fdw"
#define STORE_MAGIC "unified_fdw refresh token 1"
#define STORE_MAX 16384
#define REFRESH_LOCK_KEY 0x75666477

StaticAssertDecl(UFDW_SHA256_LEN == PG_SHA256_DIGEST_LENGTH, "SHA-256 length");

/* The SHA-256 of s into digest (UFDW_SHA256_LEN bytes). */
void
ufdw_sha256(const char *s, uint8 *digest)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) s, strlen(s)) < 0 ||
		pg_cryptohash_final(ctx, digest, UFDW_SHA256_LEN) < 0)
	{
		pg_cryptohash_free(ctx);
		elog(ERROR, "could not compute a SHA-256 digest");
	}
	pg_cryptohash_free(ctx);
}

/* Hex SHA-256 of s, palloc'd. */
char *
ufdw_sha256_hex(const char *s)
{
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char	   *hex = palloc(PG_SHA256_DIGEST_LENGTH * 2 + 1);

	ufdw_sha256(s, digest);
	for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	return hex;
}

static void
refresh_locktag(LOCKTAG *tag, Oid umid)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, umid, REFRESH_LOCK_KEY, 2);
}

/* Waits (interruptibly) until no other backend renews umid's tokens. */
void
ufdw_refresh_lock(Oid umid)
{
	LOCKTAG		tag;

	refresh_locktag(&tag, umid);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

void
ufdw_refresh_unlock(Oid umid)
{
	LOCKTAG		tag;

	refresh_locktag(&tag, umid);
	(void) LockRelease(&tag, ExclusiveLock, false);
}

static char *
store_path(Oid umid)
{
	return psprintf(STORE_DIR "/%u_%u", MyDatabaseId, umid);
}

static void
make_store_dir(void)
{
	if (MakePGDirectory(STORE_DIR) == 0)
		fsync_fname(".", true);
	else if (errno != EEXIST)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create directory \"%s\": %m", STORE_DIR)));
}

/*
 * The refresh token stored for umid if it derives from mapping_token (the
 * mapping's refresh_token option), else NULL.  palloc'd.
 */
char *
ufdw_stored_refresh_token(Oid umid, const char *mapping_token)
{
	char	   *path = store_path(umid);
	char	   *buf = palloc0(STORE_MAX + 1);
	char	   *line2;
	char	   *line3;
	char	   *end;
	char	   *result = NULL;
	int			fd;
	int			n;

	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
	{
		if (errno == ENOENT)
			return NULL;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", path)));
	}
	n = read(fd, buf, STORE_MAX);
	CloseTransientFile(fd);
	if (n < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read file \"%s\": %m", path)));
	/* magic \n fingerprint \n token \n */
	line2 = strchr(buf, '\n');
	line3 = line2 ? strchr(line2 + 1, '\n') : NULL;
	end = line3 ? strchr(line3 + 1, '\n') : NULL;
	if (end && line2 - buf == strlen(STORE_MAGIC) &&
		strncmp(buf, STORE_MAGIC, line2 - buf) == 0)
	{
		*line3 = '\0';
		*end = '\0';
		if (strcmp(line2 + 1, ufdw_sha256_hex(mapping_token)) == 0)
			result = pstrdup(line3 + 1);
	}
	explicit_bzero(buf, STORE_MAX);
	return result;
}

/*
 * Stores token as umid's refresh token, derived from mapping_token: on
 * disk and fsync'd before this returns.
 */
void
ufdw_store_refresh_token(Oid umid, const char *mapping_token, const char *token)
{
	char	   *path = store_path(umid);
	char	   *tmp = psprintf("%s.tmp%d", path, MyProcPid);
	char	   *content = psprintf("%s\n%s\n%s\n", STORE_MAGIC,
								   ufdw_sha256_hex(mapping_token), token);
	size_t		len = strlen(content);
	int			fd;

	make_store_dir();
	fd = OpenTransientFilePerm(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY,
							   S_IRUSR | S_IWUSR);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", tmp)));
	errno = 0;
	if (write(fd, content, len) != len)
	{
		int			save = errno ? errno : ENOSPC;

		CloseTransientFile(fd);
		unlink(tmp);
		errno = save;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", tmp)));
	}
	explicit_bzero(content, len);
	if (CloseTransientFile(fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close file \"%s\": %m", tmp)));
	/* fsyncs the file, renames it, fsyncs the directory */
	(void) durable_rename(tmp, path, ERROR);
}

/* Removes umid's stored refresh token, if any (disconnect). */
void
ufdw_forget_refresh_token(Oid umid)
{
	char	   *path = store_path(umid);

	if (unlink(path) != 0 && errno != ENOENT)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not remove file \"%s\": %m", path)));
}

/*
 * Marks state used; false if it already was.  The mark outlives the
 * transaction.
 */
bool
ufdw_claim_state(const char *state)
{
	char	   *path = psprintf(STORE_DIR "/state_%s", ufdw_sha256_hex(state));
	int			fd;

	make_store_dir();
	fd = OpenTransientFilePerm(path, O_WRONLY | O_CREAT | O_EXCL | PG_BINARY,
							   S_IRUSR | S_IWUSR);
	if (fd < 0 && errno == EEXIST)
		return false;
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", path)));
	CloseTransientFile(fd);
	return true;
}

/* Removes the marks of states older than older_than_s seconds. */
void
ufdw_purge_states(int older_than_s)
{
	DIR		   *dir = AllocateDir(STORE_DIR);
	struct dirent *de;
	time_t		now = time(NULL);

	if (dir == NULL)
		return;
	while ((de = ReadDirExtended(dir, STORE_DIR, LOG)) != NULL)
	{
		char	   *path;
		struct stat st;

		if (strncmp(de->d_name, "state_", 6) != 0)
			continue;
		path = psprintf(STORE_DIR "/%s", de->d_name);
		if (stat(path, &st) == 0 && st.st_mtime + older_than_s < now)
			(void) unlink(path);
	}
	FreeDir(dir);
}

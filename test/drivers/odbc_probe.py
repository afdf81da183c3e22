"""Drives psqlODBC (Debian's odbc-postgresql, through unixODBC and pyodbc)
the way BI tools do, for test/drivers/002_odbc.pl.

    python3 odbc_probe.py MODE CONNECTION_STRING ARGS...

The modes and their tab-separated output lines are those of Probe.java
(pgjdbc): catalog SCHEMA TABLE (SQLTables, SQLColumns), prepared SQL
V1 V2... (one statement handle, SQLPrepare once, SQLExecute per value),
cursor SQL FETCHSIZE (fetchmany; the connection string sets
UseDeclareFetch and Fetch), cancel SQL DELAY_MS (SQLCancel from another
thread) and query SQL.  (pyodbc cannot prepare without executing: no
describe mode.)
"""
import sys
import threading
import time

import pyodbc


def clean(s):
    return "" if s is None else str(s).replace("\t", " ").replace("\r", " ").replace("\n", " ")


def out(*fields):
    print("\t".join(str(f) for f in fields), flush=True)


def catalog(conn, schema, table):
    cur = conn.cursor()
    for r in cur.tables(schema=schema).fetchall():
        out("table", r.table_name, r.table_type, clean(r.remarks))
    for r in cur.columns(schema=schema, table=table).fetchall():
        out("column", r.column_name, r.type_name, r.data_type, clean(r.remarks))


def prepared(conn, sql, values):
    cur = conn.cursor()
    # pyodbc prepares once and re-executes while the SQL text stays the same
    for i, v in enumerate(values, 1):
        cur.execute(sql, v)
        out("exec", i, len(cur.fetchall()))
    # psqlODBC's statements are protocol-level (named or unnamed), not SQL PREPAREs
    row = conn.cursor().execute(
        "SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0)"
        " FROM pg_prepared_statements WHERE NOT from_sql").fetchone()
    out("plans", row[0], row[1])


def cursor(conn, sql, fetch_size):
    cur = conn.cursor()
    cur.execute(sql)
    rows = 0
    while True:
        batch = cur.fetchmany(fetch_size)
        if not batch:
            break
        rows += len(batch)
    conn.commit()
    out("rows", rows)


def cancel(conn, sql, delay_ms):
    cur = conn.cursor()
    cancelled_at = [0.0]

    def later():
        time.sleep(delay_ms / 1000.0)
        cancelled_at[0] = time.monotonic()
        cur.cancel()

    t = threading.Thread(target=later)
    t.start()
    try:
        cur.execute(sql)
        cur.fetchall()
        out("completed")
    except pyodbc.Error as e:
        out("cancelled", e.args[0], int((time.monotonic() - cancelled_at[0]) * 1000))
    t.join()
    out("after", conn.cursor().execute("SELECT 1").fetchone()[0])


def query(conn, sql):
    cur = conn.cursor().execute(sql)
    rows = cur.fetchall()
    out("query", len(cur.description), len(rows))


def main():
    mode, connstr = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    conn = pyodbc.connect(connstr, autocommit=(mode != "cursor"))
    try:
        if mode == "catalog":
            catalog(conn, args[0], args[1])
        elif mode == "prepared":
            prepared(conn, args[0], args[1:])
        elif mode == "cursor":
            cursor(conn, args[0], int(args[1]))
        elif mode == "cancel":
            cancel(conn, args[0], int(args[1]))
        elif mode == "query":
            query(conn, args[0])
        else:
            raise SystemExit("unknown mode " + mode)
    finally:
        conn.close()


if __name__ == "__main__":
    main()

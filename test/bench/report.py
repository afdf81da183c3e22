#!/usr/bin/env python3
"""Report of test/bench/throughput.sh.

    report.py RESULTS.tsv COMMAND PAGE_SIZE [DOCS_DIR]

Reads the measurements (system, size, measure, value), prints Markdown
tables, and with DOCS_DIR replaces the part of DOCS_DIR/benchmarks.md
between the "results" markers and draws DOCS_DIR/benchmarks.png (gnuplot).
Python standard library only.
"""

import collections
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile

START = "<!-- results: written by test/bench/throughput.sh -->"
END = "<!-- end of results -->"
SYSTEM_NAMES = {"bc": "Business Central", "sap": "SAP S/4HANA", "netsuite": "NetSuite"}


def load(path):
    data = collections.defaultdict(dict)
    for line in open(path, encoding="utf-8"):
        system, size, measure, value = line.rstrip("\n").split("\t")
        try:
            data[(system, int(size))][measure] = float(value)
        except ValueError:
            data[(system, int(size))][measure] = None
    return data


def fmt(x, digits=2):
    if x is None:
        return "n/a"
    if x == int(x) and abs(x) >= 1 and digits != 3:
        return f"{int(x):,}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def rate(n, seconds):
    return f"{n / seconds:,.0f}" if seconds else "n/a"


def ratio(a, b):
    return f"{a / b:.2f}×" if a and b else "n/a"


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1))
        mem = f", {kb / 1048576:.0f} GB RAM"
    except (OSError, AttributeError):
        pass
    return f"{os.cpu_count()} × {cpu}{mem}, Linux {platform.release()}"


def tables(data, page_size):
    out = []
    systems = sorted({s for s, n in data if s != "all"})
    for system in systems:
        sizes = sorted(n for s, n in data if s == system)
        d = {n: data[(system, n)] for n in sizes}
        name = SYSTEM_NAMES.get(system, system)
        out.append(f"### {name}: full scan of `purchase_orders` (pages of {page_size})\n")
        out.append("Seconds (rows/s in parentheses); best of 3 runs, 1 run at 1M.\n")
        out.append("| records | unified_fdw `SELECT *` | fetch (gzip) | fetch (plain) | PG parse | "
                   "jansson tree | heap table scan | PL/Python peer | COPY curl\\|jq peer | "
                   "unified_fdw without `raw` | its fetch (gzip) + PG parse |")
        out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n in sizes:
            m = d[n]
            cells = [f"{fmt(m.get(k), 3)} ({rate(n, m.get(k))})" for k in
                     ("unified", "fetch_gzip", "fetch_plain", "parse_pg", "parse_jansson",
                      "heap", "plpython", "copy_jq", "typed_unified")]
            tl = (m.get("typed_fetch_gzip") or 0) + (m.get("typed_parse_pg") or 0)
            cells.append(f"{fmt(tl, 3)} ({rate(n, tl)})")
            out.append(f"| {n:,} | " + " | ".join(cells) + " |")
        out.append("")
        out.append("Ratios (time of unified_fdw against the limit; times of the peers "
                   "against unified_fdw):\n")
        out.append("| records | MB of pages | sandbox raw serving (rows/s) | "
                   "unified / (fetch + parse) | unified / max(fetch, parse) | "
                   "unified / heap scan | PL/Python / unified | COPY\\|jq / unified | "
                   "without `raw`: unified / (fetch + parse) |")
        out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n in sizes:
            m = d[n]
            u, f, p = m.get("unified"), m.get("fetch_gzip"), m.get("parse_pg")
            out.append(f"| {n:,} | {fmt(m.get('page_bytes', 0) / 1e6, 1)} | "
                       f"{rate(n, m.get('fetch_plain'))} | {ratio(u, f + p)} | "
                       f"{ratio(u, max(f, p))} | {ratio(u, m.get('heap'))} | "
                       f"{ratio(m.get('plpython'), u)} | {ratio(m.get('copy_jq'), u)} | "
                       f"{ratio(m.get('typed_unified'), m.get('typed_fetch_gzip', 0) + m.get('typed_parse_pg', 0))} |")
        out.append("")
        out.append("Backend memory during the unified_fdw scan (VmHWM of the session):\n")
        out.append("| records | peak kB | growth during the scan kB | requests | bytes received |")
        out.append("|---:|---:|---:|---:|---:|")
        for n in sizes:
            m = d[n]
            out.append(f"| {n:,} | {fmt(m.get('peak_kb'))} | {fmt(m.get('growth_kb'))} | "
                       f"{fmt(m.get('unified_requests'))} | {fmt(m.get('unified_bytes'))} |")
        out.append("")
        lat = [n for n in sizes if "one_row_ms" in d[n]]
        if lat:
            n = lat[0]
            m = d[n]
            out.append(f"### {name}: selective queries on {n:,} records\n")
            out.append("`SELECT number, vendor_name, total_amount FROM purchase_orders …`; "
                       "unified_fdw as EXPLAIN ANALYZE reports it, next to the minimum: the "
                       "ideal native request (filter and fields pushed), paged alike.\n")
            out.append("| query | rows | requests (min) | records (min) | bytes (min) |")
            out.append("|---|---:|---:|---:|---:|")
            for case, text in (("by_number", "`WHERE number = '…'`"),
                               ("status_open", "`WHERE status = 'open'`"),
                               ("date_range", "`WHERE order_date` in June 2024"),
                               ("limit10", "`LIMIT 10`")):
                g = lambda k: fmt(m.get(f"sel_{case}_{k}"))  # noqa: E731
                out.append(f"| {text} | {g('rows')} | {g('requests')} ({g('min_requests')}) | "
                           f"{g('records')} ({g('min_records')}) | {g('bytes')} ({g('min_bytes')}) |")
            out.append("")
            over = m["one_row_ms"] - m["one_row_upstream_ms"]
            out.append("| latency | ms |")
            out.append("|---|---:|")
            out.append(f"| time to first row of `SELECT * … LIMIT 10` (Foreign Scan startup) | "
                       f"{fmt(m.get('limit10_first_row_ms'), 2)} |")
            out.append(f"| the upstream's own time for that first page (curl, gzip) | "
                       f"{fmt(m.get('limit10_upstream_ms'), 2)} |")
            out.append(f"| one-row query `SELECT * … LIMIT 1`, page size 1 (pgbench, mean) | "
                       f"{fmt(m['one_row_ms'], 3)} |")
            out.append(f"| the upstream's own latency for that request (curl, mean) | "
                       f"{fmt(m['one_row_upstream_ms'], 3)} |")
            out.append(f"| `SELECT 1` (pgbench, mean) | {fmt(m.get('select1_ms'), 3)} |")
            out.append(f"| **fixed overhead** of a one-row query beyond the upstream "
                       f"({fmt(m.get('one_row_requests'), 0)} upstream requests per query) | "
                       f"**{fmt(over, 3)}** |")
            out.append("")
        out.append(targets(d, sizes, lat[0] if lat else None))
    return "\n".join(out)


def targets(d, sizes, lat_n):
    rows = ["| target | measured |", "|---|---|"]
    big, small = max(sizes), min(sizes)
    mid = 100000 if 100000 in d else big
    m = d[mid]
    rows.append(f"| ≥ 4× faster than the PL/Python peer ({mid:,}) | "
                f"{ratio(m.get('plpython'), m.get('unified'))} |")
    rows.append(f"| far faster than the COPY pipeline ({mid:,}) | "
                f"{ratio(m.get('copy_jq'), m.get('unified'))} |")
    rows.append(f"| full scan ≤ 1.5× fetch + parse ({big:,}) | "
                f"{ratio(d[big]['unified'], d[big]['fetch_gzip'] + d[big]['parse_pg'])} |")
    rows.append(f"| 1M-row peak memory ≤ 1.2× the 10k peak ({big:,} vs {small:,}) | "
                f"{ratio(d[big].get('peak_kb'), d[small].get('peak_kb'))} |")
    if lat_n is not None:
        m = d[lat_n]
        rows.append(f"| `LIMIT 10`: one request for 10 records | "
                    f"{fmt(m.get('sel_limit10_requests'))} request(s), "
                    f"{fmt(m.get('sel_limit10_records'))} records |")
        rows.append(f"| one-row overhead < 2 ms | "
                    f"{fmt(m['one_row_ms'] - m['one_row_upstream_ms'], 3)} ms |")
    return "Targets (reported, not asserted):\n\n" + "\n".join(rows) + "\n"


def plot(data, png):
    """rows/s against result size, one line per method, log-log."""
    series = [("unified", "unified\\_fdw SELECT *"), ("typed_unified", "unified\\_fdw without raw"), ("fetch_gzip", "fetch (curl, gzip)"),
              ("limit", "fetch + PG parse (SELECT * pages)"), ("heap", "local heap scan"),
              ("plpython", "PL/Python peer"), ("copy_jq", "COPY curl|jq peer")]
    with tempfile.TemporaryDirectory() as tmp:
        plots = []
        systems = sorted({s for s, n in data if s != "all"})
        for system in systems:
            for key, title in series:
                path = os.path.join(tmp, f"{system}-{key}.dat")
                with open(path, "w") as f:
                    for n in sorted(n for s, n in data if s == system):
                        m = data[(system, n)]
                        t = (m["fetch_gzip"] + m["parse_pg"]) if key == "limit" else m.get(key)
                        if t:
                            f.write(f"{n} {n / t}\n")
                name = SYSTEM_NAMES.get(system, system) + ": " if len(systems) > 1 else ""
                plots.append(f"'{path}' using 1:2 with linespoints lw 2 pt 7 "
                             f"title '{name}{title}'")
        script = "\n".join([
            "set terminal pngcairo size 900,760 font 'sans,11'" if _has_cairo()
            else "set terminal png size 900,760",
            f"set output '{png}'",
            "set title 'Full scan of purchase\\_orders"
            + (f" ({SYSTEM_NAMES.get(systems[0], systems[0])})" if len(systems) == 1 else "")
            + ": rows/s against result size (higher is better)'",
            "set logscale xy", "set grid",
            "set xlabel 'records in the result'", "set ylabel 'rows per second'",
            "set format y '%.0s%c'", "set format x '%.0s%c'",
            "set key below maxrows 4",
            "plot " + ", \\\n     ".join(plots), ""])
        subprocess.run(["gnuplot"], input=script, text=True, check=True)


def _has_cairo():
    r = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True)
    return "pngcairo" in (r.stdout + r.stderr)


def main():
    results, command, page_size = sys.argv[1:4]
    docs = sys.argv[4] if len(sys.argv) > 4 else None
    data = load(results)
    total = data.get(("all", 0), {}).get("total_seconds")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = (f"Measured {when} on {machine()}; the whole command took "
            f"{fmt(total / 60 if total else None, 1)} min.\n\nCommand: `{command}`\n")
    body = head + "\n" + tables(data, page_size)
    print(body)
    if docs:
        md = os.path.join(docs, "benchmarks.md")
        text = open(md, encoding="utf-8").read()
        a, b = text.index(START) + len(START), text.index(END)
        text = text[:a] + "\n\n" + body + "\n![rows/s against result size](benchmarks.png)\n\n" \
            + text[b:]
        with open(md, "w", encoding="utf-8") as f:
            f.write(text)
        plot(data, os.path.join(docs, "benchmarks.png"))
        # the raw measurements, to re-plot or compare runs
        with open(os.path.join(docs, "benchmarks.tsv"), "w", encoding="utf-8") as f:
            f.write(open(results, encoding="utf-8").read())
        print(f"wrote {md} and {os.path.join(docs, 'benchmarks.png')}")


if __name__ == "__main__":
    main()

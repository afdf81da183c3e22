#!/usr/bin/env python3
"""Reads the memcheck logs of the valgrind stage (test/valgrind) and fails
on any error that test/valgrind.supp does not suppress.

    python3 test/valgrind_check.py LOGDIR SUPPRESSIONS LIBRARY
    python3 test/valgrind_check.py --self-test SUPPRESSIONS LIBRARY

valgrind itself runs without our suppression file (with --gen-suppressions=all
and --show-error-list=yes), so every error reaches this script, which applies
test/valgrind.supp itself.  That lets it refuse what valgrind cannot: a
suppression never applies when one of the frames it covers (the top of the
stack down to the last frame the rule matched) belongs to unified_fdw, nor
when the allocation or origin stack of the error does within its first frames
up to malloc's caller.  Frames of LIBRARY are recognised by the
object name or by the functions "nm" lists in it.

Prints each remaining error (flagging those in our code), the suppressed
errors per rule, and the figures: processes traced, errors, errors in our
code, suppressed.  Exit status 1 when an error remains, a process crashed
or a log is incomplete; 2 on bad input.
"""

import fnmatch
import glob
import os
import re
import subprocess
import sys
from collections import defaultdict

PREFIX = re.compile(r"^==(\d+)== ?(.*)$")
FRAME = re.compile(r"^\s*(?:at|by) 0x[0-9A-Fa-f]+: (.*?) \((.*)\)$")
CONTEXT = re.compile(r"^(\d+) errors in context \d+ of \d+:$")
SUMMARY = re.compile(r"^ERROR SUMMARY: (\d+) errors from (\d+) contexts "
                     r"\(suppressed: (\d+) from (\d+)\)$")


def our_functions(library):
    """Function names defined in LIBRARY (its static ones too)."""
    out = subprocess.run(["nm", "--defined-only", library], check=True,
                         capture_output=True, text=True).stdout
    skip = {"_init", "_fini", "frame_dummy", "register_tm_clones",
            "deregister_tm_clones", "__do_global_dtors_aux"}
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "Tt" and parts[2] not in skip:
            names.add(parts[2])
    return names


def read_rules(path):
    """The entries of a valgrind suppression file: name, kind, the extra
    line of a Param entry, and the frame patterns."""
    rules = []
    lines = [l.strip() for l in open(path)]
    i = 0
    while i < len(lines):
        if lines[i] != "{":
            if lines[i] and not lines[i].startswith("#"):
                sys.exit("%s:%d: expected {" % (path, i + 1))
            i += 1
            continue
        j = lines.index("}", i)
        body = [l for l in lines[i + 1:j] if l and not l.startswith("#")]
        name, kind, rest = body[0], body[1], body[2:]
        extra = None
        if kind == "Memcheck:Param":
            extra, rest = rest[0], rest[1:]
        for pat in rest:
            if pat != "..." and not pat.startswith(("fun:", "obj:")):
                sys.exit("%s: rule %s: bad frame line %r" % (path, name, pat))
        rules.append({"name": name, "kind": kind, "extra": extra,
                      "frames": rest, "used": 0, "contexts": 0})
        i = j + 1
    return rules


def match_frames(pats, frames):
    """Length of the stack prefix that PATS covers, or None."""
    def go(p, f):
        if p == len(pats):
            return f
        if pats[p] == "...":
            for k in range(f, len(frames) + 1):
                r = go(p + 1, k)
                if r is not None:
                    return r
            return None
        if f < len(frames) and pats[p][:4] == frames[f][:4] and \
                fnmatch.fnmatchcase(frames[f][4:], pats[p][4:]):
            return go(p + 1, f + 1)
        return None
    return go(0, 0)


class Error:
    def __init__(self, count, text, supp):
        self.count = count
        self.text = text          # the error as valgrind printed it
        self.supp = supp          # its generated suppression lines
        self.pids = set()
        # stacks: the error's own, then the allocation/origin ones
        self.stacks = [[]]
        for line in text[1:]:
            m = FRAME.match(line)
            if m:
                self.stacks[-1].append((m.group(1), m.group(2)))
            elif self.stacks[-1]:
                self.stacks.append([])
        self.kind = supp[0] if supp else None
        self.extra = supp[1] if supp and supp[0] == "Memcheck:Param" else None
        self.frames = [l for l in supp if l.startswith(("fun:", "obj:"))]


def ours(frame, names):
    fun, where = frame
    return "unified_fdw.so" in where or fun in names


def parse_log(path, errors, problems):
    """Adds the contexts listed at the end of one log to ERRORS; returns
    (pid, errors, suppressed by valgrind's defaults, finished)."""
    pid, total, vsupp, finished = None, 0, 0, False
    lines = []
    for raw in open(path, errors="replace"):
        m = PREFIX.match(raw.rstrip("\n"))
        if m:
            pid = m.group(1)
            lines.append(m.group(2))
        else:
            lines.append(raw.rstrip("\n"))   # suppression blocks
    i = 0
    while i < len(lines):
        line = lines[i]
        m = SUMMARY.match(line)
        if m:
            finished = True
            total, vsupp = int(m.group(1)), int(m.group(3))
        if line.startswith("Process terminating with default action"):
            problems.append("%s: %s" % (path, line))
        m = CONTEXT.match(line)
        if m and finished:
            j = i + 1
            while j < len(lines) and lines[j] != "":
                j += 1
            text = lines[i + 1:j]
            supp = []
            if j + 1 < len(lines) and lines[j + 1] == "{":
                k = lines.index("}", j + 1)
                supp = [l.strip() for l in lines[j + 3:k]]
                j = k
            key = "\n".join(text)
            err = errors.get(key)
            if err is None:
                err = errors[key] = Error(0, text, supp)
            err.count += int(m.group(1))
            err.pids.add(pid)
            i = j
        i += 1
    if not finished:
        problems.append("%s: no ERROR SUMMARY (the process did not exit)" % path)
    return total, vsupp


def classify(err, rules, names):
    """The rule that suppresses ERR, or None; sets err.ours and err.refused."""
    own = err.stacks[0]
    err.ours = any(ours(f, names) for s in err.stacks for f in s)
    err.refused = None
    if not err.frames:
        return None
    for rule in rules:
        if not fnmatch.fnmatchcase(err.kind, rule["kind"]):
            continue
        if rule["extra"] is not None and rule["extra"] != err.extra:
            continue
        n = match_frames(rule["frames"], err.frames)
        if n is None:
            continue
        # the frames the rule covers, in the printed stack (which has the
        # same frames as the generated suppression, one line each)
        covered = own[:n]
        aux = [f for s in err.stacks[1:] for f in alloc_prefix(s)]
        if any(ours(f, names) for f in covered + aux):
            err.refused = rule["name"]
            return None
        return rule
    return None


def alloc_prefix(stack):
    """The frames of an allocation/origin stack up to the first caller of
    the allocator that is not PostgreSQL's memory-context code."""
    out = []
    for fun, where in stack:
        out.append((fun, where))
        if fun not in ("malloc", "calloc", "realloc", "AllocSetAlloc",
                       "AllocSetRealloc", "palloc", "palloc0", "repalloc",
                       "MemoryContextAlloc", "MemoryContextAllocZero",
                       "MemoryContextAllocExtended", "???") \
                and not fun.startswith("_"):
            break
    return out


SELF_TEST_LOG = """\
==7== Command: postgres
==7== ERROR SUMMARY: 2 errors from 1 contexts (suppressed: 0 from 0)
==7== 
==7== 2 errors in context 1 of 1:
==7== Syscall param pwrite64(buf) points to uninitialised byte(s)
==7==    at 0x1: pwrite (pwrite64.c:25)
==7==    by 0x2: ??? (in /usr/lib/postgresql/15/bin/postgres)
==7==    by 0x3: %(middle)s (in /usr/lib/postgresql/15/bin/postgres)
==7==    by 0x4: XLogFlush (in /usr/lib/postgresql/15/bin/postgres)
==7==    by 0x5: main (in /usr/lib/postgresql/15/bin/postgres)
==7==  Uninitialised value was created by a stack allocation
==7==    at 0x6: %(origin)s (in /usr/lib/postgresql/15/bin/postgres)
==7== 
{
   <insert_a_suppression_name_here>
   Memcheck:Param
   pwrite64(buf)
   fun:pwrite
   obj:/usr/lib/postgresql/15/bin/postgres
   fun:%(middle)s
   fun:XLogFlush
   fun:main
}
%(summary)s"""


def self_test(supp_path, library):
    """Runs the checker on made-up logs: a WAL padding error that the rules
    suppress, the same with one of our functions inside the span of the
    rule or as the origin of the bytes (both must fail), and a log without
    a summary (must fail)."""
    import tempfile
    ours_fn = sorted(our_functions(library))[0]
    summary = "==7== ERROR SUMMARY: 2 errors from 1 contexts (suppressed: 0 from 0)"
    cases = [("PostgreSQL only", "XLogWrite", "heap_multi_insert", summary, 0),
             ("ours under the rule", ours_fn, "heap_multi_insert", summary, 1),
             ("ours as origin", "XLogWrite", ours_fn, summary, 1),
             ("no summary", "XLogWrite", "heap_multi_insert", "", 1)]
    failed = 0
    for name, middle, origin, summ, want in cases:
        with tempfile.TemporaryDirectory() as d:
            text = SELF_TEST_LOG % {"middle": middle, "origin": origin,
                                    "summary": summ}
            if not summ:
                text = text.replace(summary, "==7== (none)")
            with open(os.path.join(d, "valgrind.7.log"), "w") as f:
                f.write(text)
            got = subprocess.run([sys.executable, __file__, d, supp_path,
                                  library], capture_output=True, text=True)
            ok = got.returncode == want and \
                (want == 0 or "ERROR IN unified_fdw" in got.stdout or
                 "no ERROR SUMMARY" in got.stdout)
            print("valgrind_check self-test: %s: %s" % (
                name, "ok" if ok else "FAILED (exit %d)" % got.returncode))
            if not ok:
                print(got.stdout)
                failed += 1
    return 1 if failed else 0


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--self-test":
        return self_test(sys.argv[2], sys.argv[3])
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    logdir, supp_path, library = sys.argv[1:]
    names = our_functions(library)
    rules = read_rules(supp_path)
    errors, problems = {}, []
    logs = sorted(glob.glob(os.path.join(logdir, "valgrind.*.log")))
    if not logs:
        print("valgrind_check: no logs in %s" % logdir)
        return 2
    total = vsupp = 0
    for path in logs:
        t, v = parse_log(path, errors, problems)
        total += t
        vsupp += v

    remaining, suppressed = [], defaultdict(list)
    for err in errors.values():
        rule = classify(err, rules, names)
        if rule is None:
            remaining.append(err)
        else:
            rule["used"] += err.count
            rule["contexts"] += 1
            suppressed[rule["name"]].append(err)

    for err in sorted(remaining, key=lambda e: -e.count):
        flag = "ERROR IN unified_fdw" if err.ours else "error"
        print("==== %s: %d occurrence(s) in %d process(es)%s" % (
            flag, err.count, len(err.pids),
            " (rule %s refused: unified_fdw is in a frame it covers or in the "
            "allocation/origin)" % err.refused
            if err.refused else ""))
        print("\n".join(err.text))
        print()
    for p in problems:
        print("==== " + p)

    print("suppressed by test/valgrind.supp:")
    for rule in rules:
        print("  %-40s %5d error(s), %3d context(s)" % (
            rule["name"], rule["used"], rule["contexts"]))
    distant = [e for es in suppressed.values() for e in es if e.ours]
    for err in distant:
        print("  note: suppressed although unified_fdw is a distant caller: "
              "%s" % " <- ".join(f[0] for f in err.stacks[0][:14]))
    in_ours = sum(e.count for e in remaining if e.ours)
    left = sum(e.count for e in remaining)
    print("valgrind: %d processes traced, %d errors (%d contexts), "
          "%d in unified_fdw, %d suppressed by rules, %d by valgrind's "
          "defaults, %d unsuppressed" % (
              len(logs), total, len(errors), in_ours,
              sum(r["used"] for r in rules), vsupp, left))
    return 1 if remaining or problems else 0


if __name__ == "__main__":
    sys.exit(main())

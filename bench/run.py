#!/usr/bin/python3
"""bench/run.py -- one runner for `make bench` (issue 10).

    /usr/bin/python3 bench/run.py [--runs 3] [--quick]
        [--cases email,sms,fax,intake,expansion,render,soak] [--no-aof]
        [--intake-n N] [--expansion-n N] [--soak-s S] [--soak-runs R]

Runs each selected case --runs times (each run with a fresh redis-server
without persistence; email and sms again in a second pass with AOF
everysec), prints one table (case, figure, unit, median, min, max, target,
met?) with gatewayd CPU s per 1,000 messages and peak RSS, and writes
bench/results/<UTC timestamp>-<git short sha>.json with every run's
figures and the machine. The cases are in bench/cases.py. Every wait is
bounded; everything started is stopped (also on Ctrl-C)."""

import argparse
import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cases  # noqa: E402

ALL = ["email", "sms", "fax", "intake", "expansion", "render", "soak"]


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "model": model, "mem_mb": mem,
            "kernel": platform.release(),
            "python": sys.version.split()[0]}


def git_sha():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                              cwd=cases.ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or "nogit"
    except Exception:
        return "nogit"


def git_dirty():
    try:
        out = subprocess.run(["git", "status", "--porcelain", "-uno"],
                             cwd=cases.ROOT, capture_output=True, text=True,
                             timeout=10).stdout
        return bool(out.strip())
    except Exception:
        return None


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float) and abs(v) < 100:
        return "%.3g" % v if abs(v) < 1 else "%.2f" % v
    return "{:,.0f}".format(v)


def summarize(results):
    """results: [(case label, [run dict, ...])] -> table rows."""
    rows = []
    for label, runs in results:
        ok = [r for r in runs if not r.get("error")]
        errs = [r["error"] for r in runs if r.get("error")]
        if not ok:
            rows.append({"case": label, "figure": "ERROR", "unit": "",
                         "median": None, "min": None, "max": None,
                         "target": "", "met": "no", "cpu": None,
                         "rss": None, "note": "; ".join(errs)[:200]})
            continue
        figs = ok[0]["figures"]
        for name, meta in figs.items():
            vals = [r["figures"][name]["value"] for r in ok
                    if r["figures"].get(name, {}).get("value") is not None]
            if not vals:
                continue
            med = statistics.median(vals)
            tgt = meta.get("target")
            met = ""
            if tgt is not None:
                op, t = tgt
                good = med >= t if op == ">=" else med <= t
                met = "yes" if good else "NO"
            cpu = [r.get("cpu_per_1000") for r in ok
                   if r.get("cpu_per_1000") is not None]
            rss = [r.get("peak_rss_mb") for r in ok
                   if r.get("peak_rss_mb") is not None]
            rows.append({
                "case": label, "figure": name, "unit": meta["unit"],
                "median": med, "min": min(vals), "max": max(vals),
                "target": "%s %s" % (tgt[0], fmt(float(tgt[1])))
                if tgt else "", "met": met,
                "cpu": statistics.median(cpu) if cpu else None,
                "rss": max(rss) if rss else None,
                "note": ("%d of %d runs failed: %s" % (
                    len(errs), len(runs), errs[0][:120]) if errs else "")})
    return rows


def print_table(rows):
    hdr = ["case", "figure", "unit", "median", "min", "max", "target",
           "met?", "gw CPU s/1000", "peak RSS MB"]
    body = [[r["case"], r["figure"], r["unit"], fmt(r["median"]),
             fmt(r["min"]), fmt(r["max"]), r["target"], r["met"],
             "-" if r["cpu"] is None else "%.3f" % r["cpu"],
             "-" if r["rss"] is None else "%d" % r["rss"]] for r in rows]
    w = [max(len(str(x)) for x in col) for col in zip(hdr, *body)]
    line = "  ".join("%-*s" % (w[i], h) for i, h in enumerate(hdr))
    print(line)
    print("-" * len(line))
    for b in body:
        print("  ".join("%-*s" % (w[i], x) for i, x in enumerate(b)))
    for r in rows:
        if r["note"]:
            print("note: %s/%s: %s" % (r["case"], r["figure"], r["note"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true",
                    help="small counts: a smoke test (< 2 minutes)")
    ap.add_argument("--cases", default=",".join(ALL))
    ap.add_argument("--no-aof", action="store_true",
                    help="skip the AOF everysec pass of email and sms")
    ap.add_argument("--intake-n", type=int, default=None)
    ap.add_argument("--expansion-n", type=int, default=None)
    ap.add_argument("--soak-s", type=int, default=None,
                    help="soak duration in seconds (default 600)")
    ap.add_argument("--soak-runs", type=int, default=None,
                    help="runs of the soak (default --runs)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args()
    sel = [c.strip() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in sel if c not in ALL]
    if bad:
        ap.error("unknown case(s) %s; known: %s" % (bad, ",".join(ALL)))
    if args.quick and "--runs" not in " ".join(sys.argv):
        args.runs = 1
    counts = dict(cases.QUICK if args.quick else cases.FULL)
    if args.intake_n:
        counts["intake"] = args.intake_n
    if args.expansion_n:
        counts["expansion"] = args.expansion_n
    if args.soak_s:
        counts["soak"] = args.soak_s

    # SIGTERM behaves like Ctrl-C: unwind, stop what was started
    signal.signal(signal.SIGTERM, lambda s, f: (_ for _ in ()).throw(
        KeyboardInterrupt()))

    plan = []
    for c in sel:
        plan.append((c, False))
        if c in ("email", "sms") and not args.no_aof:
            plan.append((c, True))

    started = datetime.datetime.now(datetime.timezone.utc)
    sha = git_sha()
    results = []
    interrupted = False
    try:
        for case, aof in plan:
            label = case + (" +aof" if aof else "")
            runs = []
            results.append((label, runs))
            nruns = args.runs
            if case == "soak" and args.soak_runs:
                nruns = args.soak_runs
            for i in range(nruns):
                print("== %s run %d/%d (n=%s)" % (label, i + 1, nruns,
                                                  counts.get(case, "-")),
                      flush=True)
                t0 = time.monotonic()
                try:
                    res = cases.run_case(case, counts, aof)
                except KeyboardInterrupt:
                    raise
                except BaseException as e:  # noqa: B902 (SystemExit too)
                    res = {"error": "%s: %s" % (type(e).__name__, e),
                           "figures": {}}
                res["wall_s"] = round(time.monotonic() - t0, 2)
                runs.append(res)
                if res.get("error"):
                    print("   FAILED: %s" % res["error"], flush=True)
                else:
                    print("   " + ", ".join(
                        "%s %s %s" % (k, fmt(v["value"]), v["unit"])
                        for k, v in res["figures"].items()) +
                        ("; gw CPU %.3f s/1000, peak RSS %s MB" % (
                            res["cpu_per_1000"], res.get("peak_rss_mb"))
                         if res.get("cpu_per_1000") is not None else "") +
                        ("; redis CPU %.3f s/1000" % res["redis_cpu_per_1000"]
                         if res.get("redis_cpu_per_1000") is not None
                         else ""), flush=True)
                    for k, v in (res.get("redis_commands") or {}).items():
                        print("     redis %-10s %7.1f us/call %6.2f us/msg"
                              % (k, v["usec_per_call"], v["usec_per_job"]))
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: everything started has been stopped",
              flush=True)
    finally:
        cases.stop_all()

    rows = summarize(results)
    print()
    print("bench at %s (%s%s), %d run(s) per case%s"
          % (sha, "dirty tree, " if git_dirty() else "",
             "quick" if args.quick else "full", args.runs,
             ", INTERRUPTED" if interrupted else ""))
    print_table(rows)

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "%s-%s.json" % (
        started.strftime("%Y%m%dT%H%M%SZ"), sha))
    doc = {"started": started.isoformat(), "git": sha,
           "dirty": git_dirty(), "quick": args.quick, "runs": args.runs,
           "counts": counts, "interrupted": interrupted,
           "machine": machine(),
           "cases": {label: runs for label, runs in results},
           "summary": [{k: v for k, v in r.items()} for r in rows]}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, default=str)
    print("results: %s" % os.path.relpath(path, cases.ROOT))
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())

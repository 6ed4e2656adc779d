"""bench/cases.py -- the cases of bench/run.py. Each run_* starts its own
peers (fresh redis-server, no persistence unless aof), runs one bounded
load and returns {"figures": {name: {"value", "unit", "target"}},
"cpu_per_1000", "peak_rss_mb", ...}. Existing code is reused: the email
case imports bench/bench_smtp.py, the sms case runs
tests/integration/smpp_peers.py's bench mode, the others use
tests/integration/harness.py (RedisServer, Gateway, xadd_jobs) and
test_fax.py (fax_sets, fax_job) with tests/fakes/fake_fax.py."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
INTEG = os.path.join(ROOT, "tests", "integration")
FAKES = os.path.join(ROOT, "tests", "fakes")
PYTHON = "/usr/bin/python3"
GATEWAYD = os.path.join(ROOT, "bin", "gatewayd")
os.environ.setdefault("GATEWAYD", GATEWAYD)
sys.path.insert(0, INTEG)
sys.path.insert(0, HERE)

import harness  # noqa: E402
from harness import Gateway, RedisServer, xadd_jobs  # noqa: E402

# counts; soak: seconds (at 5,000 msg/s)
FULL = {"email": 100000, "sms": 200000, "fax": 2000, "intake": 1000000,
        "expansion": 1000000, "render": None, "soak": 600}
QUICK = {"email": 5000, "sms": 10000, "fax": 100, "intake": 20000,
         "expansion": 50000, "render": None, "soak": 20}

# ---- everything started, to stop it on any exit ----

_live = []


def _track(obj):
    _live.append(obj)
    return obj


def _stop_one(o):
    try:
        if isinstance(o, subprocess.Popen):
            if o.poll() is None:
                try:   # own session: the whole group, by its id
                    os.killpg(o.pid, signal.SIGTERM)
                except (OSError, PermissionError):
                    o.terminate()
                try:
                    o.wait(15)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(o.pid, signal.SIGKILL)
                    except OSError:
                        o.kill()
                    o.wait(5)
        elif isinstance(o, Gateway):
            if o.alive():
                o.stop(timeout=30)
        elif isinstance(o, RedisServer):
            if o.proc and o.proc.poll() is None:
                o.proc.terminate()   # no persistence to flush
                try:
                    o.proc.wait(10)
                except subprocess.TimeoutExpired:
                    o.proc.kill()
                    o.proc.wait()
                o.proc = None
        elif isinstance(o, str):
            shutil.rmtree(o, ignore_errors=True)
    except Exception as e:
        print("bench: stopping %r: %s" % (o, e), file=sys.stderr)


def stop_all():
    while _live:
        _stop_one(_live.pop())


class _Scope:
    """Stops what was tracked inside it, newest first, on leaving."""

    def __enter__(self):
        self.mark = len(_live)
        return self

    def __exit__(self, *a):
        while len(_live) > self.mark:
            _stop_one(_live.pop())


# ---- /proc ----

def cpu_s(pid):
    return harness.proc_cpu_seconds(pid)


def status_kb(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler(threading.Thread):
    """VmRSS of pid every interval seconds; max_kb is the peak seen."""

    def __init__(self, pid, interval=0.1):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.max_kb = 0
        self.samples = 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            kb = status_kb(self.pid, "VmRSS")
            if kb:
                self.samples += 1
                self.max_kb = max(self.max_kb, kb)
            self.halt.wait(self.interval)

    def stop(self):
        self.halt.set()
        self.join(2)
        return self.max_kb


def redis_cpu(r):
    """redis-server's own CPU seconds (user + sys) from INFO cpu."""
    c = r.info("cpu")
    return c["used_cpu_user"] + c["used_cpu_sys"]


def redis_profile(r, before=None):
    """INFO commandstats as {command: (calls, usec)}; with before, the
    difference, heaviest first (where Redis spends its time per case)."""
    now = {k[len("cmdstat_"):]: (v["calls"], v["usec"])
           for k, v in r.info("commandstats").items()}
    if before is None:
        return now
    d = {k: (c - before.get(k, (0, 0))[0], u - before.get(k, (0, 0))[1])
         for k, (c, u) in now.items()}
    return dict(sorted(((k, v) for k, v in d.items() if v[0]),
                       key=lambda kv: -kv[1][1]))


def wait_for(pred, timeout, what, interval=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError("timed out after %ss waiting for %s" % (timeout, what))


def workdir(tmpfs=False):
    d = tempfile.mkdtemp(prefix="gw-bench-",
                         dir="/dev/shm" if tmpfs and
                         os.path.isdir("/dev/shm") else None)
    return _track(d)


def redis_server(work, aof=False):
    red = RedisServer(work, aof=aof)
    _track(red)
    return red.start()


def gateway(work, red, sets=(), start=True):
    gw = Gateway(work, red.url, sets=list(sets) + [
        "gateway.log_level=\"warn\""])
    _track(gw)
    if start:
        gw.start()
    return gw


def msg_counts(gw, channel):
    """gw_messages_total by state for a channel (None if unreachable)."""
    try:
        m = gw.metrics().get("gw_messages_total", {})
    except Exception:
        return None
    out = {}
    for lab, v in m.items():
        if 'channel="%s"' % channel in lab:
            st = re.search(r'state="([^"]+)"', lab)
            if st:
                out[st.group(1)] = int(v)
    return out


def done_count(c):
    """Messages at a final state (outbox/provider accepted or beyond)."""
    if not c:
        return 0
    return max(c.get("accepted", 0), c.get("delivered", 0)) + \
        c.get("failed", 0)


def fig(value, unit, target=None):
    return {"value": value, "unit": unit, "target": target}


# ---- email: bench/bench_smtp.py's one_run ----

class _PopenShim:
    """bench_smtp's subprocess module, with redis-server switched to AOF
    everysec when asked and every child tracked for the cleanup."""

    def __init__(self, aof):
        self.aof = aof

    def __getattr__(self, name):
        return getattr(subprocess, name)

    def Popen(self, args, **kw):
        args = list(args)
        if self.aof and args and args[0] == "redis-server":
            i = args.index("--appendonly")
            args[i + 1] = "yes"
            args += ["--appendfsync", "everysec"]
        return _track(subprocess.Popen(args, **kw))


def run_email(n, aof):
    import bench_smtp
    bench_smtp.N = n
    bench_smtp.CONNS = 16
    bench_smtp.subprocess = _PopenShim(aof)
    with _Scope():
        work = workdir()
        rate, cpu1000, hwm = bench_smtp.one_run(work)
    last = bench_smtp.LAST
    return {"figures": {"throughput": fig(rate, "msg/s", (">=", 12000))},
            "n": n, "cpu_per_1000": cpu1000, "peak_rss_mb": hwm,
            "redis_cpu_per_1000": round(last["redis_cpu_s"] * 1000 / n, 4),
            "smtp_sink_cpu_per_1000": round(last["sink_cpu_s"] * 1000 / n,
                                            4)}


# ---- sms: tests/integration/smpp_peers.py bench (2 binds, window 100) ----

def run_sms(n, aof):
    # 200,000 triggered message jobs, queued before gatewayd starts; the
    # figure is from the first submit_sm to the last
    env = dict(os.environ, BENCH_AOF="1" if aof else "0",
               BENCH_TRIGGERED="1")
    with _Scope():
        p = _track(subprocess.Popen(
            [PYTHON, os.path.join(INTEG, "smpp_peers.py"), "bench", str(n)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True))
        try:
            out, _ = p.communicate(timeout=120 + n / 500)
        except subprocess.TimeoutExpired:
            raise TimeoutError("smpp_peers.py bench did not finish")
        out = out.decode(errors="replace")
    m = re.search(r"([\d.]+) submit_sm/s end to end \(([\d.]+)/s from the "
                  r"first\)", out)
    c = re.search(r"gatewayd CPU ([\d.]+) s .*peak RSS (\d+) MB", out)
    b = re.search(r"(\d+) binds, window (\d+)", out)
    first = re.search(r"first submit after ([\d.]+) s", out)
    rc_ = re.search(r"redis-server CPU ([\d.]+) s, fake SMSC CPU ([\d.]+) s",
                    out)
    if p.returncode != 0 or not m or not c:
        raise RuntimeError("smpp_peers.py bench rc %s: %s" % (
            p.returncode, out.strip().splitlines()[-3:]))
    return {"figures": {
        "throughput": fig(float(m.group(2)), "submit_sm/s", (">=", 30000))},
        "n": n, "binds": int(b.group(1)), "window": int(b.group(2)),
        "first_submit_s": float(first.group(1)) if first else None,
        "cpu_per_1000": float(c.group(1)) * 1000 / n,
        "peak_rss_mb": int(c.group(2)), "output": out,
        "redis_cpu_per_1000": float(rc_.group(1)) * 1000 / n if rc_ else None,
        "smsc_cpu_per_1000": float(rc_.group(2)) * 1000 / n if rc_ else None}


FAX_INFLIGHT = 4096
FAX_CONNS = int(os.environ.get("BENCH_FAX_CONNS", "32"))


# ---- fax: render + submit to tests/fakes/fake_fax.py (media upload) ----

def run_fax(n, aof=False):
    import test_fax
    from test_fax import fax_sets, fax_job
    with _Scope():
        work = workdir()
        red = redis_server(work)
        r = red.client()
        gw = gateway(work, red, start=False)
        # the fake: no --state file (it would rewrite its whole state per
        # submission), no shuffle/dup/forgery/late events, no delays; its
        # webhooks go to the gateway (an accepted fax stays in flight until
        # its final webhook: without them the provider's max_inflight
        # stalls the run)
        p = _track(subprocess.Popen(
            [PYTHON, os.path.join(FAKES, "fake_fax.py"), "--port", "0",
             "--webhook", "http://127.0.0.1:%d/hooks/fax/%s"
             % (gw.http_port, test_fax.PROVIDER),
             "--api-key", test_fax.API_KEY, "--connection-id",
             test_fax.CONN, "--seed", test_fax.SEED,
             "--dir", os.path.join(work, "faxes"), "--shuffle", "0",
             "--dup", "0", "--bad", "0", "--late", "0",
             "--event-delay-ms", "0", "--webhook-retries", "1",
             # pdfinfo + pdftotext per fax cost the fake more CPU than the
             # gateway's rendering; a sample is checked with them below
             "--pdf-check", "light"],
            stdout=subprocess.PIPE, stderr=open(
                os.path.join(work, "fake_fax.err"), "wb"),
            start_new_session=True))
        port = json.loads(p.stdout.readline())["port"]
        inbound = os.path.join(work, "fax-in")
        os.makedirs(inbound)
        gw.sets += fax_sets(port, gw.http_port, inbound, media="upload",
                            max_inflight=FAX_INFLIGHT,
                            max_connections=FAX_CONNS)
        gw.start()
        # 40 table rows: two A4 pages (checked below in the ledger units)
        items = [{"item": "Item %d, 500 sheets" % k, "price": "9.90",
                  "offer": "7.92"} for k in range(40)]
        jobs = [fax_job("fx%d" % i, "+1%06d1111" % i) for i in range(n)]
        for j in jobs:
            j["vars"] = dict(j["vars"], items=items)
        cpu0, fcpu0 = cpu_s(gw.proc.pid), cpu_s(p.pid)
        t0 = time.monotonic()
        xadd_jobs(r, jobs)
        wait_for(lambda: done_count(msg_counts(gw, "fax")) >= n,
                 60 + n / 5, "%d faxes accepted" % n, interval=0.1)
        took = time.monotonic() - t0
        cpu, fcpu = cpu_s(gw.proc.pid) - cpu0, cpu_s(p.pid) - fcpu0
        hwm = status_kb(gw.proc.pid, "VmHWM") // 1024
        c = msg_counts(gw, "fax")
        pipe = r.pipeline(transaction=False)
        for i in range(0, n, max(1, n // 20)):
            pipe.hgetall("gw:msg:fx%d" % i)
        led = pipe.execute()
        pages = sorted({int(x.get("units") or x.get("pages") or 0)
                        for x in led})
        states = sorted({x.get("state") for x in led})
        why = {}
        for _, e in r.xrange("gw:events", count=200000):
            if e.get("to") == "deferred":
                k = (e.get("reason") or "?")[:80]
                why[k] = why.get(k, 0) + 1
        log_tail = gw.logtext().splitlines()[-5:]
        fdir = os.path.join(work, "faxes")
        sample = sorted(f for f in os.listdir(fdir) if f.endswith(".pdf"))
        checked = []
        for f in sample[::max(1, len(sample) // 5)][:5]:
            out = subprocess.run(["pdfinfo", os.path.join(fdir, f)],
                                 capture_output=True, text=True, timeout=30)
            m = re.search(r"^Pages:\s+(\d+)", out.stdout, re.M)
            checked.append(int(m.group(1)) if m and out.returncode == 0
                           else "invalid")
        if not checked or any(c != 2 for c in checked):
            raise RuntimeError("received PDFs checked with pdfinfo: %r"
                               % checked)
    return {"figures": {
        "submitted": fig(n / took, "faxes/s", (">=", 200))},
        "n": n, "media": "upload", "provider_max_inflight": FAX_INFLIGHT,
        "counts": c, "pages_sampled": pages, "pdfinfo_pages": checked,
        "ledger_states_sampled": states, "fake_cpu_s": round(fcpu, 2),
        "deferred_reasons": why, "gw_log_tail": log_tail,
        "cpu_per_1000": cpu * 1000 / n, "peak_rss_mb": hwm}


# ---- intake: N single-recipient jobs preloaded into gw:jobs ----

def run_intake(n, aof=False):
    with _Scope():
        work = workdir(tmpfs=True)
        red = redis_server(work)
        r = red.client()
        t = time.monotonic()
        for i in range(0, n, 10000):
            xadd_jobs(r, [json.dumps(harness.message_job(k))
                          for k in range(i, min(n, i + 10000))],
                      chunk=10000)
        load = time.monotonic() - t
        gw = gateway(work, red, sets=["dispatch.batch=1000",
                                      "dispatch.max_inflight=8000"],
                     start=False)
        gw.start(wait_healthy=False)
        wait_for(lambda: gw.healthz() == 200 or not gw.alive(), 20,
                 "gatewayd healthy")
        rss = RssSampler(gw.proc.pid)
        rss.start()
        cpu0, rcpu0 = cpu_s(gw.proc.pid), redis_cpu(r)
        prof0 = redis_profile(r)
        first = last = None
        seen = 0
        end = time.monotonic() + 60 + n / 2000
        while time.monotonic() < end:
            d = done_count(msg_counts(gw, "email"))
            now = time.monotonic()
            if d and first is None:
                first, first_n = now, d
            if d >= n:
                last = now
                break
            seen = d
            time.sleep(0.1)
        cpu = cpu_s(gw.proc.pid) - cpu0
        rcpu = redis_cpu(r) - rcpu0
        prof = redis_profile(r, prof0)
        hwm = status_kb(gw.proc.pid, "VmHWM") // 1024
        peak = _stop_sampler(rss)
        c = msg_counts(gw, "email")
        if last is None:
            raise TimeoutError("only %d of %d delivered" % (seen, n))
    return {"figures": {
        "throughput": fig((n - first_n) / max(last - first, 1e-3),
                          "jobs/s", (">=", 50000))},
        "n": n, "first_to_last_s": round(last - first, 2),
        "preload_s": round(load, 2), "counts": c,
        "sampled_peak_rss_mb": peak,
        "redis_cpu_per_1000": round(rcpu * 1000 / n, 4),
        "redis_commands": {k: {"calls": c_, "usec_per_call":
                               round(u / c_, 1), "usec_per_job":
                               round(u / n, 2)}
                           for k, (c_, u) in list(prof.items())[:8]},
        "cpu_per_1000": cpu * 1000 / n, "peak_rss_mb": hwm}


def _stop_sampler(s):
    return s.stop() // 1024 if s else None


# ---- expansion: one campaign to an N-recipient audience list ----

def run_expansion(n, aof=False):
    with _Scope():
        work = workdir(tmpfs=True)
        red = redis_server(work)
        r = red.client()
        for i in range(0, n, 10000):
            r.rpush("gw:aud:big", *[json.dumps(x) for x in
                                    harness.recipients(min(10000, n - i),
                                                       start=i)])
        gw = gateway(work, red, sets=["intake.expand_batch=2000"])
        rss = RssSampler(gw.proc.pid)
        rss.start()
        cpu0 = cpu_s(gw.proc.pid)
        t0 = time.monotonic()
        xadd_jobs(r, [{"type": "campaign", "id": "big", "channel": "email",
                       "template": "welcome",
                       "audience": {"key": "gw:aud:big"}}])
        first = wait_for(lambda: (msg_counts(gw, "email") or {}).get(
            "sending", 0) > 0 and time.monotonic(), 30, "first sending",
            interval=0.01) - t0
        bound = 60 + n / 2000
        done = wait_for(lambda: done_count(msg_counts(gw, "email")) >= n
                        and time.monotonic(), bound,
                        "%d delivered" % n, interval=0.2) - t0
        cpu = cpu_s(gw.proc.pid) - cpu0
        peak = _stop_sampler(rss)
        samples = rss.samples
        hwm = status_kb(gw.proc.pid, "VmHWM") // 1024
    return {"figures": {
        "first sending": fig(first, "s", ("<=", 2)),
        "peak RSS (100 ms samples)": fig(peak, "MB", ("<=", 64)),
        "all delivered": fig(n / done, "msg/s")},
        "n": n, "rss_samples": samples, "all_done_s": round(done, 2),
        "cpu_per_1000": cpu * 1000 / n, "peak_rss_mb": hwm}


# ---- render: the C micro-benchmarks ----

def _bench_bin(name):
    path = os.path.join(ROOT, "build", "bench", name)
    if not os.path.exists(path):
        subprocess.run(["make", "build/bench/" + name], cwd=ROOT,
                       timeout=300, check=True, stdout=subprocess.DEVNULL)
    return path


def _run_bin(name, *args, timeout=300):
    with _Scope():
        p = _track(subprocess.Popen([_bench_bin(name)] + list(args),
                                    stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT,
                                    start_new_session=True))
        out, _ = p.communicate(timeout=timeout)
    out = out.decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError("%s rc %d: %s" % (name, p.returncode, out[-300:]))
    return out


def run_render(n=None, aof=False):
    figs = {}
    out = _run_bin("bench_mustache")
    m = re.search(r"median: ([\d.]+) renders/s", out)
    a = re.search(r"allocations during \d+ renders: (\d+)", out)
    figs["mustache 3 KB/10 vars"] = fig(float(m.group(1)), "renders/s",
                                        (">=", 1000000))
    figs["mustache allocations"] = fig(int(a.group(1)), "allocs", ("<=", 0))
    out2 = _run_bin("bench_template")
    for part in ("html", "email", "track"):
        m = re.search(r"^%s\s+([\d.]+) renders/s.*?, (\d+) allocations"
                      % part, out2, re.M)
        if m:
            figs["template %s" % part] = fig(
                float(m.group(1)), "renders/s",
                (">=", 1000000) if part == "html" else None)
            if part == "html":
                figs["template html allocations"] = fig(
                    int(m.group(2)), "allocs", ("<=", 0))
    out3 = _run_bin("bench_fax_render", "1000")
    for k, lab in (("1 thread", "fax render 1 thread"),
                   ("2 threads", "fax render 2 threads")):
        m = re.search(r"%s:.*?([\d.]+) renders/s" % k, out3)
        if m:
            figs[lab] = fig(float(m.group(1)), "renders/s")
    return {"figures": figs, "output": out + out2 + out3}


def run_soak(seconds, aof):
    import soak     # bench/soak.py: it imports this module
    return soak.run_soak(seconds, aof=aof)


CASES = {"email": run_email, "sms": run_sms, "fax": run_fax,
         "intake": run_intake, "expansion": run_expansion,
         "render": run_render, "soak": run_soak}


def run_case(case, counts, aof):
    return CASES[case](counts.get(case), aof)

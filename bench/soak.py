#!/usr/bin/python3
"""bench/soak.py -- the soak case of bench/run.py (issue 10): "10 minutes
of mixed email+SMS at 5,000 msg/s -- RSS growth <= 5 %; event-loop lag
p99 <= 10 ms".

    run_soak(seconds=600, rate=5000, aof=False, dlr_ms=1000)

    /usr/bin/python3 bench/soak.py [--seconds N] [--rate R] [--aof]
        [--dlr-ms D | --no-dlr] [--customers C]
    (prints the result dict as JSON on stdout, progress on stderr)

Peers, all on 127.0.0.1 and all fresh: redis-server (no persistence unless
aof), Postfix smtp-sink (provider "mail", smtp, tls off, 8 connections)
for the email channel, the C fake SMSC build/fakes/fake_smsc (its window
off, as in smpp_peers.py's bench; delivery receipts dlr_ms after each
submit_sm_resp unless dlr_ms is None) behind provider "sms1" (2 binds,
window 100) for the sms channel. gatewayd runs from harness.Gateway's
config with --set overrides: ledger_ttl_s 60 and events_maxlen 100,000 so
Redis stays bounded, log level warn.

A producer thread XADDs single-recipient transactional `message` jobs
(harness.message_job; not windowed, no frequency cap) to gw:jobs, half
email (bench_smtp.py's ~3 KB HTML + ~2 KB text, hash template
gw:tpl:soak_mail) and half SMS (~100 characters, gw:tpl:soak_sms), in
pipelined chunks every 100 ms paced on the monotonic clock (it catches up
when late, never exceeds rate * seconds, and stops after `seconds`).
Customers repeat over a pool of `customers` ids (their touch streams are
capped, so Redis stays bounded too).

Figures:
  rss_growth    (mean VmRSS over the last window - mean over the window
                 right after warm-up) / the latter, in %; warm-up and the
                 windows are 60 s for the 10-minute soak (10 % of the
                 duration, at least 5 s, at most 60 s, for shorter runs);
                 VmRSS is read from /proc every second
  loop_lag_p99  upper bound of the gw_event_loop_lag_seconds bucket that
                holds the 99th percentile of the samples taken between
                the end of warm-up and the end of the load (bucket deltas)
  throughput    messages accepted by the providers per second (email +
                sms, gw_messages_total) over the same interval
After the load, up to 60 s are given for every produced message to reach
its final state (email: accepted by smtp-sink; sms: the receipt's
delivered, or accepted without receipts); what did not is reported.
Everything started is tracked with cases._track inside a cases._Scope, so
it is stopped at the end, on an exception, on Ctrl-C and on SIGTERM."""

import argparse
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cases  # noqa: E402  (puts tests/integration on sys.path)
from cases import (  # noqa: E402
    _track, _Scope, workdir, redis_server, wait_for, cpu_s, status_kb,
    RssSampler, msg_counts, done_count, fig, ROOT)
from harness import free_port, message_job  # noqa: E402
from smpp_peers import FakeSmsc, smpp_sets  # noqa: E402
import bench_smtp  # noqa: E402  (its HTML / TEXT template parts)

SMTP_SINK = "/usr/sbin/smtp-sink"
FAKE_SMSC = os.path.join(ROOT, "build", "fakes", "fake_smsc")
MAIL_CONNS = 8
MAIL_PER_CONN = 1000        # connections are replaced now and then
SMPP_BINDS, SMPP_WINDOW = 2, 100
LEDGER_TTL_S = 60           # the minimum the config accepts
EVENTS_MAXLEN = 100000
TICK = 0.1                  # producer chunk period (s)
MAX_CHUNK = 5000            # one pipeline at most (catch-up in steps)
DRAIN_S = 60                # bound of the wait for final states
TIMELINE_S = 10             # period of the timeline entries

SMS_TEXT = ("Hi {{first_name}}, your code {{n}} - spring sale: 20% off "
            "everything in store and online, this week only!")
LAG_LE = ["0.001", "0.002", "0.005", "0.01", "0.02", "0.05", "0.1",
          "0.25", "0.5", "1", "+Inf"]


def _log(msg):
    print("soak: " + msg, file=sys.stderr, flush=True)


# ---- jobs ----

def _job(i, customers):
    """Message i: even i email, odd i sms; transactional (no window, no
    frequency cap); customers repeat over a pool."""
    ch = "email" if i % 2 == 0 else "sms"
    j = message_job(i, ch, template="soak_mail" if ch == "email"
                    else "soak_sms", vars={"n": i, "plan": "Gold"})
    j["class"] = "transactional"
    c = i % customers
    j["recipient"]["customer_id"] = "s%d" % c
    j["recipient"]["vars"] = {"first_name": "N%d" % c}
    return json.dumps(j, separators=(",", ":"))


class Producer(threading.Thread):
    """count jobs at `rate`/s into gw:jobs: every TICK the number due by
    the monotonic clock since t0 (late ticks catch up, MAX_CHUNK a
    pipeline); stops at count, at t0 + seconds + 30 s, or on halt."""

    def __init__(self, r, rate, count, seconds, t0, customers):
        super().__init__(daemon=True)
        self.r, self.rate, self.count = r, rate, count
        self.seconds, self.t0, self.customers = seconds, t0, customers
        self.sent = 0
        self.behind_max = 0          # jobs due but not yet sent, at worst
        self.late_ticks = 0          # ticks that woke > 50 ms late
        self.xadd_s = 0.0            # time spent in pipelines
        self.error = None
        self.finished_at = None
        self.halt = threading.Event()

    def run(self):
        try:
            self._run()
        except Exception as e:   # reported by the main thread
            self.error = "%s: %s" % (type(e).__name__, e)
        self.finished_at = time.monotonic()

    def _run(self):
        k = 0
        hard_end = self.t0 + self.seconds + 30
        self.halt.wait(max(0.0, self.t0 - time.monotonic()))
        while self.sent < self.count and not self.halt.is_set():
            now = time.monotonic()
            if now > hard_end:
                break
            due = min(self.count, int(math.ceil(self.rate * min(
                now - self.t0 + TICK, self.seconds))))
            self.behind_max = max(self.behind_max, due - self.sent -
                                  int(self.rate * TICK))
            while self.sent < due and not self.halt.is_set():
                n = min(MAX_CHUNK, due - self.sent)
                a = time.monotonic()
                p = self.r.pipeline(transaction=False)
                for i in range(self.sent, self.sent + n):
                    p.xadd("gw:jobs", {"job": _job(i, self.customers)})
                p.execute()
                self.xadd_s += time.monotonic() - a
                self.sent += n
            k += 1
            nxt = self.t0 + k * TICK
            now = time.monotonic()
            if now > nxt + 0.05:
                self.late_ticks += 1
                k = int((now - self.t0) / TICK)   # skip missed ticks
                nxt = self.t0 + k * TICK
            self.halt.wait(max(0.0, nxt - now))


# ---- samplers ----

class RssSeries(RssSampler):
    """cases.RssSampler that also keeps (t - t0, VmRSS kB) every interval,
    paced on the monotonic clock."""

    def __init__(self, pid, t0, interval=1.0):
        super().__init__(pid, interval)
        self.t0 = t0
        self.series = []

    def run(self):
        nxt = time.monotonic()
        while not self.halt.is_set():
            kb = status_kb(self.pid, "VmRSS")
            if kb:
                self.samples += 1
                self.max_kb = max(self.max_kb, kb)
                self.series.append((round(time.monotonic() - self.t0, 2),
                                    kb))
            nxt += self.interval
            self.halt.wait(max(0.0, nxt - time.monotonic()))


def _lag_hist(m):
    """gw_event_loop_lag_seconds: ({le: cumulative count}, sum, count)."""
    b = {}
    for lab, v in m.get("gw_event_loop_lag_seconds_bucket", {}).items():
        le = re.search(r'le="([^"]+)"', lab)
        if le:
            b[le.group(1)] = v
    s = m.get("gw_event_loop_lag_seconds_sum", {}).get("", 0.0)
    n = m.get("gw_event_loop_lag_seconds_count", {}).get("", 0.0)
    return b, s, n


def _lag_stats(h0, h1):
    """Lag between two histogram readings: p99 (upper bound of its
    bucket, and linearly interpolated inside it), fraction <= 10 ms,
    mean, highest non-empty bucket, sample count."""
    (b0, s0, n0), (b1, s1, n1) = h0, h1
    d = {le: b1.get(le, 0) - b0.get(le, 0) for le in LAG_LE}
    total = d["+Inf"]
    out = {"samples": int(total)}
    if total <= 0:
        return out
    want = 0.99 * total
    prev_le, prev_c = 0.0, 0
    for le in LAG_LE:
        if d[le] >= want:
            if le == "+Inf":
                out["p99_le_s"] = float("inf")
                out["p99_interp_s"] = None
            else:
                hi = float(le)
                frac = (want - prev_c) / max(d[le] - prev_c, 1)
                out["p99_le_s"] = hi
                out["p99_interp_s"] = round(prev_le + frac * (hi - prev_le),
                                            6)
            break
        if le != "+Inf":
            prev_le, prev_c = float(le), d[le]
    out["frac_le_10ms"] = round(d["0.01"] / total, 6)
    out["mean_s"] = round((s1 - s0) / max(n1 - n0, 1), 6)
    top = None
    prev = 0
    for le in LAG_LE:
        if d[le] > prev:
            top = le
        prev = d[le]
    out["max_bucket_le"] = top
    out["over_10ms"] = int(total - d["0.01"])
    out["over_100ms"] = int(total - d["0.1"])
    return out


def _sent(c):
    """Messages the providers took (accepted, or delivered directly)."""
    return done_count(c) - (c or {}).get("failed", 0)


def _final(c, receipts, m=None):
    """Messages at a final state. Email (no DSNs here) and SMS without
    receipts: accepted by the provider (or failed). SMS with receipts:
    the receipts gatewayd received with a final state, from
    gw_provider_receipts_total (gw_messages_total counts only the
    transitions dispatch makes, not those a receipt makes), plus
    failures."""
    c = c or {}
    if not receipts:
        return done_count(c)
    n = 0
    for lab, v in (m or {}).get("gw_provider_receipts_total", {}).items():
        if 'provider="sms1"' in lab and re.search(
                r'state="(delivered|undeliverable|expired|rejected)"', lab):
            n += int(v)
    return n + c.get("failed", 0)


def _ledger_sample(r, produced, k=2000):
    """States of about k ledgers spread over the produced messages, per
    channel; "gone" = expired (ledger_ttl_s after a final state)."""
    step = max(1, produced // k)
    ids = [i + c for i in range(0, produced - 1, 2 * step) for c in (0, 1)]
    p = r.pipeline(transaction=False)
    for i in ids:
        p.hget("gw:msg:m-%s-%d" % ("email" if i % 2 == 0 else "sms", i),
               "state")
    out = {"email": {}, "sms": {}}
    for i, st in zip(ids, p.execute()):
        d = out["email" if i % 2 == 0 else "sms"]
        d[st or "gone"] = d.get(st or "gone", 0) + 1
    return out


def _redis_info(r):
    try:
        mem = r.info("memory")
        cpu = r.info("cpu")
        return {"used_memory_mb": round(mem["used_memory"] / 2 ** 20, 1),
                "used_memory_rss_mb": round(mem["used_memory_rss"] / 2 ** 20,
                                            1),
                "keys": r.dbsize(),
                "cpu_s": round(cpu["used_cpu_sys"] + cpu["used_cpu_user"],
                               2)}
    except Exception as e:
        return {"error": str(e)}


def _backlog(r):
    try:
        p = r.pipeline(transaction=False)
        p.xlen("gw:jobs")
        p.xlen("gw:q:email")
        p.xlen("gw:q:sms")
        p.zcard("gw:delayed")
        p.xlen("gw:dead")
        jobs, qe, qs, dl, dead = p.execute()
        return {"jobs": jobs, "q_email": qe, "q_sms": qs, "delayed": dl,
                "dead": dead}
    except Exception as e:
        return {"error": str(e)}


def _gauge(m, name, lab=""):
    return m.get(name, {}).get(lab)


def _by_label(m, name):
    return {k: int(v) for k, v in m.get(name, {}).items()}


def _sink_count(path):
    """smtp-sink -c's last counter line: 'sess=N quit=N mesg=N'."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 256))
            tail = f.read().decode(errors="replace")
        m = re.findall(r"mesg=(\d+)", tail)
        return int(m[-1]) if m else 0
    except OSError:
        return None


def _wait_port(port, timeout, what):
    import socket

    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return True
        except OSError:
            return False
    wait_for(up, timeout, what, interval=0.05)


# ---- the case ----

def run_soak(seconds=600, rate=5000, aof=False, dlr_ms=1000,
             customers=100000):
    """One soak run; returns {"figures": {...}, "cpu_per_1000",
    "peak_rss_mb", ...details}. dlr_ms None: the fake SMSC sends no
    receipts (SMS end at accepted)."""
    seconds = int(seconds)
    count = int(rate * seconds)
    n_email, n_sms = (count + 1) // 2, count // 2
    warm = win = min(60.0, max(5.0, 0.1 * seconds))
    receipts = dlr_ms is not None
    with _Scope():
        work = workdir()
        red = redis_server(work, aof=aof)
        r = red.client()
        r.hset("gw:tpl:soak_mail", mapping={
            "subject": "Your order {{n}}, {{first_name}}",
            "html": bench_smtp.HTML, "text": bench_smtp.TEXT})
        r.hset("gw:tpl:soak_sms", mapping={"sms": SMS_TEXT})

        # Postfix smtp-sink, as bench_smtp.py runs it
        sport = free_port()
        sink_path = os.path.join(work, "sink.out")
        with open(sink_path, "wb") as sink_out:
            sink = _track(subprocess.Popen(
                [SMTP_SINK, "-c", "-u", "nobody", "127.0.0.1:%d" % sport,
                 "256"], stdout=sink_out, stderr=subprocess.STDOUT,
                start_new_session=True))
        _wait_port(sport, 10, "smtp-sink")

        # the C fake SMSC as smpp_peers.py's bench runs it (window off),
        # without its per-submit JSON log, receipts after dlr_ms
        os.environ.setdefault("FAKE_SMSC", FAKE_SMSC)
        opts = ["--no-lib-check", "--window", "0",
                "--lifetime-s", str(seconds + DRAIN_S + 600)]
        if receipts:
            opts += ["--dlr-delay-ms", str(int(dlr_ms))]
        smsc = FakeSmsc(work, *opts)
        smsc.logpath = os.devnull
        smsc.start()
        _track(smsc.proc)

        sets = smpp_sets(smsc.port, binds=SMPP_BINDS, window=SMPP_WINDOW,
                         response_timeout_ms=30000) + [
            "provider.mail.type=\"smtp\"",
            "provider.mail.channels=[\"email\"]",
            "provider.mail.url=\"smtp://127.0.0.1:%d\"" % sport,
            "provider.mail.tls=\"off\"",
            "provider.mail.from=\"Shop <news@example.org>\"",
            "provider.mail.max_connections=%d" % MAIL_CONNS,
            "provider.mail.max_messages_per_connection=%d" % MAIL_PER_CONN,
            "channel.email.provider=\"mail\"",
            "redis.ledger_ttl_s=%d" % LEDGER_TTL_S,
            "redis.events_maxlen=%d" % EVENTS_MAXLEN]
        gw = cases.gateway(work, red, sets=sets)
        pid = gw.proc.pid
        wait_for(lambda: smsc.stats()["binds"] >= SMPP_BINDS, 15,
                 "%d SMPP binds" % SMPP_BINDS, interval=0.1)
        _log("peers up (redis :%d, smtp-sink :%d, fake SMSC :%d, gatewayd "
             "pid %d, http :%d); %d messages over %d s, warm-up %g s, "
             "windows %g s" % (red.port, sport, smsc.port, pid,
                               gw.http_port, count, seconds, warm, win))

        pr = red.client()
        t0 = time.monotonic() + 0.2
        rss = RssSeries(pid, t0)
        rss.start()
        prod = Producer(pr, rate, count, seconds, t0, customers)
        cpu0, rcpu0 = cpu_s(pid), cpu_s(red.proc.pid)
        scpu0, fcpu0 = cpu_s(sink.pid), cpu_s(smsc.proc.pid)
        pcpu0 = time.process_time()
        prod.start()

        timeline = []
        snap = {}            # "warm" and "end": metrics at those times
        last_h = None
        last_cpu = cpu0
        last_t = t0
        next_tl = t0 + TIMELINE_S
        points = sorted([("warm", t0 + warm), ("end", t0 + seconds)],
                        key=lambda x: x[1])
        try:
            while points:
                now = time.monotonic()
                if points and now >= points[0][1]:
                    name = points.pop(0)[0]
                    m = gw.metrics()
                    snap[name] = {"t": now - t0, "m": m,
                                  "email": msg_counts(gw, "email"),
                                  "sms": msg_counts(gw, "sms"),
                                  "cpu": cpu_s(pid)}
                    continue
                if now >= next_tl:
                    m = gw.metrics()
                    h = _lag_hist(m)
                    c = cpu_s(pid)
                    ce, cs = msg_counts(gw, "email"), msg_counts(gw, "sms")
                    ent = {"t": round(now - t0, 1),
                           "rss_mb": round(status_kb(pid, "VmRSS") / 1024,
                                           1),
                           "produced": prod.sent,
                           "sent_email": _sent(ce), "sent_sms": _sent(cs),
                           "final_sms": _final(cs, receipts, m),
                           "inflight": _gauge(m, "gw_inflight_messages"),
                           "gw_cpu_pct": round(100 * (c - last_cpu) /
                                               max(now - last_t, 1e-3), 1),
                           "lag_max_s": _gauge(
                               m, "gw_event_loop_lag_max_seconds"),
                           "backlog": _backlog(r),
                           "redis_mb": _redis_info(r).get("used_memory_mb"),
                           "loadavg_1m": round(os.getloadavg()[0], 2)}
                    if last_h:
                        ls = _lag_stats(last_h, h)
                        ent["lag_p99_le_s"] = ls.get("p99_le_s")
                        ent["lag_over_10ms"] = ls.get("over_10ms")
                    timeline.append(ent)
                    _log("t=%5.0fs produced %d, sent email %d sms %d, "
                         "backlog %s, RSS %.1f MB, gw CPU %.0f%%, lag p99 "
                         "<= %s s, redis %s MB" % (
                             ent["t"], ent["produced"], ent["sent_email"],
                             ent["sent_sms"], ent["backlog"].get("jobs"),
                             ent["rss_mb"], ent["gw_cpu_pct"],
                             ent.get("lag_p99_le_s"), ent["redis_mb"]))
                    last_h, last_cpu, last_t = h, c, now
                    next_tl += TIMELINE_S
                    continue
                if not gw.alive():
                    raise RuntimeError("gatewayd exited (rc %s): %s" % (
                        gw.proc.poll(), gw.logtext().splitlines()[-5:]))
                if prod.error:
                    raise RuntimeError("producer: " + prod.error)
                wake = min([p[1] for p in points] + [next_tl])
                time.sleep(max(0.0, min(0.5, wake - time.monotonic())))
            prod.join(max(0.0, t0 + seconds + 35 - time.monotonic()))
            if prod.error:
                raise RuntimeError("producer: " + prod.error)
            produced = prod.sent
            _log("load over: %d produced; waiting up to %d s for final "
                 "states" % (produced, DRAIN_S))

            # every produced message at a final state (bounded)
            want_e, want_s = (produced + 1) // 2, produced // 2
            t_drain = time.monotonic()
            drained = None
            while time.monotonic() < t_drain + DRAIN_S:
                ce, cs = msg_counts(gw, "email"), msg_counts(gw, "sms")
                if _final(ce, False) >= want_e and \
                        _final(cs, receipts, gw.metrics()) >= want_s:
                    drained = time.monotonic() - t_drain
                    break
                if not gw.alive():
                    raise RuntimeError("gatewayd exited during the drain")
                time.sleep(0.2)
            t_done = time.monotonic()
        finally:
            prod.halt.set()
            prod.join(10)
            rss.stop()

        cpu = cpu_s(pid) - cpu0
        rcpu = cpu_s(red.proc.pid) - rcpu0
        scpu = cpu_s(sink.pid) - scpu0
        fcpu = cpu_s(smsc.proc.pid) - fcpu0
        pcpu = time.process_time() - pcpu0
        hwm = status_kb(pid, "VmHWM")
        m_fin = gw.metrics()
        ce, cs = msg_counts(gw, "email"), msg_counts(gw, "sms")
        backlog = _backlog(r)
        try:
            pend = {k: r.xpending(k, "gateway")["pending"]
                    for k in ("gw:jobs", "gw:q:email", "gw:q:sms")}
        except Exception as e:
            pend = {"error": str(e)}
        rinfo = _redis_info(r)
        ledger = _ledger_sample(r, produced)
        fake = smsc.stats()
        sink_n = _sink_count(sink_path)
        log = gw.logtext().splitlines()
        build = list(m_fin.get("gw_build_info", {}).keys())

    # ---- figures ----
    series = rss.series
    base = [kb for t, kb in series if warm <= t < warm + win]
    tail = [kb for t, kb in series if seconds - win <= t <= seconds]
    growth = None
    if base and tail:
        growth = 100.0 * (statistics.mean(tail) - statistics.mean(base)) \
            / statistics.mean(base)
    load = [(t, kb) for t, kb in series if warm <= t <= seconds]
    slope = None
    if len(load) >= 3:
        sl = statistics.linear_regression([t for t, _ in load],
                                          [kb for _, kb in load]).slope
        slope = round(sl * 60 / 1024, 3)

    w, e = snap.get("warm"), snap.get("end")
    lag = _lag_stats(_lag_hist(w["m"]), _lag_hist(e["m"]))
    gmax_w = _gauge(w["m"], "gw_event_loop_lag_max_seconds") or 0
    gmax_e = _gauge(e["m"], "gw_event_loop_lag_max_seconds") or 0
    lag["max_gauge_at_warm_s"] = gmax_w
    lag["max_gauge_at_end_s"] = gmax_e
    lag["max_gauge_final_s"] = _gauge(m_fin, "gw_event_loop_lag_max_seconds")
    # the gauge is since start: it names the window's max only if it rose
    lag["max_in_window_s"] = gmax_e if gmax_e > gmax_w else None
    p99 = lag.get("p99_le_s")
    p99_ms = None if p99 is None else (1000.0 * p99 if p99 != float("inf")
                                       else 1e6)

    span = e["t"] - w["t"]
    sent_w = _sent(w["email"]) + _sent(w["sms"])
    sent_e = _sent(e["email"]) + _sent(e["sms"])
    tput = (sent_e - sent_w) / span if span > 0 else None
    total_sent = _sent(ce) + _sent(cs)
    not_final = {"email": max(0, (produced + 1) // 2 - _final(ce, False)),
                 "sms": max(0, produced // 2 - _final(cs, receipts,
                                                       m_fin))}

    def rate_of(ch):
        return round((_sent(e[ch]) - _sent(w[ch])) / span, 1) \
            if span > 0 else None

    warn = [x for x in log if re.search(r"\b(warn|error|WARN|ERROR)", x)]
    return {
        "figures": {
            "rss_growth": fig(None if growth is None else round(growth, 2),
                              "%", ("<=", 5)),
            "loop_lag_p99": fig(p99_ms, "ms", ("<=", 10)),
            "throughput": fig(None if tput is None else round(tput, 1),
                              "msg/s", (">=", round(rate * 0.98, 1)))},
        "cpu_per_1000": cpu * 1000 / max(total_sent, 1),
        "peak_rss_mb": hwm // 1024,
        "n": count, "seconds": seconds, "rate": rate, "aof": aof,
        "receipts_dlr_ms": dlr_ms, "customers": customers,
        "warmup_s": warm, "window_s": win,
        "produced": produced, "produced_email": (produced + 1) // 2,
        "produced_sms": produced // 2, "planned_email": n_email,
        "planned_sms": n_sms,
        "producer": {"late_ticks": prod.late_ticks,
                     "behind_max_jobs": prod.behind_max,
                     "xadd_s": round(prod.xadd_s, 2),
                     "finished_after_s": round(prod.finished_at - t0, 2)
                     if prod.finished_at else None,
                     "python_cpu_s": round(pcpu, 2)},
        "rates": {"email_msg_s": rate_of("email"), "sms_msg_s": rate_of("sms"),
                  "interval_s": round(span, 1)},
        "drain_s": None if drained is None else round(drained, 2),
        "not_final": not_final,
        "counts": {"email": ce, "sms": cs},
        "ledger_sample": ledger,
        "provider_messages": _by_label(m_fin, "gw_provider_messages_total"),
        "provider_receipts": _by_label(m_fin, "gw_provider_receipts_total"),
        "provider_failures": _by_label(m_fin, "gw_provider_failures_total"),
        "provider_connections_opened": _by_label(
            m_fin, "gw_provider_connections_opened_total"),
        "throttle_signals": _by_label(m_fin, "gw_throttle_signals_total"),
        "jobs_received": _by_label(m_fin, "gw_jobs_received_total"),
        "jobs_dead": _by_label(m_fin, "gw_jobs_dead_total"),
        "redis_timeouts": _gauge(m_fin, "gw_redis_timeouts_total"),
        "backlog_end": backlog, "pending_end": pend,
        "rss": {"growth_pct": None if growth is None else round(growth, 3),
                "base_mean_mb": round(statistics.mean(base) / 1024, 2)
                if base else None,
                "last_mean_mb": round(statistics.mean(tail) / 1024, 2)
                if tail else None,
                "slope_mb_per_min": slope,
                "min_mb": round(min(kb for _, kb in series) / 1024, 2)
                if series else None,
                "max_mb": round(max(kb for _, kb in series) / 1024, 2)
                if series else None,
                "first_mb": round(series[0][1] / 1024, 2) if series else None,
                "last_mb": round(series[-1][1] / 1024, 2) if series else None,
                "samples": len(series), "vmhwm_mb": round(hwm / 1024, 2),
                "series_kb": series},
        "lag": lag,
        "cpu": {"gatewayd_s": round(cpu, 2), "redis_s": round(rcpu, 2),
                "smtp_sink_s": round(scpu, 2), "fake_smsc_s": round(fcpu, 2),
                "gatewayd_pct_in_window": round(
                    100 * (e["cpu"] - w["cpu"]) / span, 1) if span > 0
                else None,
                "wall_s": round(t_done - t0, 2)},
        "redis": rinfo, "fake_smsc": fake, "smtp_sink_msgs": sink_n,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "nproc": os.cpu_count(),
        "gw_build": build, "gw_log_lines": len(log),
        "gw_log_warnings": len(warn), "gw_log_tail": log[-10:],
        "timeline": timeline}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--aof", action="store_true",
                    help="redis-server with appendonly yes, everysec")
    ap.add_argument("--dlr-ms", type=int, default=1000,
                    help="fake SMSC receipts this long after the response")
    ap.add_argument("--no-dlr", action="store_true",
                    help="no delivery receipts (SMS end at accepted)")
    ap.add_argument("--customers", type=int, default=100000)
    ap.add_argument("--out", help="also write the JSON to this file")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda s, f: (_ for _ in ()).throw(
        KeyboardInterrupt()))
    try:
        res = run_soak(args.seconds, args.rate, aof=args.aof,
                       dlr_ms=None if args.no_dlr else args.dlr_ms,
                       customers=args.customers)
    except KeyboardInterrupt:
        print("soak: interrupted; everything started has been stopped",
              file=sys.stderr)
        return 130
    finally:
        cases.stop_all()
    text = json.dumps(res, indent=1, default=str)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The scheduler through gatewayd: delayed sends, throttles (local,
adaptive and shared across processes), quiet hours, frequency caps,
reminders and retry deadlines. Real peers only: redis-server, gatewayd
(one or two processes), the outbox provider and the C fake SMSC, all on
127.0.0.1. Every wait and every load loop is bounded in count and time.

Run: GATEWAYD=$PWD/bin/gatewayd /usr/bin/python3 tests/integration/run.py
     scheduler

What the tests take from the gateway (the contract they check):
  - gw:events entries type=state with msg, from, to, reason, time (ms);
    a message leaves for its provider with a `sending` event;
  - [[throttle]] buckets; scope "provider" on the outbox or SMPP provider;
    `shared = true` is one bucket for every process on the same Redis;
  - the adaptive rate of a bucket is the gauge
    gw_throttle_rate{bucket="provider:<name>"} on GET /metrics
    (THROTTLE_RATE_METRIC below; bucket names as in scheduler/throttle.h);
  - quiet hours: a message outside its window is `deferred` with a reason
    naming "quiet hours" (or "window") and sent at the next opening; a
    campaign's job "window" applies in the recipient's zone too;
  - [[freq_cap]] counted at dispatch: a capped message ends `capped`, the
    rule name in its reason, with no `sending` event;
  - reminders: message key <rule>:<customer>:<channel>:<period> (period =
    the anniversary's year for a yearly rule), the gw:remind zset with
    member <rule>|<customer> and score = next firing (ms);
  - a message that keeps failing temporarily ends `expired` at its
    deadline (job `expires`, else [channel.X] ttl_s), never `failed`.
"""

import collections
import datetime
import math
import os
import re
import shutil
import tempfile
import time
from zoneinfo import ZoneInfo

from harness import TestFailure, check, message_job, wait_until, xadd_jobs
from smpp_peers import FakeSmsc, smpp_sets

THROTTLE_RATE_METRIC = "gw_throttle_rate"     # gauge, label bucket
QUIET_RX = re.compile(r"quiet hours|window", re.I)
FINAL = {"delivered", "accepted", "bounced", "failed", "expired",
         "suppressed", "capped", "cancelled"}
ALL_DAYS = '["mon", "tue", "wed", "thu", "fri", "sat", "sun"]'


# ---- helpers ----

def _iso(t):
    """Whole seconds, UTC, RFC 3339."""
    return datetime.datetime.fromtimestamp(
        t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _gateway(ctx, red, toml="", sets=(), **kw):
    """A gatewayd whose generated config gets the TOML text appended (the
    [[...]] policy tables cannot be given with --set)."""
    gw = ctx.gateway(red.url, sets=list(sets), **kw)
    if toml:
        with open(gw.config, "a") as f:
            f.write("\n" + toml)
    return gw


def _events(r, **match):
    """gw:events entries whose fields equal match, read in pages."""
    out = []
    start = "-"
    while True:
        page = r.xrange("gw:events", min=start, max="+", count=5000)
        for eid, e in page:
            if all(e.get(k) == v for k, v in match.items()):
                out.append(e)
        if len(page) < 5000:
            return out
        last = page[-1][0]
        ms, seq = last.split("-")
        start = "%s-%d" % (ms, int(seq) + 1)


def _state(r, key):
    return r.hget("gw:msg:" + key, "state")


def _states(r, keys):
    p = r.pipeline(transaction=False)
    for k in keys:
        p.hget("gw:msg:" + k, "state")
    return dict(zip(keys, p.execute()))


def _count_states(r, keys):
    return collections.Counter(_states(r, keys).values())


def _send_times(r, keys=None):
    """Times (ms) of the `sending` events, of the given message keys."""
    ks = set(keys) if keys is not None else None
    return sorted(int(e["time"]) for e in _events(r, type="state",
                                                  to="sending")
                  if ks is None or e.get("msg") in ks)


def _rate_in_middle(times, want, skip_ms=1500, window_ms=10000):
    """Messages per second over window_ms starting skip_ms after the first
    send (the burst and the start-up are left out)."""
    check(times, "nothing was sent")
    t0 = times[0] + skip_ms
    t1 = t0 + window_ms
    span = (times[-1] - times[0]) / 1000.0
    check(times[-1] >= t1,
          "all %d sent within %.2f s: the window of %.1f s after the first "
          "%.1f s is not covered, the rate was not held at %d/s (%.0f/s)"
          % (len(times), span, window_ms / 1000.0, skip_ms / 1000.0, want,
             len(times) / max(span, 0.001)))
    n = sum(1 for t in times if t0 <= t < t1)
    return n * 1000.0 / window_ms


def _gauge(gw, name, **labels):
    """The value of one gauge, or None when the metric is absent."""
    vals = gw.metrics().get(name, {})
    for lab, v in vals.items():
        if all('%s="%s"' % (k, val) in lab for k, val in labels.items()):
            return v
    return None


def _throttle_metrics(gw):
    return {k: v for k, v in gw.metrics().items() if "throttle" in k}


def _shm_dir():
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    return tempfile.mkdtemp(prefix="gwtest-outbox-", dir=base)


def _use_outbox(gw, d):
    gw.sets.append('provider.outbox.dir="%s"' % d)
    gw.outbox = d


def _all_outbox(gw):
    return sum(len(gw.outbox_files(ch)) for ch in ("email", "sms", "fax"))


def _rcpt(cust, **kw):
    n = sum(map(ord, cust)) % 10000000
    r = {"customer_id": cust, "email": "%s@example.org" % cust,
         "phone": "+49151%08d" % n, "fax": "+4930%08d" % n}
    r.update(kw)
    return r


def _msg(key, channel, rcpt, **extra):
    job = {"type": "message", "id": key, "channel": channel,
           "template": "welcome", "recipient": rcpt, "vars": {"n": 1}}
    job.update(extra)
    return job


def _final(r, keys, timeout, what):
    wait_until(lambda: all(s in FINAL for s in _states(r, keys).values()),
               timeout, what, interval=0.1)
    return _states(r, keys)


# ---- 1. send_at ----

def test_sched_send_at_on_time(ctx):
    """send_at 2 s ahead: the `sending` event is within 1 s of send_at."""
    red = ctx.redis()
    r = red.client()
    gw = _gateway(ctx, red).start()
    due = math.ceil(time.time()) + 2
    xadd_jobs(r, [_msg("at-1", "email", _rcpt("at1"), send_at=_iso(due),
                       **{"class": "transactional"})])
    wait_until(lambda: _state(r, "at-1") in ("deferred", "sending",
                                             "delivered"), 5, "taken in")
    wait_until(lambda: _state(r, "at-1") == "delivered",
               due - time.time() + 5, "delivered after send_at")
    times = _send_times(r, ["at-1"])
    check(len(times) == 1, "one sending event: %r" % times)
    late = (times[0] - due * 1000) / 1000.0
    check(abs(late) <= 1.0, "sent %+.3f s from send_at" % late)
    check(gw.stop() == 0, "clean exit")


# ---- 2. a provider throttle holds its rate ----

def test_sched_provider_rate_1000(ctx):
    """1,000 msg/s on the outbox provider, 13,000 triggered messages: the
    rate over 10 s in the middle is within 5 % of 1,000/s."""
    red = ctx.redis()
    r = red.client()
    out = _shm_dir()
    try:
        gw = _gateway(ctx, red, """
[[throttle]]
scope = "provider"
provider = "outbox"
rate = 1000
per_s = 1
""", sets=['gateway.log_level="warn"'])
        _use_outbox(gw, out)
        gw.start()
        n = 13000
        jobs = [message_job(i, channel="email", **{"class": "transactional"})
                for i in range(n)]
        xadd_jobs(r, jobs)
        wait_until(lambda: gw.metric_sum("gw_messages_total",
                                         state="delivered") >= n, 60,
                   "%d delivered" % n, interval=0.5)
        rate = _rate_in_middle(_send_times(r), 1000)
        check(950 <= rate <= 1050, "%.0f msg/s, want 1000 +- 5 %%" % rate)
        print("     (%.1f msg/s over the middle 10 s)" % rate)
        check(len(gw.outbox_files("email")) == n, "every message written")
        check(gw.stop() == 0, "clean exit")
    finally:
        shutil.rmtree(out, ignore_errors=True)


# ---- 3. adaptive rate against a throttling SMSC ----

def test_sched_smpp_throttle_backoff_recovers(ctx):
    """The fake SMSC answers 0x58 to 30 % of submit_sm: the provider
    bucket's rate drops below its 2,000/s; when the SMSC stops throttling
    the rate climbs back to 2,000/s. Every message is accepted once, none
    failed."""
    red = ctx.redis()
    r = red.client()
    n = 4000
    conf = 2000.0
    bucket = "provider:sms1"
    with FakeSmsc(ctx.workdir, "--throttle-percent", "30",
                  "--throttle-seed", "7", "--no-lib-check") as smsc:
        sets = smpp_sets(smsc.port, binds=1, window=50,
                         throttle_pause_ms=0) + [
            "dispatch.retry_base_ms=200", "dispatch.retry_max_ms=1000",
            "dispatch.max_attempts=100", 'gateway.log_level="warn"']
        gw = _gateway(ctx, red, """
[[throttle]]
scope = "provider"
provider = "sms1"
rate = 2000
per_s = 1
""", sets=sets).start()
        wait_until(lambda: smsc.stats()["binds"] >= 1, 10, "bound")
        keys = ["m-sms-%d" % i for i in range(n)]
        xadd_jobs(r, [message_job(i, channel="sms",
                                  **{"class": "transactional"})
                      for i in range(n)])
        seen = []

        def sample():
            v = _gauge(gw, THROTTLE_RATE_METRIC, bucket=bucket)
            if v is not None:
                seen.append((time.monotonic(), v))
            return v

        try:
            wait_until(lambda: (lambda v: v is not None and v < conf)(
                sample()), 15,
                       "%s{bucket=%r} below %d" % (THROTTLE_RATE_METRIC,
                                                   bucket, conf),
                       interval=0.1)
        except TestFailure as e:
            raise TestFailure("%s; throttle metrics seen: %r; SMSC: %r"
                              % (e, _throttle_metrics(gw), smsc.stats()))
        # keep throttling a little longer: the rate goes on down
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end:
            sample()
            time.sleep(0.1)
        low = min(v for _, v in seen)
        check(smsc.cmd("throttle 0") == "ok throttle 0", "throttling off")
        wait_until(lambda: (sample() or 0.0) >= low + 0.05 * conf, 20,
                   "the rate to rise from %.0f" % low, interval=0.1)
        wait_until(lambda: (sample() or 0) >= 0.99 * conf, 40,
                   "the rate back at %d (low %.0f)" % (conf, low),
                   interval=0.2)
        top = max(v for _, v in seen)
        check(top <= conf + 1e-6, "never above the configured rate: %r"
              % (top,))
        print("     (%s: %d samples, low %.0f/s, back at %.0f/s)"
              % (bucket, len(seen), low, seen[-1][1]))
        states = _final(r, keys, 90, "all %d settled" % n)
        bad = {k: s for k, s in states.items() if s not in ("accepted",
                                                             "delivered")}
        check(not bad, "%d not accepted, e.g. %r" % (len(bad),
                                                     list(bad.items())[:5]))
        check(not _events(r, type="state", to="failed"), "none failed")
        st = smsc.stats()
        check(st["submit_ok"] == n, "each accepted once by the SMSC: %r"
              % st)
        ok = collections.Counter(s["destination_addr"]
                                 for s in smsc.submits() if s["status"] == 0)
        check(len(ok) == n and max(ok.values()) == 1,
              "one accepted submit per message (%d distinct)" % len(ok))
        check(st["throttled"] > 0, "the SMSC did throttle: %r" % st)
        check(gw.stop() == 0, "gatewayd exit 0")


# ---- 4. a shared bucket across two processes ----

def test_sched_shared_bucket_two_processes(ctx):
    """Two gatewayd on one Redis share a 500 msg/s provider bucket: together
    within 5 % of 500/s over 10 s; both take part."""
    red = ctx.redis()
    r = red.client()
    out = _shm_dir()
    toml = """
[[throttle]]
scope = "provider"
provider = "outbox"
rate = 500
per_s = 1
shared = true
"""
    try:
        gws = []
        for name in ("gw-a", "gw-b"):
            g = _gateway(ctx, red, toml, consumer=name, name=name,
                         sets=['gateway.log_level="warn"'])
            _use_outbox(g, out)
            gws.append(g.start())
        n = 6500
        xadd_jobs(r, [message_job(i, channel="email",
                                  **{"class": "transactional"})
                      for i in range(n)])

        def delivered():
            return [g.metric_sum("gw_messages_total", state="delivered")
                    for g in gws]
        wait_until(lambda: sum(delivered()) >= n, 60, "%d delivered" % n,
                   interval=0.5)
        rate = _rate_in_middle(_send_times(r), 500)
        per = delivered()
        check(475 <= rate <= 525, "%.0f msg/s together, want 500 +- 5 %% "
              "(per process: %r)" % (rate, per))
        check(min(per) >= 0.1 * n, "both processes sent: %r" % per)
        print("     (%.1f msg/s together; delivered per process %r)"
              % (rate, per))
        for g in gws:
            check(g.stop() == 0, "clean exit")
    finally:
        shutil.rmtree(out, ignore_errors=True)


# ---- 5. a frequency cap across two processes ----

def test_sched_freq_cap_two_processes(ctx):
    """max 3 marketing messages a week across channels; 20 for one customer
    at once, read by two processes: exactly 3 sent, 17 capped."""
    red = ctx.redis()
    r = red.client()
    toml = """
[[freq_cap]]
name = "weekly-marketing"
class = "marketing"
channel = "all"
max = 3
window_s = 604800

[[window]]
class = "marketing"
channels = ["sms", "fax"]
start = "00:00"
end = "24:00"
days = %s
""" % ALL_DAYS
    gws = [_gateway(ctx, red, toml, consumer=name, name=name,
                    sets=["intake.batch=1", "dispatch.batch=1"]).start()
           for name in ("gw-a", "gw-b")]
    rc = _rcpt("capper", tz="Europe/Berlin")
    chans = ("email", "sms", "fax")
    keys = ["cap-%02d" % i for i in range(20)]
    xadd_jobs(r, [_msg(k, chans[i % 3], rc, **{"class": "marketing"})
                  for i, k in enumerate(keys)])
    states = _final(r, keys, 30, "all 20 settled")
    c = collections.Counter(states.values())
    check(c["delivered"] == 3 and c["capped"] == 17,
          "3 delivered, 17 capped: %r" % dict(c))
    for k, s in states.items():
        if s == "capped":
            reason = r.hget("gw:msg:" + k, "reason") or ""
            check("weekly-marketing" in reason, "rule in the reason: %r"
                  % reason)
    sending = {e["msg"] for e in _events(r, type="state", to="sending")}
    check(len(sending & set(keys)) == 3, "only 3 went to sending: %r"
          % sorted(sending & set(keys)))
    check(_all_outbox(gws[0]) == 3, "3 in the outbox: %d"
          % _all_outbox(gws[0]))
    took = [(g.metric_sum("gw_jobs_received_total", type="message"),
             g.metric_sum("gw_messages_total", state="delivered"),
             g.metric_sum("gw_messages_total", state="capped")) for g in gws]
    for g in gws:
        check(g.stop() == 0, "clean exit")
    print("     (per process: jobs read, delivered, capped: %r)" % took)


# ---- 6. a birthday reminder, once a year, across a restart ----

REMINDER = """
[[reminder]]
name = "birthday"
field = "birthday"
kind = "yearly"
offset = "0d"
at = "00:00"
channels = ["email"]
template = "welcome"
class = "marketing"
"""


def _customer(jid, cust, birthday, name="Anna"):
    return {"type": "customer", "id": jid, "customer": {
        "customer_id": cust, "email": "%s@example.org" % cust,
        "phone": "+4915100000001", "tz": "Europe/Berlin", "name": name,
        "dates": {"birthday": birthday,
                  "last_purchase": "2026-10-01T10:00:00Z"}}}


def test_sched_birthday_once_per_year(ctx):
    red = ctx.redis()
    r = red.client()
    berlin = ZoneInfo("Europe/Berlin")
    today = datetime.datetime.now(berlin).date()
    byear = 1992 if (today.month, today.day) == (2, 29) else 1990
    bday = "%04d-%02d-%02d" % (byear, today.month, today.day)
    cust = "bd1"
    key = "birthday:%s:email:%d" % (cust, today.year)
    member = "birthday|" + cust

    gw = _gateway(ctx, red, REMINDER).start()
    xadd_jobs(r, [_customer("cust-1", cust, bday)])
    wait_until(lambda: _state(r, key) == "delivered", 20,
               "%s delivered" % key)
    check(r.keys("gw:msg:birthday:%s:*" % cust) == ["gw:msg:" + key],
          "one ledger entry: %r" % r.keys("gw:msg:birthday:*"))
    check(gw.stop() == 0, "clean exit")

    gw = _gateway(ctx, red, REMINDER).start()
    xadd_jobs(r, [_customer("cust-2", cust, bday),
                  _customer("cust-3", cust, bday, name="Anna-Lena")])
    wait_until(lambda: len(_events(r, type="customer")) >= 3, 10,
               "the upserts applied")
    time.sleep(2.5)             # room for a wrong second firing
    check(r.keys("gw:msg:birthday:%s:*" % cust) == ["gw:msg:" + key],
          "still one ledger entry: %r" % r.keys("gw:msg:birthday:*"))
    created = [e for e in _events(r, type="state", msg=key)
               if e.get("from") == ""]
    check(len(created) == 1, "created once: %r" % created)
    check(len(_events(r, type="state", msg=key, to="delivered")) == 1,
          "delivered once")
    check(len(gw.outbox_files("email")) == 1, "one email: %r"
          % gw.outbox_files("email"))

    # the date moves to next month: rescheduled
    before = r.zscore("gw:remind", member)
    nm_year = today.year + (1 if today.month == 12 else 0)
    nm = today.month % 12 + 1
    nd = min(today.day, 28)
    xadd_jobs(r, [_customer("cust-4", cust, "%04d-%02d-%02d"
                            % (byear, nm, nd), name="Anna-Lena")])
    want = datetime.datetime(nm_year, nm, nd, 0, 0,
                             tzinfo=berlin).timestamp() * 1000
    wait_until(lambda: r.zscore("gw:remind", member) not in (None, before),
               10, "%s rescheduled in gw:remind (was %r)" % (member, before))
    got = r.zscore("gw:remind", member)
    check(abs(got - want) <= 1000, "next firing %s, want %s"
          % (_iso(got / 1000), _iso(want / 1000)))
    time.sleep(1.0)
    check(r.keys("gw:msg:birthday:%s:*" % cust) == ["gw:msg:" + key],
          "nothing fired for the moved date")
    check(gw.stop() == 0, "clean exit")


# ---- 7. quiet hours: deferred to the opening ----

def test_sched_quiet_hours_odd_offset(ctx):
    """A marketing SMS (config [[window]]) and a marketing fax campaign
    (the job's window) for a recipient in Asia/Kathmandu (+05:45), outside
    their windows, which open at the next minute boundary >= 5 s ahead:
    deferred as quiet hours, sent within 1 s of the opening."""
    red = ctx.redis()
    r = red.client()
    zone = ZoneInfo("Asia/Kathmandu")
    now = time.time()
    opening = (int(now) // 60 + 1) * 60
    if opening - now < 5:
        opening += 60
    loc = datetime.datetime.fromtimestamp(opening, zone)
    smin = loc.hour * 60 + loc.minute
    emin = (smin + 180) % 1440
    start = "%02d:%02d" % divmod(smin, 60)
    end = "24:00" if emin == 0 else "%02d:%02d" % divmod(emin, 60)
    gw = _gateway(ctx, red, """
[[window]]
class = "marketing"
channels = ["sms"]
start = "%s"
end = "%s"
days = %s

[[window]]
class = "marketing"
channels = ["fax"]
start = "00:00"
end = "24:00"
days = %s
""" % (start, end, ALL_DAYS, ALL_DAYS)).start()
    rc = _rcpt("ktm1", tz="Asia/Kathmandu")
    xadd_jobs(r, [
        _msg("qh-sms", "sms", rc, **{"class": "marketing"}),
        {"type": "campaign", "id": "qh", "channel": "fax",
         "template": "welcome", "class": "marketing",
         "window": {"start": start, "end": end},
         "audience": {"recipients": [_rcpt("ktm2",
                                           tz="Asia/Kathmandu")]}}])
    keys = ["qh-sms", "qh:ktm2:fax"]
    wait_until(lambda: all(s == "deferred" for s in
                           _states(r, keys).values()), 5,
               "both deferred (window %s-%s Asia/Kathmandu)" % (start, end))
    check(time.time() < opening - 0.5,
          "the deferral was seen before the opening (start-up too slow)")
    for k in keys:
        reason = r.hget("gw:msg:" + k, "reason") or ""
        check(QUIET_RX.search(reason), "%s: quiet hours reason: %r"
              % (k, reason))
    wait_until(lambda: all(s == "delivered" for s in
                           _states(r, keys).values()),
               opening - time.time() + 5, "sent at the opening")
    for k in keys:
        t = _send_times(r, [k])
        check(len(t) == 1, "%s sent once: %r" % (k, t))
        off = t[0] / 1000.0 - opening
        check(abs(off) <= 1.0, "%s sent %+.3f s from the opening %s (%s "
              "local)" % (k, off, _iso(opening), start))
    check(gw.stop() == 0, "clean exit")


# ---- 8. transactional: no quiet hours, no marketing caps ----

QUIET_ZONES = ("Pacific/Kiritimati", "Pacific/Auckland", "Australia/Sydney",
               "Asia/Tokyo", "Asia/Shanghai", "Asia/Bangkok", "Asia/Kolkata",
               "Asia/Dubai", "Europe/Moscow", "Europe/Berlin", "UTC",
               "America/Sao_Paulo", "America/New_York", "America/Chicago",
               "America/Denver", "America/Los_Angeles", "America/Anchorage",
               "Pacific/Honolulu", "Pacific/Pago_Pago")


def _zone_at_night():
    """A zone whose local time is well inside the default quiet hours
    (21:00-08:00): 22:00-06:59."""
    now = datetime.datetime.now(datetime.timezone.utc)
    for z in QUIET_ZONES:
        h = now.astimezone(ZoneInfo(z)).hour
        if h >= 22 or h < 7:
            return z
    raise TestFailure("no zone at night in %r" % (QUIET_ZONES,))


def test_sched_transactional_exempt(ctx):
    red = ctx.redis()
    r = red.client()
    gw = _gateway(ctx, red, """
[[freq_cap]]
name = "daily-marketing"
class = "marketing"
channel = "all"
max = 1
window_s = 86400
""").start()
    night = _zone_at_night()
    # the default window: marketing SMS waits, transactional SMS and fax go
    rn = _rcpt("night1", tz=night)
    xadd_jobs(r, [_msg("tx-mkt-sms", "sms", rn, **{"class": "marketing"}),
                  _msg("tx-sms", "sms", rn, **{"class": "transactional"}),
                  _msg("tx-fax", "fax", rn, **{"class": "transactional"})])
    _final(r, ["tx-sms", "tx-fax"], 10, "transactional ones settled")
    check(_states(r, ["tx-sms", "tx-fax"]) ==
          {"tx-sms": "delivered", "tx-fax": "delivered"},
          "transactional sent at night in %s: %r"
          % (night, _states(r, ["tx-sms", "tx-fax"])))
    wait_until(lambda: _state(r, "tx-mkt-sms") == "deferred", 5,
               "marketing SMS deferred at night (%s)" % night)
    reason = r.hget("gw:msg:tx-mkt-sms", "reason") or ""
    check(QUIET_RX.search(reason), "quiet hours reason: %r" % reason)
    # the cap: transactional ones neither count nor are capped
    rc = _rcpt("capd1", tz="Europe/Berlin")
    tx1 = ["tx-e%d" % i for i in range(4)]
    xadd_jobs(r, [_msg(k, "email", rc, **{"class": "transactional"})
                  for k in tx1])
    _final(r, tx1, 10, "first transactional emails")
    mk = ["mk-e%d" % i for i in range(2)]
    xadd_jobs(r, [_msg(k, "email", rc, **{"class": "marketing"})
                  for k in mk])
    st = _final(r, mk, 10, "marketing emails settled")
    check(sorted(st.values()) == ["capped", "delivered"],
          "one marketing sent, one capped (transactional not counted): %r"
          % st)
    tx2 = ["tx-e%d" % i for i in range(4, 7)]
    xadd_jobs(r, [_msg(k, "email", rc, **{"class": "transactional"})
                  for k in tx2])
    st = _final(r, tx1 + tx2, 10, "transactional emails settled")
    check(all(s == "delivered" for s in st.values()),
          "every transactional email sent past the cap: %r" % st)
    check(_state(r, "tx-mkt-sms") == "deferred", "marketing SMS still waits")
    check(gw.stop() == 0, "clean exit")


# ---- 9. a retry deadline ends in expired ----

def test_sched_deadline_expires(ctx):
    """Every submit_sm is throttled: a message with expires 5 s ahead is
    retried until then and ends expired (not failed); one without expires
    ends expired at [channel.sms] ttl_s."""
    red = ctx.redis()
    r = red.client()
    ttl = 8
    with FakeSmsc(ctx.workdir, "--throttle-every", "1") as smsc:
        sets = smpp_sets(smsc.port, throttle_pause_ms=0) + [
            "dispatch.retry_base_ms=200", "dispatch.retry_max_ms=1000",
            "dispatch.max_attempts=1000", "channel.sms.retry_base_ms=200",
            "channel.sms.retry_max_ms=1000", "channel.sms.max_attempts=1000",
            "channel.sms.ttl_s=%d" % ttl]
        gw = _gateway(ctx, red, sets=sets).start()
        wait_until(lambda: smsc.stats()["binds"] >= 1, 10, "bound")
        t0 = time.time()
        exp = math.ceil(t0) + 5
        xadd_jobs(r, [_msg("dl-exp", "sms", _rcpt("dl1"), expires=_iso(exp),
                           **{"class": "transactional"}),
                      _msg("dl-ttl", "sms", _rcpt("dl2"),
                           **{"class": "transactional"})])
        wait_until(lambda: _state(r, "dl-exp") in FINAL,
                   exp - time.time() + 5, "dl-exp settled")
        wait_until(lambda: _state(r, "dl-ttl") in FINAL,
                   t0 + ttl - time.time() + 5, "dl-ttl settled")
        for key, deadline in (("dl-exp", exp), ("dl-ttl", t0 + ttl)):
            led = r.hgetall("gw:msg:" + key)
            check(led.get("state") == "expired", "%s expired: %r"
                  % (key, led))
            check(int(led.get("attempts", 0)) >= 3, "%s retried: %r"
                  % (key, led))
            check(not _events(r, type="state", msg=key, to="failed"),
                  "%s never failed" % key)
            ev = _events(r, type="state", msg=key, to="expired")
            check(len(ev) == 1, "one expired event: %r" % ev)
            off = int(ev[0]["time"]) / 1000.0 - deadline
            check(-1.5 <= off <= 2.5, "%s expired %+.2f s from its deadline"
                  % (key, off))
        subs = collections.Counter(s["destination_addr"]
                                   for s in smsc.submits())
        check(all(v >= 3 for v in subs.values()) and len(subs) == 2,
              "both submitted again and again: %r" % subs)
        check(gw.stop() == 0, "gatewayd exit 0")


# ---- 10. a campaign budget stops dispatch; costs from [price] ----

def test_sched_campaign_budget_caps(ctx):
    """[price] email = 0.01 EUR; a campaign of 12 with a 0.05 EUR budget:
    5 delivered (each event and ledger carries cost 0.01, the campaign's
    cost sums to 0.05), 7 capped with reason "budget"; a campaign whose
    budget is in another currency goes to gw:dead."""
    red = ctx.redis()
    r = red.client()
    toml = """
[price]
currency = "EUR"
email = 0.01

[price.sms]
default = 0.05
"+49" = 0.08
"+491" = 0.09
"""
    gw = _gateway(ctx, red, toml, sets=["dispatch.batch=1"]).start()
    rcpts = [_rcpt("b%02d" % i) for i in range(12)]
    xadd_jobs(r, [{"type": "campaign", "id": "budgeted", "channel": "email",
                   "template": "welcome", "class": "marketing",
                   "budget": {"currency": "EUR", "max": 0.05},
                   "audience": {"recipients": rcpts}},
                  {"type": "campaign", "id": "dollars", "channel": "email",
                   "template": "welcome",
                   "budget": {"currency": "USD", "max": 1},
                   "audience": {"recipients": rcpts[:1]}},
                  _msg("sms-price", "sms", _rcpt("p1", phone="+4915100000009"),
                       **{"class": "transactional"})])
    keys = ["budgeted:%s:email" % x["customer_id"] for x in rcpts]
    states = _final(r, keys + ["sms-price"], 30, "all settled")
    c = collections.Counter(states[k] for k in keys)
    check(c["delivered"] == 5 and c["capped"] == 7,
          "5 delivered, 7 capped: %r" % dict(c))
    for k in keys:
        if states[k] == "capped":
            check("budget" in (r.hget("gw:msg:" + k, "reason") or ""),
                  "budget named in the reason")
        else:
            check(abs(float(r.hget("gw:msg:" + k, "cost")) - 0.01) < 1e-9,
                  "ledger cost 0.01")
    camp = r.hgetall("gw:campaign:budgeted")
    check(abs(float(camp.get("cost", "0")) - 0.05) < 1e-6,
          "campaign cost 0.05: %r" % camp.get("cost"))
    check(abs(float(camp.get("committed", "0")) - 0.05) < 1e-6,
          "committed settles at the cost: %r" % camp.get("committed"))
    delivered = _events(r, type="state", to="delivered", campaign="budgeted")
    check(all(abs(float(e["cost"]) - 0.01) < 1e-9 for e in delivered),
          "delivered events carry the cost")
    # the longest prefix wins: +491 -> 0.09 per segment
    check(abs(float(r.hget("gw:msg:sms-price", "cost")) - 0.09) < 1e-9,
          "SMS price by the longest prefix: %r"
          % r.hget("gw:msg:sms-price", "cost"))
    dead = [e for _, e in r.xrange("gw:dead")]
    check(any("budget.currency" in e.get("reason", "") for e in dead),
          "a USD budget against EUR prices is dead-lettered")
    check(gw.stop() == 0, "clean exit")

"""Crash and outage recovery: kill -9 in the middle of a big campaign,
Redis away for 10 s, a hung consumer's entries claimed by another, and
max_deliveries."""

import collections
import json
import signal
import threading
import time

import redis as redislib

from harness import (check, message_job, proc_cpu_seconds, recipients,
                     wait_until, xadd_jobs)


def test_kill9_mid_campaign_exactly_once(ctx):
    red = ctx.redis()
    r = red.client()
    n = 50000
    rs = recipients(n)
    for i in range(0, n, 5000):
        r.rpush("gw:aud:big", *[json.dumps(x) for x in rs[i:i + 5000]])
    gw = ctx.gateway(red.url, sets=["intake.expand_batch=500"]).start()
    xadd_jobs(r, [{"type": "campaign", "id": "big", "channel": "email",
                   "template": "spring", "audience": {"key": "gw:aud:big"},
                   "vars": {"offer": "20%"}}])
    wait_until(lambda: len(gw.outbox_files("email")) >= 8000, 120,
               "a good part of the campaign sent")
    gw.kill9()
    at_kill = len(gw.outbox_files("email"))
    check(at_kill < n, "killed before the end (%d files)" % at_kill)
    gw.start()
    wait_until(lambda: r.hget("gw:campaign:big", "expansion") == "done",
               120, "expansion finished after the restart")
    wait_until(lambda: len(gw.outbox_files("email")) >= n, 180,
               "every recipient in the outbox")
    wait_until(lambda: r.xlen("gw:q:email") == 0, 30, "queue drained")
    files = gw.outbox_files("email")
    check(len(files) == n, "exactly %d files, found %d" % (n, len(files)))
    want = set("big:c%d:email.json" % i for i in range(n))
    check(set(files) == want, "one file per recipient")
    c = r.hgetall("gw:campaign:big")
    check(c["expanded"] == str(n), "expanded %s" % c["expanded"])
    check(c.get("duplicates", "0") == "0", "no recipient queued twice")
    check(c["n_delivered"] == str(n), "delivered %s" % c["n_delivered"])
    per = collections.Counter(e["msg"] for _, e in r.xrange("gw:events")
                              if e.get("to") == "delivered")
    check(len(per) == n and max(per.values()) == 1,
          "one delivered event per message (max %d)" % max(per.values()))
    queued = collections.Counter(e["msg"] for _, e in r.xrange("gw:events")
                                 if e.get("to") == "queued")
    check(len(queued) == n and max(queued.values()) == 1, "queued once each")
    check(gw.stop() == 0, "clean exit")


def test_redis_outage_recovers_alone(ctx):
    red = ctx.redis()
    r = red.client()
    gw = ctx.gateway(red.url).start()
    accepted = []
    stop = threading.Event()

    def producer():
        i = 0
        while not stop.is_set() and i < 3000:
            try:
                red.client().xadd("gw:jobs", {"job": json.dumps(
                    message_job(i))})
                accepted.append(i)
                i += 1
            except redislib.exceptions.ConnectionError:
                time.sleep(0.1)         # Redis is away; try again
            time.sleep(0.002)

    t = threading.Thread(target=producer)
    t.start()
    wait_until(lambda: len(gw.outbox_files("email")) >= 300, 60,
               "traffic flowing")
    red.stop()
    down_at = time.monotonic()
    wait_until(lambda: gw.metric_sum("gw_redis_up") == 0, 10,
               "redis_up drops to 0")
    check(gw.healthz() == 503, "healthz says Redis is unreachable")
    cpu0 = proc_cpu_seconds(gw.proc.pid)
    time.sleep(max(0, 10 - (time.monotonic() - down_at)))
    cpu = proc_cpu_seconds(gw.proc.pid) - cpu0
    check(gw.alive(), "gatewayd survived 10 s without Redis")
    check(cpu < 2.0, "no busy loop while Redis is down (%.2f s CPU)" % cpu)
    red.start()
    wait_until(lambda: gw.healthz() == 200, 30, "healthz back to 200")
    t.join(120)
    stop.set()
    wait_until(lambda: len(gw.outbox_files("email")) >= len(accepted), 120,
               "every accepted job delivered")
    time.sleep(0.5)
    check(len(gw.outbox_files("email")) == len(accepted),
          "%d accepted, %d delivered" % (len(accepted),
                                         len(gw.outbox_files("email"))))
    check(gw.metric_sum("gw_redis_up") == 1, "redis_up back to 1")
    check(gw.stop() == 0, "clean exit")


def test_claim_from_hung_consumer_and_max_deliveries(ctx):
    red = ctx.redis()
    r = red.client()
    sets = ["intake.claim_idle_ms=1500", "intake.max_deliveries=3"]
    a = ctx.gateway(red.url, consumer="gw-a", sets=sets, name="a").start()
    b = ctx.gateway(red.url, consumer="gw-b", sets=sets, name="b")
    b.outbox = a.outbox
    a.proc.send_signal(signal.SIGSTOP)      # A hangs holding what it read
    xadd_jobs(r, [message_job(i) for i in range(2000)])
    time.sleep(0.3)
    b.start()
    wait_until(lambda: len(a.outbox_files("email")) >= 2000, 60,
               "B delivers the jobs, claiming what A held")
    a.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: r.xlen("gw:jobs") == 0 and r.xlen("gw:q:email") == 0,
               30, "queues drained")
    per = collections.Counter(e["msg"] for _, e in r.xrange("gw:events")
                              if e.get("to") == "delivered")
    check(len(per) == 2000 and max(per.values()) == 1,
          "each delivered once across two consumers")
    check(a.stop() == 0 and b.stop() == 0, "both exit cleanly")

    # max_deliveries: an entry read three times by consumers that die.
    eid = r.xadd("gw:jobs", {"job": json.dumps(message_job(9999))})
    r.xreadgroup("gateway", "ghost1", {"gw:jobs": ">"}, count=1)
    for ghost in ("ghost2", "ghost3"):
        r.xclaim("gw:jobs", "gateway", ghost, 0, [eid])
    check(r.xpending_range("gw:jobs", "gateway", "-", "+", 10)[0]
          ["times_delivered"] >= 3, "delivered 3 times already")
    time.sleep(1.6)
    b.start()
    wait_until(lambda: r.xlen("gw:dead") == 1, 30, "poisoned entry dead")
    d = r.xrange("gw:dead")[0][1]
    check(d["class"] == "deliveries" and "max_deliveries = 3" in d["reason"],
          "reason %r" % d["reason"])
    check(not r.exists("gw:msg:m-email-9999"), "not sent")
    check(b.stop() == 0, "clean exit")


def test_redis_hang_watchdog_drop(ctx):
    """A frozen Redis (SIGSTOP) answers nothing: the watchdog must drop the
    connections, and after it thaws every job is delivered exactly once,
    including those whose replies were lost in the drop."""
    red = ctx.redis()
    r = red.client()
    gw = ctx.gateway(red.url, sets=["redis.timeout_ms=1000"]).start()
    xadd_jobs(r, [message_job(i) for i in range(3000)])
    wait_until(lambda: len(gw.outbox_files("email")) >= 200, 60,
               "traffic flowing")
    red.proc.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: gw.metric_sum("gw_redis_up") == 0, 10,
                   "watchdog notices the hang")
        check(gw.metric_sum("gw_redis_timeouts_total") >= 1,
              "dropped for an overdue reply")
        time.sleep(2)
    finally:
        red.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: len(gw.outbox_files("email")) == 3000, 120,
               "all 3000 delivered after the thaw")
    wait_until(lambda: r.xlen("gw:jobs") == 0 and r.xlen("gw:q:email") == 0,
               30, "queues drained")
    per = collections.Counter(e["msg"] for _, e in r.xrange("gw:events")
                              if e.get("to") == "delivered")
    check(len(per) == 3000 and max(per.values()) == 1,
          "each delivered once (max %d)" % max(per.values()))
    check(gw.stop() == 0, "clean exit")

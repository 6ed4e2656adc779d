"""Campaign control: pause parks queued messages, resume releases them and
finishes the expansion, cancel records the rest as cancelled."""

import collections
import json
import time

from harness import check, recipients, wait_until, xadd_jobs


def _campaign(r, cid, n, batch_key):
    r.rpush(batch_key, *[json.dumps(x) for x in recipients(n)])
    xadd_jobs(r, [{"type": "campaign", "id": cid, "channel": "email",
                   "template": "t", "audience": {"key": batch_key}}])


def test_pause_resume_cancel(ctx):
    red = ctx.redis()
    r = red.client()
    # Slow expansion so the pause lands in the middle of it.
    gw = ctx.gateway(red.url, sets=["intake.expand_batch=20",
                                    "dispatch.batch=10"]).start()
    _campaign(r, "p1", 20000, "gw:aud:p1")
    wait_until(lambda: r.exists("gw:campaign:p1"), 10, "campaign created")
    xadd_jobs(r, [{"type": "control", "id": "ctl-1", "campaign": "p1",
                   "action": "pause"}])
    wait_until(lambda: r.hget("gw:campaign:p1", "state") == "paused", 10,
               "paused")
    time.sleep(1.0)
    n1 = len(gw.outbox_files("email"))
    time.sleep(1.0)
    n2 = len(gw.outbox_files("email"))
    check(n1 == n2 and n2 < 20000, "nothing sent while paused (%d, %d)"
          % (n1, n2))
    check(r.hget("gw:campaign:p1", "expansion") != "done",
          "expansion stopped at the pause")
    xadd_jobs(r, [{"type": "control", "id": "ctl-2", "campaign": "p1",
                   "action": "resume"}])
    wait_until(lambda: len(gw.outbox_files("email")) == 20000, 120,
               "all sent after resume")
    per = collections.Counter(e["msg"] for _, e in r.xrange("gw:events")
                              if e.get("to") == "delivered")
    check(len(per) == 20000 and max(per.values()) == 1, "once each")
    check(r.llen("gw:parked:p1") == 0, "nothing left parked")

    _campaign(r, "p2", 5000, "gw:aud:p2")
    wait_until(lambda: r.exists("gw:campaign:p2"), 10, "campaign created")
    xadd_jobs(r, [{"type": "control", "id": "ctl-3", "campaign": "p2",
                   "action": "pause"}])
    wait_until(lambda: r.hget("gw:campaign:p2", "state") == "paused", 10,
               "paused")
    xadd_jobs(r, [{"type": "control", "id": "ctl-4", "campaign": "p2",
                   "action": "cancel"}])
    wait_until(lambda: r.hget("gw:campaign:p2", "state") == "cancelled", 10,
               "cancelled")
    wait_until(lambda: r.llen("gw:parked:p2") == 0 and
               r.xlen("gw:q:email") == 0, 30, "parked messages resolved")
    c = r.hgetall("gw:campaign:p2")
    expanded = int(c["expanded"])
    sent = int(c.get("n_delivered", 0))
    cancelled = int(c.get("n_cancelled", 0))
    check(sent + cancelled == expanded,
          "every expanded message delivered or cancelled (%d + %d != %d)"
          % (sent, cancelled, expanded))
    check(expanded < 5000, "expansion stopped by the cancel")
    check(gw.stop() == 0, "clean exit")

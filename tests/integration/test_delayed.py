"""Delayed sends: send_at in the future waits in gw:delayed and leaves on
time; a temporary channel failure is retried from gw:delayed."""

import datetime
import os
import time

from harness import check, message_job, wait_until, xadd_jobs


def _iso(t):
    return datetime.datetime.fromtimestamp(
        t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_send_at_waits_then_sends(ctx):
    red = ctx.redis()
    r = red.client()
    gw = ctx.gateway(red.url).start()
    due = int(time.time()) + 3
    xadd_jobs(r, [message_job(1, send_at=_iso(due))])
    wait_until(lambda: r.hget("gw:msg:m-email-1", "state") == "deferred",
               10, "deferred until send_at")
    check(r.zcard("gw:delayed") == 1, "in gw:delayed")
    time.sleep(max(0, due - time.time() - 0.5))
    check(not gw.outbox_files("email"), "not sent before send_at")
    wait_until(lambda: gw.outbox_files("email"), 10, "sent at send_at")
    late = time.time() - due
    check(late < 1.5, "left %.2f s after send_at" % late)
    moves = [(e["from"], e["to"]) for _, e in r.xrange("gw:events")
             if e.get("msg") == "m-email-1"]
    check(moves == [("", "queued"), ("queued", "deferred"),
                    ("deferred", "sending"), ("sending", "delivered")],
          "transitions %r" % moves)
    check(gw.stop() == 0, "clean exit")


def test_tempfail_is_retried(ctx):
    red = ctx.redis()
    r = red.client()
    gw = ctx.gateway(red.url, sets=["dispatch.retry_base_ms=500",
                                    "dispatch.retry_max_ms=1000"]).start()
    d = os.path.join(gw.outbox, "email")
    os.chmod(d, 0o500)                  # the disk "fails": EACCES
    try:
        if os.access(d, os.W_OK):       # root ignores modes: use a file
            os.chmod(d, 0o755)
            os.rename(d, d + ".away")
            open(d, "w").close()
        xadd_jobs(r, [message_job(2)])
        wait_until(lambda: r.hget("gw:msg:m-email-2", "state") ==
                   "deferred", 10, "deferred after a temporary failure")
        reason = r.hget("gw:msg:m-email-2", "reason")
        check("outbox" in reason, "reason names the outbox: %r" % reason)
    finally:
        if os.path.isfile(d):
            os.unlink(d)
            os.rename(d + ".away", d)
        os.chmod(d, 0o755)
    wait_until(lambda: gw.outbox_files("email"), 15, "retried and sent")
    check(r.hget("gw:msg:m-email-2", "state") == "delivered", "delivered")
    check(int(r.hget("gw:msg:m-email-2", "attempts")) >= 2, "two attempts")
    check(gw.stop() == 0, "clean exit")

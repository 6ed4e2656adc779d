"""Templates in the daemon: folder and Redis-hash sets, reload on a new
version, template errors to gw:dead with part/line/col, render failures
(strict, header injection) recorded on the message, escaping by part."""

import json
import os
import time

from harness import check, wait_until, xadd_jobs


def _msg(i, template, channel="email", rcpt=None, vars=None, **kw):
    r = {"customer_id": "c%d" % i, "email": "u%d@example.org" % i,
         "phone": "+4915100000%03d" % i}
    r.update(rcpt or {})
    j = {"type": "message", "id": "t-%d" % i, "channel": channel,
         "template": template, "recipient": r}
    if vars is not None:
        j["vars"] = vars
    j.update(kw)
    return j


def _doc(gw, channel, key):
    with open(os.path.join(gw.outbox, channel, key + ".json")) as f:
        return json.load(f)


def test_rendered_content_and_escaping(ctx):
    red = ctx.redis()
    r = red.client()
    gw = ctx.gateway(red.url).start()
    xadd_jobs(r, [_msg(1, "welcome", rcpt={"vars": {"first_name":
                                                    "<b>Ann & \"Bo\"</b>"}},
                       vars={"n": 7})])
    wait_until(lambda: gw.outbox_files("email"), 20, "delivered")
    d = _doc(gw, "email", "t-1")
    check(d["subject"] == 'Hello <b>Ann & "Bo"</b> (c1)',
          "subject raw: %r" % d["subject"])
    check("Dear &lt;b&gt;Ann &amp; &quot;Bo&quot;&lt;/b&gt;," in d["html"],
          "html escaped: %r" % d["html"])
    check("<b>7</b>" in d["html"], "campaign var in html")
    check("Dear <b>Ann & \"Bo\"</b>," in d["text"],
          "text derived from html, unescaped: %r" % d["text"])
    check(d["to"] == "u1@example.org", "to")
    check(gw.stop() == 0, "clean exit")


def test_redis_template_versions_and_errors(ctx):
    red = ctx.redis()
    r = red.client()
    gw = ctx.gateway(red.url, sets=["templates.check_ms=100"]).start()
    r.hset("gw:tpl:promo", mapping={"version": "1", "subject": "v1 {{x}}",
                                    "text": "one {{x}}"})
    xadd_jobs(r, [_msg(1, "promo", vars={"x": "a"})])
    wait_until(lambda: gw.outbox_files("email"), 20, "v1 delivered")
    check(_doc(gw, "email", "t-1")["subject"] == "v1 a", "v1 used")
    r.hset("gw:tpl:promo", mapping={"version": "2", "subject": "v2 {{x}}"})
    time.sleep(0.3)
    xadd_jobs(r, [_msg(2, "promo", vars={"x": "b"})])
    wait_until(lambda: len(gw.outbox_files("email")) == 2, 20,
               "v2 delivered")
    check(_doc(gw, "email", "t-2")["subject"] == "v2 b", "reloaded on a "
          "new version: %r" % _doc(gw, "email", "t-2")["subject"])

    # A broken template: its jobs go to gw:dead, others go on.
    r.hset("gw:tpl:broken", mapping={"version": "1", "subject": "s",
                                     "html": "<p>\n{{#items}}x\n</p>"})
    xadd_jobs(r, [_msg(3, "broken"), _msg(4, "nosuch"), _msg(5, "promo",
                                                             vars={"x": 1})])
    wait_until(lambda: r.xlen("gw:dead") == 2, 20, "two dead jobs")
    reasons = {json.loads(e["job"])["template"]: e["reason"]
               for _, e in r.xrange("gw:dead")}
    check(reasons["broken"].startswith("template: template broken, part "
                                       "html, line ") and "col" in
          reasons["broken"], "names template, part, line, col: %r"
          % reasons["broken"])
    check("no template 'nosuch'" in reasons["nosuch"], reasons["nosuch"])
    check(all(e["class"] == "template" for _, e in r.xrange("gw:dead")),
          "class template")
    wait_until(lambda: len(gw.outbox_files("email")) == 3, 20,
               "the good job still delivered")
    # A template without the channel's part.
    xadd_jobs(r, [_msg(6, "promo", channel="sms")])
    wait_until(lambda: r.xlen("gw:dead") == 3, 20, "no sms part: dead")
    check("has no sms part" in r.xrange("gw:dead")[-1][1]["reason"],
          "reason names the missing part")
    check(gw.stop() == 0, "clean exit")


def test_render_failures_fail_the_message(ctx):
    red = ctx.redis()
    r = red.client()
    gw = ctx.gateway(red.url).start()
    r.hset("gw:tpl:strict", mapping={"strict": "true",
                                     "subject": "Hi {{first_name}}",
                                     "text": "x"})
    xadd_jobs(r, [_msg(1, "strict"),
                  _msg(2, "welcome", rcpt={"vars": {"first_name":
                                                    "Ann\r\nBcc: x@evil.org"}}),
                  _msg(3, "strict", rcpt={"vars": {"first_name": "Ann"}})])
    wait_until(lambda: r.hget("gw:msg:t-1", "state") == "failed" and
               r.hget("gw:msg:t-2", "state") == "failed" and
               r.hget("gw:msg:t-3", "state") == "delivered", 20,
               "two failed, one delivered")
    check("missing variable 'first_name'" in r.hget("gw:msg:t-1", "reason"),
          r.hget("gw:msg:t-1", "reason"))
    check("subject" in r.hget("gw:msg:t-2", "reason"),
          r.hget("gw:msg:t-2", "reason"))
    check(gw.outbox_files("email") == ["t-3.json"], "nothing else written")
    check(gw.stop() == 0, "clean exit")

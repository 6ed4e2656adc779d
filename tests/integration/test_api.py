"""The admin API (/api/, bearer token) and the touch history, against a
real redis-server and gatewayd with the outbox: every endpoint refuses a
missing or wrong token; a customer's touches list each send and outcome
with counts per channel and template; campaign status and control;
suppress and resubscribe take effect at dispatch."""

import json
import time
import urllib.error
import urllib.request

from harness import check, wait_until, xadd_jobs

TOKEN = "t0ken-for-tests-0123456789abcdef"


def _call(gw, method, path, body=None, token=TOKEN):
    req = urllib.request.Request(
        "http://127.0.0.1:%d%s" % (gw.http_port, path), method=method,
        data=json.dumps(body).encode() if body is not None else None)
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as f:
            return f.status, json.loads(f.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _msg(key, channel, cust, **extra):
    r = {"customer_id": cust, "email": "%s@example.org" % cust,
         "phone": "+4915100000077", "fax": "+4930000000077"}
    job = {"type": "message", "id": key, "channel": channel,
           "template": "welcome", "recipient": r, "class": "transactional"}
    job.update(extra)
    return job


def test_api_auth_touches_campaign_suppress(ctx):
    red = ctx.redis()
    r = red.client()
    gw = ctx.gateway(red.url, sets=['http.api_token="%s"' % TOKEN]).start()

    # no token, a wrong one, one byte off, another scheme: 401 everywhere
    for tok in (None, "wrong", TOKEN[:-1] + "x", TOKEN + "x"):
        for method, path in (("GET", "/api/customers/anna/touches"),
                             ("GET", "/api/campaigns/x"),
                             ("POST", "/api/suppress")):
            st, body = _call(gw, method, path, {} if method == "POST"
                             else None, token=tok)
            check(st == 401 and "error" in body,
                  "%s %s with %r: %d" % (method, path, tok, st))

    xadd_jobs(r, [_msg("t-e1", "email", "anna"), _msg("t-s1", "sms", "anna"),
                  _msg("t-f1", "fax", "anna")])
    wait_until(lambda: all(r.hget("gw:msg:" + k, "state") == "delivered"
                           for k in ("t-e1", "t-s1", "t-f1")), 20,
               "three delivered")
    st, body = _call(gw, "GET", "/api/customers/anna/touches")
    check(st == 200, "touches: %d %r" % (st, body))
    sends = [t for t in body["touches"] if t["type"] == "send"]
    check(len(sends) == 3, "one send touch per message: %r" % body)
    check(body["counts"]["sent_by_channel"] == {"email": 1, "sms": 1,
                                                 "fax": 1},
          "counts per channel: %r" % body["counts"])
    check(body["counts"]["sent_by_template"] == {"welcome": 3},
          "counts per template: %r" % body["counts"])
    st, body = _call(gw, "GET", "/api/customers/nobody/touches")
    check(st == 200 and body["touches"] == [], "unknown customer: empty")

    # campaign status and control through the queue
    xadd_jobs(r, [{"type": "campaign", "id": "c-api", "channel": "email",
                   "template": "welcome", "send_at": time.strftime(
                       "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30)),
                   "audience": {"recipients": [
                       {"customer_id": "x%d" % i,
                        "email": "x%d@example.org" % i} for i in range(3)]}}])
    wait_until(lambda: r.hget("gw:campaign:c-api", "state") == "running", 10,
               "campaign created")
    st, body = _call(gw, "GET", "/api/campaigns/c-api")
    check(st == 200 and body["state"] == "running" and
          body["definition"]["id"] == "c-api", "campaign status: %r" % body)
    st, body = _call(gw, "POST", "/api/campaigns/c-api/pause")
    check(st == 202, "pause queued: %d %r" % (st, body))
    wait_until(lambda: r.hget("gw:campaign:c-api", "state") == "paused", 10,
               "paused through the API")
    st, _ = _call(gw, "GET", "/api/campaigns/none")
    check(st == 404, "unknown campaign: 404")
    st, _ = _call(gw, "POST", "/api/campaigns/c-api/explode")
    check(st == 405, "unknown action: 405")

    # suppress at dispatch; resubscribe only through the API
    st, body = _call(gw, "POST", "/api/suppress",
                     {"channel": "email", "address": "Bob@Example.org"})
    check(st == 200 and body["changed"], "suppressed: %r" % body)
    xadd_jobs(r, [_msg("t-b1", "email", "bob")])
    wait_until(lambda: r.hget("gw:msg:t-b1", "state") == "suppressed", 10,
               "suppressed at dispatch")
    st, body = _call(gw, "DELETE", "/api/suppress",
                     {"channel": "email", "address": "bob@example.org"})
    check(st == 200 and body["changed"], "resubscribed: %r" % body)
    xadd_jobs(r, [_msg("t-b2", "email", "bob")])
    wait_until(lambda: r.hget("gw:msg:t-b2", "state") == "delivered", 10,
               "delivered after resubscribe")
    for bad in ({}, {"channel": "email", "address": "not an address"},
                {"channel": "pigeon", "address": "x@y.org"}):
        st, _ = _call(gw, "POST", "/api/suppress", bad)
        check(st == 400, "bad suppress body %r: %d" % (bad, st))
    check(gw.healthz() == 200, "healthy")
    check(gw.stop() == 0, "clean exit")


def test_api_off_without_token(ctx):
    red = ctx.redis()
    gw = ctx.gateway(red.url).start()
    st, body = _call(gw, "GET", "/api/customers/anna/touches")
    check(st == 404 and "api_token" in body["error"], "off: %d %r"
          % (st, body))
    check(gw.stop() == 0, "clean exit")

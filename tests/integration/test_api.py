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


def _campaign(cid, channel, custs):
    return {"type": "campaign", "id": cid, "channel": channel,
            "template": "welcome", "class": "transactional",
            "audience": {"recipients": [
                {"customer_id": c, "email": "%s@example.org" % c,
                 "phone": "+491510000%04d" % i, "fax": "+49300000%04d" % i}
                for i, c in enumerate(custs)]}}


def test_api_conversions_attribution_roi(ctx):
    """Overlapping campaigns, figures by hand. anna gets A (email), then B
    (sms), then C (fax); bob gets B. anna buys for 90, bob for 40, carl
    (never reached) for 10. Prices: email 0.01, SMS 0.05, fax page 0.10.
      A: last 0,  linear 30; cost 0.01 -> ROI -1 / 2999
      B: last 40, linear 70; cost 0.10 -> ROI 399 / 699
      C: last 90, linear 30; cost 0.10 -> ROI 899 / 299
    A repeated conversion id changes nothing."""
    red = ctx.redis()
    r = red.client()
    gw = ctx.gateway(red.url, sets=['http.api_token="%s"' % TOKEN]).start()
    with open(gw.config, "a") as f:
        f.write('\n[price]\ncurrency = "EUR"\nemail = 0.01\nfax_page = 0.1\n'
                '\n[price.sms]\ndefault = 0.05\n')
    gw.stop()
    gw.start()
    for cid, ch, custs in (("A", "email", ["anna"]),
                           ("B", "sms", ["anna", "bob"]),
                           ("C", "fax", ["anna"])):
        xadd_jobs(r, [_campaign(cid, ch, custs)])
        keys = ["%s:%s:%s" % (cid, c, ch) for c in custs]
        wait_until(lambda: all(r.hget("gw:msg:" + k, "state") == "delivered"
                               for k in keys), 20, "campaign %s sent" % cid)
        time.sleep(0.01)    # touches strictly ordered
    xadd_jobs(r, [{"type": "conversion", "id": "o-1", "customer_id": "anna",
                   "amount": 90, "currency": "EUR"}])
    wait_until(lambda: r.exists("gw:conv:o-1"), 10, "job conversion")
    st, body = _call(gw, "POST", "/api/conversions",
                     {"id": "o-2", "customer_id": "bob", "amount": 40.0,
                      "currency": "EUR"})
    check(st == 200 and body["last_touch"] == "B" and body["touches"] == 1,
          "bob's conversion: %r" % body)
    st, body = _call(gw, "POST", "/api/conversions",
                     {"id": "o-3", "customer_id": "carl", "amount": 10,
                      "currency": "EUR"})
    check(st == 200 and body["last_touch"] == "", "carl unattributed")
    st, body = _call(gw, "POST", "/api/conversions",
                     {"id": "o-2", "customer_id": "bob", "amount": 40.0,
                      "currency": "EUR"})
    check(st == 200 and body["duplicate"], "idempotent by id: %r" % body)
    st, body = _call(gw, "POST", "/api/conversions",
                     {"id": "o-4", "customer_id": "bob", "amount": 1,
                      "currency": "USD"})
    check(st == 400 and "currency" in body["error"], "currency checked")
    st, body = _call(gw, "POST", "/api/conversions", {"id": "o-5"})
    check(st == 400, "incomplete conversion: 400")

    st, rep = _call(gw, "GET", "/api/reports/roi")
    check(st == 200 and rep["currency"] == "EUR", "report: %d" % st)
    rows = {x["campaign"]: x for x in rep["campaigns"]}
    want = {"A": (0, 30, 0.01, -1, 2999, 1), "B": (40, 70, 0.10, 399, 699, 2),
            "C": (90, 30, 0.10, 899, 299, 1)}
    for cid, (last, lin, cost, roi_l, roi_lin, sent) in want.items():
        x = rows[cid]
        for k, v in (("revenue_last_touch", last), ("revenue_linear", lin),
                     ("cost", cost), ("roi_last_touch", roi_l),
                     ("roi_linear", roi_lin), ("sent", sent),
                     ("delivered", sent), ("recipients", sent)):
            check(abs(float(x[k]) - v) < 1e-6, "%s %s: %r, want %r"
                  % (cid, k, x[k], v))
    check(abs(rows["B"]["conversions_last_touch"] - 1) < 1e-9 and
          abs(rows["A"]["conversions_linear"] - 1 / 3) < 1e-6,
          "conversion counts: %r" % rows)
    req = urllib.request.Request("http://127.0.0.1:%d/api/reports/roi?"
                                 "format=csv" % gw.http_port)
    req.add_header("Authorization", "Bearer " + TOKEN)
    with urllib.request.urlopen(req, timeout=10) as f:
        csv = f.read().decode()
        check(f.headers["Content-Type"].startswith("text/csv"), "CSV type")
    lines = csv.strip().split("\r\n")
    check(lines[0].startswith("campaign,channel,recipients,sent") and
          len(lines) == 4 and lines[3].startswith("C,fax,"),
          "CSV rows: %r" % lines)
    touches = _call(gw, "GET", "/api/customers/anna/touches")[1]
    check(sum(1 for t in touches["touches"] if t["type"] == "conversion")
          == 1, "the conversion is on anna's touch history")
    check(gw.stop() == 0, "clean exit")

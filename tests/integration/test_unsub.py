"""Unsubscribe links end to end: marketing messages carry a signed
/u/<token> link; GET shows a page and changes nothing (scanners prefetch);
POST (RFC 8058 one-click body or the page's button) unsubscribes once at
the token's or the chosen scope, and the next message is suppressed at
dispatch; 1,000 forged, truncated or altered tokens are refused with 4xx
and change nothing."""

import json
import random
import re
import time
import urllib.error
import urllib.request

from harness import check, wait_until, xadd_jobs


def _http(gw, method, path, body=None, ctype=None):
    req = urllib.request.Request(
        "http://127.0.0.1:%d%s" % (gw.http_port, path), method=method,
        data=body)
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=10) as f:
            return f.status, f.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _campaign(cid, custs, channel="email", **extra):
    job = {"type": "campaign", "id": cid, "channel": channel,
           "template": "news", "class": "marketing", "vars": {"offer": "2x1"},
           "audience": {"recipients": [
               {"customer_id": c, "email": "%s@Example.org" % c,
                "phone": "+4915100%05d" % i, "tz": "Europe/Berlin",
                "vars": {"first_name": c.title()}}
               for i, c in enumerate(custs)]}}
    job.update(extra)
    return job


def _outbox_json(gw, channel, key):
    import os
    with open(os.path.join(gw.outbox, channel, key + ".json")) as f:
        return json.load(f)


def _suppress_state(r):
    return (sorted(r.keys("gw:unsub:*")),
            sorted(r.smembers("gw:suppress:email")),
            sorted(r.smembers("gw:suppress:customer")),
            len([1 for _, e in r.xrange("gw:events")
                 if e.get("type") == "unsubscribe"]))


def test_unsubscribe_get_post_scopes_and_forgeries(ctx):
    red = ctx.redis()
    r = red.client()
    gw = ctx.gateway(red.url).start()
    xadd_jobs(r, [_campaign("nl-1", ["anna", "bob"])])
    keys = ["nl-1:anna:email", "nl-1:bob:email"]
    wait_until(lambda: all(r.hget("gw:msg:" + k, "state") == "delivered"
                           for k in keys), 20, "newsletter delivered")
    html = _outbox_json(gw, "email", keys[0])
    text = json.dumps(html)
    m = re.search(r"http://127\.0\.0\.1:%d/u/([A-Za-z0-9_.-]+)"
                  % gw.http_port, text)
    check(m, "an unsubscribe link in the rendered message: %s" % text[:400])
    tok = m.group(1)
    tok_bob = re.search(r"/u/([A-Za-z0-9_.-]+)", json.dumps(
        _outbox_json(gw, "email", keys[1]))).group(1)
    check(tok != tok_bob, "one token per recipient")

    before = _suppress_state(r)
    for _ in range(3):
        st, page = _http(gw, "GET", "/u/" + tok)
        check(st == 200 and "<form" in page and "anna@example.org" in page,
              "GET shows the page: %d" % st)
    check(_suppress_state(r) == before, "GET changes nothing")

    # RFC 8058 one-click: campaign scope (the token's)
    st, body = _http(gw, "POST", "/u/" + tok,
                     b"List-Unsubscribe=One-Click",
                     "application/x-www-form-urlencoded")
    check(st == 200, "one-click POST: %d %s" % (st, body))
    check(r.sismember("gw:unsub:nl-1", "anna"), "anna off list nl-1")
    st, _ = _http(gw, "POST", "/u/" + tok, b"List-Unsubscribe=One-Click",
                  "application/x-www-form-urlencoded")
    check(st == 200, "repeat is fine")
    ev = [e for _, e in r.xrange("gw:events") if e.get("type") ==
          "unsubscribe"]
    check(len(ev) == 1 and ev[0]["scope"] == "campaign" and
          ev[0]["campaign"] == "nl-1", "one unsubscribe event: %r" % ev)
    check(r.hget("gw:campaign:nl-1", "unsubscribed") == "1",
          "counted on the campaign")
    touches = [e for _, e in r.xrange("gw:touch:anna")
               if e.get("type") == "unsubscribe"]
    check(len(touches) == 1, "on anna's touch history")

    # bob presses "stop all email" on the page: channel scope
    st, _ = _http(gw, "POST", "/u/" + tok_bob, b"scope=channel",
                  "application/x-www-form-urlencoded")
    check(st == 200 and r.sismember("gw:suppress:email", "bob@example.org"),
          "bob's address suppressed for email")

    # the same campaign again (a second wave with new ids): anna is
    # suppressed for nl-1 only; bob for every email
    xadd_jobs(r, [_campaign("nl-1b", ["anna", "bob"]),
                  _campaign("nl-1", ["anna"], id="nl-1")])
    wait_until(lambda: r.hget("gw:msg:nl-1b:anna:email", "state") ==
               "delivered" and r.hget("gw:msg:nl-1b:bob:email", "state") ==
               "suppressed", 20, "anna gets other lists, bob nothing")

    # forgeries: 1,000 altered, truncated and made-up tokens
    rnd = random.Random(8058)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    forged = set()
    while len(forged) < 1000:
        kind = rnd.randrange(5)
        t = list(tok)
        if kind == 0:
            i = rnd.randrange(len(t))
            t[i] = rnd.choice([c for c in alphabet if c != t[i]])
        elif kind == 1:
            t = t[:rnd.randrange(1, len(t))]
        elif kind == 2:
            t += list(rnd.choice(alphabet) * rnd.randrange(1, 4))
        elif kind == 3:
            p, s = tok.split(".")
            t = list(p + "." + tok_bob.split(".")[1])
        else:
            t = list("".join(rnd.choice(alphabet) for _ in
                             range(rnd.randrange(1, 200))))
        f = "".join(t)
        if f not in (tok, tok_bob):
            forged.add(f)
    before = _suppress_state(r)
    for f in forged:
        st, _ = _http(gw, "POST", "/u/" + f, b"List-Unsubscribe=One-Click",
                      "application/x-www-form-urlencoded")
        check(400 <= st < 500, "forged token refused: %d for %r" % (st, f))
    check(_suppress_state(r) == before, "forgeries changed nothing")
    check(gw.healthz() == 200, "healthy")
    check(gw.stop() == 0, "clean exit")


def test_unsubscribe_sms_link_and_transactional_has_none(ctx):
    red = ctx.redis()
    r = red.client()
    gw = ctx.gateway(red.url).start()
    xadd_jobs(r, [_campaign("sms-1", ["cara"], channel="sms",
                            window={"start": "00:00", "end": "24:00"}),
                  {"type": "message", "id": "receipt-1", "channel": "email",
                   "template": "news", "class": "transactional",
                   "recipient": {"customer_id": "dan",
                                 "email": "dan@example.org"}}])
    wait_until(lambda: r.hget("gw:msg:receipt-1", "state") == "delivered",
               20, "transactional delivered")
    txt = json.dumps(_outbox_json(gw, "email", "receipt-1"))
    check("/u/" not in txt, "no unsubscribe link on a transactional email")
    check(gw.stop() == 0, "clean exit")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


def _get(gw, path, ua):
    op = urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (gw.http_port,
                                                            path))
    req.add_header("User-Agent", ua)
    try:
        with op.open(req, timeout=10) as f:
            return f.status, f.headers, f.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


CHROME = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
          "Gecko) Chrome/120.0.0.0 Safari/537.36")


def test_opens_and_clicks_human_and_machine(ctx):
    red = ctx.redis()
    r = red.client()
    gw = ctx.gateway(red.url).start()
    xadd_jobs(r, [_campaign("nl-2", ["erin"])])
    key = "nl-2:erin:email"
    wait_until(lambda: r.hget("gw:msg:" + key, "state") == "delivered", 20,
               "delivered")
    html = _outbox_json(gw, "email", key)
    text = json.dumps(html)
    base = "http://127.0.0.1:%d" % gw.http_port
    opens = re.findall(re.escape(base) + r"/o/([A-Za-z0-9_.-]+)", text)
    clicks = re.findall(re.escape(base) + r"/c/([A-Za-z0-9_.-]+)", text)
    check(len(opens) == 1 and len(clicks) == 1,
          "one pixel and one tracked link (the unsubscribe link is not "
          "rewritten): %s" % text[:600])
    check(re.search(re.escape(base) + r"/u/", text), "unsubscribe kept")

    # within 2 s of the hand-over: a machine, whoever it claims to be
    st, hd, body = _get(gw, "/o/" + opens[0], CHROME)
    check(st == 200 and body[:6] == b"GIF89a" and
          hd.get("Content-Type") == "image/gif", "the pixel: %d %r" % (st, hd))
    time.sleep(2.2)
    _get(gw, "/o/" + opens[0], "Mozilla/5.0 (Windows NT 10.0; Win64; x64; "
         "rv:109.0) Gecko/20100101 Firefox/119.0 via ggpht.com "
         "GoogleImageProxy")
    _get(gw, "/o/" + opens[0], CHROME)
    _get(gw, "/o/" + opens[0], CHROME)
    time.sleep(3)
    st, hd, _ = _get(gw, "/c/" + clicks[0], CHROME)
    check(st == 302 and hd.get("Location") ==
          "https://shop.example.org/deals?x=1&y=2",
          "redirects to the signed URL only: %d %r" % (st, hd))
    # altered click tokens never redirect anywhere
    for i in range(0, len(clicks[0]), max(1, len(clicks[0]) // 40)):
        t = list(clicks[0])
        t[i] = "A" if t[i] != "A" else "B"
        st, hd, _ = _get(gw, "/c/" + "".join(t), CHROME)
        check(400 <= st < 500 and hd.get("Location") is None,
              "forged click refused: %d" % st)
    st, _, _ = _get(gw, "/c/" + opens[0], CHROME)
    check(st == 400, "an open token is not a click token")

    def counts():
        c = r.hgetall("gw:campaign:nl-2")
        return (c.get("opens_human"), c.get("opens_machine"),
                c.get("clicks"))
    wait_until(lambda: counts() == ("1", "2", "1"), 10,
               "1 human open (unique), 2 machine opens, 1 click: %r"
               % (counts(),))
    ev = [e for _, e in r.xrange("gw:events") if e.get("type") in
          ("open", "click")]
    check(len(ev) == 5 and sum(e["machine"] == "1" for e in ev) == 2,
          "every hit an event: %r" % ev)
    check(gw.stop() == 0, "clean exit")

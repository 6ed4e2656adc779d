"""The fax channel (channels/fax.c) through gatewayd against the fake
Telnyx-shaped provider tests/fakes/fake_fax.py (run with Debian's
/usr/bin/python3, which has python3-cryptography):
  - delivered: the PDF the fake fetched from GET /media/<token> has pages
    (= the ledger's units) and page 1 carries the recipient's name and the
    opt-out notice with both numbers; webhooks shuffled, duplicated, late
    and forged still give exactly one event per transition, never
    backwards; forged copies answered 401;
  - the media link expires (404 afterwards), forged tokens are 404;
  - user_busy -> retried -> delivered; a permanent failure_reason fails;
    API 422 fails at once; API 429 waits >= Retry-After then delivers;
  - webhooks we forge ourselves (unsigned, wrong key, stale, future,
    altered body, garbage) are 401 and change nothing; malformed JSON is
    400, an oversized body 413 (or 400); the daemon stays healthy; a valid
    signature then works;
  - inbound: fax.received -> the PDF under inbound_dir, an event, a touch on
    the matching customer's history (or unmatched); a media_url on a host
    not in inbound_hosts is never fetched;
  - media = "upload" (multipart) on letter paper delivers;
  - a recipient number that is not E.164 is never sent.

ASSUMPTIONS about the gateway (adjust here if the gateway differs):
  A1 ledger gw:msg:<job id>: state, provider_id (the fake's fax id, lower
     case), attempts, reason; units = pages when present (checked only if
     the field exists; a field "pages" is accepted as well).
  A2 gw:events state changes: type=state (or no type) with msg, from, to;
     the final state appears once; a deferred retry says why in reason
     (user_busy / 429 are looked for in the reasons of that message).
  A3 fax.failed user_busy / receiver_no_answer are temporary (retried),
     receiver_invalid_number_format is permanent; the ledger reason of the
     failure contains the provider's failure_reason.
  A4 an API 422 fails the message at once (reason contains "422" or the
     Telnyx error title "Invalid phone number"); a 429 is retried no
     sooner than Retry-After.
  A5 webhooks: 401 for any signature/timestamp problem, 400 for a body
     that does not parse (also [] and a known event without fax_id),
     413 (or 400) over [http] max_body, 405/404 for GET, 404 for an
     unknown provider; forged copies never change the ledger.
  A6 inbound: one event per fax id whose fields include the fax id
     (type fax_in, matched/customer when present), the PDF stored under
     inbound_dir (found by content), and an entry on gw:touch:<customer>
     mentioning the fax id when the sender's fax number belongs to a
     customer. A customer is created with the job
     {"type":"customer","id":..,"customer":{"customer_id":"c42","fax":..}}
     (job.c as being written); if that is dead-lettered, the flat form
     {"type":"customer","id":"c42","fax":..,"name":..} is tried.
  A7 a disallowed media host: the webhook gets a non-2xx answer (or 2xx),
     the fake records no fetch, no file, no event for that fax id.
  A8 recipient numbers: intake refuses non-E.164 (gw:dead, reason names
     recipient.fax); a number intake takes but the fax channel does not
     ("+" and 7 digits: fax_e164_ok wants 8-15) ends failed, or in gw:dead;
     either way the provider never sees it.
  A9 the fax_offer template (tests/integration/templates/fax_offer) has an
     <img src="logo.png">: the renderer must accept a PNG image.
"""

import base64
import hashlib
import http.client
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

from harness import TestFailure, check, wait_until, xadd_jobs

HERE = os.path.dirname(os.path.abspath(__file__))
FAKES = os.path.join(os.path.dirname(HERE), "fakes")
sys.path.insert(0, FAKES)
import fake_fax  # noqa: E402  (make_pdf, sign, pub_b64, pdf_check)

from cryptography.hazmat.primitives.asymmetric.ed25519 import \
    Ed25519PrivateKey  # noqa: E402

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") \
    else sys.executable
SEED = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"
KEY = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(SEED))
WRONG = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"x").digest())
PUBLIC_KEY = fake_fax.pub_b64(KEY)
API_KEY = "KEY-test-fax"
CONN = "conn1"
FAX_FROM = "+15550001111"
OPTOUT_PHONE = "+1 555 000 2222"
OPTOUT_FAX = "+1 555 000 3333"
PROVIDER = "fax1"
NAME = "Erika Mustermann"
VARS = {"discount": 20, "valid_until": "2025-06-30",
        "contact": "+1 555 000 4444",
        "items": [{"item": "Paper A4, 500 sheets", "price": "9.90",
                   "offer": "7.92"},
                  {"item": "Toner cartridge", "price": "49.00",
                   "offer": "39.20"}]}


def _num(block, suffix):
    """+1555 <3-digit block> <4-digit script suffix>: 11 digits."""
    return "+1555%03d%s" % (block, suffix)


# ---- the fake ----

class FakeFax:
    def __init__(self, workdir, webhook, *opts, name="fake_fax"):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.statepath = os.path.join(self.dir, "state.json")
        self.errpath = os.path.join(self.dir, "stderr.log")
        self.webhook = webhook
        self.opts = list(opts)
        self.proc = None

    def start(self):
        self.errlog = open(self.errpath, "ab")
        self.proc = subprocess.Popen(
            [PYTHON, os.path.join(FAKES, "fake_fax.py"), "--port", "0",
             "--webhook", self.webhook, "--api-key", API_KEY,
             "--connection-id", CONN, "--seed", SEED, "--state",
             self.statepath, "--dir", os.path.join(self.dir, "pdf")] +
            self.opts, stdout=subprocess.PIPE, stderr=self.errlog)
        q = queue.Queue()
        threading.Thread(target=lambda: q.put(self.proc.stdout.readline()),
                         daemon=True).start()
        try:
            first = json.loads(q.get(timeout=15))
        except (queue.Empty, ValueError):
            self.kill()
            raise TestFailure("fake_fax did not start (stderr in %s)"
                              % self.errpath)
        check(first["public_key"] == PUBLIC_KEY, "fake's public key")
        self.port = first["port"]
        self.url = "http://127.0.0.1:%d" % self.port
        return self

    def _req(self, path, doc=None):
        data = None if doc is None else json.dumps(doc).encode()
        req = urllib.request.Request(self.url + path, data=data,
                                     method="GET" if doc is None else "POST",
                                     headers={"Content-Type":
                                              "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def state(self):
        st, doc = self._req("/_fake/state")
        check(st == 200, "fake state: %r" % st)
        return doc

    def subs(self, number):
        return [s for s in self.state()["submissions"] if s["to"] == number]

    def accepted(self, number):
        return [s for s in self.subs(number) if s["http_status"] == 202]

    def config(self, **kw):
        st, doc = self._req("/_fake/config", kw)
        check(st == 200, "fake config: %r %r" % (st, doc))

    def inbound(self, **kw):
        st, doc = self._req("/_fake/inbound", kw)
        check(st == 200, "fake inbound: %r %r" % (st, doc))
        return doc

    def inbound_rec(self, fax_id):
        for i in self.state()["inbound"]:
            if i["fax_id"] == fax_id:
                return i
        return None

    def wait_done(self, number, n=1, timeout=20):
        """The n-th accepted submission of number has posted every event."""
        return wait_until(lambda: len(self.accepted(number)) >= n and
                          self.accepted(number)[n - 1]["done"] and
                          self.accepted(number)[n - 1], timeout,
                          "fake: webhooks of submission %d to %s posted"
                          % (n, number))

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self):
        if not self.proc:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TestFailure("fake_fax did not stop")
        self.proc = None
        self.errlog.close()
        check(rc == 0, "fake_fax exit %r (stderr %s)" % (rc, self.errpath))


def fax_sets(fake_port, gw_port, inbound_dir, name=PROVIDER, **kw):
    """--set lines for provider NAME (type fax) against the fake, made the
    fax channel's provider. Keyword arguments are provider keys."""
    conf = {"type": "fax", "channels": ["fax"],
            "base_url": "http://127.0.0.1:%d" % fake_port,
            "api_key": API_KEY, "connection_id": CONN, "from": FAX_FROM,
            "paper": "a4", "media": "url",
            "public_url": "http://127.0.0.1:%d" % gw_port,
            "webhook_public_key": PUBLIC_KEY, "webhook_tolerance_s": 300,
            "inbound_dir": inbound_dir, "inbound_hosts": ["127.0.0.1"],
            "optout_phone": OPTOUT_PHONE, "optout_fax": OPTOUT_FAX}
    conf.update(kw)
    out = []
    for k, v in conf.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, int):
            v = str(v)
        else:
            v = json.dumps(v)
        out.append("provider.%s.%s=%s" % (name, k, v))
    out.append("channel.fax.provider=%s" % name)
    return out


class Env:
    """Redis, the fake (webhooks to the gateway's port) and gatewayd."""

    def __init__(self, ctx, fake_opts=(), sets=(), **prov):
        self.ctx = ctx
        self.fake_opts = ["--rng-seed", "5", "--event-delay-ms", "10"] + \
            list(fake_opts)
        self.sets = list(sets)
        self.prov = prov

    def __enter__(self):
        ctx = self.ctx
        self.red = ctx.redis()
        self.r = self.red.client()
        self.gw = ctx.gateway(self.red.url)
        self.port = self.gw.http_port
        self.inbound_dir = os.path.join(ctx.workdir, "fax-in")
        os.makedirs(self.inbound_dir, exist_ok=True)
        self.fax = FakeFax(ctx.workdir, "http://127.0.0.1:%d/hooks/fax/%s"
                           % (self.port, PROVIDER), *self.fake_opts).start()
        try:
            self.gw.sets += fax_sets(self.fax.port, self.port,
                                     self.inbound_dir, **self.prov)
            self.gw.sets += ["dispatch.retry_base_ms=200",
                             "dispatch.retry_max_ms=1000"] + self.sets
            self.gw.start(wait_healthy=False)
            wait_until(lambda: not self.gw.alive() or
                       self.gw.healthz() == 200, 20,
                       "gatewayd /healthz to answer 200")
            check(self.gw.alive(), "gatewayd exited at start: %s"
                  % " | ".join(self.gw.logtext().splitlines()[-3:]))
        except BaseException:
            self.fax.kill()
            raise
        return self

    def __exit__(self, *a):
        if a[0] is None:
            self.fax.stop()
        else:
            self.fax.kill()


# ---- jobs, ledger, events ----

def fax_job(key, number, name=NAME, cid=None, template="fax_offer",
            **extra):
    job = {"type": "message", "id": key, "channel": "fax",
           "template": template,
           "recipient": {"customer_id": cid or "c-" + key, "fax": number,
                         "name": name},
           "vars": VARS}
    job.update(extra)
    return job


def _led(r, key):
    return r.hgetall("gw:msg:" + key)


def _state(r, key):
    return r.hget("gw:msg:" + key, "state")


def _wait_state(r, key, states, timeout=30):
    states = {states} if isinstance(states, str) else set(states)
    wait_until(lambda: _state(r, key) in states, timeout,
               "%s to be %s" % (key, "/".join(sorted(states))))
    return _led(r, key)


def _events(r, key):
    return [e for _, e in r.xrange("gw:events")
            if e.get("msg") == key and e.get("type", "state") == "state"]


RANK = {"queued": 0, "deferred": 1, "sending": 2, "accepted": 3}


def _check_transitions(r, key, final, retried=False):
    """Exactly one event per transition; chained (each from is the last
    to); the final state once and last; without retries every state once
    and never backwards."""
    evs = _events(r, key)
    tr = [(e.get("from", ""), e.get("to", "")) for e in evs]
    tos = [t for _, t in tr]
    check(tos and tos[-1] == final and tos.count(final) == 1,
          "%s: final %s once and last: %r" % (key, final, tr))
    for (pf, pt), (f, t) in zip(tr, tr[1:]):
        check(t != pt, "%s: a transition repeated: %r" % (key, tr))
        check(not f or f == pt, "%s: events chain: %r" % (key, tr))
    if not retried:
        check(len(set(tos)) == len(tos), "%s: each state once: %r"
              % (key, tr))
        ranks = [RANK.get(t, 9) for t in tos]
        check(ranks == sorted(ranks), "%s: never backwards: %r" % (key, tr))
    check("accepted" in tos or final == "failed",
          "%s: went through accepted: %r" % (key, tr))
    return evs


def _norm(text):
    return " ".join((text or "").split())


def _check_page1(text, name):
    t = _norm(text)
    check(name in t, "page 1 has the recipient's name %r: %r"
          % (name, t[:400]))
    check(re.search(r"opt[\s-]*out", t, re.I), "page 1 has the opt-out "
          "notice: %r" % t[:600])
    digits = re.sub(r"[^0-9]", "", t)
    for n in (OPTOUT_PHONE, OPTOUT_FAX):
        check(re.sub(r"[^0-9]", "", n) in digits,
              "page 1 has the opt-out number %s: %r" % (n, t[:600]))


def _check_units(led, pages):
    for f in ("units", "pages"):
        if f in led:
            check(int(led[f]) == pages, "ledger %s %r = the fake's pdfinfo "
                  "pages %d" % (f, led[f], pages))


def _check_fake_answers(sub):
    """Valid webhooks answered 2xx, forged copies 401."""
    for w in sub["webhooks"]:
        if w["kind"] == "valid":
            check(w["status"] is not None and 200 <= w["status"] < 300,
                  "valid %s (attempt %d) answered %r %s"
                  % (w["event_type"], w["attempt"], w["status"],
                     w.get("answer")))
        else:
            check(w["status"] == 401, "forged %s (%s) answered %r, want 401"
                  % (w["event_type"], w["kind"], w["status"]))


# ---- webhooks we post ourselves ----

def _event_doc(event_type, fax_id, **payload):
    p = {"fax_id": fax_id, "connection_id": CONN, "direction": "outbound",
         "to": "+15550000000", "from": FAX_FROM,
         "status": event_type.split(".", 1)[1]}
    p.update(payload)
    return {"data": {"event_type": event_type, "id": str(uuid.uuid4()),
                     "occurred_at": fake_fax.now_iso(),
                     "record_type": "event", "payload": p},
            "meta": {"attempt": 1, "delivered_to": "x"}}


def _post(port, path, body, headers=None, method="POST"):
    """(status, body text); status None when the connection failed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    try:
        try:
            conn.request(method, path, body=body, headers=hdrs)
        except (BrokenPipeError, ConnectionResetError):
            pass                # the server may answer before reading all
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as e:
        return None, "%s: %s" % (type(e).__name__, e)
    finally:
        conn.close()


def _hook(port, body, ts="now", key=KEY, sign_body=None, sig=None,
          path="/hooks/fax/" + PROVIDER):
    """POST a webhook; ts "now" or an int; key None: unsigned; sign_body:
    sign these bytes instead of body; sig: this header value instead."""
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    hdrs = {}
    if ts is not None:
        ts = int(time.time()) if ts == "now" else ts
        hdrs["telnyx-timestamp"] = str(ts)
    if sig is not None:
        hdrs["telnyx-signature-ed25519"] = sig
    elif key is not None:
        hdrs["telnyx-signature-ed25519"] = base64.b64encode(key.sign(
            str(ts).encode() + b"|" + (sign_body or body))).decode()
    return _post(port, path, body, hdrs)


def _healthy(env):
    check(env.gw.alive(), "gatewayd is running")
    check(env.gw.healthz() == 200, "/healthz answers 200")


# ---- tests ----

def test_fax_delivered_pdf_optout_and_webhook_chaos(ctx):
    with Env(ctx, ["--shuffle", "1", "--dup", "0.7", "--bad", "0.7",
                   "--late", "1"]) as env:
        r, fax = env.r, env.fax
        num = _num(1, "0000")
        xadd_jobs(r, [fax_job("fx-1", num)])
        led = _wait_state(r, "fx-1", {"delivered", "failed"})
        check(led["state"] == "delivered", "delivered: %r" % led)
        sub = fax.wait_done(num)
        subs = fax.subs(num)
        check(len(subs) == 1 and subs[0]["http_status"] == 202,
              "one submission: %r" % [s["http_status"] for s in subs])
        check(sub["mode"] == "json" and sub["from"] == FAX_FROM and
              sub["connection_id"] == CONN, "JSON request: %r"
              % {k: sub[k] for k in ("mode", "from", "connection_id")})
        check(sub["media_url"].startswith("http://127.0.0.1:%d/media/"
                                          % env.port), "media_url %r"
              % sub["media_url"])
        m = sub["media"]
        check(m["status"] == 200 and (m["content_type"] or "").startswith(
            "application/pdf") and m["bytes"] > 0, "media fetched: %r" % m)
        pdf = sub["pdf"]
        check(pdf and pdf["pages"] and pdf["pages"] >= 1 and not
              pdf["error"], "pdfinfo read it: %r" % pdf)
        check("A4" in (pdf["page_size"] or ""), "A4 paper: %r"
              % pdf["page_size"])
        _check_page1(pdf["page1_text"], NAME)
        check(led["provider_id"] == sub["fax_id"].lower(),
              "provider_id = the fax id: %r vs %r" % (led["provider_id"],
                                                      sub["fax_id"]))
        _check_units(led, pdf["pages"])
        # the chaos: shuffled, duplicated, forged, a late sending.started
        kinds = [w["kind"] for w in sub["webhooks"]]
        check(any(k != "valid" for k in kinds), "forged copies were sent")
        check(any(w.get("late") for w in sub["webhooks"]),
              "a late fax.sending.started was sent")
        check(any(w["attempt"] == 2 for w in sub["webhooks"]),
              "duplicates were sent")
        _check_fake_answers(sub)
        time.sleep(0.5)
        led = _led(r, "fx-1")
        check(led["state"] == "delivered" and "forged" not in
              led.get("reason", ""), "still delivered: %r" % led)
        _check_transitions(r, "fx-1", "delivered")
        _healthy(env)
        check(env.gw.stop() == 0, "gatewayd exit 0")


def test_fax_media_link_expires_and_forged_tokens(ctx):
    with Env(ctx, ["--shuffle", "0", "--dup", "0", "--bad", "0"],
             media_ttl_ms=2000) as env:
        r, fax = env.r, env.fax
        num = _num(2, "0000")
        xadd_jobs(r, [fax_job("fx-2", num)])
        sub = fax.wait_done(num)
        check(sub["media"]["status"] == 200, "fetched: %r" % sub["media"])
        t_fetch = sub["media"]["fetched_at"]
        token = sub["media_url"].split("/media/", 1)[1]
        check(re.match(r"^[A-Za-z0-9._~-]{16,}$", token),
              "an opaque token: %r" % token)
        flipped = token[:-1] + ("0" if token[-1] != "0" else "1")
        for bad in (flipped, "0" * len(token), "x", token + "0",
                    token[:len(token) // 2], "..%2f..%2fetc%2fpasswd"):
            st, _ = _post(env.port, "/media/" + bad, None, method="GET")
            check(st == 404, "forged token %r: %r" % (bad, st))
        st, _ = _post(env.port, "/media/" + token, b"x")
        check(st in (404, 405), "POST /media: %r" % st)
        wait_until(lambda: _post(env.port, "/media/" + token, None,
                                 method="GET")[0] == 404, 15,
                   "the media link to expire")
        check(time.time() - t_fetch < 15, "expired within the ttl + sweep")
        _wait_state(r, "fx-2", "delivered")
        _check_transitions(r, "fx-2", "delivered")
        _healthy(env)
        check(env.gw.stop() == 0, "gatewayd exit 0")


def test_fax_busy_then_retried_and_delivered(ctx):
    with Env(ctx, ["--busy-attempts", "1", "--shuffle", "1", "--dup",
                   "0.5", "--bad", "0.3"]) as env:
        r, fax = env.r, env.fax
        num = _num(3, "0486")
        xadd_jobs(r, [fax_job("fx-3", num)])
        led = _wait_state(r, "fx-3", {"delivered", "failed", "expired"})
        check(led["state"] == "delivered", "delivered after the retry: %r"
              % led)
        acc = fax.accepted(num)
        check(len(acc) == 2, "two submissions: %d" % len(acc))
        first = fax.wait_done(num, 1)
        check(first["outcome"] == "failed" and
              first["failure_reason"] == "user_busy", "first busy: %r"
              % first["outcome"])
        second = fax.wait_done(num, 2)
        check(second["outcome"] == "delivered", "second delivered")
        for s in (first, second):
            _check_fake_answers(s)
        check(int(led.get("attempts", "0")) == 2, "attempts 2: %r" % led)
        check(led["provider_id"] == second["fax_id"], "the second fax id: %r"
              % led["provider_id"])
        evs = _check_transitions(r, "fx-3", "delivered", retried=True)
        tos = [e.get("to") for e in evs]
        check("deferred" in tos, "deferred on the way: %r" % tos)
        check(any("user_busy" in e.get("reason", "") for e in evs
                  if e.get("to") == "deferred"),
              "deferred because user_busy: %r" % evs)
        time.sleep(0.5)
        check(len(fax.accepted(num)) == 2, "no third submission")
        _healthy(env)
        check(env.gw.stop() == 0, "gatewayd exit 0")


def test_fax_invalid_number_webhook_fails(ctx):
    with Env(ctx) as env:
        r, fax = env.r, env.fax
        num = _num(4, "0404")
        xadd_jobs(r, [fax_job("fx-4", num)])
        led = _wait_state(r, "fx-4", {"delivered", "failed", "expired"})
        check(led["state"] == "failed", "failed: %r" % led)
        check("invalid_number" in led.get("reason", ""),
              "reason names the failure: %r" % led.get("reason"))
        fax.wait_done(num)
        time.sleep(0.5)
        check(len(fax.subs(num)) == 1, "not retried: %d submissions"
              % len(fax.subs(num)))
        check(led.get("attempts") == "1", "one attempt: %r" % led)
        _check_fake_answers(fax.accepted(num)[0])
        _check_transitions(r, "fx-4", "failed")
        check(_state(r, "fx-4") == "failed", "stays failed")
        _healthy(env)
        check(env.gw.stop() == 0, "gatewayd exit 0")


def test_fax_api_422_fails_at_once(ctx):
    with Env(ctx) as env:
        r, fax = env.r, env.fax
        num = _num(5, "0422")
        xadd_jobs(r, [fax_job("fx-5", num)])
        led = _wait_state(r, "fx-5", {"delivered", "failed", "deferred"})
        check(led["state"] == "failed", "failed at once: %r" % led)
        reason = led.get("reason", "")
        check("422" in reason or "Invalid phone number" in reason,
              "reason from the API: %r" % reason)
        time.sleep(1.0)
        subs = fax.subs(num)
        check(len(subs) == 1 and subs[0]["http_status"] == 422,
              "one submission, answered 422: %r"
              % [s["http_status"] for s in subs])
        check(led.get("attempts") == "1", "one attempt: %r" % led)
        check(not any(e.get("to") == "deferred" for e in _events(r, "fx-5")),
              "never deferred")
        _healthy(env)
        check(env.gw.stop() == 0, "gatewayd exit 0")


def test_fax_api_429_waits_retry_after(ctx):
    with Env(ctx, ["--throttle-attempts", "1", "--retry-after", "2"]) as env:
        r, fax = env.r, env.fax
        num = _num(6, "0429")
        xadd_jobs(r, [fax_job("fx-6", num)])
        led = _wait_state(r, "fx-6", {"delivered", "failed", "expired"})
        check(led["state"] == "delivered", "delivered in the end: %r" % led)
        subs = fax.subs(num)
        check([s["http_status"] for s in subs] == [429, 202],
              "429 then 202: %r" % [s["http_status"] for s in subs])
        gap = subs[1]["received_at"] - subs[0]["received_at"]
        check(gap >= 1.95, "waited >= Retry-After 2 s: %.3f s" % gap)
        check(gap < 20, "but not forever: %.3f s" % gap)
        evs = _check_transitions(r, "fx-6", "delivered", retried=True)
        check(any(e.get("to") == "deferred" for e in evs), "deferred: %r"
              % [e.get("to") for e in evs])
        _healthy(env)
        check(env.gw.stop() == 0, "gatewayd exit 0")


def test_fax_forged_and_malformed_webhooks(ctx):
    with Env(ctx, ["--shuffle", "0", "--dup", "0", "--bad", "0"],
             sets=["http.max_body=65536"]) as env:
        r, fax, port = env.r, env.fax, env.port
        num = _num(7, "0999")               # held: no final event
        xadd_jobs(r, [fax_job("fx-7", num)])
        _wait_state(r, "fx-7", "accepted")
        sub = fax.wait_done(num)
        _check_fake_answers(sub)
        time.sleep(0.3)
        fid = sub["fax_id"]
        before = _led(r, "fx-7")
        nev = r.xlen("gw:events")
        dl = json.dumps(_event_doc("fax.delivered", fid, page_count=1,
                                   to=num)).encode()
        fl = json.dumps(_event_doc("fax.failed", fid, to=num,
                                   failure_reason="user_busy")).encode()
        now = int(time.time())
        forged = [
            ("unsigned", _hook(port, dl, ts=None, key=None)),
            ("timestamp only", _hook(port, dl, key=None)),
            ("signature only", _hook(port, dl, ts=None,
                                     sig=base64.b64encode(KEY.sign(
                                         dl)).decode())),
            ("wrong key", _hook(port, dl, key=WRONG)),
            ("wrong key, failed", _hook(port, fl, key=WRONG)),
            ("stale", _hook(port, dl, ts=now - 600)),
            ("future", _hook(port, dl, ts=now + 600)),
            ("altered body", _hook(port, fl, sign_body=dl)),
            ("signature over another timestamp",
             _hook(port, dl, ts=now, sig=base64.b64encode(KEY.sign(
                 str(now - 1).encode() + b"|" + dl)).decode())),
            ("garbage signature", _hook(port, dl, sig="!!not base64!!")),
            ("short signature", _hook(port, dl, sig=base64.b64encode(
                b"x" * 10).decode())),
            ("random signature", _hook(port, dl, sig=base64.b64encode(
                os.urandom(64)).decode())),
            ("non-numeric timestamp", _hook(port, dl, ts="soon")),
        ]
        for what, (st, body) in forged:
            check(st == 401, "%s: %r %s" % (what, st, body[:200]))
        # signed but malformed
        for what, body in (("malformed JSON", b'{"data": {"event_type": '),
                           ("not an object", b"[]"),
                           ("no fax_id", json.dumps(
                               {"data": {"event_type": "fax.delivered",
                                         "id": "e1", "payload": {}}}
                           ).encode())):
            st, text = _hook(port, body)
            check(st == 400, "%s: %r %s" % (what, st, text[:200]))
        st, text = _hook(port, json.dumps(_event_doc(
            "fax.delivered", fid, padding="x" * 200000)).encode())
        check(st in (413, 400), "oversized: %r %s" % (st, text[:200]))
        st, _ = _post(port, "/hooks/fax/" + PROVIDER, None, method="GET")
        check(st in (404, 405), "GET on the hook: %r" % st)
        st, _ = _hook(port, dl, path="/hooks/fax/nosuch")
        check(st == 404, "unknown provider: %r" % st)
        st, _ = _hook(port, json.dumps(_event_doc("fax.something.new",
                                                  fid)).encode())
        check(st is not None and st < 500 and st != 401,
              "an unknown event type, signed: %r" % st)
        time.sleep(0.5)
        after = _led(r, "fx-7")
        check(after == before, "nothing changed: %r -> %r" % (before, after))
        check(r.xlen("gw:events") == nev, "no new events")
        _healthy(env)
        # the positive control: our own valid signature works
        st, text = _hook(port, dl)
        check(st is not None and 200 <= st < 300, "valid: %r %s"
              % (st, text))
        _wait_state(r, "fx-7", "delivered", 10)
        for body in (dl, fl, json.dumps(_event_doc(
                "fax.sending.started", fid, to=num)).encode()):
            st, _ = _hook(port, body)
            check(st is not None and 200 <= st < 300,
                  "late events answered 2xx: %r" % st)
        time.sleep(0.5)
        check(_state(r, "fx-7") == "delivered", "never backwards")
        _check_transitions(r, "fx-7", "delivered")
        _healthy(env)
        check(env.gw.stop() == 0, "gatewayd exit 0")


def _customer(r, cid, number, name):
    """Make the customer known (A6): the nested form first, the flat one
    if that is dead-lettered."""
    def dead(jid):
        return [e for _, e in r.xrange("gw:dead")
                if '"%s"' % jid in e.get("job", "")]

    def known():
        return r.exists("gw:cidx:fax:" + number) or \
            r.exists("gw:cust:" + cid)

    xadd_jobs(r, [{"type": "customer", "id": "cust-" + cid,
                   "customer": {"customer_id": cid, "fax": number,
                                "name": name}}])
    wait_until(lambda: known() or dead("cust-" + cid) or
               r.xlen("gw:jobs") == 0, 10, "the customer job handled")
    time.sleep(0.3)
    if dead("cust-" + cid):
        xadd_jobs(r, [{"type": "customer", "id": cid, "fax": number,
                       "name": name}])
        wait_until(lambda: known() or dead(cid) or r.xlen("gw:jobs") == 0,
                   10, "the flat customer job handled")
        time.sleep(0.3)
        check(not dead(cid), "a customer job is accepted: %r"
              % (dead(cid),))


def _events_naming(r, fax_id):
    return [e for _, e in r.xrange("gw:events")
            if any(fax_id in v for v in e.values())]


def _stored(inbound_dir, sha):
    out = []
    for root, _, files in os.walk(inbound_dir):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                if hashlib.sha256(fh.read()).hexdigest() == sha:
                    out.append(p)
    return out


def test_fax_inbound_stored_event_touch(ctx):
    with Env(ctx) as env:
        r, fax = env.r, env.fax
        sender = _num(8, "0042")
        _customer(r, "c42", sender, "Inbound Person")
        # matched, and the webhook twice
        got = fax.inbound(**{"from": sender, "to": FAX_FROM, "pages": 2,
                             "dup": True})
        fid = got["fax_id"]
        paths = wait_until(lambda: _stored(env.inbound_dir, got["sha256"]),
                           20, "the inbound PDF under inbound_dir")
        info = fake_fax.pdf_check(paths[0])
        check(info["pages"] == 2, "stored PDF has 2 pages: %r" % info)
        evs = wait_until(lambda: _events_naming(r, fid), 10,
                         "an event naming fax %s" % fid)
        wait_until(lambda: (fax.inbound_rec(fid) or {}).get("done"), 15,
                   "both webhooks posted")
        rec = fax.inbound_rec(fid)
        for w in rec["webhooks"]:
            check(w["status"] is not None and 200 <= w["status"] < 300,
                  "fax.received answered 2xx: %r" % w)
        check(len(fax.state()["files"][fid]["fetches"]) >= 1, "fetched")
        time.sleep(0.5)
        evs = _events_naming(r, fid)
        check(len(evs) == 1, "one event despite the duplicate: %r" % evs)
        check(len(_stored(env.inbound_dir, got["sha256"])) == 1,
              "stored once")
        ev = evs[0]
        if "matched" in ev:
            check(ev["matched"] == "1", "matched: %r" % ev)
        if "customer" in ev:
            check(ev["customer"] == "c42", "customer: %r" % ev)
        if "pages" in ev:
            check(ev["pages"] == "2", "pages: %r" % ev)
        touches = wait_until(lambda: [e for _, e in r.xrange("gw:touch:c42")
                                      if any(fid in v for v in e.values())],
                             10, "a touch on gw:touch:c42")
        check(len(touches) == 1, "one touch: %r" % touches)
        # unmatched
        other = _num(8, "9999")
        got2 = fax.inbound(**{"from": other, "to": FAX_FROM, "pages": 1})
        wait_until(lambda: _stored(env.inbound_dir, got2["sha256"]), 20,
                   "the unmatched PDF stored")
        ev2 = wait_until(lambda: _events_naming(r, got2["fax_id"]), 10,
                         "an event for the unmatched fax")[0]
        if "matched" in ev2:
            check(ev2["matched"] == "0", "unmatched: %r" % ev2)
        check(not [e for _, e in r.xrange("gw:touch:c42")
                   if any(got2["fax_id"] in v for v in e.values())],
              "not on c42's history")
        # a forged fax.received: refused, nothing fetched
        got3 = fax.inbound(**{"from": sender, "to": FAX_FROM,
                              "sign": "wrong_key"})
        # media on hosts not in inbound_hosts: never fetched
        got4 = fax.inbound(**{"from": sender, "to": FAX_FROM,
                              "media_host": "127.0.0.2"})
        got5 = fax.inbound(**{"from": sender, "to": FAX_FROM,
                              "media_host": "localhost"})
        for g in (got3, got4, got5):
            wait_until(lambda: (fax.inbound_rec(g["fax_id"]) or {}).get(
                "done"), 20, "webhook for %s posted" % g["media_url"])
        time.sleep(1.0)
        st = fax.state()
        rec3 = fax.inbound_rec(got3["fax_id"])
        check(rec3["webhooks"][0]["status"] == 401, "forged: 401: %r"
              % rec3["webhooks"])
        for g in (got3, got4, got5):
            check(st["files"][g["fax_id"]]["fetches"] == [],
                  "%s never fetched: %r" % (g["media_url"],
                                            st["files"][g["fax_id"]]))
            check(not _stored(env.inbound_dir, g["sha256"]), "not stored")
            check(not _events_naming(r, g["fax_id"]), "no event")
        for g in (got4, got5):
            w = fax.inbound_rec(g["fax_id"])["webhooks"]
            check(w and w[0]["status"] is not None and
                  w[0]["status"] < 500, "disallowed host answered %r"
                  % [x["status"] for x in w])
        _healthy(env)
        check(env.gw.stop() == 0, "gatewayd exit 0")


def test_fax_upload_mode_letter(ctx):
    with Env(ctx, media="upload", paper="letter") as env:
        r, fax = env.r, env.fax
        num = _num(9, "0000")
        xadd_jobs(r, [fax_job("fx-9", num, name="Max Upload")])
        led = _wait_state(r, "fx-9", {"delivered", "failed"})
        check(led["state"] == "delivered", "delivered: %r" % led)
        sub = fax.wait_done(num)
        check(sub["mode"] == "multipart" and sub["media"]["mode"] ==
              "upload", "multipart upload: %r" % sub["media"])
        check(not sub["media_url"], "no media_url: %r" % sub["media_url"])
        pdf = sub["pdf"]
        check(pdf["pages"] and pdf["pages"] >= 1, "pages: %r" % pdf)
        check("letter" in (pdf["page_size"] or "").lower(),
              "letter paper: %r" % pdf["page_size"])
        _check_page1(pdf["page1_text"], "Max Upload")
        _check_units(led, pdf["pages"])
        check(led["provider_id"] == sub["fax_id"], "provider_id")
        _check_fake_answers(sub)
        _check_transitions(r, "fx-9", "delivered")
        _healthy(env)
        check(env.gw.stop() == 0, "gatewayd exit 0")


def test_fax_non_e164_recipient_never_sent(ctx):
    with Env(ctx) as env:
        r, fax = env.r, env.fax
        good = _num(10, "0000")
        short = "+1555010"                  # 7 digits: intake takes it
        spaced = "+1 555 010 0000"
        xadd_jobs(r, [fax_job("fx-10a", short), fax_job("fx-10b", spaced),
                      fax_job("fx-10c", good)])
        _wait_state(r, "fx-10c", "delivered")

        def settled(key):
            if _state(r, key) == "failed":
                return "failed"
            for _, e in r.xrange("gw:dead"):
                if key in e.get("job", ""):
                    return "dead: " + e.get("reason", "")
            return None
        a = wait_until(lambda: settled("fx-10a"), 15, "fx-10a refused")
        b = wait_until(lambda: settled("fx-10b"), 15, "fx-10b refused")
        check(b.startswith("dead") and "recipient.fax" in b,
              "intake refuses a spaced number: %r" % b)
        if a == "failed":
            led = _led(r, "fx-10a")
            check(not led.get("provider_id"), "no provider id: %r" % led)
            _check_transitions(r, "fx-10a", "failed")
        time.sleep(0.5)
        seen = {s["to"] for s in fax.state()["submissions"]}
        check(seen == {good}, "the provider saw only the good number: %r"
              % seen)
        _healthy(env)
        check(env.gw.stop() == 0, "gatewayd exit 0")

#!/usr/bin/python3
"""test_fake_fax.py -- self-test of tests/fakes/fake_fax.py alone: starts the
fake, a tiny media server that serves a PDF (made by fake_fax.make_pdf) and
a webhook receiver that checks the Telnyx Ed25519 signature with the public
key the fake printed (401 when it does not verify or the timestamp is more
than 300 s off), then checks submissions (JSON and multipart), the API's
401/400/413/422/429/503 answers, the outcome script by number suffix, media
failures, the signed webhooks with shuffles, duplicates and forged copies
(each answered 401), a held fax finished later, inbound faxes (also from a
second loopback address) and the clean exit on SIGTERM. Debian
/usr/bin/python3 (+ python3-cryptography). Usage: test_fake_fax.py
[name-substring...]; one line per test."""

import base64
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import \
    Ed25519PublicKey

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fake_fax  # noqa: E402

FAKE = os.path.join(HERE, "fake_fax.py")
# Debian's python3 has python3-cryptography; a python3 shim may not
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") \
    else sys.executable
SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
KEY = "test-key"
CONN = "conn-7"
FROM = "+15550001111"
TOLERANCE = 300


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def wait_until(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise Failure("timed out after %ss waiting for %s (last: %r)"
                  % (timeout, what, last))


def request(url, method="GET", body=None, headers=None):
    """-> (status, headers, bytes); never raises on an HTTP status."""
    req = urllib.request.Request(url, data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class Peer:
    """A ThreadingHTTPServer on 127.0.0.1 with a handler function."""

    def __init__(self, fn):
        peer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n) if n else b""
                st, ctype, out, hdrs = fn(self, body)
                self.send_response(st)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(out)))
                for k, v in hdrs.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(out)
            do_GET = do_POST = _any

        class S(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.srv = S(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.srv.serve_forever,
                                       daemon=True)
        self.thread.start()
        peer.hits = []

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


PDF = fake_fax.make_pdf([["Hello Anna Example", "Your offer"],
                         ["second page"]])


def media_handler(h, body):
    path = h.path
    if path == "/doc.pdf":
        return 200, "application/pdf", PDF, {}
    if path == "/notpdf":
        return 200, "text/plain", b"hello, not a PDF", {}
    if path == "/redirect":
        return 302, "text/plain", b"", {"Location": "/doc.pdf"}
    return 404, "text/plain", b"no", {}


class Receiver:
    """The gateway's part: verifies every webhook."""

    def __init__(self, public_key_b64):
        self.pub = Ed25519PublicKey.from_public_bytes(
            base64.b64decode(public_key_b64))
        self.valid = []             # parsed documents that verified
        self.refused = []
        self.lock = threading.Lock()
        self.peer = Peer(self.handle)
        self.url = self.peer.url + "/hooks/fax/fax1"

    def handle(self, h, body):
        sig = h.headers.get("telnyx-signature-ed25519")
        ts = h.headers.get("telnyx-timestamp")
        ok = False
        if sig and ts and ts.isdigit() and \
                abs(time.time() - int(ts)) <= TOLERANCE:
            try:
                self.pub.verify(base64.b64decode(sig), ts.encode() + b"|" +
                                body)
                ok = True
            except (InvalidSignature, ValueError):
                pass
        with self.lock:
            if not ok:
                self.refused.append(body)
                return 401, "application/json", b'{"error":"signature"}', {}
            try:
                doc = json.loads(body)
            except ValueError:
                return 400, "application/json", b"{}", {}
            self.valid.append(doc)
        return 200, "application/json", b"{}", {}

    def events(self, fax_id):
        with self.lock:
            return [d["data"] for d in self.valid
                    if d["data"]["payload"].get("fax_id") == fax_id]

    def stop(self):
        self.peer.stop()


class Fake:
    def __init__(self, wd, *opts):
        self.wd = wd
        self.media = Peer(media_handler)
        self.state_path = os.path.join(wd, "fake-state.json")
        self.err = open(os.path.join(wd, "fake.err"), "wb")
        # the receiver needs the public key: derive it the fake's way
        from cryptography.hazmat.primitives.asymmetric.ed25519 import \
            Ed25519PrivateKey
        self.public_key = fake_fax.pub_b64(
            Ed25519PrivateKey.from_private_bytes(bytes.fromhex(SEED)))
        self.rcv = Receiver(self.public_key)
        self.proc = subprocess.Popen(
            [PYTHON, FAKE, "--port", "0", "--webhook", self.rcv.url,
             "--api-key", KEY, "--connection-id", CONN, "--seed", SEED,
             "--state", self.state_path, "--event-delay-ms", "5",
             "--dir", os.path.join(wd, "pdfs")] + list(opts),
            stdout=subprocess.PIPE, stderr=self.err)
        q = queue.Queue()
        threading.Thread(target=lambda: q.put(self.proc.stdout.readline()),
                         daemon=True).start()
        try:
            first = json.loads(q.get(timeout=15))
        except (queue.Empty, ValueError) as e:
            self.kill()
            raise Failure("fake did not start: %s" % e)
        self.port = first["port"]
        self.url = "http://127.0.0.1:%d" % self.port
        check(first["public_key"] == self.public_key,
              "printed public key = the seed's: %r" % first)
        check(first["pid"] == self.proc.pid, "pid printed")

    def state(self):
        st, _, body = request(self.url + "/_fake/state")
        check(st == 200, "state: %r" % st)
        return json.loads(body)

    def post(self, path, doc):
        st, hdrs, body = request(self.url + path, "POST",
                                 json.dumps(doc).encode(),
                                 {"Content-Type": "application/json"})
        return st, hdrs, json.loads(body) if body else None

    def submit(self, to, media_url=None, key=KEY, frm=FROM, conn=CONN,
               raw=None):
        body = raw if raw is not None else json.dumps(
            {"connection_id": conn, "to": to, "from": frm,
             "media_url": media_url or self.media.url + "/doc.pdf"}).encode()
        hdrs = {"Content-Type": "application/json"}
        if key is not None:
            hdrs["Authorization"] = "Bearer " + key
        st, h, out = request(self.url + "/v2/faxes", "POST", body, hdrs)
        return st, h, json.loads(out) if out else None

    def sub(self, fax_id):
        for s in self.state()["submissions"]:
            if s["fax_id"] == fax_id:
                return s
        return None

    def wait_done(self, fax_id, timeout=15):
        return wait_until(lambda: (self.sub(fax_id) or {}).get("done") and
                          self.sub(fax_id), timeout, "fax %s done" % fax_id)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.media.stop()
        self.rcv.stop()
        self.err.close()


def _check_webhooks(fk, sub):
    """Every forged copy answered 401, every valid one 200."""
    for w in sub["webhooks"]:
        want = 200 if w["kind"] == "valid" else 401
        check(w["status"] == want, "%s %s answered %r, want %d"
              % (w["event_type"], w["kind"], w["status"], want))


# ---- tests ----

def t_delivered_json_shuffled_dups_forged(fk):
    fk.post("/_fake/config", {"shuffle": 1, "dup": 1, "bad": 1, "late": 1})
    st, _, doc = fk.submit("+15550100000")
    check(st == 202, "202: %r %r" % (st, doc))
    d = doc["data"]
    check(d["record_type"] == "fax" and d["status"] == "queued" and
          d["to"] == "+15550100000" and d["from"] == FROM and
          len(d["id"]) == 36 and d["id"] == d["id"].lower(), "data: %r" % d)
    sub = fk.wait_done(d["id"])
    m = sub["media"]
    check(m["status"] == 200 and m["content_type"] == "application/pdf" and
          m["bytes"] == len(PDF), "media fetched: %r" % m)
    p = sub["pdf"]
    check(p["pages"] == 2 and "A4" in p["page_size"] and
          "Hello Anna Example" in p["page1_text"] and
          "second page" not in p["page1_text"], "pdf: %r" % p)
    check(sub["outcome"] == "delivered", "outcome: %r" % sub["outcome"])
    _check_webhooks(fk, sub)
    kinds = [w["kind"] for w in sub["webhooks"]]
    check(kinds.count("valid") == 4 + 4 + 1,
          "4 events, each duplicated, one late: %r" % kinds)
    check(len(kinds) == 13, "and 4 forged copies: %r" % kinds)
    evs = fk.rcv.events(d["id"])
    types = [e["event_type"] for e in evs]
    check(sorted(set(types)) == ["fax.delivered", "fax.media.processed",
                                 "fax.queued", "fax.sending.started"],
          "types: %r" % types)
    check(types[-1] == "fax.sending.started", "late started last: %r" % types)
    check(len(fk.rcv.refused) == 4, "4 refused: %d" % len(fk.rcv.refused))
    for body in fk.rcv.refused:
        check(b"forged_by_fake" in body, "forged copies say so")
    dl = [e for e in evs if e["event_type"] == "fax.delivered"][0]
    pl = dl["payload"]
    check(pl["status"] == "delivered" and pl["page_count"] == 2 and
          pl["direction"] == "outbound" and pl["connection_id"] == CONN and
          pl["to"] == "+15550100000" and pl["from"] == FROM, "payload %r" % pl)
    check(dl["record_type"] == "event" and dl["occurred_at"].endswith("Z"),
          "event envelope")
    dups = [e for e in fk.rcv.valid
            if e["data"]["payload"]["fax_id"] == d["id"] and
            e["meta"]["attempt"] == 2]
    check(len(dups) == 4, "duplicates are attempt 2 of the same event id")
    ids = {e["id"] for e in evs}
    check(len(ids) == 5, "4 event ids + the late one: %r" % ids)
    # the state file follows
    with open(fk.state_path) as f:
        check(any(s["fax_id"] == d["id"] for s in
                  json.load(f)["submissions"]), "state file written")
    st, _, got = request(fk.url + "/v2/faxes/" + d["id"],
                         headers={"Authorization": "Bearer " + KEY})
    check(st == 200 and json.loads(got)["data"]["status"] == "delivered",
          "GET /v2/faxes/<id>")


def t_api_errors(fk):
    st, _, doc = fk.submit("+15550100000", key=None)
    check(st == 401 and doc["errors"][0]["code"] == "10009", "no key: %r"
          % doc)
    st, _, doc = fk.submit("+15550100000", key="nope")
    check(st == 401, "wrong key")
    for to in ("+0123456789", "5550100000", "+1555", "+1 555 010 0000"):
        st, _, doc = fk.submit(to)
        check(st == 422 and doc["errors"][0]["code"] == "10015" and
              doc["errors"][0]["title"] == "Invalid phone number",
              "invalid %r: %r %r" % (to, st, doc))
    st, _, doc = fk.submit("+15550100000", frm="nobody")
    check(st == 422 and doc["errors"][0]["source"]["pointer"] == "/from",
          "from")
    st, _, doc = fk.submit("+15550100000", conn="other")
    check(st == 422, "connection_id")
    st, _, doc = fk.submit("+15550100422")
    check(st == 422 and "phone number" in doc["errors"][0]["title"],
          "scripted 422: %r" % doc)
    st, _, doc = fk.submit("+15550100000", raw=b"{not json")
    check(st == 400, "bad json: %r" % st)
    st, _, doc = fk.submit("+15550100000", raw=json.dumps(
        {"connection_id": CONN, "to": "+15550100000", "from": FROM}).encode())
    check(st == 422, "no media: %r" % st)
    st, _, doc = fk.submit("+15550100000", raw=b"x" * 5000)
    check(st == 413, "over --max-body: %r" % st)
    subs = fk.state()["submissions"]
    check(all(s["fax_id"] is None for s in subs), "nothing queued")
    check([s["http_status"] for s in subs].count(422) == 8, "recorded")


def t_throttle_then_accepted(fk):
    times = []
    for _ in range(3):
        times.append(time.time())
        st, hdrs, doc = fk.submit("+15550100429")
        if st == 202:
            break
        check(st == 429 and hdrs.get("Retry-After") == "2" and
              doc["errors"][0]["code"] == "10011", "429: %r %r" % (st, hdrs))
    check(st == 202 and len(times) == 3, "202 on the third: %r" % st)
    subs = [s for s in fk.state()["submissions"] if s["to"] == "+15550100429"]
    check([s["http_status"] for s in subs] == [429, 429, 202] and
          [s["attempt"] for s in subs] == [1, 2, 3] and
          all(s["received_at"] for s in subs), "recorded: %r"
          % [(s["http_status"], s["attempt"]) for s in subs])
    fk.wait_done(doc["data"]["id"])
    st, _, doc = fk.submit("+15550100503")
    check(st == 503, "503 first: %r" % st)
    st, _, doc = fk.submit("+15550100503")
    check(st == 503, "503 second: %r" % st)
    st, _, doc = fk.submit("+15550100503")
    check(st == 202, "then 202: %r" % st)


def t_busy_then_delivered_and_permanent(fk):
    fk.post("/_fake/config", {"shuffle": 0, "dup": 0, "bad": 0})
    out = {}
    for n in ("+15550100486", "+15550100486", "+15550100404",
              "+15550100410", "+15550100408", "+15550100408"):
        st, _, doc = fk.submit(n)
        check(st == 202, "202")
        sub = fk.wait_done(doc["data"]["id"])
        out.setdefault(n, []).append((sub["outcome"], sub["failure_reason"]))
        evs = fk.rcv.events(doc["data"]["id"])
        check([e["event_type"] for e in evs][:3] == [
            "fax.queued", "fax.media.processed", "fax.sending.started"],
            "natural order without shuffle: %r" % evs)
        if sub["outcome"] == "failed":
            check(evs[-1]["payload"]["failure_reason"] ==
                  sub["failure_reason"], "reason in the payload")
    check(out["+15550100486"] == [("failed", "user_busy"),
                                  ("delivered", None)], "busy: %r" % out)
    check(out["+15550100408"] == [("failed", "receiver_no_answer"),
                                  ("delivered", None)], "no answer: %r" % out)
    check(out["+15550100404"] == [("failed",
                                   "receiver_invalid_number_format")], "404")
    check(out["+15550100410"] == [("failed", "receiver_unallocated_number")],
          "410")


def t_media_failures(fk):
    fk.post("/_fake/config", {"shuffle": 0, "dup": 0, "bad": 0})
    for path, why in (("/missing", "file_download_failed"),
                      ("/redirect", "file_download_failed"),
                      ("/notpdf", "file_format_invalid")):
        st, _, doc = fk.submit("+15550100000", fk.media.url + path)
        check(st == 202, "202")
        sub = fk.wait_done(doc["data"]["id"])
        check(sub["outcome"] == "failed" and sub["failure_reason"] == why,
              "%s: %r" % (path, (sub["outcome"], sub["failure_reason"])))
        types = [e["event_type"] for e in fk.rcv.events(doc["data"]["id"])]
        check(types == ["fax.queued", "fax.failed"], "no media.processed: %r"
              % types)
    # unreachable
    st, _, doc = fk.submit("+15550100000", "http://127.0.0.1:9/x.pdf")
    sub = fk.wait_done(doc["data"]["id"])
    check(sub["failure_reason"] == "file_download_failed" and
          sub["media"]["error"], "refused: %r" % sub["media"])


def t_multipart_upload(fk):
    fk.post("/_fake/config", {"shuffle": 0, "dup": 0, "bad": 0})
    b = "----fakefaxtest7"
    parts = []
    for k, v in (("connection_id", CONN), ("to", "+15550100000"),
                 ("from", FROM)):
        parts.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\""
                      "\r\n\r\n%s\r\n" % (b, k, v)).encode())
    parts.append(("--%s\r\nContent-Disposition: form-data; name=\"media\"; "
                  "filename=\"fax.pdf\"\r\nContent-Type: application/pdf\r\n"
                  "\r\n" % b).encode() + PDF + b"\r\n")
    body = b"".join(parts) + ("--%s--\r\n" % b).encode()
    st, _, out = request(fk.url + "/v2/faxes", "POST", body, {
        "Authorization": "Bearer " + KEY,
        "Content-Type": "multipart/form-data; boundary=%s" % b})
    check(st == 202, "202: %r %r" % (st, out))
    fid = json.loads(out)["data"]["id"]
    sub = fk.wait_done(fid)
    import hashlib
    check(sub["mode"] == "multipart" and sub["media"]["mode"] == "upload" and
          sub["media"]["sha256"] == hashlib.sha256(PDF).hexdigest() and
          sub["media"]["filename"] == "fax.pdf", "upload: %r" % sub["media"])
    check(sub["pdf"]["pages"] == 2 and sub["outcome"] == "delivered",
          "delivered: %r" % sub["pdf"])
    # a multipart without the file and without media_url
    body = ("--%s\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n"
            "+15550100000\r\n--%s--\r\n" % (b, b)).encode()
    st, _, out = request(fk.url + "/v2/faxes", "POST", body, {
        "Authorization": "Bearer " + KEY,
        "Content-Type": "multipart/form-data; boundary=%s" % b})
    check(st == 422, "incomplete multipart: %r" % st)
    st, _, out = request(fk.url + "/v2/faxes", "POST", b"garbage", {
        "Authorization": "Bearer " + KEY,
        "Content-Type": "multipart/form-data; boundary=%s" % b})
    check(st == 400, "garbage multipart: %r" % st)


def t_hold_and_finish(fk):
    fk.post("/_fake/config", {"shuffle": 0, "dup": 0, "bad": 0})
    st, _, doc = fk.submit("+15550100999")
    fid = doc["data"]["id"]
    sub = fk.wait_done(fid)
    check(sub["outcome"] == "held", "held: %r" % sub["outcome"])
    check([e["event_type"] for e in fk.rcv.events(fid)] ==
          ["fax.queued", "fax.media.processed", "fax.sending.started"],
          "three events")
    st, _, out = fk.post("/_fake/finish", {"fax_id": fid, "status": "failed",
                                           "failure_reason": "user_busy"})
    check(st == 200, "finish: %r %r" % (st, out))
    wait_until(lambda: len(fk.rcv.events(fid)) == 4, 10, "final event")
    last = fk.rcv.events(fid)[-1]
    check(last["event_type"] == "fax.failed" and
          last["payload"]["failure_reason"] == "user_busy", "failed: %r"
          % last)
    st, _, out = fk.post("/_fake/finish", {"fax_id": fid})
    check(st == 404, "only once: %r" % st)


def t_inbound(fk):
    st, _, out = fk.post("/_fake/inbound", {"from": "+15550104242",
                                            "to": FROM, "pages": 3,
                                            "dup": True})
    check(st == 200 and out["media_url"].startswith(fk.url + "/files/"),
          "inbound: %r" % out)
    fid = out["fax_id"]
    wait_until(lambda: len(fk.rcv.events(fid)) == 2, 10, "fax.received x2")
    ev = fk.rcv.events(fid)[0]
    pl = ev["payload"]
    check(ev["event_type"] == "fax.received" and pl["direction"] ==
          "inbound" and pl["page_count"] == 3 and pl["from"] ==
          "+15550104242" and pl["to"] == FROM and pl["media_url"] ==
          out["media_url"] and pl["status"] == "received", "payload %r" % pl)
    st, hdrs, data = request(pl["media_url"])
    check(st == 200 and hdrs["Content-Type"] == "application/pdf", "served")
    path = os.path.join(fk.wd, "in.pdf")
    with open(path, "wb") as f:
        f.write(data)
    info = fake_fax.pdf_check(path)
    check(info["pages"] == 3 and fid in info["page1_text"], "pdf: %r" % info)
    files = fk.state()["files"]
    check(len(files[fid]["fetches"]) == 1, "fetch recorded: %r" % files)
    # a second loopback address: the fake listens there too
    st, _, out2 = fk.post("/_fake/inbound", {"from": "+15550104243",
                                             "to": FROM,
                                             "media_host": "127.0.0.2"})
    check(st == 200 and out2["media_url"].startswith("http://127.0.0.2:"),
          "other host: %r" % out2)
    wait_until(lambda: fk.rcv.events(out2["fax_id"]), 10, "webhook")
    st, _, _ = request(out2["media_url"])
    check(st == 200, "served from 127.0.0.2")
    f2 = fk.state()["files"][out2["fax_id"]]["fetches"]
    check(f2[0]["listener"].startswith("127.0.0.2:"), "listener: %r" % f2)
    # a forged inbound webhook is refused by the receiver, recorded 401
    st, _, out3 = fk.post("/_fake/inbound", {"from": "+15550104244",
                                             "to": FROM, "sign": "stale"})
    wait_until(lambda: [i for i in fk.state()["inbound"]
                        if i["fax_id"] == out3["fax_id"] and i["done"]], 10,
               "stale inbound posted")
    inb = [i for i in fk.state()["inbound"] if i["fax_id"] == out3["fax_id"]]
    check(inb[0]["webhooks"][0]["status"] == 401, "401: %r" % inb)
    st, _, _ = fk.post("/_fake/inbound", {"from": 1})
    check(st == 400, "bad request")
    st, _, _ = fk.post("/_fake/inbound", {"from": "+1555", "to": FROM,
                                          "media_host": "10.0.0.1"})
    check(st == 400, "loopback only")


def t_webhook_retry_on_5xx(fk):
    """A receiver answering 503 first: the valid event is posted again."""
    calls = []

    def flaky(h, body):
        calls.append(json.loads(body)["meta"]["attempt"])
        return (503 if len(calls) == 1 else 200), "text/plain", b"", {}
    peer = Peer(flaky)
    try:
        fk.post("/_fake/config", {"webhook": peer.url + "/h", "shuffle": 0,
                                  "dup": 0, "bad": 0})
        st, _, doc = fk.submit("+15550100000")
        sub = fk.wait_done(doc["data"]["id"])
        check(calls[:2] == [1, 2] and len(calls) == 5, "retried: %r" % calls)
        check([w["status"] for w in sub["webhooks"]][:2] == [503, 200],
              "both answers recorded")
    finally:
        peer.stop()


def t_config_and_sigterm(fk):
    st, _, out = fk.post("/_fake/config", {"nope": 1})
    check(st == 400, "unknown key")
    st, _, out = fk.post("/_fake/config", {"bad_kinds": ["stale"]})
    check(st == 200 and out["bad_kinds"] == ["stale"], "set: %r" % out)
    fk.post("/_fake/config", {"event_delay_ms": 500, "bad": 1})
    st, _, doc = fk.submit("+15550100000")
    time.sleep(0.3)
    t0 = time.monotonic()
    fk.proc.send_signal(signal.SIGTERM)
    rc = fk.proc.wait(15)
    check(rc == 0 and time.monotonic() - t0 < 5, "exit 0 at once: %r" % rc)
    with open(fk.state_path) as f:
        st = json.load(f)
    check(len(st["submissions"]) == 1, "state written at exit")
    check(os.path.isdir(os.path.join(fk.wd, "pdfs")), "--dir kept")


TESTS = [
    (t_delivered_json_shuffled_dups_forged, ()),
    (t_api_errors, ("--max-body", "4096")),
    (t_throttle_then_accepted, ("--throttle-attempts", "2")),
    (t_busy_then_delivered_and_permanent, ()),
    (t_media_failures, ()),
    (t_multipart_upload, ()),
    (t_hold_and_finish, ()),
    (t_inbound, ()),
    (t_webhook_retry_on_5xx, ()),
    (t_config_and_sigterm, ()),
]


def main():
    names = sys.argv[1:]
    failed = 0
    for fn, args in TESTS:
        if names and not any(n in fn.__name__ for n in names):
            continue
        with tempfile.TemporaryDirectory() as wd:
            fk = None
            t0 = time.time()
            try:
                fk = Fake(wd, *args)
                fn(fk)
                print("ok   %s (%.1fs)" % (fn.__name__, time.time() - t0))
            except Exception as ex:
                failed += 1
                print("FAIL %s: %s" % (fn.__name__, ex))
                if not isinstance(ex, Failure):
                    traceback.print_exc()
                if fk:
                    with open(os.path.join(wd, "fake.err"), "rb") as f:
                        sys.stdout.write(f.read().decode(errors="replace")
                                         [-3000:])
            finally:
                if fk:
                    fk.kill()
    print("fake_fax: %d failed" % failed if failed else "fake_fax: all ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

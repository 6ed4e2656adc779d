#!/usr/bin/python3
"""fake_fax.py -- an independent fake fax provider shaped like Telnyx
Programmable Fax, for the fax channel's tests. Debian /usr/bin/python3
(standard library + python3-cryptography for Ed25519). Loopback only.

    fake_fax.py --port 0 --webhook http://127.0.0.1:P/hooks/fax/fax1 \
        --api-key KEY --connection-id conn1 --seed <64 hex digits> \
        [--state FILE] [--dir DIR] [--rng-seed N] [--shuffle P] [--dup P]
        [--bad P] [--late P] [--busy-attempts N] [--throttle-attempts K]
        [--retry-after S] [--event-delay-ms MS] [--fetch-delay-ms MS]
        [--webhook-retries N] [--max-body BYTES] [--verbose]

The first line on stdout is JSON: {"port": N, "public_key": "<base64 raw
32-byte Ed25519 public key>", "pid": N}; nothing else goes to stdout.
SIGTERM/SIGINT: stop serving, stop the workers (bounded), write --state,
exit 0.

Telnyx API (what the gateway talks to)
  POST /v2/faxes  Authorization: Bearer KEY (else 401 {"errors":[...]}).
      JSON {connection_id, to, from, media_url}, or multipart/form-data
      with fields connection_id, to, from and a file part "media" (PDF;
      "contents" is accepted as an alias). to/from must be E.164
      (+, 7-15 digits, no leading 0), connection_id must match, else 422
      {"errors":[{"code":"10015","title":"Invalid phone number",...}]}.
      Answer 202 {"data":{"id":<uuid>,"record_type":"fax","status":
      "queued",...}}. A body over --max-body: 413; bad JSON/multipart: 400.
  GET /v2/faxes/<id>  the fax record (200) or 404.

Then, in a worker: fetch media_url (GET, 5 s timeout, no redirects, at
most 10 MB; status, content type, size, sha256 recorded), store the PDF,
read it with `pdfinfo` (pages, page size) and `pdftotext -f 1 -l 1` (page 1
text), and post webhooks to --webhook signed the Telnyx way:
  telnyx-timestamp: unix seconds
  telnyx-signature-ed25519: base64(Ed25519(seed, timestamp + "|" + body))
  body {"data":{"event_type","id","occurred_at","record_type":"event",
        "payload":{fax_id, connection_id, direction:"outbound", to, from,
        status, page_count, original_media_url, failure_reason?,
        call_duration_secs?}}, "meta":{"attempt":N,"delivered_to":URL}}
The sequence fax.queued, fax.media.processed, fax.sending.started, then
fax.delivered or fax.failed is shuffled (probability --shuffle), events
are duplicated (--dup: the same event id again, meta.attempt 2, later in the
sequence), and before a valid event a forged copy may be sent (--bad) that
the gateway must answer 401: kinds "bad_body" (signed body altered),
"wrong_key", "stale" (timestamp an hour old), "future" (an hour ahead),
"unsigned". Every forged copy carries fax.failed with failure_reason
"forged_by_fake" for the same fax, so accepting one shows in the ledger.
--late: after the final event, fax.sending.started once more (new event
id). Valid webhooks answered 5xx or unreachable are retried (meta.attempt
+1) up to --webhook-retries times. Every answer is recorded per event.

Outcome script by the last four digits of the destination number:
  any other (e.g. ...0000)  delivered
  0486  fax.failed "user_busy" for the first --busy-attempts accepted
        submissions of that number (default 1), then delivered
  0408  fax.failed "receiver_no_answer" likewise (--busy-attempts), then
        delivered
  0404  fax.failed "receiver_invalid_number_format" (permanent)
  0410  fax.failed "receiver_unallocated_number" (permanent)
  0603  fax.failed "receiver_decline" (permanent)
  0422  the API answers 422 "Invalid phone number" (nothing queued)
  0429  the API answers 429 with Retry-After: --retry-after (default 2)
        for the first --throttle-attempts submissions (default 1), then 202;
        every submission's time is recorded
  0503  the API answers 503 for the first --throttle-attempts submissions,
        then 202
  0999  held: queued, media.processed, sending.started, then nothing until
        POST /_fake/finish
Media that cannot be fetched (non-2xx, redirect, timeout): fax.failed
"file_download_failed"; not a PDF: "file_format_invalid"; too big:
"file_size_limit_exceeded" (no fax.media.processed in these cases).

Telnyx failure_reason strings (docs "Receiving webhooks" and support
article 4967498 "Fax API - Error List"): account_disabled,
connection_channel_limit_exceeded, destination_invalid,
destination_not_in_countries_whitelist, destination_not_in_service_plan,
destination_unreachable, fax_initial_communication_timeout,
fax_signaling_error, file_download_failed, file_format_invalid,
file_size_limit_exceeded, page_count_limit_exceeded,
invalid_ecm_response_from_receiver, no_outbound_profile,
outbound_profile_channel_limit_exceeded,
outbound_profile_daily_spend_limit_exceeded, receiver_call_dropped,
receiver_communication_error, receiver_decline,
receiver_incompatible_destination, receiver_invalid_number_format,
receiver_no_answer, receiver_no_response,
receiver_recovery_on_timer_expire, receiver_unallocated_number,
service_unavailable, user_busy, user_channel_limit_exceeded. Worth another
try: user_busy, receiver_no_answer, receiver_no_response,
receiver_call_dropped, fax_initial_communication_timeout,
fax_signaling_error, service_unavailable, *_channel_limit_exceeded.

Control endpoints for tests (not Telnyx):
  GET  /_fake/state   every submission (number, times, status answered,
       fax id, media fetch, pdf pages/size/page-1 text, webhook answers per
       event, outcome), inbound faxes, served files and their fetches
  POST /_fake/config  {"shuffle","dup","bad","late","busy_attempts",
       "throttle_attempts","retry_after","event_delay_ms","fetch_delay_ms",
       "webhook","webhook_retries","bad_kinds"}: changes them; answers the
       config
  POST /_fake/finish  {"fax_id","status":"delivered"|"failed",
       "failure_reason"}: the final event of a held fax
  POST /_fake/inbound {"from","to","pages","media_host"?,"dup"?,"sign"?}:
       makes a PDF (pages pages), serves it at /files/<id>.pdf and posts a
       signed fax.received (direction inbound, media_url, page_count, from,
       to, fax_id). media_host "127.0.0.2" serves the file from a second
       listener on that address (a host the gateway must not fetch from);
       "localhost" names this listener by another name. sign: a forged
       kind instead of a valid signature. Answers {"fax_id","media_url",
       "sha256","pages"} at once; the webhook answer shows in the state.
  GET  /files/<id>.pdf  the inbound PDF (each fetch recorded)
"""

import argparse
import base64
import binascii
import datetime
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import \
    Ed25519PrivateKey

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
TIMEOUT = 5.0                   # every outbound request
MAX_MEDIA = 10 << 20
MAX_CONTROL = 64 << 10
BAD_KINDS = ("bad_body", "wrong_key", "stale", "future", "unsigned")
TEMP_REASONS = {"0486": "user_busy", "0408": "receiver_no_answer"}
PERM_REASONS = {"0404": "receiver_invalid_number_format",
                "0410": "receiver_unallocated_number",
                "0603": "receiver_decline"}


def now_iso(t=None):
    t = time.time() if t is None else t
    return datetime.datetime.fromtimestamp(
        t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pub_b64(priv):
    return base64.b64encode(priv.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def sign(priv, timestamp, body):
    """Telnyx: Ed25519 over "<timestamp>|<body>", base64."""
    return base64.b64encode(priv.sign(str(timestamp).encode() + b"|" +
                                      body)).decode()


# ---- a minimal valid PDF, made by hand ----

def _pdf_str(s):
    s = s.encode("ascii", "replace").decode()
    return "(" + s.replace("\\", "\\\\").replace("(", "\\(").replace(
        ")", "\\)") + ")"


def make_pdf(pages, size=(595, 842)):
    """pages: a list of pages, each a list of text lines (ASCII; others
    become '?'). Helvetica, one object per page and content stream."""
    objs = []                   # object bodies, numbered from 1
    n = len(pages)
    page_ids = [4 + 2 * i for i in range(n)]
    objs.append("<< /Type /Catalog /Pages 2 0 R >>")
    objs.append("<< /Type /Pages /Kids [%s] /Count %d >>"
                % (" ".join("%d 0 R" % p for p in page_ids), n))
    objs.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
                "/Encoding /WinAnsiEncoding >>")
    for i, lines in enumerate(pages):
        ops = ["0.85 g 40 %d %d 4 re f 0 g" % (size[1] - 60, size[0] - 80),
               "BT /F1 14 Tf 72 %d Td 18 TL" % (size[1] - 90)]
        for ln in lines:
            ops.append("%s Tj T*" % _pdf_str(ln))
        ops.append("ET")
        stream = "\n".join(ops).encode()
        objs.append("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] "
                    "/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R "
                    ">>" % (size[0], size[1], page_ids[i] + 1))
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream +
                    b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for k, body in enumerate(objs, 1):
        offsets.append(len(out))
        if isinstance(body, str):
            body = body.encode()
        out += b"%d 0 obj\n" % k + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += (b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(objs) + 1, xref))
    return bytes(out)


PAGE_RX = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def pdf_check_light(data, path):
    """--pdf-check light (benchmarks): the %PDF- header, the %%EOF trailer
    and the page objects counted in the file, without pdfinfo/pdftotext
    (two processes per fax would cost more CPU than the gateway's
    rendering). Page size and text are not read."""
    res = {"pages": None, "page_size": None, "page1_text": None,
           "error": None, "path": path}
    if not data.startswith(b"%PDF-") or b"%%EOF" not in data[-1024:]:
        res["error"] = "not a complete PDF"
    else:
        res["pages"] = len(PAGE_RX.findall(data))
    return res


def pdf_check(path):
    """pdfinfo pages and page size, pdftotext page 1; errors recorded."""
    res = {"pages": None, "page_size": None, "page1_text": None,
           "error": None, "path": path}
    try:
        p = subprocess.run(["pdfinfo", path], capture_output=True,
                           timeout=15)
        if p.returncode != 0:
            res["error"] = "pdfinfo: " + p.stderr.decode(errors="replace")[
                :300].strip()
            return res
        for line in p.stdout.decode(errors="replace").splitlines():
            k, _, v = line.partition(":")
            if k.strip() == "Pages":
                res["pages"] = int(v.strip())
            elif k.strip() == "Page size":
                res["page_size"] = v.strip()
        p = subprocess.run(["pdftotext", "-f", "1", "-l", "1", path, "-"],
                           capture_output=True, timeout=15)
        if p.returncode == 0:
            res["page1_text"] = p.stdout.decode(errors="replace")
        else:
            res["error"] = "pdftotext: " + p.stderr.decode(
                errors="replace")[:300].strip()
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        res["error"] = "%s: %s" % (type(e).__name__, e)
    return res


# ---- HTTP helpers ----

def http_request(url, method="GET", body=None, headers=None,
                 max_bytes=MAX_CONTROL):
    """One request, no redirects, TIMEOUT on connect and each read.
    Returns (status, headers dict lower-case, body bytes, error)."""
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        return None, {}, b"", "unsupported URL %r" % url[:200]
    conn = http.client.HTTPConnection(u.hostname, u.port or 80,
                                      timeout=TIMEOUT)
    try:
        path = (u.path or "/") + ("?" + u.query if u.query else "")
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read(max_bytes + 1)
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if len(data) > max_bytes:
            return r.status, hdrs, data[:max_bytes], "body over %d bytes" \
                % max_bytes
        return r.status, hdrs, data, None
    except (OSError, http.client.HTTPException) as e:
        return None, {}, b"", "%s: %s" % (type(e).__name__, e)
    finally:
        conn.close()


def parse_multipart(ctype, body):
    """-> {name: (headers dict, bytes, filename)} or raises ValueError."""
    m = re.search(r'boundary="?([^";]+)"?', ctype, re.I)
    if not m:
        raise ValueError("multipart without a boundary")
    delim = b"--" + m.group(1).encode()
    segs = (b"\r\n" + body).split(b"\r\n" + delim)
    if len(segs) < 3:
        raise ValueError("multipart: no parts")
    out = {}
    for seg in segs[1:]:
        if seg.startswith(b"--"):
            return out
        nl = seg.find(b"\r\n")
        if nl < 0:
            raise ValueError("multipart: bad delimiter line")
        head, sep, content = seg[nl + 2:].partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("multipart: part without a blank line")
        hdrs = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        cd = hdrs.get("content-disposition", "")
        nm = re.search(r'\bname="([^"]*)"', cd)
        fn = re.search(r'\bfilename="([^"]*)"', cd)
        if not nm:
            raise ValueError("multipart: part without a name")
        out[nm.group(1)] = (hdrs, content, fn.group(1) if fn else None)
    raise ValueError("multipart: no closing delimiter")


class Fake:
    def __init__(self, args):
        self.args = args
        self.lock = threading.RLock()
        self.stop = threading.Event()
        self.rng = random.Random(args.rng_seed)
        seed = bytes.fromhex(args.seed) if args.seed else os.urandom(32)
        if len(seed) != 32:
            raise SystemExit("--seed: 32 bytes (64 hex digits)")
        self.key = Ed25519PrivateKey.from_private_bytes(seed)
        self.other_key = Ed25519PrivateKey.from_private_bytes(
            hashlib.sha256(b"wrong key" + seed).digest())
        self.public_key = pub_b64(self.key)
        self.conf = {
            "shuffle": args.shuffle, "dup": args.dup, "bad": args.bad,
            "late": args.late, "busy_attempts": args.busy_attempts,
            "throttle_attempts": args.throttle_attempts,
            "retry_after": args.retry_after,
            "event_delay_ms": args.event_delay_ms,
            "fetch_delay_ms": args.fetch_delay_ms, "webhook": args.webhook,
            "webhook_retries": args.webhook_retries,
            "bad_kinds": list(BAD_KINDS),
            "pdf_check": args.pdf_check,
        }
        self.dir = args.dir or tempfile.mkdtemp(prefix="fake-fax-")
        self.own_dir = not args.dir
        os.makedirs(self.dir, exist_ok=True)
        self.subs = []
        self.by_id = {}
        self.posts = {}         # number -> authorised submissions
        self.accepted = {}      # number -> 202s
        self.inbound = []
        self.files = {}         # id -> {"data", "sha256", "fetches"}
        self.workers = []
        self.servers = []
        self.port = None

    def uuid(self):
        with self.lock:
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def log(self, fmt, *a):
        if self.args.verbose:
            sys.stderr.write("fake_fax: " + (fmt % a) + "\n")
            sys.stderr.flush()

    def spawn(self, fn, *a):
        t = threading.Thread(target=fn, args=a, daemon=True)
        with self.lock:
            self.workers = [w for w in self.workers if w.is_alive()]
            self.workers.append(t)
        t.start()

    def sleep(self, seconds):
        """False if told to stop meanwhile."""
        return not self.stop.wait(max(0.0, seconds))

    # ---- state ----

    def snapshot(self):
        with self.lock:
            files = {k: {kk: vv for kk, vv in v.items() if kk != "data"}
                     for k, v in self.files.items()}
            return json.loads(json.dumps({
                "port": self.port, "public_key": self.public_key,
                "config": self.conf, "submissions": self.subs,
                "inbound": self.inbound, "files": files}))

    def save(self):
        if not self.args.state:
            return
        snap = self.snapshot()
        tmp = self.args.state + ".tmp"
        with self.lock:
            with open(tmp, "w") as f:
                json.dump(snap, f, indent=1)
            os.replace(tmp, self.args.state)

    # ---- webhooks ----

    def _post_one(self, body, ts, sig, rec):
        url = self.conf["webhook"]
        hdrs = {"Content-Type": "application/json",
                "User-Agent": "fake-telnyx-webhooks/1"}
        if ts is not None:
            hdrs["telnyx-timestamp"] = str(ts)
        if sig is not None:
            hdrs["telnyx-signature-ed25519"] = sig
        t0 = time.time()
        st, _, data, err = http_request(url, "POST", body, hdrs)
        with self.lock:
            rec.update({"status": st, "error": err, "at": t0,
                        "ms": round((time.time() - t0) * 1000, 1),
                        "answer": data[:300].decode("utf-8", "replace")})
        return st

    def post_event(self, owner, event_type, payload, kind="valid",
                   event_id=None, attempt=1, occurred=None):
        """Post one event (or a forged copy of it) and record the answer in
        owner["webhooks"]. Returns the last status."""
        event_id = event_id or self.uuid()
        ts = int(time.time())
        if kind != "valid":
            # the forgery says the fax failed: visible if accepted
            fpayload = dict(payload, status="failed",
                            failure_reason="forged_by_fake")
            fevent = "fax.failed"
        while True:
            doc = {"data": {"event_type": event_type, "id": event_id,
                            "occurred_at": occurred or now_iso(),
                            "record_type": "event", "payload": payload},
                   "meta": {"attempt": attempt,
                            "delivered_to": self.conf["webhook"]}}
            body = json.dumps(doc).encode()
            rec = {"event_type": event_type, "event_id": event_id,
                   "kind": kind, "attempt": attempt,
                   "expect": 200 if kind == "valid" else 401}
            sig = sign(self.key, ts, body)
            if kind != "valid":
                doc["data"]["event_type"] = fevent
                doc["data"]["payload"] = fpayload
                forged = json.dumps(doc).encode()
                rec["forged_as"] = fevent
                if kind == "bad_body":
                    body = forged           # sig is over the genuine body
                elif kind == "wrong_key":
                    body, sig = forged, sign(self.other_key, ts, forged)
                elif kind == "stale":
                    ts -= 3600
                    body, sig = forged, sign(self.key, ts, forged)
                elif kind == "future":
                    ts += 3600
                    body, sig = forged, sign(self.key, ts, forged)
                elif kind == "unsigned":
                    body, sig, ts = forged, None, None
            rec["timestamp"] = ts
            with self.lock:
                owner["webhooks"].append(rec)
            st = self._post_one(body, ts, sig, rec)
            self.log("%s %s %s attempt %d -> %s %s", owner.get("fax_id"),
                     event_type, kind, attempt, st, rec["error"] or "")
            retry = kind == "valid" and (st is None or st >= 500)
            if not retry or attempt > self.conf["webhook_retries"] or \
                    not self.sleep(0.3):
                self.save()
                return st
            attempt += 1
            ts = int(time.time())

    def deliver_sequence(self, sub, events):
        """events: [(event_type, payload)] in the natural order. Shuffle,
        duplicate, add forged copies, post one after the other."""
        with self.lock:
            rng = random.Random(self.rng.getrandbits(64))
            conf = dict(self.conf)
        items = [{"type": t, "payload": p, "id": self.uuid(),
                  "at": now_iso(), "attempt": 1} for t, p in events]
        if rng.random() < conf["shuffle"]:
            rng.shuffle(items)
        seq = []
        for it in items:
            if rng.random() < conf["bad"] and conf["bad_kinds"]:
                seq.append(dict(it, kind=rng.choice(conf["bad_kinds"])))
            seq.append(dict(it, kind="valid"))
        for it in items:
            if rng.random() < conf["dup"]:
                pos = rng.randint(seq.index(dict(it, kind="valid")) + 1,
                                  len(seq))
                seq.insert(pos, dict(it, kind="valid", attempt=2))
        final = [it for it in items if it["type"] in
                 ("fax.delivered", "fax.failed")]
        started = [it for it in items if it["type"] == "fax.sending.started"]
        if final and started and rng.random() < conf["late"]:
            seq.append(dict(started[0], kind="valid", id=self.uuid(),
                            late=True))
        for it in seq:
            if not self.sleep(conf["event_delay_ms"] / 1000.0):
                return
            self.post_event(sub, it["type"], it["payload"], it["kind"],
                            it["id"], it["attempt"], it["at"])
            if it.get("late"):
                with self.lock:
                    sub["webhooks"][-1]["late"] = True

    # ---- outbound faxes ----

    def payload(self, sub, status, **extra):
        p = {"fax_id": sub["fax_id"], "connection_id": sub["connection_id"],
             "direction": "outbound", "to": sub["to"], "from": sub["from"],
             "status": status, "original_media_url": sub["media_url"],
             "user_id": "6a09cdc3-8948-47f0-aa62-74ac943d6c58"}
        if sub.get("pdf") and sub["pdf"].get("pages"):
            p["page_count"] = sub["pdf"]["pages"]
        p.update(extra)
        return p

    def fetch_media(self, sub):
        t0 = time.time()
        st, hdrs, data, err = http_request(sub["media_url"], "GET",
                                           max_bytes=MAX_MEDIA)
        media = {"mode": "url", "url": sub["media_url"], "status": st,
                 "content_type": hdrs.get("content-type"),
                 "bytes": len(data), "sha256": hashlib.sha256(
                     data).hexdigest(), "error": err, "fetched_at": t0,
                 "ms": round((time.time() - t0) * 1000, 1)}
        if err and "over" in err:
            return media, None, "file_size_limit_exceeded"
        if st is None or not 200 <= st < 300:
            return media, None, "file_download_failed"
        return media, data, None

    def process(self, sub, upload):
        if not self.sleep(self.conf["fetch_delay_ms"] / 1000.0):
            return
        if upload is not None:
            data = upload
            media, why = sub["media"], None
        else:
            media, data, why = self.fetch_media(sub)
        path = os.path.join(self.dir, sub["fax_id"] + ".pdf")
        pdf = None
        if data is not None:
            with open(path, "wb") as f:
                f.write(data)
            pdf = pdf_check_light(data, path) \
                if self.conf["pdf_check"] == "light" else pdf_check(path)
            if not data.startswith(b"%PDF-") or pdf["pages"] is None:
                why = "file_format_invalid"
        with self.lock:
            sub["media"] = media
            sub["pdf"] = pdf
            sub["state"] = "processed"
        self.save()
        to = sub["to"]
        suffix = re.sub(r"\D", "", to)[-4:]
        with self.lock:
            nth = sub["nth"]
            busy = self.conf["busy_attempts"]
        events = [("fax.queued", self.payload(sub, "queued"))]
        outcome = "delivered"
        if why:
            outcome = "failed"
        else:
            events.append(("fax.media.processed",
                           self.payload(sub, "media.processed")))
            events.append(("fax.sending.started",
                           self.payload(sub, "sending")))
            if suffix in TEMP_REASONS and nth <= busy:
                outcome, why = "failed", TEMP_REASONS[suffix]
            elif suffix in PERM_REASONS:
                outcome, why = "failed", PERM_REASONS[suffix]
            elif suffix == "0999":
                outcome = "held"
        if outcome == "delivered":
            events.append(("fax.delivered", self.payload(
                sub, "delivered", call_duration_secs=42)))
        elif outcome == "failed":
            events.append(("fax.failed", self.payload(
                sub, "failed", failure_reason=why)))
        with self.lock:
            sub["outcome"] = outcome
            sub["failure_reason"] = why
        self.deliver_sequence(sub, events)
        with self.lock:
            sub["done"] = True
            sub["done_at"] = time.time()
        self.save()

    def finish(self, req):
        with self.lock:
            sub = self.by_id.get(str(req.get("fax_id", "")))
        if not sub or sub.get("outcome") != "held":
            return 404, {"error": "no held fax %r" % req.get("fax_id")}
        status = req.get("status", "delivered")
        if status not in ("delivered", "failed"):
            return 400, {"error": "status: delivered or failed"}
        extra = {"failure_reason": req.get("failure_reason",
                                           "receiver_call_dropped")} \
            if status == "failed" else {"call_duration_secs": 42}
        with self.lock:
            sub["outcome"] = status
            sub["failure_reason"] = extra.get("failure_reason")
            sub["done"] = False
        ev = "fax.delivered" if status == "delivered" else "fax.failed"

        def run():
            self.deliver_sequence(sub, [(ev, self.payload(sub, status,
                                                          **extra))])
            with self.lock:
                sub["done"] = True
                sub["done_at"] = time.time()
            self.save()
        self.spawn(run)
        return 200, {"fax_id": sub["fax_id"], "status": status}

    def submit(self, h, body):
        """POST /v2/faxes -> (status, doc, extra headers)."""
        ctype = h.headers.get("Content-Type", "")
        sub = {"seq": None, "received_at": time.time(),
               "client": "%s:%d" % h.client_address[:2],
               "content_type": ctype, "mode": None, "http_status": None,
               "to": None, "from": None, "connection_id": None,
               "media_url": None, "fax_id": None, "media": None, "pdf": None,
               "outcome": None, "failure_reason": None, "webhooks": [],
               "done": False, "body_bytes": len(body)}

        def answer(st, doc, hdrs=None):
            sub["http_status"] = st
            sub["answer"] = doc
            with self.lock:
                sub["seq"] = len(self.subs)
                self.subs.append(sub)
            self.save()
            return st, doc, hdrs or {}

        def err(st, code, title, detail, pointer=None):
            e = {"code": code, "title": title, "detail": detail}
            if pointer:
                e["source"] = {"pointer": pointer}
            return answer(st, {"errors": [e]})

        if h.headers.get("Authorization", "") != "Bearer " + \
                self.args.api_key:
            return err(401, "10009", "Authentication failed",
                       "The API key is missing or not valid.")
        fields, upload = {}, None
        if ctype.split(";")[0].strip().lower() == "multipart/form-data":
            sub["mode"] = "multipart"
            try:
                parts = parse_multipart(ctype, body)
            except ValueError as e:
                return err(400, "10007", "Bad request", str(e))
            for name, (hdrs, data, fn) in parts.items():
                if name in ("media", "contents"):
                    upload = data
                    sub["media"] = {"mode": "upload", "field": name,
                                    "filename": fn,
                                    "content_type": hdrs.get("content-type"),
                                    "bytes": len(data),
                                    "sha256": hashlib.sha256(
                                        data).hexdigest()}
                else:
                    fields[name] = data.decode("utf-8", "replace")
        else:
            sub["mode"] = "json"
            try:
                fields = json.loads(body.decode("utf-8"))
                if not isinstance(fields, dict):
                    raise ValueError("not an object")
            except (ValueError, UnicodeDecodeError) as e:
                return err(400, "10007", "Bad request",
                           "The body is not a JSON object: %s" % e)
        for k in ("to", "from", "connection_id", "media_url"):
            v = fields.get(k)
            sub[k] = v if isinstance(v, str) else None
        for k in ("to", "from"):
            if not sub[k] or not E164.match(sub[k]):
                return err(422, "10015", "Invalid phone number",
                           "The '%s' parameter must be a phone number in "
                           "+E.164 format." % k, "/" + k)
        if sub["connection_id"] != self.args.connection_id:
            return err(422, "10015", "Invalid connection_id",
                       "The 'connection_id' parameter does not name a fax "
                       "application of this account.", "/connection_id")
        if upload is None:
            if not sub["media_url"]:
                return err(422, "10015", "Invalid media",
                           "Either media_url or a media file is required.",
                           "/media_url")
            if not re.match(r"^https?://", sub["media_url"]):
                return err(422, "10015", "Invalid media_url",
                           "media_url must be an http(s) URL.", "/media_url")
        to = sub["to"]
        suffix = to[-4:]
        with self.lock:
            n = self.posts[to] = self.posts.get(to, 0) + 1
            k = self.conf["throttle_attempts"]
        sub["attempt"] = n
        if suffix == "0422":
            return err(422, "10015", "Invalid phone number",
                       "The 'to' parameter is not a valid fax number.",
                       "/to")
        if suffix == "0429" and n <= k:
            ra = self.conf["retry_after"]
            sub["retry_after"] = ra
            st, doc, _ = err(429, "10011", "Too many requests",
                             "Too many faxes are being processed; retry "
                             "later.")
            return st, doc, {"Retry-After": str(ra)}
        if suffix == "0503" and n <= k:
            return err(503, "10010", "Service unavailable",
                       "Try again later.")
        sub["fax_id"] = self.uuid()
        sub["state"] = "queued"
        with self.lock:
            self.accepted[to] = self.accepted.get(to, 0) + 1
            sub["nth"] = self.accepted[to]
            self.by_id[sub["fax_id"]] = sub
        data = {"id": sub["fax_id"], "record_type": "fax",
                "connection_id": sub["connection_id"],
                "direction": "outbound", "status": "queued",
                "to": sub["to"], "from": sub["from"],
                "media_url": sub["media_url"], "quality": "high",
                "store_media": False, "webhook_url": self.conf["webhook"],
                "created_at": now_iso(sub["received_at"]),
                "updated_at": now_iso(sub["received_at"])}
        res = answer(202, {"data": data})
        self.spawn(self.process, sub, upload)
        return res

    # ---- inbound faxes ----

    def ensure_listener(self, host):
        """A second listener on another loopback address, same port if it
        is free there. Returns its port."""
        with self.lock:
            for s in self.servers:
                if s.server_address[0] == host:
                    return s.server_address[1]
            try:
                srv = Server((host, self.port), self)
            except OSError:
                srv = Server((host, 0), self)
            self.servers.append(srv)
        threading.Thread(target=srv.serve_forever, kwargs={
            "poll_interval": 0.2}, daemon=True).start()
        return srv.server_address[1]

    def inbound_fax(self, req):
        frm, to = req.get("from"), req.get("to")
        pages = req.get("pages", 1)
        if not isinstance(frm, str) or not isinstance(to, str) or \
                not isinstance(pages, int) or not 1 <= pages <= 50:
            return 400, {"error": "from, to (strings), pages 1-50"}
        host = req.get("media_host", "127.0.0.1")
        if host not in ("127.0.0.1", "localhost") and \
                not re.match(r"^127\.\d+\.\d+\.\d+$", host):
            return 400, {"error": "media_host: loopback only"}
        port = self.port
        if host not in ("127.0.0.1", "localhost"):
            try:
                port = self.ensure_listener(host)
            except OSError as e:
                return 500, {"error": "listener on %s: %s" % (host, e)}
        fax_id = self.uuid()
        text = req.get("text", "Inbound test fax")
        pdf = make_pdf([["%s - page %d of %d" % (text, i + 1, pages),
                         "fax id %s" % fax_id, "from %s to %s" % (frm, to)]
                        for i in range(pages)])
        sha = hashlib.sha256(pdf).hexdigest()
        url = "http://%s:%d/files/%s.pdf" % (host, port, fax_id)
        rec = {"fax_id": fax_id, "from": frm, "to": to, "pages": pages,
               "media_url": url, "sha256": sha, "bytes": len(pdf),
               "created_at": time.time(), "webhooks": [], "done": False}
        with self.lock:
            self.files[fax_id] = {"data": pdf, "sha256": sha,
                                  "bytes": len(pdf), "fetches": []}
            self.inbound.append(rec)
        payload = {"fax_id": fax_id, "connection_id": self.args.connection_id,
                   "direction": "inbound", "from": frm, "to": to,
                   "media_url": url, "page_count": pages,
                   "status": "received", "partial_content": False,
                   "user_id": "6a09cdc3-8948-47f0-aa62-74ac943d6c58"}
        kind = req.get("sign", "valid")
        if kind != "valid" and kind not in BAD_KINDS:
            return 400, {"error": "sign: valid or one of %s" % (BAD_KINDS,)}
        dup = bool(req.get("dup"))

        def run():
            eid, at = self.uuid(), now_iso()
            self.post_event(rec, "fax.received", payload, kind, eid, 1, at)
            if dup and self.sleep(0.05):
                self.post_event(rec, "fax.received", payload, kind, eid, 2,
                                at)
            with self.lock:
                rec["done"] = True
            self.save()
        self.spawn(run)
        self.save()
        return 200, {"fax_id": fax_id, "media_url": url, "sha256": sha,
                     "pages": pages, "bytes": len(pdf)}

    def set_config(self, req):
        for k, v in req.items():
            if k not in self.conf:
                return 400, {"error": "unknown config key %r" % k}
            if k == "bad_kinds":
                if not isinstance(v, list) or any(x not in BAD_KINDS
                                                  for x in v):
                    return 400, {"error": "bad_kinds: subset of %s"
                                 % (BAD_KINDS,)}
            elif k == "webhook":
                if not isinstance(v, str) or not v.startswith("http://"):
                    return 400, {"error": "webhook: http:// URL"}
            elif not isinstance(v, (int, float)) or isinstance(v, bool):
                return 400, {"error": "%s: a number" % k}
        with self.lock:
            self.conf.update(req)
            return 200, dict(self.conf)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-telnyx/1"

    def log_message(self, fmt, *a):
        self.server.fake.log("%s " + fmt, self.client_address[0], *a)

    def handle_expect_100(self):
        try:
            n = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            n = 0
        if n > self.server.fake.args.max_body:
            self.reply(413, {"errors": [{"code": "10007", "title":
                                         "Request too large"}]}, close=True)
            return False
        return super().handle_expect_100()

    def reply(self, status, doc, headers=None, ctype="application/json",
              close=False):
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self, limit):
        """The request body, or None after answering 411/413/400."""
        te = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in te:
            out = bytearray()
            while True:
                line = self.rfile.readline(100)
                try:
                    n = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    self.reply(400, {"error": "bad chunk"}, close=True)
                    return None
                if n == 0:
                    while self.rfile.readline(1000) not in (b"\r\n", b"\n",
                                                            b""):
                        pass
                    return bytes(out)
                if len(out) + n > limit:
                    self.reply(413, {"errors": [{"code": "10007", "title":
                                                 "Request too large"}]},
                               close=True)
                    return None
                out += self.rfile.read(n)
                self.rfile.readline(10)
        cl = self.headers.get("Content-Length")
        if cl is None:
            if self.command == "POST":
                self.reply(411, {"error": "Content-Length required"},
                           close=True)
                return None
            return b""
        try:
            n = int(cl)
        except ValueError:
            self.reply(400, {"error": "bad Content-Length"}, close=True)
            return None
        if n > limit:
            self.reply(413, {"errors": [{"code": "10007", "title":
                                         "Request too large"}]}, close=True)
            return None
        return self.rfile.read(n)

    def json_body(self):
        body = self.read_body(MAX_CONTROL)
        if body is None:
            return None
        try:
            doc = json.loads(body or b"{}")
            if isinstance(doc, dict):
                return doc
        except ValueError:
            pass
        self.reply(400, {"error": "a JSON object is expected"})
        return None

    def do_POST(self):
        fake = self.server.fake
        path = urllib.parse.urlsplit(self.path).path
        if path == "/v2/faxes":
            body = self.read_body(fake.args.max_body)
            if body is None:
                return
            st, doc, hdrs = fake.submit(self, body)
            self.reply(st, doc, hdrs)
        elif path in ("/_fake/config", "/_fake/finish", "/_fake/inbound"):
            req = self.json_body()
            if req is None:
                return
            fn = {"/_fake/config": fake.set_config,
                  "/_fake/finish": fake.finish,
                  "/_fake/inbound": fake.inbound_fax}[path]
            st, doc = fn(req)
            self.reply(st, doc)
        else:
            if self.read_body(MAX_CONTROL) is None:
                return
            self.reply(404, {"errors": [{"code": "10005", "title":
                                         "Resource not found"}]})

    def do_GET(self):
        fake = self.server.fake
        path = urllib.parse.urlsplit(self.path).path
        m = re.match(r"^/files/([0-9a-f-]{36})\.pdf$", path)
        if path == "/_fake/state":
            self.reply(200, fake.snapshot())
        elif path == "/_fake/health":
            self.reply(200, {"ok": True})
        elif m:
            with fake.lock:
                f = fake.files.get(m.group(1))
                if f:
                    f["fetches"].append({
                        "at": time.time(),
                        "client": "%s:%d" % self.client_address[:2],
                        "listener": "%s:%d" % self.server.server_address[:2],
                        "host": self.headers.get("Host")})
            if not f:
                self.reply(404, {"error": "no such file"})
            else:
                fake.save()
                self.reply(200, f["data"], ctype="application/pdf")
        elif path.startswith("/v2/faxes/"):
            if self.headers.get("Authorization", "") != "Bearer " + \
                    fake.args.api_key:
                self.reply(401, {"errors": [{"code": "10009", "title":
                                             "Authentication failed"}]})
                return
            with fake.lock:
                sub = fake.by_id.get(path[len("/v2/faxes/"):])
                doc = dict(sub["answer"]["data"], status=sub.get(
                    "outcome") or sub.get("state")) if sub else None
            if doc:
                self.reply(200, {"data": doc})
            else:
                self.reply(404, {"errors": [{"code": "10005", "title":
                                             "Resource not found"}]})
        else:
            self.reply(404, {"errors": [{"code": "10005", "title":
                                         "Resource not found"}]})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, fake):
        self.fake = fake
        super().__init__(addr, Handler)

    def handle_error(self, request, client_address):
        # a client that hangs up is not news; anything else goes to stderr
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            self.fake.log("%s: %s", client_address, exc)
        else:
            super().handle_error(request, client_address)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--webhook", default="http://127.0.0.1:9/hooks/fax/fax1")
    ap.add_argument("--api-key", default="KEY")
    ap.add_argument("--connection-id", default="conn1")
    ap.add_argument("--seed", help="Ed25519 private seed, 64 hex digits")
    ap.add_argument("--state", help="write the state JSON here")
    ap.add_argument("--dir", help="keep received PDFs here (default: a "
                    "temporary directory removed at exit)")
    ap.add_argument("--rng-seed", type=int, default=1)
    ap.add_argument("--shuffle", type=float, default=0.5)
    ap.add_argument("--dup", type=float, default=0.3)
    ap.add_argument("--bad", type=float, default=0.3)
    ap.add_argument("--late", type=float, default=0.0)
    ap.add_argument("--busy-attempts", type=int, default=1)
    ap.add_argument("--throttle-attempts", type=int, default=1)
    ap.add_argument("--retry-after", type=int, default=2)
    ap.add_argument("--event-delay-ms", type=int, default=20)
    ap.add_argument("--fetch-delay-ms", type=int, default=0)
    ap.add_argument("--webhook-retries", type=int, default=3)
    ap.add_argument("--max-body", type=int, default=20 << 20)
    ap.add_argument("--pdf-check", choices=("full", "light"),
                    default="full", help="full: pdfinfo + pdftotext per "
                    "fax; light: header, trailer and page count only")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.seed:
        try:
            binascii.unhexlify(args.seed)
        except binascii.Error:
            ap.error("--seed: hex digits")

    fake = Fake(args)
    srv = Server(("127.0.0.1", args.port), fake)
    fake.port = srv.server_address[1]
    fake.servers.append(srv)
    done = threading.Event()

    def on_signal(signum, frame):
        done.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                     daemon=True).start()
    print(json.dumps({"port": fake.port, "public_key": fake.public_key,
                      "pid": os.getpid()}), flush=True)
    fake.save()
    while not done.wait(1.0):
        pass
    fake.stop.set()
    for s in list(fake.servers):
        s.shutdown()
        s.server_close()
    deadline = time.monotonic() + 8
    for w in list(fake.workers):
        w.join(max(0.0, deadline - time.monotonic()))
    fake.save()
    if fake.own_dir:
        shutil.rmtree(fake.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The SMTP channel (channels/smtp.c, channels/mime.c) against real peers.

Without the daemon (smtp_drive, tests/fakes/smtp_drive.c, built here from
the objects make left in build/san or build/obj):
  - the MIME writer's bytes parsed by Python's email package (policy
    default, raise_on_defect): CJK and emoji subjects and names round-trip,
    "." and "From " lines survive, a 5,000-character line is encoded,
    inline images resolve by cid, header injection is refused;
  - aiosmtpd with a recording handler: outcomes for 250/550/452/450/421,
    a dropped connection, 554 after the data; the queue id; VERP; no extra
    SMTP command for injection attempts;
  - smtp-sink: 20,000 messages over 16 connections (connection count as
    configured), messages per connection, -q/-Q/-r/-f faults (nothing
    lost, nothing marked sent by mistake); close with a grace period.
Through gatewayd (templates from a Redis hash): a campaign to aiosmtpd, a
550 recorded as failed with its reply, 450 deferred then retried, 421 and
a dropped connection retried, 5,000 messages into smtp-sink.
"""

import base64
import email.header
import os
import re
import time

from harness import promtool_check, GATEWAYD, check, wait_until, xadd_jobs
from smtp_peers import (TRANSPORTS, Aiosmtpd, ScriptPeer, SmtpSink,
                        check_lines, drive, mime_files, parse_strict)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAC"
    "hwGA60e6kgAAAABJRU5ErkJggg==")

CJK = "春のセール：全商品２０％オフ！今すぐチェック。期間限定のお得なキャンペーンです"
EMOJI = "🎉 Party 👩‍👩‍👧‍👦 🇫🇷🇩🇪 time ✨"
# Display names that fit one encoded-word. Python's address parser puts a
# space between adjacent encoded-words in a phrase (RFC 2047 6.2 says to
# drop it; Python does so in unstructured fields only), even for what its
# own generator folds: long names are checked with decode_header instead.
CJK_NAME = "山田 花子（ヤマダ）"
EMOJI_NAME = "Zoë 🎉👩‍👩‍👧 ✨"


def _norm(s):
    return s.replace("\r\n", "\n")


def _parts(msg):
    return [(p.get_content_type(), p) for p in msg.walk()
            if not p.is_multipart()]


# ---- the MIME bytes, no SMTP ----

def test_mime_parsed_by_python(ctx):
    long_line = "".join("word%d " % i for i in range(1000))[:5000]
    text = ".starts with a dot\n..two dots\nFrom the start\n.\n" \
           "trailing space \n" + long_line + "\nend\n"
    html = ("<html><body><p>Hi</p><img src=\"cid:logo.png.1a2b@gateway\">"
            "<p>" + long_line + "</p></body></html>")
    specs = [
        {"key": "camp:c1:email", "to": "ann@example.org", "to_name": CJK_NAME,
         "subject": CJK + " " + EMOJI, "text": text, "html": html,
         "from_name": "Läden & Co. 商店", "campaign": "spring-27",
         "class": "marketing", "list_id": "Shop news <news.example.org>",
         "unsubscribe_url": "https://example.org/u/tok123",
         "unsubscribe_mailto": "unsub+c1@example.org",
         "images": [{"name": "logo.png", "content_type": "image/png",
                     "content_id": "logo.png.1a2b@gateway",
                     "data_b64": base64.b64encode(PNG).decode()}]},
        {"key": "k2", "to": "bob@example.org", "to_name": EMOJI_NAME,
         "subject": "Plain ASCII subject that is long enough to need a fold "
                    "somewhere past the seventy-eighth column, surely",
         "text": "only text\n"},
        {"key": "k3", "to": "cy@example.org", "to_name": "Doe, \"Cy\"",
         "subject": "=?utf-8?q?not_decoded?= stays  literal",
         "html": "<b>x</b>"},
    ]
    out = mime_files(ctx.workdir, specs)
    check(all(isinstance(raw, bytes) for _, raw in out),
          "all built: %r" % [r for _, r in out if not isinstance(r, bytes)])
    for spec, raw in out:
        check_lines(raw)
        m = parse_strict(raw)
        check(str(m["subject"]) == spec["subject"],
              "subject round-trips: %r != %r" % (str(m["subject"]),
                                                 spec["subject"]))
        to = m["to"].addresses[0]
        check(to.display_name == spec["to_name"], "to name: %r"
              % to.display_name)
        check(to.addr_spec == spec["to"], "to address")
        check(m["mime-version"] == "1.0", "MIME-Version")
        check(m["date"] is not None, "Date")
    # 1: structure, bodies, cid, list headers
    spec, raw = out[0]
    m = parse_strict(raw)
    check(m["from"].addresses[0].display_name == "Läden & Co. 商店", "from")
    check(m["message-id"] == "<camp=3Ac1=3Aemail@example.org>",
          "message id %r" % m["message-id"])
    check(m.get_content_type() == "multipart/alternative", "top is alt")
    types = [t for t, _ in _parts(m)]
    check(types == ["text/plain", "text/html", "image/png"], types)
    alt = m.get_payload()
    check(alt[0].get_content_type() == "text/plain", "text first")
    check(alt[1].get_content_type() == "multipart/related", "html last")
    plain = _norm(alt[0].get_content())
    check(plain == text, "text body survives: %r" % plain[:200])
    rel = alt[1].get_payload()
    htm = rel[0].get_content()
    check(_norm(htm) == html, "html body survives")
    img = rel[1]
    check(img["content-id"] == "<logo.png.1a2b@gateway>", "content-id")
    check(("cid:" + img["content-id"][1:-1]) in htm, "cid resolves")
    check(img.get_content() == PNG, "image bytes")
    check(m["list-unsubscribe"] == "<https://example.org/u/tok123>, "
          "<mailto:unsub+c1@example.org>", m["list-unsubscribe"])
    check(m["list-unsubscribe-post"] == "List-Unsubscribe=One-Click", "1ck")
    check(m["list-id"] == "Shop news <news.example.org>", "list id")
    check(m["x-campaign-id"] == "spring-27", "campaign header")
    check(b"\r\n=2Estarts with a dot" in raw and b"\r\n=46rom the" in raw,
          "leading . and From encoded")
    # 2: text only; 3: display name with specials, html only
    m2 = parse_strict(out[1][1])
    check(m2.get_content_type() == "text/plain", "text only")
    m3 = parse_strict(out[2][1])
    check(m3.get_content_type() == "text/html", "html only")
    # a one-part message ends with its last line's CRLF
    check(_norm(m3.get_content()) == "<b>x</b>\n", "html")


def test_mime_long_display_names(ctx):
    """Names longer than one encoded-word: every word <= 75 characters,
    whole characters each, and RFC 2047 decoding (whitespace between
    adjacent encoded-words dropped) gives the name back exactly."""
    names = [CJK, EMOJI * 3, "Ünïcödé " * 12, "a" * 40 + " " + CJK]
    specs = [{"key": "n%d" % i, "to": "x@example.org", "to_name": nm,
              "subject": nm, "text": "t"} for i, nm in enumerate(names)]
    for (spec, raw), nm in zip(mime_files(ctx.workdir, specs), names):
        check_lines(raw)
        parse_strict(raw)
        head = raw.split(b"\r\n\r\n")[0].decode("ascii")
        to = re.search(r"^To:(.*?)(?=\r\n\S)", head, re.S | re.M).group(1)
        to = to.replace("\r\n", "")
        for w in re.findall(r"=\?[^?]+\?[BQ]\?[^?]*\?=", to):
            check(len(w) <= 75, "encoded-word of %d" % len(w))
            str(email.header.make_header(email.header.decode_header(w)))
        phrase = to.rsplit("<", 1)[0].strip()
        got = str(email.header.make_header(
            email.header.decode_header(phrase)))
        check(got == nm, "name %r != %r" % (got, nm))
        m = parse_strict(raw)
        check(str(m["subject"]) == nm, "subject")


def test_mime_injection_refused(ctx):
    base = {"to": "ann@example.org", "subject": "s", "text": "t"}
    bad = [
        {"subject": "Hi\r\nBcc: evil@example.org"},
        {"subject": "Hi\nBcc: evil@example.org"},
        {"subject": "nul\u0000x"},
        {"subject": "ls\u2028Bcc: x"},
        {"subject": "=?utf-8?q?x=0D=0ABcc:_evil?="},
        {"to_name": "Ann\r\nBcc: evil@example.org"},
        {"to_name": "Ann\u2028Bcc"},
        {"to": "ann@example.org\r\nRCPT TO:<evil@example.org>"},
        {"to": "ann@example.org\nx"},
        {"to": "ann\u2028@example.org"},
        {"to": "\"a\r\nb\"@example.org"},
        {"unsubscribe_url": "https://x.example.org/u?a\r\nBcc: evil"},
        {"unsubscribe_url": "https://x.example.org/u?%0d%0aBcc:evil"},
        {"unsubscribe_mailto": "u@example.org?subject=%0ABcc:evil"},
        {"campaign": "c\r\nBcc: evil"},
    ]
    specs = []
    for i, b in enumerate(bad):
        s = dict(base)
        s.update(b)
        s["key"] = "bad-%d" % i
        specs.append(s)
    out = mime_files(ctx.workdir, specs)
    for spec, res in out:
        check(isinstance(res, dict) and res.get("reason"),
              "refused: %r -> %r" % (spec, res if isinstance(res, dict)
                                     else res[:200]))


# ---- aiosmtpd, no daemon ----

def _specs_mixed():
    return [
        {"key": "ok-%d" % i, "to": "user%d@example.org" % i,
         "to_name": (CJK_NAME if i % 2 else EMOJI_NAME) + " %d" % i,
         "subject": "%s %d" % (EMOJI if i % 2 else CJK, i),
         "text": ".dot line\nFrom here\nbody %d\n" % i,
         "html": "<p>body %d</p>" % i, "class": "marketing",
         "campaign": "camp-1",
         "unsubscribe_url": "https://example.org/u/%d" % i}
        for i in range(20)
    ] + [
        {"key": "r550", "to": "reject550@example.org", "subject": "s",
         "text": "t"},
        {"key": "r452", "to": "full452@example.org", "subject": "s",
         "text": "t"},
        {"key": "r450", "to": "defer450@example.org", "subject": "s",
         "text": "t"},
        {"key": "r421", "to": "close421@example.org", "subject": "s",
         "text": "t"},
        {"key": "rdrop", "to": "drop@example.org", "subject": "s",
         "text": "t"},
        {"key": "r554", "to": "dataerr554@example.org", "subject": "s",
         "text": "t"},
        {"key": "rdd", "to": "cutdata@example.org", "subject": "s",
         "text": "t"},
        {"key": "nocontent", "to": "nc@example.org", "subject": "s"},
    ]


def test_aiosmtpd_outcomes(ctx):
    for transport in TRANSPORTS:
        _aiosmtpd_outcomes(ctx, transport, True)
    _aiosmtpd_outcomes(ctx, "pipelined", False)     # lock-step


def _aiosmtpd_outcomes(ctx, transport, pipelining):
    peer = Aiosmtpd(ctx.workdir, "aiosmtpd-%s-%d" % (transport, pipelining),
                    pipelining=pipelining).start()
    try:
        outcomes, summary, err = drive(ctx.workdir, peer.url,
                                       specs=_specs_mixed(), conns=3,
                                       transport=transport)
        # key: (result, reply starts with, in doubt)
        expect = {"r550": ("permfail", "RCPT: 550 5.1.1", 0),
                  "r452": ("tempfail", "RCPT: 452 4.2.2", 0),
                  "r450": ("tempfail", "RCPT: 450 4.2.0", 0),
                  "r421": ("tempfail", "RCPT: 421 4.7.0", 0),
                  "rdrop": ("tempfail", "", 0),
                  "r554": ("permfail", "end of data: 554 5.7.1", 0),
                  "rdd": ("tempfail", "", 1),
                  "nocontent": ("permfail", "no rendered content", 0)}
        for k, (res, reply, doubt) in expect.items():
            o = outcomes[k]
            check(o["result"] == res and o["reply"].startswith(reply),
                  "%s %s: %r" % (transport, k, o))
            check(o["provider_id"] is None, "%s: no provider id" % k)
            check(o["in_doubt"] == doubt, "%s %s: in doubt? %r"
                  % (transport, k, o))
        got = peer.messages()
        check(len(got) == 20, "20 stored, not %d" % len(got))
        ids = set()
        for meta, raw in got:
            m = parse_strict(raw)
            check_lines(raw)
            i = int(m["message-id"][1:].split("@")[0].split("-")[1])
            check(meta["rcpt_tos"] == ["user%d@example.org" % i], "rcpt")
            check(meta["mail_from"] == "bounces+ok-%d@example.org" % i,
                  "VERP: %r" % meta["mail_from"])
            check(meta["helo"] == "gw.example.org", "helo")
            check(str(m["subject"]) ==
                  "%s %d" % (EMOJI if i % 2 else CJK, i), "subject")
            check(m["to"].addresses[0].display_name ==
                  (CJK_NAME if i % 2 else EMOJI_NAME) + " %d" % i, "name")
            txt = _norm(m.get_payload()[0].get_content())
            check(txt == ".dot line\nFrom here\nbody %d\n" % i, repr(txt))
            check(m["list-unsubscribe-post"] == "List-Unsubscribe=One-Click",
                  "one-click on marketing")
            ids.add(i)
            o = outcomes["ok-%d" % i]
            check(o["result"] == "ok" and o["provider_id"].startswith("Q"),
                  "accepted with queue id: %r" % o)
            check(o["final"] == 0, "accepted, not final")
        check(ids == set(range(20)), "every message once")
    finally:
        peer.stop()


def test_injection_no_extra_commands(ctx):
    for transport in TRANSPORTS:
        _injection_no_extra_commands(ctx, transport)


def _injection_no_extra_commands(ctx, transport):
    peer = Aiosmtpd(ctx.workdir, "inj-" + transport).start()
    try:
        specs = [
            {"key": "i1", "to": "a@example.org\r\nRCPT TO:<evil@example.org>",
             "subject": "s", "text": "t"},
            {"key": "i2", "to": "a@example.org\nRCPT TO:<evil@example.org>",
             "subject": "s", "text": "t"},
            {"key": "i3", "to": "a\u2028@example.org", "subject": "s",
             "text": "t"},
            {"key": "i4", "to": "good@example.org",
             "subject": "x\r\nBcc: evil@example.org", "text": "t"},
            {"key": "i5", "to": "good@example.org",
             "to_name": "Ann\r\nBcc: evil@example.org", "text": "t",
             "subject": "s"},
            {"key": "i6", "to": "good@example.org", "to_name": "A\u2028B",
             "subject": "s", "text": "t"},
            {"key": "i7", "to": "good@example.org", "subject": "s\u0000x",
             "text": "t"},
            {"key": "ok", "to": "good@example.org", "subject": "fine",
             "text": "t"},
        ]
        outcomes, _, _ = drive(ctx.workdir, peer.url, specs=specs, conns=1,
                               transport=transport)
        for k in ("i1", "i2", "i3", "i4", "i5", "i6", "i7"):
            check(outcomes[k]["result"] == "permfail", "%s refused: %r"
                  % (k, outcomes[k]))
        check(outcomes["ok"]["result"] == "ok", "the good one went")
        cmds = peer.commands()
        rcpts = [c["arg"] for c in cmds if c["cmd"] == "RCPT"]
        mails = [c for c in cmds if c["cmd"] == "MAIL"]
        check(rcpts == ["good@example.org"] and len(mails) == 1,
              "one transaction on the wire: %r" % cmds)
        got = peer.messages()
        check(len(got) == 1, "one message")
        m = parse_strict(got[0][1])
        check("bcc" not in m and m["subject"] == "fine", "no extra header")
    finally:
        peer.stop()


# ---- smtp-sink, no daemon ----

def test_sink_volume_16_connections(ctx):
    for transport in TRANSPORTS:
        _sink_volume(ctx, transport)


def _sink_volume(ctx, transport):
    sink = SmtpSink(ctx.workdir).start()
    try:
        n = 20000
        outcomes, summary, _ = drive(ctx.workdir, sink.url, n=n, conns=16,
                                     per_conn=0, quiet=True, timeout=300,
                                     transport=transport)
        check(summary["ok"] == n, "all accepted: %r" % summary)
        wait_until(lambda: sink.counters()["mesg"] >= n, 10, "sink counted")
        c = sink.counters()
        check(c["mesg"] == n, "sink got %d" % c["mesg"])
        wait_until(lambda: sink.counters()["sess"] >= 16, 10, "sessions end")
        c = sink.counters()
        check(c["sess"] == 16, "16 connections, not %d" % c["sess"])
        print("     smtp_drive -> smtp-sink (%s): %d messages, 16 "
              "connections, %.0f msg/s" % (transport, n, summary["rate"]))
    finally:
        sink.stop()


def test_sink_messages_per_connection(ctx):
    for transport in TRANSPORTS:
        _messages_per_connection(ctx, transport)


def _messages_per_connection(ctx, transport):
    sink = SmtpSink(ctx.workdir).start()
    try:
        n = 2000
        _, summary, _ = drive(ctx.workdir, sink.url, n=n, conns=4,
                              per_conn=100, quiet=True, transport=transport)
        check(summary["ok"] == n, "all accepted: %r" % summary)
        wait_until(lambda: sink.counters()["mesg"] >= n, 10, "sink counted")
        time.sleep(0.2)
        c = sink.counters()
        # each connection carries at most 100: at least 20 of them; the
        # last connection of each of the 4 lanes may carry fewer
        check(20 <= c["sess"] <= 24, "connections: %r" % c)
    finally:
        sink.stop()


def test_sink_faults(ctx):
    # (smtp-sink options, outcome, reply contains, in doubt)
    cases = [
        (["-Q", "RCPT"], "tempfail", "421", 0),     # 421 and disconnect
        (["-q", "RCPT"], "tempfail", None, 0),      # disconnect, no reply
        (["-q", "DATA"], "tempfail", None, 0),
        (["-q", "."], "tempfail", None, 1),         # data sent, no answer
        (["-Q", "."], "tempfail", "421", 0),
        (["-r", "RCPT"], "tempfail", "RCPT: 450", 0),
        (["-f", "RCPT"], "permfail", "RCPT: 500", 0),
        (["-f", "."], "permfail", "end of data: 500", 0),
        (["-Q", "CONNECT"], "tempfail", "session refused: 421", 0),
        (["-f", "MAIL"], "permfail", "MAIL: 500", 0),
    ]
    for transport in TRANSPORTS:
        for opts, res, reply, doubt in cases:
            _sink_fault(ctx, transport, opts, res, reply, doubt)


def _sink_fault(ctx, transport, opts, res, reply, doubt):
    sink = SmtpSink(ctx.workdir, opts).start()
    try:
        outcomes, summary, _ = drive(ctx.workdir, sink.url, n=6, conns=2,
                                     backoff=50, transport=transport)
        opts = [transport] + opts
        check(summary["ok"] == 0, "%s: nothing marked sent: %r"
              % (opts, summary))
        for o in outcomes.values():
            check(o["result"] == res, "%s: %r" % (opts, o))
            if reply:
                check(reply in o["reply"], "%s: %r" % (opts, o))
            check(o["in_doubt"] == doubt, "%s: in doubt? %r" % (opts, o))
        check(len(outcomes) == 6, "%s: every message reported" % opts)
    finally:
        sink.stop()


def test_close_grace_period(ctx):
    for transport in TRANSPORTS:
        _close_grace(ctx, transport)


def _close_grace(ctx, transport):
    # RCPT answered after 5 s: close at 300 ms, grace 2 s -> the running
    # transfers are cancelled, the queued ones handed back, loop closed.
    sink = SmtpSink(ctx.workdir, ["-W", "RCPT:5"]).start()
    try:
        t0 = time.monotonic()
        outcomes, summary, err = drive(ctx.workdir, sink.url, n=10, conns=2,
                                       close_after=300, transport=transport)
        took = time.monotonic() - t0
        check(took < 4.5, "closed within the grace period (%.1fs)" % took)
        check(len(outcomes) == 10, "every message reported: %r" % summary)
        replies = sorted(o["reply"] for o in outcomes.values())
        check(all(o["result"] == "tempfail" for o in outcomes.values()),
              "all handed back: %r" % replies)
        check(replies.count("shutdown: cancelled") == 2 and
              replies.count("shutdown: not sent") == 8, replies)
    finally:
        sink.stop()


def test_tls(ctx):
    for transport in TRANSPORTS:
        _tls(ctx, transport)


def _tls(ctx, transport):
    specs = [{"key": "t%d" % i, "to": "u%d@example.org" % i,
              "subject": "über TLS", "text": ".t\n", "html": "<p>h</p>"}
             for i in range(5)]
    # STARTTLS, the peer verified against our CA file
    peer = Aiosmtpd(ctx.workdir, "starttls-" + transport,
                    mode="starttls").start()
    plain = Aiosmtpd(ctx.workdir, "plain-" + transport).start()
    smtps = Aiosmtpd(ctx.workdir, "smtps-" + transport, mode="smtps").start()
    ca = 'ca_file = "%s"\n' % peer.cert
    try:
        _, summary, _ = drive(ctx.workdir, peer.url, specs=specs, conns=2,
                              transport=transport, tls="required", extra=ca)
        check(summary["ok"] == 5, "%s: STARTTLS: %r" % (transport, summary))
        got = peer.messages()
        check(len(got) == 5 and all(m["tls"] for m, _ in got),
              "all over TLS")
        for _, raw in got:
            check(str(parse_strict(raw)["subject"]) == "über TLS", "subject")
        # an unknown issuer: nothing is sent
        out, summary, _ = drive(ctx.workdir, peer.url, specs=specs, conns=2,
                                transport=transport, tls="required")
        check(summary["ok"] == 0 and all(o["result"] == "tempfail"
                                         for o in out.values()),
              "%s: unverified peer refused: %r" % (transport, out))
        check(len(peer.messages()) == 5, "nothing more stored")
        # no STARTTLS on offer: tls = required sends nothing in clear
        out, summary, _ = drive(ctx.workdir, plain.url, specs=specs, conns=2,
                                transport=transport, tls="required",
                                extra=ca)
        check(summary["ok"] == 0, "%s: no plain text: %r" % (transport, out))
        check(not [c for c in plain.commands() if c["cmd"] in ("MAIL",
                                                               "RCPT")],
              "no MAIL or RCPT in plain text: %r" % plain.commands())
        # opportunistic goes plain there
        _, summary, _ = drive(ctx.workdir, plain.url, specs=specs, conns=2,
                              transport=transport, tls="opportunistic")
        check(summary["ok"] == 5, "opportunistic: %r" % summary)
        # implicit TLS (smtps://, RFC 8314)
        _, summary, _ = drive(ctx.workdir, smtps.url, specs=specs, conns=2,
                              transport=transport, tls="required", extra=ca)
        # (that peer speaks nothing but TLS; aiosmtpd only flags STARTTLS)
        check(summary["ok"] == 5, "%s: smtps: %r" % (transport, summary))
        check(len(smtps.messages()) == 5, "smtps: stored")
    finally:
        peer.stop()
        plain.stop()
        smtps.stop()


GREET = [("send", b"220 peer ESMTP\r\n"), ("until", b"EHLO"),
         ("until", b"\r\n"), ("send", b"250-peer\r\n250 PIPELINING\r\n")]
GROUP = [("until", b"DATA\r\n")]
BODY = [("until", b"\r\n.\r\n")]

# Protocol cases for our transaction code ("pipelined"), in the manner of
# curl's tests/data: what the peer sends and waits for, the outcome, and
# what must (not) be on the wire.
PROTOCOL_CASES = [
    ("accepted, queue id",
     GREET + GROUP + [("send", b"250 ok\r\n250 ok\r\n354 go\r\n")] + BODY +
     [("send", b"250 2.0.0 Ok: queued as ABC123\r\n")],
     "ok", "250 2.0.0 Ok: queued as ABC123", b"RSET"),
    ("replies a byte at a time, multi-line final",
     GREET + GROUP +
     [("send", bytes([b])) for b in b"250 ok\r\n250 ok\r\n354 go\r\n"] +
     BODY + [("send", b"250-first line\r\n250 2.0.0 id=XYZ\r\n")],
     "ok", "250 first line 2.0.0 id=XYZ", None),
    ("MAIL refused, the server still says 354: empty data, then RSET",
     GREET + GROUP + [("send", b"550 5.7.1 sender refused\r\n"
                               b"250 ok\r\n354 go\r\n"),
                      ("until", b".\r\n"), ("send", b"554 no valid\r\n"),
                      ("until", b"RSET\r\n"), ("send", b"250 reset\r\n")],
     "permfail", "MAIL: 550 5.7.1 sender refused", None),
    ("a reply line too long",
     GREET + GROUP + [("send", b"250 " + b"x" * 9000)],
     "tempfail", "reply line too long", None),
    ("not an SMTP reply",
     GREET + GROUP + [("send", b"HELLO THERE\r\n")],
     "tempfail", "not an SMTP reply", None),
    ("greeting refused",
     [("send", b"554 5.3.2 go away\r\n")],
     "tempfail", "session refused: 554 5.3.2 go away", b"MAIL"),
    ("no reply to the end of data in time",
     GREET + GROUP + [("send", b"250 ok\r\n250 ok\r\n354 go\r\n")] + BODY +
     [("sleep", 3)],
     "tempfail", "no reply to end of data within 1000 ms", None),
]


def test_protocol_cases(ctx):
    spec = [{"key": "p1", "to": "a@example.org", "subject": "s",
             "text": ".leading dot\n", "html": "<p>x</p>"}]
    for name, script, res, reply, absent in PROTOCOL_CASES:
        peer = ScriptPeer(script).start()
        try:
            out, _, _ = drive(ctx.workdir, peer.url, specs=spec, conns=1,
                              timeout_ms=1000)
            o = out["p1"]
            check(o["result"] == res and o["reply"] == reply,
                  "%s: %r" % (name, o))
            wire = b"".join(peer.received)
            if absent:
                check(absent not in wire, "%s: no %r on the wire: %r"
                      % (name, absent, wire[-300:]))
            if res == "ok":
                # one group MAIL+RCPT+DATA, dot-stuffed data, QUIT at close
                check(b"MAIL FROM:<bounces+p1@example.org> SIZE=" not in wire
                      and b"MAIL FROM:<bounces+p1@example.org>\r\n"
                      b"RCPT TO:<a@example.org>\r\nDATA\r\n" in wire,
                      "%s: pipelined group: %r" % (name, wire[:200]))
                # the peer's thread may still be reading the QUIT that
                # went out as the driver closed: wait for it, bounded
                end = time.monotonic() + 5
                while not wire.endswith(b"QUIT\r\n") and \
                        time.monotonic() < end:
                    time.sleep(0.02)
                    wire = b"".join(peer.received)
                check(wire.endswith(b"\r\n.\r\nQUIT\r\n"), "%s: %r"
                      % (name, wire[-40:]))
        finally:
            peer.stop()


def test_slow_final_reply_does_not_block(ctx):
    # The reply to the end of data takes 1 s: 8 messages on 4 connections
    # take about 2 s when the waits overlap. (libcurl 7.88's own
    # transaction, transport = "libcurl", blocks the loop for each: 8 s.)
    sink = SmtpSink(ctx.workdir, ["-W", ".:1"]).start()
    try:
        t0 = time.monotonic()
        outcomes, summary, _ = drive(ctx.workdir, sink.url, n=8, conns=4)
        took = time.monotonic() - t0
        check(summary["ok"] == 8, "all accepted: %r" % summary)
        check(took < 4.0, "the waits overlapped: %.1fs for 8" % took)
    finally:
        sink.stop()


# ---- through gatewayd ----

def _provider_sets(name, url, conns=4, per_conn=100, transport="pipelined"):
    pre = "provider.%s." % name
    return [pre + "type=smtp", pre + "url=" + url, pre + "tls=off",
            pre + "transport=" + transport, pre + "helo=gw.example.org",
            pre + "from=Shop <news@example.org>",
            pre + "envelope_from=bounces+{key}@example.org",
            pre + "message_id_domain=mail.example.org",
            pre + "list_id=Shop news <news.example.org>",
            pre + "max_connections=%d" % conns,
            pre + "max_messages_per_connection=%d" % per_conn,
            pre + "backoff_ms=100", pre + "channels=[\"email\"]"]


def _smtp_sets(url, conns=4, per_conn=100, extra=()):
    return _provider_sets("mail", url, conns, per_conn) + \
        ["channel.email.provider=mail", "dispatch.retry_base_ms=200",
         "dispatch.retry_max_ms=400"] + list(extra)


def _template(r, name="smtpt"):
    r.hset("gw:tpl:" + name, mapping={
        "version": "1",
        "subject": "春のセール {{first_name}} 🎉",
        "html": "<html><body><p>Hello {{first_name}}</p>"
                "<img src=\"logo.png\" alt=\"logo\"></body></html>",
        "text": ".dot\nFrom {{first_name}}\n",
        "image:logo.png": PNG,
    })


def _rcpts(n, local="user", start=0):
    return [{"customer_id": "c%d" % i, "email": "%s%d@example.org"
             % (local, i), "name": "名前 %d" % i,
             "vars": {"first_name": "Ann%d" % i}}
            for i in range(start, start + n)]


def test_gateway_campaign_via_aiosmtpd(ctx):
    peer = Aiosmtpd(ctx.workdir).start()
    try:
        red = ctx.redis()
        r = red.client()
        _template(r)
        gw = ctx.gateway(red.url, sets=_smtp_sets(peer.url) + [
            'tracking.public_url="https://gw.example.org/"',
            'tracking.unsubscribe_mailto="mailto:unsub@example.org"']).start()
        n = 50
        xadd_jobs(r, [{"type": "campaign", "id": "sc1", "channel": "email",
                       "template": "smtpt", "class": "marketing",
                       "audience": {"recipients": _rcpts(n)}}])
        wait_until(lambda: len(peer.files()) >= n, 60, "%d received" % n)
        wait_until(lambda: all(r.hget("gw:msg:sc1:c%d:email" % i, "state")
                               == "accepted" for i in range(n)), 30,
                   "ledger says accepted")
        got = peer.messages()
        check(len(got) == n, "exactly %d, got %d" % (n, len(got)))
        seen = set()
        for meta, raw in got:
            check_lines(raw)
            m = parse_strict(raw)
            i = int(meta["rcpt_tos"][0][4:].split("@")[0])
            seen.add(i)
            check(str(m["subject"]) == "春のセール Ann%d 🎉" % i, "subject")
            check(m["to"].addresses[0].display_name == "名前 %d" % i, "name")
            check(m["message-id"] ==
                  "<sc1=3Ac%d=3Aemail@mail.example.org>" % i, "message id")
            check(m["x-campaign-id"] == "sc1", "campaign header")
            check(m["list-id"] == "Shop news <news.example.org>", "list id")
            # RFC 2369 + RFC 8058: https and mailto, and one-click
            lu = str(m["list-unsubscribe"])
            check(re.fullmatch(r"<https://gw\.example\.org/u/[A-Za-z0-9_.-]+>,"
                               r"\s*<mailto:unsub@example\.org\?subject="
                               r"unsubscribe%20[A-Za-z0-9_.-]+>", lu),
                  "List-Unsubscribe: %r" % lu)
            check(m["list-unsubscribe-post"] == "List-Unsubscribe=One-Click",
                  "one-click header")
            check(meta["mail_from"] == "bounces+sc1=3Ac%d=3Aemail@example.org"
                  % i, "VERP")
            alt = m.get_payload()
            check(_norm(alt[0].get_content()) == ".dot\nFrom Ann%d\n" % i,
                  "text")
            rel = alt[1]
            check(rel.get_content_type() == "multipart/related", "related")
            html, img = rel.get_payload()
            cid = img["content-id"][1:-1]
            check(("cid:" + cid) in html.get_content(), "cid resolves")
            check(img.get_content() == PNG, "image")
            led = r.hgetall("gw:msg:sc1:c%d:email" % i)
            check(led.get("provider_id", "").startswith("Q"), "provider id "
                  "in the ledger: %r" % led)
        check(seen == set(range(n)), "each recipient once")
        check(gw.stop() == 0, "clean exit")
    finally:
        peer.stop()


def test_gateway_rejections_and_retries(ctx):
    # one daemon, a provider per transport, each with its own peer
    peers = {t: Aiosmtpd(ctx.workdir, "rej-" + t).start() for t in TRANSPORTS}
    try:
        red = ctx.redis()
        r = red.client()
        _template(r)
        sets = ["channel.email.provider=pipelined",
                "dispatch.retry_base_ms=200", "dispatch.retry_max_ms=400"]
        for t, peer in peers.items():
            sets += _provider_sets(t, peer.url, conns=2, transport=t)
        gw = ctx.gateway(red.url, sets=sets).start()
        locals_ = ("reject550", "full452", "defer450", "close421", "drop",
                   "ok")
        xadd_jobs(r, [{"type": "message", "id": "m-%s-%s" % (t, local),
                       "channel": "email", "template": "smtpt",
                       "provider": t,
                       "recipient": {"customer_id": local,
                                     "email": local + "@example.org",
                                     "vars": {"first_name": "X"}}}
                      for t in TRANSPORTS for local in locals_])
        for t, peer in peers.items():
            def state(k):
                return r.hget("gw:msg:m-%s-%s" % (t, k), "state")
            # 550 5.1.1: a hard bounce, and the address is suppressed
            wait_until(lambda: state("reject550") == "bounced", 30,
                       t + ": 550 bounced")
            reason = r.hget("gw:msg:m-%s-reject550" % t, "reason")
            check(reason.startswith("hard bounce 5.1.1") and
                  "550 5.1.1" in reason and "User unknown" in reason,
                  "%s: 550 reply recorded: %r" % (t, reason))
            check(r.sismember("gw:suppress:email", "reject550@example.org"),
                  "hard bounce suppresses the address")
            # 450 once, 421 once, a drop once: deferred, retried, accepted
            for k in ("defer450", "close421", "drop", "ok"):
                wait_until(lambda: state(k) == "accepted", 30,
                           "%s: %s accepted" % (t, k))
            for k in ("defer450", "close421", "drop"):
                check(int(r.hget("gw:msg:m-%s-%s" % (t, k), "attempts")) >= 2,
                      "%s: %s retried" % (t, k))
            # 452 stays temporary: deferred (retried until max_attempts)
            wait_until(lambda: state("full452") in ("deferred", "failed"),
                       30, t + ": 452 deferred")
            evs = [e for _, e in r.xrange("gw:events")
                   if e.get("msg") == "m-%s-defer450" % t]
            check(any(e.get("to") == "deferred" for e in evs),
                  "%s: 450 deferred first: %r" % (t, evs))
            got = [meta["rcpt_tos"][0] for meta, _ in peer.messages()]
            for k in ("defer450", "close421", "drop", "ok"):
                check(got.count(k + "@example.org") == 1, "%s: %s once: %r"
                      % (t, k, got))
            check(not any(x.startswith(("reject550", "full452"))
                          for x in got), "rejected ones never stored")
        check(gw.stop() == 0, "clean exit")
    finally:
        for peer in peers.values():
            peer.stop()


def test_gateway_sink_volume(ctx):
    sink = SmtpSink(ctx.workdir).start()
    try:
        red = ctx.redis()
        r = red.client()
        _template(r)
        gw = ctx.gateway(red.url, sets=_smtp_sets(sink.url, conns=4,
                                                  per_conn=0)).start()
        n = 5000
        t0 = time.monotonic()
        xadd_jobs(r, [{"type": "campaign", "id": "vol", "channel": "email",
                       "template": "smtpt", "audience":
                       {"recipients": _rcpts(n)}}])
        wait_until(lambda: sink.counters()["mesg"] >= n, 120,
                   "%d at the sink" % n)
        took = time.monotonic() - t0
        wait_until(lambda: int(r.hget("gw:campaign:vol", "n_accepted") or 0)
                   == n, 30, "all accepted in the ledger")
        # Per-provider metrics: what the channel saw, its connections and
        # the replies by class; and the whole page passes promtool.
        m = gw.metrics()
        prov = [k for k in m["gw_provider_messages_total"]
                if 'outcome="sent"' in k and "outbox" not in k]
        check(len(prov) == 1 and
              m["gw_provider_messages_total"][prov[0]] == n,
              "provider sent metric: %r" % m["gw_provider_messages_total"])
        check(max(m["gw_provider_connections"].values()) <= 4,
              "at most 4 connections open: %r" % m["gw_provider_connections"])
        check(sum(v for k, v in m["gw_provider_replies_total"].items()
                  if '2xx' in k) >= n, "2xx replies counted")
        promtool_check(gw.metrics_text())
        check(gw.stop() == 0, "clean exit")
        wait_until(lambda: sink.counters()["sess"] >= 4, 10, "sessions end")
        c = sink.counters()
        check(c["mesg"] == n, "exactly %d: %r" % (n, c))
        check(c["sess"] == 4, "4 connections: %r" % c)
        print("     gatewayd -> smtp-sink: %d messages in %.1fs (%.0f/s "
              "from the first job; %s)" % (n, took, n / took,
                                           os.path.basename(GATEWAYD)))
    finally:
        sink.stop()

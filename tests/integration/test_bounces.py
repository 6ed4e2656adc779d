"""Bounces end to end: a synchronous 550 5.1.1 (in test_smtp), DSNs read
from a real Dovecot mailbox over POP3 and IMAP (libcurl in gatewayd),
parsed with GMime and matched by VERP and by Message-ID, deleted from the
mailbox only once recorded; the ESP JSON webhook behind a bearer secret.
Messages go out through aiosmtpd so they sit in `accepted` when the
bounce comes."""

import json
import urllib.error
import urllib.request

from harness import check, wait_until, xadd_jobs
from mail_peers import Dovecot
from smtp_peers import Aiosmtpd
from test_smtp import _smtp_sets, _template

SECRET = "esp-hook-secret-0123456789"


def _dsn(key, status, diag, verp=True, action="failed"):
    """An RFC 3464 report as an MTA writes it: to our VERP address, or
    (verp=False) matched through the original Message-ID only."""
    rcpt = key + "@example.org"
    to = ("bounces+%s@example.org" % key) if verp else "news@example.org"
    return ("From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
            "To: %s\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status;\r\n"
            "\tboundary=\"BND\"\r\n\r\n"
            "--BND\r\nContent-Type: text/plain\r\n\r\n"
            "I'm sorry to have to inform you that your message could not be "
            "delivered.\r\n\r\n"
            "--BND\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.example.net\r\n\r\n"
            "Final-Recipient: rfc822; %s\r\nAction: %s\r\n"
            "Status: %s\r\nDiagnostic-Code: smtp; %s\r\n\r\n"
            "--BND\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            "From: Shop <news@example.org>\r\nTo: %s\r\n"
            "Message-ID: <%s@mail.example.org>\r\nSubject: hello\r\n\r\n"
            "--BND--\r\n" % (to, rcpt, action, status, diag, rcpt, key)
            ).encode()


def _msg(key):
    return {"type": "message", "id": key, "channel": "email",
            "template": "smtpt", "recipient": {
                "customer_id": key, "email": key + "@example.org",
                "vars": {"first_name": "X"}}}


def _run_mailbox(ctx, proto):
    peer = Aiosmtpd(ctx.workdir, "bx-" + proto).start()
    box = Dovecot(ctx.workdir).start()
    try:
        red = ctx.redis()
        r = red.client()
        _template(r)
        url = box.pop3_url if proto == "pop3" else box.imap_url
        gw = ctx.gateway(red.url, sets=_smtp_sets(peer.url) + [
            'bounces.mailbox="%s"' % url, 'bounces.user="%s"' % box.user,
            'bounces.password="%s"' % box.password, 'bounces.tls="off"',
            "bounces.poll_ms=1000"]).start()
        keys = ["bh-hard", "bh-soft", "bh-late"]
        xadd_jobs(r, [_msg(k) for k in keys])
        wait_until(lambda: all(r.hget("gw:msg:" + k, "state") == "accepted"
                               for k in keys), 30, "accepted by SMTP")
        box.deliver(_dsn("bh-hard", "5.1.1", "550 5.1.1 <bh-hard@example."
                         "org>: Recipient address rejected: User unknown"))
        box.deliver(_dsn("bh-soft", "5.2.2", "552 5.2.2 Mailbox full",
                         verp=False))
        box.deliver(_dsn("bh-late", "4.4.1", "451 4.4.1 no answer",
                         action="delayed"))
        # a second copy of the hard bounce: recorded once
        box.deliver(_dsn("bh-hard", "5.1.1", "550 5.1.1 User unknown"))
        auto = (b"From: anna@example.org\r\nTo: news@example.org\r\n"
                b"Subject: Out of office\r\nAuto-Submitted: auto-replied\r\n"
                b"\r\nI am away.\r\n")
        box.deliver(auto)
        wait_until(lambda: r.hget("gw:msg:bh-hard", "state") == "bounced" and
                   r.hget("gw:msg:bh-soft", "state") == "bounced", 30,
                   "DSNs recorded")
        hard = r.hgetall("gw:msg:bh-hard")
        soft = r.hgetall("gw:msg:bh-soft")
        check(hard["bounce_class"] == "hard" and hard["bounce_status"] ==
              "5.1.1", "hard: %r" % hard)
        check(soft["bounce_class"] == "soft" and "5.2.2" in soft["reason"],
              "soft, matched by Message-ID: %r" % soft)
        check(r.sismember("gw:suppress:email", "bh-hard@example.org") and
              not r.sismember("gw:suppress:email", "bh-soft@example.org"),
              "only the hard bounce suppresses")
        check(r.hget("gw:msg:bh-late", "state") == "accepted",
              "a delayed DSN changes no state")
        wait_until(lambda: len(box.messages()) == 1, 20,
                   "bounces deleted from the mailbox, the auto-reply kept")
        check(box.messages()[0] == auto.replace(b"\r\n", b"\n") or
              b"Out of office" in box.messages()[0], "the auto-reply stays")
        evs = [e for _, e in r.xrange("gw:events")
               if e.get("msg") == "bh-hard" and e.get("to") == "bounced"]
        check(len(evs) == 1, "one bounced transition: %r" % evs)
        check(gw.metric_sum("gw_bounce_mailbox_messages_total",
                            outcome="recorded") >= 4, "metrics")
        check(gw.stop() == 0, "clean exit")
    finally:
        box.stop()
        peer.stop()


def test_bounces_from_pop3_mailbox(ctx):
    _run_mailbox(ctx, "pop3")


def test_bounces_from_imap_mailbox(ctx):
    _run_mailbox(ctx, "imap")


def _hook(gw, body, secret=SECRET):
    req = urllib.request.Request(
        "http://127.0.0.1:%d/hooks/bounces" % gw.http_port, method="POST",
        data=json.dumps(body).encode())
    if secret:
        req.add_header("Authorization", "Bearer " + secret)
    try:
        with urllib.request.urlopen(req, timeout=10) as f:
            return f.status, json.loads(f.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_bounce_webhook(ctx):
    peer = Aiosmtpd(ctx.workdir, "bx-hook").start()
    try:
        red = ctx.redis()
        r = red.client()
        _template(r)
        gw = ctx.gateway(red.url, sets=_smtp_sets(peer.url) + [
            'bounces.webhook_secret="%s"' % SECRET]).start()
        xadd_jobs(r, [_msg("wh-1"), _msg("wh-2")])
        wait_until(lambda: all(r.hget("gw:msg:" + k, "state") == "accepted"
                               for k in ("wh-1", "wh-2")), 30, "accepted")
        item = {"message_id": "<wh-1@mail.example.org>",
                "recipient": "WH-1@example.org", "status": "5.1.1",
                "diagnostic": "550 5.1.1 no such user"}
        for s in (None, "wrong", SECRET + "x"):
            st, _ = _hook(gw, item, s)
            check(st == 401, "secret required: %d" % st)
        check(r.hget("gw:msg:wh-1", "state") == "accepted", "nothing changed")
        for bad in ([], {"status": "5.1.1"}, [item] * 1001,
                    {"message_key": "wh-2", "type": "mild"}):
            st, _ = _hook(gw, bad)
            check(st == 400, "bad body refused: %d" % st)
        st, body = _hook(gw, [item, {"return_path":
                                     "bounces+wh-2@example.org",
                                     "type": "soft", "status": "4.2.2"},
                              {"message_key": "nobody-knows",
                               "type": "hard"}])
        check(st == 200 and body == {"recorded": 2, "unknown": 1},
              "recorded: %r" % body)
        check(r.hget("gw:msg:wh-1", "state") == "bounced" and
              r.sismember("gw:suppress:email", "wh-1@example.org"),
              "hard by status, suppressed (address folded)")
        check(r.hget("gw:msg:wh-2", "bounce_class") == "soft", "soft")
        st, body = _hook(gw, item)
        check(st == 200 and r.hget("gw:msg:wh-1", "state") == "bounced",
              "repeat changes nothing")
        check(gw.stop() == 0, "clean exit")
    finally:
        peer.stop()

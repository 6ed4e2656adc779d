"""Self-test of mail_peers.Dovecot, the mailbox server of the bounce tests:
three messages delivered into its Maildir, read and deleted over POP3
(poplib), searched, fetched, flagged and expunged over IMAP (imaplib),
listed with the curl CLI (libcurl, as the gateway uses), and nothing of
the instance left running after stop()."""

import imaplib
import os
import poplib
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check  # noqa: E402
from mail_peers import Dovecot  # noqa: E402


def bounce(i):
    return ("From: MAILER-DAEMON@mx.example.net\r\n"
            "To: bounces+k%d@example.org\r\n"
            "Subject: Undelivered Mail Returned to Sender %d\r\n"
            "Message-ID: <b%d@mx.example.net>\r\n"
            "\r\n"
            "This is bounce number %d.\r\n"
            ".a line starting with a dot\r\n" % (i, i, i, i)).encode()


def test_dovecot_pop3_and_imap(ctx):
    dc = Dovecot(ctx.workdir)
    with dc:
        check(dc.pids(), "no dovecot process found for the instance")
        check(dc.pop3_url == "pop3://127.0.0.1:%d/" % dc.pop3_port and
              dc.imap_url == "imap://127.0.0.1:%d/INBOX" % dc.imap_port,
              "urls %s %s" % (dc.pop3_url, dc.imap_url))
        sent = [bounce(i) for i in range(3)]
        for raw in sent:
            dc.deliver(raw)
        check(dc.messages() == sent, "messages() after deliver: %r"
              % dc.messages())

        # curl (libcurl): the POP3 LIST and an IMAP search
        p = subprocess.run(["curl", "-sS", "--max-time", "10",
                            "pop3://%s:%s@127.0.0.1:%d/"
                            % (dc.user, dc.password, dc.pop3_port)],
                           capture_output=True, text=True, timeout=20)
        check(p.returncode == 0, "curl pop3: %s" % p.stderr)
        listed = p.stdout.split()
        check(listed == ["1", str(len(sent[0])), "2", str(len(sent[1])),
                         "3", str(len(sent[2]))],
              "curl pop3 LIST: %r" % p.stdout)
        p = subprocess.run(["curl", "-sS", "--max-time", "10",
                            "-u", "%s:%s" % (dc.user, dc.password),
                            "%s/;MAILINDEX=2" % dc.imap_url],
                           capture_output=True, timeout=20)
        check(p.returncode == 0 and p.stdout == sent[1],
              "curl imap fetch: rc %d %r %r" % (p.returncode, p.stdout,
                                                p.stderr))
        p = subprocess.run(["curl", "-sS", "--max-time", "10",
                            "pop3://%s:wrong@127.0.0.1:%d/"
                            % (dc.user, dc.pop3_port)],
                           capture_output=True, text=True, timeout=20)
        check(p.returncode == 67, "curl with a wrong password: rc %d"
              % p.returncode)

        # POP3
        pop = poplib.POP3("127.0.0.1", dc.pop3_port, timeout=10)
        try:
            check(pop.getwelcome().startswith(b"+OK"), "pop3 greeting")
            pop.user(dc.user)
            pop.pass_(dc.password)
            _, items, _ = pop.list()
            check(len(items) == 3, "POP3 LIST: %r" % items)
            for i, raw in enumerate(sent, 1):
                _, lines, _ = pop.retr(i)
                check(b"\r\n".join(lines) + b"\r\n" == raw,
                      "POP3 RETR %d: %r" % (i, lines))
            pop.dele(1)
        finally:
            pop.quit()
        left = dc.messages()
        check(left == sent[1:], "after POP3 DELE 1 + QUIT: %d left %r"
              % (len(left), left))

        # IMAP
        im = imaplib.IMAP4("127.0.0.1", dc.imap_port, timeout=10)
        try:
            im.login(dc.user, dc.password)
            typ, data = im.select("INBOX")
            check(typ == "OK" and data == [b"2"], "SELECT: %r" % data)
            typ, data = im.uid("SEARCH", None, "ALL")
            uids = data[0].split()
            check(typ == "OK" and len(uids) == 2, "UID SEARCH: %r" % data)
            typ, data = im.uid("FETCH", uids[0], "(BODY.PEEK[])")
            check(typ == "OK" and data[0][1] == sent[1],
                  "UID FETCH: %r" % data)
            typ, _ = im.uid("STORE", uids[0], "+FLAGS", r"(\Deleted)")
            check(typ == "OK", "UID STORE")
            flagged = [f for _, f in dc.entries() if "T" in f]
            check(len(dc.entries()) == 2 and len(flagged) == 1 and
                  dc.messages() == [sent[2]],
                  "flagged \\Deleted, not expunged: %r" % dc.entries())
            typ, data = im.expunge()
            check(typ == "OK", "EXPUNGE: %r" % data)
            typ, data = im.uid("SEARCH", None, "ALL")
            check(data[0].split() == [uids[1]], "after EXPUNGE: %r" % data)
            im.close()
        finally:
            im.logout()
        check(dc.messages() == [sent[2]] and len(dc.entries()) == 1,
              "after IMAP EXPUNGE: %r" % dc.entries())
        log = open(dc.logpath, errors="replace").read()
        check(re.search(r"Login: user=<bounces>", log), "no login logged")
    check(dc.proc is None, "still has a process handle")
    check(dc.pids() == [], "dovecot processes left: %r" % dc.pids())
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True,
                        text=True).stdout
    check(dc.instance not in ps and dc.config not in ps,
          "ps still shows the instance:\n%s" % ps)

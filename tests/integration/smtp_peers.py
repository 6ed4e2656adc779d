"""smtp_peers.py -- SMTP peers for the SMTP channel tests: an aiosmtpd
server with a recording, fault-injecting handler (run as its own process:
`python3 smtp_peers.py aiosmtpd PORT DIR`), Postfix's smtp-sink with its
counters, and smtp_drive (tests/fakes/smtp_drive.c) built and run against
them. Everything listens on 127.0.0.1 and is stopped by its own pid.

Fault rules come from the recipient's local part, so one run can mix them:
  reject550*   RCPT -> 550 5.1.1 ... User unknown
  full452*     RCPT -> 452 4.2.2 Mailbox full
  defer450*    RCPT -> 450 4.2.0 the first time this address is seen, then 250
  close421*    RCPT -> 421 4.7.0 and the connection is closed (first time)
  drop*        the connection is cut without a reply to RCPT (first time)
  dataerr554*  end of data -> 554 5.7.1 rejected as spam
  cutdata*    the connection is cut instead of answering the end of data
               (first time; the message is not stored)
It offers PIPELINING unless told not to (SMTP_PEER_PIPELINING=0).
Every accepted message is stored as DIR/NNNNNN.eml with DIR/NNNNNN.json
(mail_from, rcpt_tos, peer, session); replies to the end of data are
"250 2.0.0 Ok: queued as Q<N>". DIR/log.jsonl has one line per command
seen (for the injection tests: which commands arrived on the wire).
"""

import asyncio
import email
import email.policy
import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PYTHON = "/usr/bin/python3"     # Debian's, with python3-aiosmtpd

sys.path.insert(0, HERE)
from harness import check, free_port, wait_until  # noqa: E402

STRICT = email.policy.default.clone(raise_on_defect=True)


# ---- the aiosmtpd handler (runs in the peer process) ----

class Recorder:
    def __init__(self, outdir):
        self.dir = outdir
        self.n = 0
        self.seen = {}
        self.lock = threading.Lock()
        self.log = open(os.path.join(outdir, "log.jsonl"), "a")

    def _log(self, session, what, arg):
        self.log.write(json.dumps({"peer": str(session.peer), "cmd": what,
                                   "arg": arg}) + "\n")
        self.log.flush()

    def _first(self, addr):
        with self.lock:
            k = self.seen.get(addr, 0)
            self.seen[addr] = k + 1
            return k == 0

    async def handle_EHLO(self, server, session, envelope, hostname,
                          responses):
        self._log(session, "EHLO", hostname)
        session.host_name = hostname
        # aiosmtpd reads commands one by one, so it can take pipelined
        # groups; it just does not say so (RFC 2920)
        if os.environ.get("SMTP_PEER_PIPELINING", "1") == "1":
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address,
                          mail_options):
        self._log(session, "MAIL", address)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        self._log(session, "RCPT", address)
        local = address.split("@")[0].lower()
        if local.startswith("reject550"):
            return "550 5.1.1 <%s>: Recipient address rejected: User " \
                   "unknown" % address
        if local.startswith("full452"):
            return "452 4.2.2 <%s>: Mailbox full" % address
        if local.startswith("defer450") and self._first(address):
            return "450 4.2.0 <%s>: Greylisted, try again" % address
        if local.startswith("close421") and self._first(address):
            asyncio.get_event_loop().call_soon(server.transport.close)
            return "421 4.7.0 Too busy, closing connection"
        if local.startswith("drop") and self._first(address):
            server.transport.abort()
            return "250 2.1.5 Ok (never seen)"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        self._log(session, "DATA", len(envelope.content))
        for r in envelope.rcpt_tos:
            local = r.split("@")[0].lower()
            if local.startswith("dataerr554"):
                return "554 5.7.1 Message rejected as spam"
            if local.startswith("cutdata") and self._first("data:" + r):
                server.transport.abort()
                return "250 2.0.0 Ok (never seen)"
        with self.lock:
            self.n += 1
            n = self.n
        base = os.path.join(self.dir, "%06d" % n)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(base + ".json", "w") as f:
            json.dump({"mail_from": envelope.mail_from,
                       "rcpt_tos": envelope.rcpt_tos,
                       "mail_options": envelope.mail_options,
                       "peer": str(session.peer),
                       "tls": session.ssl is not None,
                       "helo": session.host_name}, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 2.0.0 Ok: queued as Q%d" % n


def serve(port, outdir, mode="plain", cert=None, key=None):
    """The peer process: aiosmtpd with a Recorder until SIGTERM. mode:
    plain, starttls (required before MAIL) or smtps (implicit TLS)."""
    import ssl
    from aiosmtpd.controller import Controller
    os.makedirs(outdir, exist_ok=True)
    kw = {}
    if mode != "plain":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        if mode == "starttls":
            kw = {"tls_context": ctx, "require_starttls": True}
        else:
            kw = {"ssl_context": ctx}
    ctl = Controller(Recorder(outdir), hostname="127.0.0.1", port=port,
                     decode_data=False, data_size_limit=64 << 20,
                     ready_timeout=10, **kw)
    ctl.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    print("ready", flush=True)
    stop.wait()
    ctl.stop()


# ---- peers as seen from the tests ----

def _wait_port(port, timeout=10):
    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5) as s:
                s.recv(100)
            return True
        except OSError:
            return False
    wait_until(up, timeout, "SMTP peer on port %d" % port)


def make_cert(workdir):
    """A self-signed certificate for 127.0.0.1 and localhost: (cert, key)."""
    cert = os.path.join(workdir, "peer-cert.pem")
    key = os.path.join(workdir, "peer-key.pem")
    if not os.path.exists(cert):
        p = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-keyout", key, "-out", cert, "-days", "2", "-subj",
             "/CN=localhost", "-addext",
             "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            capture_output=True, text=True)
        check(p.returncode == 0, "openssl req: %s" % p.stderr)
    return cert, key


class Aiosmtpd:
    def __init__(self, workdir, name="aiosmtpd", mode="plain",
                 pipelining=True):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.mode = mode
        self.pipelining = pipelining
        self.cert = self.key = None
        if mode != "plain":
            self.cert, self.key = make_cert(workdir)
        self.proc = None

    def start(self):
        self.logpath = self.dir + ".log"
        self.log = open(self.logpath, "ab")
        args = [PYTHON, os.path.abspath(__file__), "aiosmtpd", str(self.port),
                self.dir]
        if self.mode != "plain":
            args += [self.mode, self.cert, self.key]
        env = dict(os.environ)
        env["SMTP_PEER_PIPELINING"] = "1" if self.pipelining else "0"
        self.proc = subprocess.Popen(args, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)

        def ready():
            check(self.proc.poll() is None, "aiosmtpd exited: see %s"
                  % self.logpath)
            with open(self.logpath, "rb") as f:
                return b"ready" in f.read()
        wait_until(ready, 15, "aiosmtpd on port %d" % self.port)
        return self

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.log.close()

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("smtps" if self.mode == "smtps"
                                      else "smtp", self.port)

    def files(self):
        return sorted(glob.glob(os.path.join(self.dir, "*.eml")))

    def messages(self):
        """[(meta dict, raw bytes)] in arrival order."""
        out = []
        for f in self.files():
            with open(f, "rb") as fh:
                raw = fh.read()
            with open(f[:-4] + ".json") as fh:
                out.append((json.load(fh), raw))
        return out

    def commands(self):
        p = os.path.join(self.dir, "log.jsonl")
        if not os.path.exists(p):
            return []
        with open(p) as f:
            return [json.loads(x) for x in f if x.strip()]


class SmtpSink:
    """Postfix's smtp-sink; -c counters parsed from its output (it counts
    a session when it ends)."""

    def __init__(self, workdir, opts=(), backlog=1000):
        self.port = free_port()
        self.opts = list(opts)
        self.backlog = backlog
        self.out = os.path.join(workdir, "smtp-sink-%d.out" % self.port)
        self.proc = None

    def start(self):
        self.fh = open(self.out, "wb")
        self.proc = subprocess.Popen(
            ["/usr/sbin/smtp-sink", "-c", "-u", "nobody", "-m", "512"] +
            self.opts + ["127.0.0.1:%d" % self.port, str(self.backlog)],
            stdout=self.fh, stderr=subprocess.STDOUT)
        _wait_port(self.port)
        return self

    @property
    def url(self):
        return "smtp://127.0.0.1:%d" % self.port

    def counters(self):
        """The last {'sess','quit','mesg'} it printed."""
        with open(self.out, "rb") as f:
            text = f.read().decode(errors="replace")
        found = re.findall(r"sess=(\d+) quit=(\d+) mesg=(\d+)", text)
        if not found:
            return {"sess": 0, "quit": 0, "mesg": 0}
        s, q, m = found[-1]
        # sessions are counted when they end; less the readiness probe
        return {"sess": int(s) - 1, "quit": int(q), "mesg": int(m)}

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.fh.close()


class ScriptPeer:
    """A scripted SMTP peer for protocol cases: each connection runs the
    script, a list of ("send", bytes) | ("until", bytes) -- read until the
    bytes arrive -- | ("sleep", seconds) | ("close",). What each
    connection received is kept in .received (a list of bytes)."""

    def __init__(self, script):
        self.script = script
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self):
        self.thread.start()
        return self

    @property
    def url(self):
        return "smtp://127.0.0.1:%d" % self.port

    def _serve(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._run, args=(c,), daemon=True).start()

    def _run(self, c):
        got = bytearray()
        self.received.append(got)
        c.settimeout(5)
        try:
            for step in self.script:
                if step[0] == "send":
                    c.sendall(step[1])
                elif step[0] == "until":
                    while step[1] not in got:
                        b = c.recv(65536)
                        if not b:
                            return
                        got += b
                    # what follows the marker counts toward the next step
                elif step[0] == "sleep":
                    time.sleep(step[1])
                elif step[0] == "close":
                    break
            c.settimeout(0.5)
            while True:         # take what else comes (QUIT) until closed
                b = c.recv(65536)
                if not b:
                    break
                got += b
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


# ---- smtp_drive ----

_built = {}


def make_var(name):
    """A Makefile variable (PKGS, OBJ, SAN_OBJ), so the link line follows
    what make uses."""
    p = subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT,
                        "-f", "Makefile", "-f", "-", "smtp-peers-var"],
                       input="smtp-peers-var:\n\t@echo $(%s)\n" % name,
                       capture_output=True, text=True)
    check(p.returncode == 0 and p.stdout.strip(), "make %s: %s"
          % (name, p.stderr))
    return p.stdout.strip()


def build_drive():
    """Link tests/fakes/smtp_drive.c against make's $(SAN_OBJ) when the
    daemon under test is bin/gatewayd-san, else $(OBJ) (made if needed)."""
    if "path" in _built:
        return _built["path"]
    san = os.environ.get("GATEWAYD", "").endswith("-san")
    var = "SAN_OBJ" if san else "OBJ"
    objs = [os.path.join(ROOT, o) for o in make_var(var).split()]
    p = subprocess.run(["make", "-s", "-C", ROOT] + make_var(var).split(),
                       capture_output=True, text=True)
    check(p.returncode == 0, "make %s: %s" % (var, p.stderr[-2000:]))
    out = os.path.join(ROOT, "build", "smtp_drive" + ("-san" if san else ""))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs"] +
                           make_var("PKGS").split(), capture_output=True,
                           text=True, check=True).stdout.split()
    cmd = (["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror",
            "-D_GNU_SOURCE", "-g", "-I" + ROOT, "-I" + ROOT + "/common"] +
           (["-O1", "-fsanitize=address,undefined",
             "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
            if san else ["-O2"]) +
           [os.path.join(ROOT, "tests/fakes/smtp_drive.c")] + objs + flags +
           ["-o", out])
    p = subprocess.run(cmd, capture_output=True, text=True)
    check(p.returncode == 0, "building smtp_drive failed:\n%s" % p.stderr)
    _built["path"] = out
    return out


PROVIDER = """\
[provider.{name}]
type = "smtp"
url = "{url}"
transport = "{transport}"
tls = "{tls}"
helo = "gw.example.org"
from = "{from_}"
envelope_from = "bounces+{{key}}@example.org"
message_id_domain = "mail.example.org"
list_id = "Shop news <news.example.org>"
max_connections = {conns}
max_messages_per_connection = {per_conn}
connect_timeout_ms = 2000
timeout_ms = {timeout_ms}
backoff_ms = {backoff}
close_grace_ms = 2000
"""


def provider_toml(name, url, conns=4, per_conn=100, backoff=200,
                  from_="Shop <news@example.org>", extra="",
                  transport="pipelined", tls="off", timeout_ms=10000):
    return PROVIDER.format(name=name, url=url, conns=conns,
                           per_conn=per_conn, backoff=backoff,
                           from_=from_, transport=transport, tls=tls,
                           timeout_ms=timeout_ms) + extra


TRANSPORTS = ("pipelined", "libcurl")


def drive(workdir, url, specs=None, n=None, conns=4, per_conn=100,
          inflight=1000, close_after=None, extra="", timeout=300,
          backoff=200, quiet=False, transport="pipelined", tls="off",
          timeout_ms=10000):
    """Run smtp_drive against url. Returns (outcomes, summary, stderr)."""
    exe = build_drive()
    conf = os.path.join(workdir, "drive-%d.toml" % free_port())
    with open(conf, "w") as f:
        f.write(provider_toml("p", url, conns, per_conn, backoff,
                              extra=extra, transport=transport, tls=tls,
                              timeout_ms=timeout_ms))
    args = [exe, "-c", conf, "-p", "p", "-i", str(inflight)]
    if specs is not None:
        sp = conf[:-5] + ".jsonl"
        with open(sp, "w") as f:
            for s in specs:
                f.write(json.dumps(s) + "\n")
        args += ["-j", sp]
        if n is None:
            n = len(specs)
    args += ["-n", str(n if n is not None else 1)]
    if close_after is not None:
        args += ["-C", str(close_after)]
    if quiet:
        args.append("-q")
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    p = subprocess.run(args, capture_output=True, text=True,
                       timeout=timeout, env=env)
    outcomes, summary = {}, None
    for line in p.stdout.splitlines():
        j = json.loads(line)
        if j.get("summary"):
            summary = j
        else:
            outcomes[j["key"]] = j
    check(p.returncode == 0, "smtp_drive exited %d:\n%s"
          % (p.returncode, p.stderr[-3000:]))
    check("ERROR: AddressSanitizer" not in p.stderr and
          "runtime error" not in p.stderr, "sanitizer report:\n%s"
          % p.stderr[-3000:])
    return outcomes, summary, p.stderr


def mime_files(workdir, specs):
    """smtp_drive --mime: the writer's bytes for each spec, no SMTP.
    Returns a list of (spec, bytes or error dict)."""
    exe = build_drive()
    d = os.path.join(workdir, "mime-%d" % free_port())
    os.makedirs(d)
    sp = d + ".jsonl"
    with open(sp, "w") as f:
        for s in specs:
            f.write(json.dumps(s) + "\n")
    p = subprocess.run([exe, "--mime", d, "-j", sp, "-n", str(len(specs))],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "smtp_drive --mime: %s" % p.stderr)
    out = []
    for line in p.stdout.splitlines():
        j = json.loads(line)
        if "file" in j:
            with open(j["file"], "rb") as f:
                out.append((specs[j["i"]], f.read()))
        else:
            out.append((specs[j["i"]], j))
    return out


def parse_strict(raw):
    """Python's email package with policy.default and raise_on_defect."""
    return email.message_from_bytes(raw, policy=STRICT)


def check_lines(raw):
    """CRLF everywhere, no line over 998 octets, header lines within 78
    where they can be (we check <= 998 and report the longest header)."""
    check(b"\n" not in raw.replace(b"\r\n", b""), "bare LF in message")
    check(b"\r" not in raw.replace(b"\r\n", b""), "bare CR in message")
    for ln in raw.split(b"\r\n"):
        check(len(ln) <= 998, "line of %d octets" % len(ln))
    head = raw.split(b"\r\n\r\n", 1)[0]
    for ln in head.split(b"\r\n"):
        check(len(ln) <= 78 or ln.startswith((b"List-Unsubscribe:", b" <")),
              "header line over 78: %r" % ln[:100])


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "aiosmtpd":
        serve(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) == 7 and sys.argv[1] == "aiosmtpd":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5],
              sys.argv[6])
    else:
        sys.stderr.write("usage: smtp_peers.py aiosmtpd PORT DIR "
                         "[starttls|smtps CERT KEY]\n")
        sys.exit(2)

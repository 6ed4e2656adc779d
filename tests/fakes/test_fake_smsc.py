"""test_fake_smsc.py -- self-test of tests/fakes/fake_smsc: starts the fake
(path in $FAKE_SMSC, else build/fakes/fake_smsc), binds with a small SMPP
client written here (socket + struct), submits PDUs including an unknown
command id, an absurd command_length and malformed TLVs, checks the
responses, receipts, MO messages, fault injection and the --log file, and
stops it (SIGTERM, stdin EOF, quit): it must exit 0, which under ASan also
means no leak. Debian /usr/bin/python3, standard library only.
Usage: test_fake_smsc.py [name-substring...]; one line per test."""

import json
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

BIND_RX, BIND_TX, SUBMIT, DELIVER, UNBIND = 0x01, 0x02, 0x04, 0x05, 0x06
BIND_TRX, ENQUIRE, QUERY_SM = 0x09, 0x15, 0x03
RESP, NACK = 0x80000000, 0x80000000
ESME_RINVCMDLEN, ESME_RINVCMDID, ESME_RINVBNDSTS = 0x02, 0x03, 0x04
ESME_RBINDFAIL, ESME_RINVPASWD, ESME_RMSGQFUL = 0x0D, 0x0E, 0x14
ESME_RSUBMITFAIL, ESME_RTHROTTLED, ESME_RINVPARLEN = 0x45, 0x58, 0xC2
TLV_PAYLOAD, TLV_RMID, TLV_STATE, TLV_NETERR = 0x0424, 0x001E, 0x0427, 0x0423
TLV_SAR_REF, TLV_SAR_TOTAL, TLV_SAR_SEQ = 0x020C, 0x020E, 0x020F


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def cstr(s):
    return (s.encode() if isinstance(s, str) else s) + b"\0"


def tlv(tag, value):
    return struct.pack(">HH", tag, len(value)) + value


def pdu(cmd, seq, body=b"", status=0):
    return struct.pack(">IIII", 16 + len(body), cmd, status, seq) + body


def bind_body(system_id, password, version=0x34):
    return cstr(system_id) + cstr(password) + cstr("") + \
        bytes([version, 0, 0]) + cstr("")


def submit_body(src, dst, sm, esm=0, dc=0, reg=0, tlvs=b""):
    return cstr("") + bytes([1, 1]) + cstr(src) + bytes([1, 1]) + \
        cstr(dst) + bytes([esm, 0, 0]) + cstr("") + cstr("") + \
        bytes([reg, 0, dc, 0, len(sm)]) + sm + tlvs


def parse_deliver(body):
    """deliver_sm body -> dict with the fields and a tag -> bytes map."""
    p = 0

    def cs():
        nonlocal p
        z = body.index(b"\0", p)
        s, p = body[p:z].decode("latin-1"), z + 1
        return s

    d = {"service_type": cs()}
    d["src_ton"], d["src_npi"] = body[p], body[p + 1]
    p += 2
    d["src"] = cs()
    d["dst_ton"], d["dst_npi"] = body[p], body[p + 1]
    p += 2
    d["dst"] = cs()
    d["esm_class"] = body[p]
    p += 3
    cs()
    cs()
    d["registered_delivery"], d["data_coding"] = body[p], body[p + 2]
    n = body[p + 4]
    p += 5
    d["sm"] = body[p:p + n]
    p += n
    d["tlvs"] = {}
    while p + 4 <= len(body):
        tag, ln = struct.unpack(">HH", body[p:p + 4])
        d["tlvs"][tag] = body[p + 4:p + 4 + ln]
        p += 4 + ln
    check(p == len(body), "deliver_sm: trailing bytes")
    return d


class Esme:
    """A blocking SMPP client, enough to drive the fake."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.seq = 0
        self.rbuf = b""

    def next_seq(self):
        self.seq += 1
        return self.seq

    def send(self, data):
        self.sock.sendall(data)

    def request(self, cmd, body=b""):
        seq = self.next_seq()
        self.send(pdu(cmd, seq, body))
        return seq

    def recv(self, timeout=3.0):
        """(cmd, status, seq, body), or None on timeout; b"" when closed."""
        end = time.time() + timeout
        while True:
            if len(self.rbuf) >= 4:
                n = struct.unpack(">I", self.rbuf[:4])[0]
                if len(self.rbuf) >= n:
                    p, self.rbuf = self.rbuf[:n], self.rbuf[n:]
                    return struct.unpack(">III", p[4:16]) + (p[16:],)
            left = end - time.time()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            except ConnectionResetError:
                return b""
            if not chunk:
                return b""
            self.rbuf += chunk

    def expect(self, cmd, seq=None, timeout=3.0):
        r = self.recv(timeout)
        check(r not in (None, b""), "no PDU (wanted 0x%08x): %r" % (cmd, r))
        check(r[0] == cmd, "got command 0x%08x, wanted 0x%08x" % (r[0], cmd))
        if seq is not None:
            check(r[2] == seq, "sequence %d, wanted %d" % (r[2], seq))
        return r

    def bind(self, cmd=BIND_TRX, system_id="test", password="secret"):
        seq = self.request(cmd, bind_body(system_id, password))
        r = self.expect(cmd | RESP, seq)
        return r[1]

    def submit(self, sm=b"hello", **kw):
        return self.request(SUBMIT, submit_body("4000", "+4915112345678", sm,
                                                **kw))

    def closed(self, timeout=3.0):
        r = self.recv(timeout)
        while r not in (None, b""):
            r = self.recv(timeout)
        return r == b""

    def close(self):
        self.sock.close()


class Fake:
    """The fake SMSC as a child process; stdin is a pipe for control."""

    def __init__(self, workdir, *args, log=True):
        self.binary = os.environ.get("FAKE_SMSC", "build/fakes/fake_smsc")
        self.log = os.path.join(workdir, "submits.jsonl") if log else None
        argv = [self.binary, "--port", "0", "--lifetime-s", "120"]
        argv += list(args) + (["--log", self.log] if log else [])
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._reader, daemon=True).start()
        first = self.line(5)
        check(first and first.startswith("listening on 127.0.0.1:"),
              "no listening line: %r" % first)
        self.port = int(first.rsplit(":", 1)[1])

    def _reader(self):
        for ln in self.proc.stdout:
            self.lines.put(ln.rstrip("\n"))
        self.lines.put(None)

    def line(self, timeout=3.0):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def cmd(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self.line()

    def stats(self):
        ln = self.cmd("stats")
        check(ln and ln.startswith("{"), "stats: %r" % ln)
        return json.loads(ln)

    def log_lines(self):
        with open(self.log) as f:
            return [json.loads(x) for x in f]

    def stop(self, how="term"):
        if how == "term":
            self.proc.send_signal(signal.SIGTERM)
        elif how == "eof":
            self.proc.stdin.close()
        else:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        rc = self.proc.wait(30)
        out = []
        while True:
            ln = self.line(1)
            if ln is None:
                break
            out.append(ln)
        check(rc == 0, "fake exited with %d" % rc)
        js = [x for x in out if x.startswith("{")]
        check(js, "no final stats line in %r" % out)
        return json.loads(js[-1])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---- tests -----------------------------------------------------------------

def test_basic(fk):
    e = Esme(fk.port)
    check(e.bind(BIND_TRX, "test", "wrong") == ESME_RINVPASWD, "bad password")
    check(e.bind(BIND_TRX, "nobody", "secret") == ESME_RBINDFAIL, "bad sysid")
    # before a bind: submit is refused
    e.expect(SUBMIT | RESP, e.submit())
    check(e.bind(BIND_TRX) == 0, "bind")
    check(e.bind(BIND_TRX) == 0x05, "second bind: ESME_RALYBND")

    s1 = e.submit(b"Hello \x00 world", reg=1)           # GSM with '@'
    r = e.expect(SUBMIT | RESP, s1)
    check(r[1] == 0 and r[3].endswith(b"\0"), "submit 1: %r" % (r,))
    mid = r[3][:-1].decode()
    int(mid, 16)
    udh = bytes([5, 0, 3, 0x2A, 2, 1])
    s2 = e.submit(udh + "Grüße 🐳".encode("utf-16-be"), esm=0x40, dc=8)
    r = e.expect(SUBMIT | RESP, s2)
    check(r[1] == 0, "submit 2 status %d" % r[1])
    sar = tlv(TLV_SAR_REF, b"\x12\x34") + tlv(TLV_SAR_TOTAL, b"\x02") + \
        tlv(TLV_SAR_SEQ, b"\x01")
    s3 = e.submit(b"part one", tlvs=sar)
    check(e.expect(SUBMIT | RESP, s3)[1] == 0, "submit 3 (SAR)")
    # a TLV whose length runs past the PDU
    s4 = e.submit(b"x", tlvs=struct.pack(">HH", TLV_PAYLOAD, 50) + b"abc")
    check(e.expect(SUBMIT | RESP, s4)[1] == ESME_RINVPARLEN, "bad TLV")
    # a TLV libsmpp34 would misread (2-byte field sent with length 1)
    s5 = e.submit(b"y", tlvs=tlv(TLV_SAR_REF, b"\x01"))
    check(e.expect(SUBMIT | RESP, s5)[1] == 0, "odd TLV accepted")
    # a long text in message_payload (over libsmpp34's 1024 bytes)
    s6 = e.submit(b"", tlvs=tlv(TLV_PAYLOAD, b"p" * 2000))
    check(e.expect(SUBMIT | RESP, s6)[1] == 0, "payload")

    e.expect(ENQUIRE | RESP, e.request(ENQUIRE))
    r = e.expect(NACK, e.request(0x00000999))
    check(r[1] == ESME_RINVCMDID, "unknown command: status %d" % r[1])
    r = e.expect(NACK, e.request(QUERY_SM, cstr("1") + b"\x00\x00" +
                                 cstr("")))
    check(r[1] == ESME_RINVCMDID, "query_sm")

    # the receipt for submit 1 (registered_delivery 1)
    r = e.expect(DELIVER, timeout=3)
    d = parse_deliver(r[3])
    check(d["esm_class"] == 0x04, "receipt esm_class")
    text = d["sm"].decode()
    check(text.startswith("id:%s sub:001 dlvrd:001 submit date:" % mid),
          "receipt text %r" % text)
    check(" stat:DELIVRD err:000 text:Hello . world" in text, text)
    check(d["tlvs"][TLV_RMID] == cstr(mid), "receipted_message_id")
    check(d["tlvs"][TLV_STATE] == b"\x02", "message_state")
    check(d["src"] == "+4915112345678" and d["dst"] == "4000", "addresses")
    e.send(pdu(DELIVER | RESP, r[2], cstr("")))

    # MO, GSM and UCS-2
    check(fk.cmd("mo +4915112345678 STOP") == "ok mo 1", "mo command")
    d = parse_deliver(e.expect(DELIVER)[3])
    check(d["esm_class"] == 0 and d["sm"] == b"STOP" and
          d["data_coding"] == 0, "MO %r" % d)
    check(d["src"] == "4915112345678" and d["src_ton"] == 1 and
          d["dst"] == "12345", "MO addresses %r" % d)
    check(fk.cmd("mo 4915>777 Grüße 🐳") == "ok mo 1", "mo unicode")
    d = parse_deliver(e.expect(DELIVER)[3])
    check(d["data_coding"] == 8 and
          d["sm"] == "Grüße 🐳".encode("utf-16-be") and d["dst"] == "777",
          "MO UCS-2 %r" % d)
    check(fk.cmd("mo nonsense") == "error mo", "bad mo line")

    st = fk.stats()
    check(st["binds"] == 1 and st["bind_fails"] == 3, "binds %r" % st)
    check(st["submits"] == 5 and st["bad_pdus"] == 1 and
          st["bad_state"] == 1, "submits %r" % st)
    check(st["dlrs"] == 1 and st["mos"] == 2 and st["unknown_cmds"] == 2,
          "counters %r" % st)
    check(st["bytes_in"] > 0 and st["lib_unpack_fail"] == 0, "%r" % st)

    log = fk.log_lines()
    check(len(log) == 5, "log has %d lines" % len(log))
    check(log[0]["short_message"] == b"Hello \x00 world".hex() and
          log[0]["data_coding"] == 0 and log[0]["message_id"] == mid and
          log[0]["registered_delivery"] == 1 and log[0]["lib_ok"] is True,
          "log 0 %r" % log[0])
    check(log[1]["udh"] == udh.hex() and log[1]["esm_class"] == 0x40 and
          log[1]["body"] == "Grüße 🐳".encode("utf-16-be").hex() and
          log[1]["data_coding"] == 8, "log 1 %r" % log[1])
    tl = {t["tag"]: t["value"] for t in log[2]["tlvs"]}
    check(tl == {TLV_SAR_REF: "1234", TLV_SAR_TOTAL: "02",
                 TLV_SAR_SEQ: "01"}, "log 2 TLVs %r" % log[2]["tlvs"])
    check(log[3]["lib_ok"] is None and log[4]["lib_ok"] is None,
          "lib check skipped for what libsmpp34 cannot read")
    check(log[4]["tlvs"][0]["len"] == 2000, "payload logged")

    # an absurd command_length: generic_nack ESME_RINVCMDLEN, then hang up
    e.send(struct.pack(">IIII", 0xFFFFFFF0, SUBMIT, 0, 77))
    r = e.expect(NACK)
    check(r[1] == ESME_RINVCMDLEN and r[2] == 77, "bad length %r" % (r,))
    check(e.closed(), "connection stays open after a bad length")
    e.close()

    # a clean unbind on a new connection
    e = Esme(fk.port)
    check(e.bind(BIND_TX) == 0, "bind tx")
    e.expect(UNBIND | RESP, e.request(UNBIND))
    check(e.closed(), "not closed after unbind")
    st = fk.stop("term")
    check(st["bad_lengths"] == 1 and st["unbinds"] == 1, "final %r" % st)


def test_faults(fk):
    # --throttle-every 3 --reject-every 4 --no-resp-every 5
    e = Esme(fk.port)
    check(e.bind() == 0, "bind")
    seqs = [e.submit(b"m%d" % i) for i in range(1, 11)]
    got = {}
    while True:
        r = e.recv(0.7)
        if r in (None, b""):
            break
        got[r[2]] = r[1]
    want = {1: 0, 2: 0, 3: ESME_RTHROTTLED, 4: ESME_RSUBMITFAIL, 6: 0x58,
            7: 0, 8: ESME_RSUBMITFAIL, 9: ESME_RTHROTTLED}
    check(got == {seqs[k - 1]: v for k, v in want.items()},
          "statuses %r" % got)
    st = fk.stop("quit")
    check(st["throttled"] == 3 and st["rejected"] == 2 and
          st["swallowed"] == 2 and st["submit_ok"] == 3, "stats %r" % st)
    log = fk.log_lines()
    check([x["status"] for x in log] ==
          [0, 0, 0x58, 0x45, -1, 0x58, 0, 0x45, 0x58, -1], "log statuses")


def test_drop_after(fk):
    # --drop-after 2
    e = Esme(fk.port)
    check(e.bind() == 0, "bind")
    a, b, c = e.submit(), e.submit(), e.submit()
    check(e.expect(SUBMIT | RESP, a)[1] == 0, "first")
    check(e.expect(SUBMIT | RESP, b)[1] == 0, "second")
    check(e.closed(), "not dropped after 2 submits")
    e2 = Esme(fk.port)            # a new connection works again
    check(e2.bind() == 0, "rebind")
    check(e2.expect(SUBMIT | RESP, e2.submit())[1] == 0, "after rebind")
    st = fk.stop("eof")
    check(st["drops"] == 1, "drops %r" % st)


def test_slow_window(fk):
    # --slow-ms 300 --window 2 --no-enquire-resp
    e = Esme(fk.port)
    t0 = time.time()
    check(e.bind() == 0, "bind")
    check(time.time() - t0 >= 0.25, "bind_resp not delayed")
    seqs = [e.submit() for _ in range(4)]
    t0 = time.time()
    r3, r4 = e.expect(SUBMIT | RESP), e.expect(SUBMIT | RESP)
    check(time.time() - t0 < 0.2, "window-full answers were slow")
    check({r3[2], r4[2]} == set(seqs[2:]) and
          r3[1] == r4[1] == ESME_RMSGQFUL, "window %r %r" % (r3, r4))
    r1, r2 = e.expect(SUBMIT | RESP), e.expect(SUBMIT | RESP)
    check(time.time() - t0 >= 0.25, "responses not delayed")
    check((r1[2], r2[2]) == tuple(seqs[:2]) and r1[1] == r2[1] == 0,
          "slow responses %r %r" % (r1, r2))
    e.request(ENQUIRE)
    check(e.recv(0.6) is None, "enquire_link answered")
    st = fk.stop("term")
    check(st["window_full"] == 2 and st["enquire_links"] == 1, "%r" % st)


def test_receipts(fk):
    # --dlr-before-resp --dlr-form tlv --id-format hex --dlr-id-format dec
    # --dlr-stat UNDELIV,DELIVRD --dlr-err 17 --dlr-always
    e = Esme(fk.port)
    check(e.bind() == 0, "bind")
    s = e.submit(b"no receipt asked")
    dr = e.expect(DELIVER)
    d = parse_deliver(dr[3])
    check(d["sm"] == b"" and d["esm_class"] == 4, "TLV-only receipt %r" % d)
    rid = d["tlvs"][TLV_RMID][:-1].decode()
    check(d["tlvs"][TLV_STATE] == b"\x05", "UNDELIV is message_state 5")
    check(d["tlvs"][TLV_NETERR] == b"\x03\x00\x11", "network_error_code")
    r = e.expect(SUBMIT | RESP, s)
    check(int(r[3][:-1].decode(), 16) == int(rid), "hex id vs decimal id")
    e.send(pdu(DELIVER | RESP, dr[2], cstr("")))
    # a receipt for any id on demand, and a receiver-only bind
    check(fk.cmd("dlr 4660 EXPIRED") == "ok dlr 1", "dlr command")
    d = parse_deliver(e.expect(DELIVER)[3])
    check(d["tlvs"][TLV_RMID] == b"4660\0" and
          d["tlvs"][TLV_STATE] == b"\x03", "dlr on demand %r" % d)
    rx = Esme(fk.port)
    check(rx.bind(BIND_RX) == 0, "bind rx")
    check(rx.expect(SUBMIT | RESP, rx.submit())[1] == ESME_RINVBNDSTS,
          "submit on a receiver bind")
    fk.stop("term")


def test_receipt_forms(fk):
    # --dlr-delay-ms 0 --dlr-form payload, with a transmitter and a
    # receiver bound separately under the same system_id
    tx, rx = Esme(fk.port), Esme(fk.port)
    check(tx.bind(BIND_TX) == 0 and rx.bind(BIND_RX) == 0, "binds")
    check(tx.expect(SUBMIT | RESP, tx.submit(reg=1))[1] == 0, "submit")
    d = parse_deliver(rx.expect(DELIVER)[3])
    check(d["sm"] == b"" and TLV_RMID not in d["tlvs"] and
          d["tlvs"][TLV_PAYLOAD].startswith(b"id:"), "payload form %r" % d)
    check(tx.recv(0.3) is None, "receipt went to the transmitter")
    fk.stop("term")


def test_hostile(fk):
    # --max-conns 3 --max-pdu 4096
    a = Esme(fk.port)
    a.send(os.urandom(3000))                       # garbage
    a.closed(2)
    b = Esme(fk.port)                               # a partial PDU, then go
    b.send(struct.pack(">II", 4000, SUBMIT) + b"\x00" * 100)
    b.close()
    c = Esme(fk.port)                               # over --max-pdu
    c.send(struct.pack(">IIII", 5000, SUBMIT, 0, 5) + b"\x00" * 4984)
    r = c.expect(NACK)
    check(r[1] == ESME_RINVCMDLEN, "over max-pdu")
    check(c.closed(), "still open over max-pdu")
    d = Esme(fk.port)                               # short length field
    d.send(struct.pack(">IIII", 8, SUBMIT, 0, 6))
    check(d.expect(NACK)[1] == ESME_RINVCMDLEN, "length 8")
    # truncated mandatory fields, sm_length past the end
    e = Esme(fk.port)
    check(e.bind() == 0, "bind")
    bad = submit_body("1", "2", b"abc")[:-3] + b"a"
    check(e.expect(SUBMIT | RESP, e.request(SUBMIT, bad))[1] == 0x01,
          "sm_length past the end")
    check(e.expect(SUBMIT | RESP, e.request(SUBMIT, b"x" * 10))[1] == 0x15,
          "unterminated service_type")
    check(e.expect(SUBMIT | RESP, e.submit(b"\x09abc", esm=0x40))[1] ==
          0x43, "UDH longer than the message")
    # sequence number 0 and an odd status from the client
    e.send(pdu(0x77, 0))
    r = e.expect(NACK)
    check(r[2] == 0 and r[1] == ESME_RINVCMDID, "seq 0 nack %r" % (r,))
    conns = [Esme(fk.port) for _ in range(4)]      # over --max-conns
    closed = sum(1 for x in conns if x.closed(0.5))
    check(closed >= 2, "max-conns: %d closed" % closed)
    # raw bytes to every connection, silent mode
    for x in conns:
        x.close()
    time.sleep(0.2)
    check(fk.cmd("raw 00000010 80000015 00000000 0000002a") == "ok raw 1",
          "raw")
    check(e.expect(ENQUIRE | RESP)[2] == 42, "raw bytes arrive")
    check(fk.cmd("raw 0g") == "error raw", "bad raw")
    check(fk.cmd("silent on") == "ok silent 1", "silent")
    e.request(ENQUIRE)
    check(e.recv(0.4) is None, "answered while silent")
    check(fk.cmd("silent off") == "ok silent 0", "silent off")
    e.expect(ENQUIRE | RESP, e.request(ENQUIRE))
    check(fk.cmd("unbind") == "ok unbind 1", "unbind")
    r = e.expect(UNBIND)
    e.send(pdu(UNBIND | RESP, r[2]))
    check(e.closed(), "not closed after unbind_resp")
    check(fk.cmd("bogus") == "error bogus", "unknown control line")
    st = fk.stop("term")
    check(st["bad_lengths"] >= 2 and st["refused"] >= 2, "%r" % st)


def test_soak_garbage(fk):
    # seeded random PDUs: right framing, random bodies and command ids,
    # mixed with valid ones; the fake must stay up and answer stats
    import random
    rnd = random.Random(20250101)
    cmds = [SUBMIT, SUBMIT, SUBMIT, BIND_TRX, BIND_TX, ENQUIRE, UNBIND,
            DELIVER | RESP, QUERY_SM, 0x12345, NACK]
    t0, sent = time.time(), 0
    while time.time() - t0 < 2.0:
        e = Esme(fk.port)
        e.bind()
        data = b""
        for _ in range(300):
            cmd = rnd.choice(cmds)
            if rnd.random() < 0.3:
                body = submit_body("1", "2", bytes(rnd.randrange(256) for _ in
                                                   range(rnd.randrange(160))),
                                   esm=rnd.choice([0, 0x40]),
                                   tlvs=tlv(rnd.randrange(65536),
                                            os.urandom(rnd.randrange(40))))
                cmd = SUBMIT
            else:
                body = os.urandom(rnd.randrange(300))
            data += pdu(cmd, rnd.randrange(1, 1 << 31), body,
                        rnd.choice([0, 0, 5]))
            sent += 1
        try:
            e.send(data)
        except OSError:
            pass
        while e.recv(0.05) not in (None, b""):
            pass
        e.close()
    st = fk.stats()
    check(st["connections"] >= 2 and st["bytes_in"] > 0, "%r" % st)
    e = Esme(fk.port)
    check(e.bind() == 0, "bind after the soak")
    st = fk.stop("term")
    print("     soak: %d PDUs, %d submits, %d bad, %d nacks" %
          (sent, st["submits"], st["bad_pdus"], st["nacks_sent"]))


TESTS = [
    (test_basic, ["--system-id", "test", "--password", "secret",
                  "--dlr-delay-ms", "50"]),
    (test_faults, ["--throttle-every", "3", "--reject-every", "4",
                   "--no-resp-every", "5"]),
    (test_drop_after, ["--drop-after", "2"]),
    (test_slow_window, ["--slow-ms", "300", "--window", "2",
                        "--no-enquire-resp"]),
    (test_receipts, ["--dlr-before-resp", "--dlr-form", "tlv",
                     "--dlr-id-format", "dec", "--dlr-stat",
                     "UNDELIV,DELIVRD", "--dlr-err", "17", "--dlr-always"]),
    (test_receipt_forms, ["--dlr-delay-ms", "0", "--dlr-form", "payload"]),
    (test_hostile, ["--max-conns", "3", "--max-pdu", "4096"]),
    (test_soak_garbage, ["--dlr-delay-ms", "0", "--dlr-always",
                         "--max-conns", "8"]),
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
            finally:
                if fk:
                    fk.kill()
    print("fake_smsc: %d failed" % failed if failed else "fake_smsc: all ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

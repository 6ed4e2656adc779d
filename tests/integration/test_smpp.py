"""The SMPP channel (channels/smpp.c, channels/smpp_pdu.c) through gatewayd
against the C fake SMSC (tests/fakes/fake_smsc) and the npm `smpp`
server:
  - what reaches the SMSC: addresses with TON/NPI, data_coding, the UDH
    of a long UCS-2 message (8- and 16-bit references), SAR TLVs, one
    message_payload, the validity period from deliver_by; messages spread
    over two binds, all parts of one message on one bind; every part's id
    in the ledger; every PDU we send also unpacks in libsmpp34 (lib_ok);
    the window is never exceeded;
  - outcomes: a reject fails with the ESME name, throttling is deferred
    and then sent (a throttled part of a long message is sent again on
    its bind, each part accepted once), too many parts fail with the
    encoder's reason, a missing response is in doubt and not sent again;
  - sessions: a silent link (no enquire_link_resp), a dropped connection
    and an unbind from the SMSC are noticed and the binds come back;
    wrong credentials raise the alarm without hammering the SMSC;
    malformed and random PDUs are nacked or drop the bind, and the daemon
    survives ASan/LSan clean;
  - shutdown: unanswered submits are handed back in doubt, then unbind;
  - receipts (TLV, text, payload; hex vs decimal ids; before the
    response; UNDELIV) move the ledger to delivered / failed, MO STOP
    suppresses the number and sends one confirmation, a UCS-2 MO decodes;
    the npm server: a long UCS-2 message, its receipts, correlated.
Receipts, MO and in-doubt handling need the gateway side (gateway/
inbound.c, track.c, dispatch.c): test_smpp_missing_response_in_doubt
fails until dispatch.c honours send_outcome.in_doubt.
"""

import json
import time

from harness import check, message_job, wait_until, xadd_jobs
from smpp_peers import (FakeSmsc, NpmSmsc, npm_smpp_installed, smpp_sets,
                        wait_log)

# More than 70 UTF-16 units: three UCS-2 parts with an 8-bit UDH.
LONG_UCS2 = ("Привет! Ваш заказ готов к выдаче. Спасибо, что выбрали нас — "
             "ждём вас снова 🎉 Специальное предложение только сегодня: "
             "скидка 20% на всё.")


def _sms_jobs(n, start=0, **extra):
    return [message_job(i, channel="sms", **extra)
            for i in range(start, start + n)]


def _state(r, i):
    return r.hget("gw:msg:m-sms-%d" % i, "state")


def _states(r, ids):
    return {i: _state(r, i) for i in ids}


def _all_in(r, ids, states):
    return all(_state(r, i) in states for i in ids)


def _gateway(ctx, red, port, extra_sets=(), **kw):
    sets = smpp_sets(port, **kw) + ["dispatch.retry_base_ms=200",
                                    "dispatch.retry_max_ms=1000"]
    return ctx.gateway(red.url, sets=sets + list(extra_sets))


# ---- what reaches the SMSC ----

def test_smpp_submit_fields_and_long_ucs2(ctx):
    red = ctx.redis()
    r = red.client()
    with FakeSmsc(ctx.workdir) as smsc:
        gw = _gateway(ctx, red, smsc.port, binds=2, window=10).start()
        jobs = _sms_jobs(40)
        jobs.append(message_job(1000, channel="sms",
                                vars={"n": 1000, "offer": " " + LONG_UCS2}))
        xadd_jobs(r, jobs)
        ids = list(range(40)) + [1000]
        wait_until(lambda: _all_in(r, ids, {"accepted"}), 30,
                   "all accepted")
        subs = smsc.submits()
        check(len(subs) == 43, "40 single + 3 parts: %d" % len(subs))
        conns = {s["conn"] for s in subs}
        check(len(conns) == 2, "spread over both binds: %r" % conns)
        for s in subs:
            check(s["status"] == 0 and s["lib_ok"] is True,
                  "answered OK, libsmpp34 reads it: %r" % s)
            check(s["source_addr"] == "Shop" and s["source_addr_ton"] == 5
                  and s["source_addr_npi"] == 0, "alphanumeric sender")
            check(s["dest_addr_ton"] == 1 and s["dest_addr_npi"] == 1,
                  "international destination")
            check(s["registered_delivery"] == 1, "receipt requested")
        short = [s for s in subs if s["destination_addr"] == "4915100000007"]
        check(len(short) == 1, "one submit for m-sms-7")
        s = short[0]
        check(s["data_coding"] == 0 and s["esm_class"] == 0 and
              s["udh"] == "", "GSM, no UDH: %r" % s)
        check(bytes.fromhex(s["short_message"]) == b"Hi , code 7",
              "GSM body: %r" % s["short_message"])
        led = r.hgetall("gw:msg:m-sms-7")
        check(led["provider_id"] == s["message_id"].lower().lstrip("0"),
              "ledger id = the fake's id: %r / %r" % (led, s["message_id"]))
        parts = [s for s in subs if s["destination_addr"] == "4915100001000"]
        check(len(parts) == 3, "3 UCS-2 parts: %d" % len(parts))
        check(len({p["conn"] for p in parts}) == 1, "all parts on one bind")
        refs = set()
        text = b""
        for k, p in enumerate(sorted(parts, key=lambda p: p["udh"])):
            udh = bytes.fromhex(p["udh"])
            check(p["data_coding"] == 8 and p["esm_class"] & 0x40,
                  "UCS-2 with UDHI: %r" % p)
            check(len(udh) == 6 and udh[:3] == b"\x05\x00\x03" and
                  udh[4] == 3 and udh[5] == k + 1, "UDH 05 00 03 ref 3 %d: %s"
                  % (k + 1, p["udh"]))
            check(len(bytes.fromhex(p["short_message"])) <= 140,
                  "part fits 140 octets")
            refs.add(udh[3])
            text += bytes.fromhex(p["body"])
        check(len(refs) == 1, "one reference for the three parts")
        check(text.decode("utf-16-be") == "Hi , code 1000 " + LONG_UCS2,
              "the parts join to the text")
        pid = r.hget("gw:msg:m-sms-1000", "provider_id")
        want = sorted(p["message_id"].lower().lstrip("0") for p in parts)
        check(sorted(pid.split(",")) == want,
              "every part's id in the ledger: %r vs %r" % (pid, want))
        check(gw.stop() == 0, "gatewayd exit 0")
        check("bind 1 up" in gw.logtext() and "bind 2 up" in gw.logtext(),
              "both binds came up")


def test_smpp_encoder_failures(ctx):
    red = ctx.redis()
    r = red.client()
    with FakeSmsc(ctx.workdir) as smsc:
        gw = _gateway(ctx, red, smsc.port, max_parts=2).start()
        # (intake refuses a bad number and jansson invalid UTF-8, so those
        # encoder paths are covered by the unit tests)
        xadd_jobs(r, [
            message_job(1, channel="sms", vars={"n": 1, "offer": "x" * 400}),
            message_job(3, channel="sms"),
        ])
        wait_until(lambda: _state(r, 1) == "failed" and
                   _state(r, 3) == "accepted", 20, "outcomes")
        reason = r.hget("gw:msg:m-sms-1", "reason")
        check("needs 3 parts, the limit is 2" in reason,
              "too many parts: %r" % reason)
        check(r.hget("gw:msg:m-sms-1", "attempts") == "1", "not retried")
        check(len(smsc.submits()) == 1, "only the good one was submitted")
        check(gw.stop() == 0, "gatewayd exit 0")


def _tlvs(sub):
    return {t["tag"]: t["value"] for t in sub["tlvs"]}


def test_smpp_concat_modes_and_validity(ctx):
    red = ctx.redis()
    r = red.client()
    def text(i):
        return "Hi , code %d " % i + LONG_UCS2
    for k, mode in enumerate(("udh16", "sar", "payload")):
        with FakeSmsc(ctx.workdir, name="fake_" + mode) as smsc:
            gw = _gateway(ctx, red, smsc.port, concat=mode).start()
            i = 10 * k
            xadd_jobs(r, [message_job(i, channel="sms",
                                      vars={"n": i, "offer": " " + LONG_UCS2},
                                      deliver_by="2099-01-02T03:04:05Z")])
            wait_until(lambda: _state(r, i) == "accepted", 15, mode)
            subs = smsc.submits()
            check(all(s["lib_ok"] is True and s["status"] == 0
                      for s in subs), "libsmpp34 reads them: %r" % subs)
            check(all(s["validity_period"] == "990102030405000+"
                      for s in subs), "absolute validity from deliver_by: %r"
                  % [s["validity_period"] for s in subs])
            if mode == "udh16":
                check(len(subs) == 3, "3 parts")
                body = b""
                for n, p in enumerate(sorted(subs, key=lambda p: p["udh"])):
                    udh = bytes.fromhex(p["udh"])
                    check(len(udh) == 7 and udh[:3] == b"\x06\x08\x04" and
                          udh[5:] == bytes([3, n + 1]), "UDH16: %s"
                          % p["udh"])
                    body += bytes.fromhex(p["body"])
                check(body.decode("utf-16-be") == text(i), "joined")
            elif mode == "sar":
                check(len(subs) == 3, "3 parts")
                seqs = set()
                refs = set()
                body = b""
                for p in sorted(subs, key=lambda p: _tlvs(p)[0x020F]):
                    t = _tlvs(p)
                    check(p["esm_class"] & 0x40 == 0 and p["udh"] == "",
                          "no UDH with SAR")
                    check(t[0x020E] == "03", "sar_total_segments 3")
                    seqs.add(t[0x020F])
                    refs.add(t[0x020C])
                    body += bytes.fromhex(p["short_message"])
                check(seqs == {"01", "02", "03"} and len(refs) == 1,
                      "sar_segment_seqnum 1..3, one sar_msg_ref_num")
                check(body.decode("utf-16-be") == text(i), "joined")
            else:
                check(len(subs) == 1, "one submit_sm: %d" % len(subs))
                p = subs[0]
                t = _tlvs(p)
                check(p["sm_length"] == 0 and 0x0424 in t,
                      "message_payload with sm_length 0")
                check(bytes.fromhex(t[0x0424]).decode("utf-16-be") ==
                      text(i), "payload text")
            check(gw.stop() == 0, "gatewayd exit 0")


def test_smpp_window_respected(ctx):
    red = ctx.redis()
    r = red.client()
    # the fake holds every response 150 ms and answers 0x14 beyond 3
    # outstanding: a window of 3 never sees one
    with FakeSmsc(ctx.workdir, "--window", "3", "--slow-ms", "150") as smsc:
        gw = _gateway(ctx, red, smsc.port, window=3).start()
        xadd_jobs(r, _sms_jobs(20))
        wait_until(lambda: _all_in(r, range(20), {"accepted"}), 30,
                   "all accepted")
        st = smsc.stats()
        check(st["window_full"] == 0, "never more than 3 outstanding: %r"
              % st)
        check(st["submits"] == 20, "each once: %r" % st)
        check(gw.stop() == 0, "gatewayd exit 0")


# ---- outcomes ----

def test_smpp_reject_is_permanent(ctx):
    red = ctx.redis()
    r = red.client()
    with FakeSmsc(ctx.workdir, "--reject-every", "3", "--reject-status",
                  "0x0B") as smsc:
        gw = _gateway(ctx, red, smsc.port).start()
        xadd_jobs(r, _sms_jobs(9))
        wait_until(lambda: _all_in(r, range(9), {"accepted", "failed"}), 20,
                   "all settled")
        failed = [i for i in range(9) if _state(r, i) == "failed"]
        check(len(failed) == 3, "every third rejected: %r"
              % _states(r, range(9)))
        for i in failed:
            reason = r.hget("gw:msg:m-sms-%d" % i, "reason")
            check("ESME_RINVDSTADR" in reason, "status name: %r" % reason)
            check(r.hget("gw:msg:m-sms-%d" % i, "attempts") == "1",
                  "not retried")
        check(smsc.stats()["rejected"] == 3, "three rejects")
        check(gw.stop() == 0, "gatewayd exit 0")


def test_smpp_throttle_deferred_then_sent(ctx):
    red = ctx.redis()
    r = red.client()
    with FakeSmsc(ctx.workdir, "--throttle-every", "4") as smsc:
        gw = _gateway(ctx, red, smsc.port, throttle_pause_ms=200,
                      window=5).start()
        xadd_jobs(r, _sms_jobs(30) + [
            message_job(100 + i, channel="sms",
                        vars={"n": 100 + i, "offer": " " + LONG_UCS2})
            for i in range(4)])
        wait_until(lambda: _all_in(r, list(range(30)) +
                                   [100, 101, 102, 103], {"accepted"}), 60,
                   "all accepted in the end")
        for i in range(100, 104):
            ok = [s for s in smsc.submits() if s["status"] == 0 and
                  s["destination_addr"] == "49151%08d" % i]
            check(len(ok) == 3 and len({s["udh"] for s in ok}) == 3,
                  "each part accepted exactly once: %r"
                  % [s["udh"] for s in ok])
            pid = r.hget("gw:msg:m-sms-%d" % i, "provider_id")
            check(len(pid.split(",")) == 3, "3 ids: %r" % pid)
        st = smsc.stats()
        check(st["throttled"] >= 7, "throttled: %r" % st)
        retried = [i for i in range(30)
                   if int(r.hget("gw:msg:m-sms-%d" % i, "attempts")) >= 2]
        check(len(retried) >= 5, "throttled ones went through deferred: %r"
              % retried)
        evs = [e for _, e in r.xrange("gw:events")
               if e.get("to") == "deferred"]
        check(any("ESME_RTHROTTLED" in e.get("reason", "") for e in evs),
              "deferred with ESME_RTHROTTLED")
        check("pausing 200 ms" in gw.logtext(), "the bind paused")
        check(gw.stop() == 0, "gatewayd exit 0")


def test_smpp_missing_response_in_doubt(ctx):
    """The gateway must not resend an in-doubt SMS: waits for dispatch.c
    to honour send_outcome.in_doubt (the channel reports it)."""
    red = ctx.redis()
    r = red.client()
    with FakeSmsc(ctx.workdir, "--no-resp-every", "5") as smsc:
        gw = _gateway(ctx, red, smsc.port, response_timeout_ms=500).start()
        xadd_jobs(r, _sms_jobs(10))
        wait_until(lambda: len([s for s in smsc.submits()
                                if s["status"] == -1]) == 2, 20,
                   "two submits swallowed")
        time.sleep(3)       # several retry periods
        swallowed = [s["destination_addr"] for s in smsc.submits()
                     if s["status"] == -1]
        for d in swallowed:
            i = int(d[-8:])
            led = r.hgetall("gw:msg:m-sms-%d" % i)
            check("no submit_sm_resp within 500 ms" in led.get("reason", "")
                  or "no submit_sm_resp" in json.dumps(
                      [e for _, e in r.xrange("gw:events")
                       if e.get("msg") == "m-sms-%d" % i]),
                  "in doubt with the reason: %r" % led)
            n = len([s for s in smsc.submits()
                     if s["destination_addr"] == d])
            check(n == 1, "in doubt: sent once, not resent (%d times)" % n)
            check(led.get("state") != "accepted", "not accepted: %r" % led)
        check(gw.stop() == 0, "gatewayd exit 0")


# ---- sessions ----

def test_smpp_dead_link_and_reconnect(ctx):
    red = ctx.redis()
    r = red.client()
    with FakeSmsc(ctx.workdir) as smsc:
        gw = _gateway(ctx, red, smsc.port, enquire_link_ms=300,
                      enquire_link_timeout_ms=300).start()
        wait_log(gw, r"bind 1 up", 10)
        # a silent link: no enquire_link_resp -> down within ~600 ms
        check(smsc.cmd("silent on").startswith("ok"), "silent")
        t0 = time.monotonic()
        wait_log(gw, r"bind 1 down: no enquire_link_resp", 5)
        check(time.monotonic() - t0 < 3, "noticed within the timeout")
        check(smsc.cmd("silent off").startswith("ok"), "talking again")
        wait_until(lambda: gw.logtext().count("bind 1 up") >= 2, 10,
                   "bound again")
        xadd_jobs(r, _sms_jobs(3))
        wait_until(lambda: _all_in(r, range(3), {"accepted"}), 15,
                   "sent after the reconnect")
        # the SMSC drops the connection
        check(smsc.cmd("drop").startswith("ok"), "drop")
        wait_log(gw, r"bind 1 down: (connection closed|read)", 5)
        wait_until(lambda: gw.logtext().count("bind 1 up") >= 3, 10,
                   "bound again after the drop")
        # the SMSC unbinds
        check(smsc.cmd("unbind") == "ok unbind 1", "unbind sent")
        wait_log(gw, r"bind 1 down: unbind from the SMSC", 5)
        wait_until(lambda: gw.logtext().count("bind 1 up") >= 4, 10,
                   "bound again after the unbind")
        xadd_jobs(r, _sms_jobs(3, start=3))
        wait_until(lambda: _all_in(r, range(6), {"accepted"}), 15,
                   "sent after all that")
        st = smsc.stats()
        check(st["connections"] >= 4, "reconnected: %r" % st)
        check(st["enquire_links"] >= 1, "enquire_link sent")
        check(gw.stop() == 0, "gatewayd exit 0")
        st = smsc.stats()
        check(st["unbinds"] >= 1, "unbound cleanly at shutdown: %r" % st)


def test_smpp_no_enquire_resp_reconnects(ctx):
    red = ctx.redis()
    with FakeSmsc(ctx.workdir, "--no-enquire-resp") as smsc:
        gw = _gateway(ctx, red, smsc.port, enquire_link_ms=200,
                      enquire_link_timeout_ms=200).start()
        wait_until(lambda: gw.logtext().count("no enquire_link_resp") >= 2,
                   10, "dropped twice for the missing enquire_link_resp")
        check(smsc.stats()["connections"] >= 2, "reconnected")
        check(gw.stop() == 0, "gatewayd exit 0")


def test_smpp_bad_credentials_alarm(ctx):
    red = ctx.redis()
    r = red.client()
    with FakeSmsc(ctx.workdir, "--password", "secret") as smsc:
        gw = _gateway(ctx, red, smsc.port, reconnect_min_ms=50,
                      reconnect_max_ms=4000, queue_timeout_ms=500).start()
        wait_log(gw, r"bind refused: ESME_RINVPASWD.*alarm raised", 10)
        xadd_jobs(r, _sms_jobs(1))
        wait_until(lambda: _state(r, 0) == "deferred", 10,
                   "deferred: no bind")
        time.sleep(2.5)
        st = smsc.stats()
        check(st["bind_fails"] <= 2, "no hammering: %r" % st)
        check(st["submits"] == 0, "nothing submitted")
        check(gw.stop() == 0, "gatewayd exit 0")


def test_smpp_malformed_pdus(ctx):
    red = ctx.redis()
    r = red.client()
    with FakeSmsc(ctx.workdir) as smsc:
        gw = _gateway(ctx, red, smsc.port).start()
        wait_log(gw, r"bind 1 up", 10)
        # an unknown command id: generic_nack, the bind stays
        check(smsc.cmd("raw 00000010 00000777 00000000 00000042") ==
              "ok raw 1", "raw sent")
        wait_until(lambda: smsc.stats()["nacks_recv"] >= 1, 5, "nacked")
        check(gw.logtext().count("bind 1 up") == 1, "no reconnect")
        # a deliver_sm whose TLV overruns the PDU: answered, bind dropped
        body = (b"\0" + b"\x01\x01" + b"4915100000001\0" + b"\x00\x00" +
                b"12345\0" + b"\x00\x00\x00" + b"\0\0" + b"\x00\x00\x00"
                b"\x00" + b"\x00" + b"\x04\x24\x00\x50" + b"abc")
        pdu = (16 + len(body)).to_bytes(4, "big") + \
            bytes.fromhex("00000005 00000000 00000007") + body
        check(smsc.cmd("raw " + pdu.hex()) == "ok raw 1", "raw")
        wait_log(gw, r"bind 1 down: undecodable deliver_sm", 5)
        wait_until(lambda: gw.logtext().count("bind 1 up") >= 2, 10,
                   "bound again")
        # an absurd command_length: generic_nack and drop
        check(smsc.cmd("raw 7fffffff 00000004 00000000 00000001") ==
              "ok raw 1", "raw")
        wait_log(gw, r"command_length 2147483647", 5)
        wait_until(lambda: gw.logtext().count("bind 1 up") >= 3, 10,
                   "bound again")
        xadd_jobs(r, _sms_jobs(2))
        wait_until(lambda: _all_in(r, range(2), {"accepted"}), 15,
                   "still sends")
        check(gw.stop() == 0, "gatewayd exit 0 (ASan: no leak)")


def test_smpp_random_pdus(ctx):
    """Random framed PDUs (mostly deliver_sm/data_sm with random bodies)
    and random bytes: the daemon survives, answers, reconnects, stays
    ASan/LSan clean and still sends afterwards."""
    import random
    rnd = random.Random(6)
    red = ctx.redis()
    r = red.client()
    with FakeSmsc(ctx.workdir) as smsc:
        gw = _gateway(ctx, red, smsc.port, reconnect_min_ms=20,
                      reconnect_max_ms=50, max_pdu_bytes=4096).start()
        wait_log(gw, r"bind 1 up", 10)
        for k in range(300):
            if k % 50 == 49:
                body = bytes(rnd.getrandbits(8)
                             for _ in range(rnd.randrange(1, 64)))
                raw = body
            else:
                cmd = rnd.choice([0x00000005, 0x00000005, 0x00000103,
                                  0x80000004, 0x80000000, 0x00000015,
                                  rnd.getrandbits(32)])
                body = bytes(rnd.getrandbits(8)
                             for _ in range(rnd.randrange(0, 300)))
                if cmd in (5, 0x103) and rnd.random() < 0.5:
                    # plausible fields first, random TLVs after
                    body = (b"\0\1\1" + b"4915100000001\0" + b"\0\0" +
                            b"12345\0" + bytes([rnd.choice([0, 4, 0x40])]) +
                            (b"\0\0\0\0\0\0\0\0" + bytes([5]) + b"hello"
                             if cmd == 5 else b"\0\0") + body)
                raw = (16 + len(body)).to_bytes(4, "big") + \
                    cmd.to_bytes(4, "big") + bytes(4) + \
                    rnd.getrandbits(31).to_bytes(4, "big") + body
            ans = smsc.cmd("raw " + raw.hex())
            check(ans.startswith("ok raw"), ans)
            if ans == "ok raw 0":
                time.sleep(0.06)        # between connections
        wait_until(lambda: gw.logtext().count("up: bound") >= 2, 10,
                   "binds again")
        xadd_jobs(r, _sms_jobs(3))
        wait_until(lambda: _all_in(r, range(3), {"accepted"}), 20,
                   "still sends")
        check(gw.alive(), "alive")
        check(gw.stop() == 0, "gatewayd exit 0 (ASan: no leak)")


def test_smpp_shutdown_hands_back_in_doubt(ctx):
    red = ctx.redis()
    r = red.client()
    with FakeSmsc(ctx.workdir, "--no-resp-every", "1") as smsc:
        gw = _gateway(ctx, red, smsc.port, response_timeout_ms=30000,
                      close_grace_ms=300,
                      extra_sets=["gateway.shutdown_timeout_ms=300"]).start()
        xadd_jobs(r, _sms_jobs(3))
        wait_until(lambda: smsc.stats()["submits"] == 3, 10,
                   "three submitted")
        t0 = time.monotonic()
        check(gw.stop() == 0, "gatewayd exit 0")
        check(time.monotonic() - t0 < 10, "did not wait for the SMSC")
        for i in range(3):
            led = r.hgetall("gw:msg:m-sms-%d" % i)
            # SMS holds what is in doubt (in_doubt = "hold"): recorded, not
            # sent again at the next start.
            reason = led.get("reason", "")
            check(led.get("state") == "failed" and "in doubt" in reason and
                  "no response before shutdown" in reason,
                  "handed back in doubt: %r" % led)
        check("3 in doubt" in gw.logtext(), "counted in doubt")
        check(smsc.stats()["unbinds"] == 1, "unbound after the grace")


# ---- receipts and MO (need the gateway's correlation) ----

def _receipt_case(ctx, red, r, fake_opts, prov_kw, n=4, want="delivered",
                  name="fake_smsc", start=0):
    ids = range(start, start + n)
    with FakeSmsc(ctx.workdir, *fake_opts, name=name) as smsc:
        gw = _gateway(ctx, red, smsc.port, **prov_kw).start()
        xadd_jobs(r, _sms_jobs(n, start=start))
        wait_until(lambda: _all_in(r, ids, {want}), 20,
                   "all %s after receipts (%s)" % (want, " ".join(fake_opts)))
        wait_until(lambda: smsc.stats()["deliver_resps"] >= n, 5,
                   "every receipt answered")
        check(gw.stop() == 0, "gatewayd exit 0")


def test_smpp_receipts_tlv_text_payload(ctx):
    red = ctx.redis()
    r = red.client()
    for k, form in enumerate(("tlv", "text", "payload", "both")):
        # fresh ids for each fake: the same Redis keeps the old ones
        _receipt_case(ctx, red, r, ["--dlr-delay-ms", "50", "--dlr-form",
                                    form, "--id-start", str(1000 * k + 1)],
                      {}, name="fake_" + form, start=100 * k)


def test_smpp_receipt_ids_hex_vs_decimal(ctx):
    red = ctx.redis()
    r = red.client()
    # submit_sm_resp ids in upper-case hex with leading zeros; receipts in
    # decimal with leading zeros
    _receipt_case(ctx, red, r, ["--id-format", "hex8", "--id-start",
                                "4096", "--dlr-id-format", "dec10",
                                "--dlr-delay-ms", "50", "--dlr-form",
                                "text"],
                  {"submit_id_format": "hex", "receipt_id_format": "dec"})


def test_smpp_receipt_before_response(ctx):
    red = ctx.redis()
    r = red.client()
    _receipt_case(ctx, red, r, ["--dlr-before-resp", "--id-format", "HEX",
                                "--id-start", "43981"], {})


def test_smpp_receipt_undeliverable(ctx):
    red = ctx.redis()
    r = red.client()
    _receipt_case(ctx, red, r, ["--dlr-delay-ms", "50", "--dlr-stat",
                                "UNDELIV", "--dlr-err", "11"], {},
                  want="failed")
    reason = r.hget("gw:msg:m-sms-0", "reason") or ""
    check("UNDELIV" in reason, "the stat word in the reason: %r" % reason)


def test_smpp_mo_stop_and_help(ctx):
    red = ctx.redis()
    r = red.client()
    with FakeSmsc(ctx.workdir) as smsc:
        gw = _gateway(ctx, red, smsc.port).start()
        wait_log(gw, r"bind 1 up", 10)
        # a known customer's number: the MO lands on its touch history
        xadd_jobs(r, [{"type": "customer", "id": "cu-42", "customer": {
            "customer_id": "c42", "phone": "+4915100000042"}}])
        wait_until(lambda: r.get("gw:cidx:phone:+4915100000042") == "c42",
                   10, "customer indexed")
        check(smsc.cmd("mo +4915100000042 Stop!") == "ok mo 1", "mo")
        wait_until(lambda: r.sismember("gw:suppress:sms", "+4915100000042"),
                   10, "number suppressed")
        wait_until(lambda: any(s["destination_addr"] == "4915100000042"
                               for s in smsc.submits()), 10,
                   "one confirmation SMS")
        conf = [s for s in smsc.submits()
                if s["destination_addr"] == "4915100000042"]
        check(len(conf) == 1, "exactly one confirmation: %d" % len(conf))
        mos = [e for _, e in r.xrange("gw:events") if e.get("type") == "mo"]
        check(any(e.get("text") == "Stop!" and e.get("customer") == "c42"
                  for e in mos), "MO event: %r" % mos)
        touch = [e for _, e in r.xrange("gw:touch:c42")]
        check(any(e.get("type") == "mo" and e.get("action") == "stop"
                  for e in touch), "MO on the touch history: %r" % touch)
        # a UCS-2 MO decodes
        check(smsc.cmd("mo +4915100000043 Привет") == "ok mo 1", "mo")
        wait_until(lambda: any(e.get("text") == "Привет" for _, e in
                               r.xrange("gw:events")), 10,
                   "UCS-2 MO decoded")
        # later messages to the number are suppressed
        xadd_jobs(r, [message_job(42, channel="sms")])
        wait_until(lambda: _state(r, 42) == "suppressed", 10, "suppressed")
        check(gw.stop() == 0, "gatewayd exit 0")


# ---- the npm smpp package as an independent SMSC ----

def test_smpp_npm_smsc_long_ucs2_receipt(ctx):
    check(npm_smpp_installed(), "npm smpp installed (build/npm)")
    red = ctx.redis()
    r = red.client()
    with NpmSmsc(ctx.workdir) as smsc:
        gw = _gateway(ctx, red, smsc.port).start()
        xadd_jobs(r, [message_job(1, channel="sms",
                                  vars={"n": 1, "offer": " " + LONG_UCS2}),
                      message_job(2, channel="sms")])
        wait_until(lambda: _all_in(r, [1, 2], {"accepted", "delivered"}), 20,
                   "accepted by the npm SMSC")
        subs = smsc.submits()
        long_parts = [s for s in subs if s["destination_addr"] ==
                      "4915100000001"]
        check(len(long_parts) == 3, "3 parts: %r" % long_parts)
        check(all(s["data_coding"] == 8 and s["esm_class"] & 0x40
                  for s in long_parts), "UCS-2 with UDH")
        joined = "".join(s["text"] for s in sorted(long_parts,
                                                    key=lambda s: s["udh"]))
        check(joined == "Hi , code 1 " + LONG_UCS2,
              "node-smpp decodes the parts back to the text: %r" % joined)
        pid = r.hget("gw:msg:m-sms-1", "provider_id")
        check(sorted(pid.split(",")) == sorted(s["message_id"]
                                               for s in long_parts),
              "ids: %r" % pid)
        wait_until(lambda: _all_in(r, [1, 2], {"delivered"}), 20,
                   "delivered after the npm SMSC's receipts")
        check(gw.stop() == 0, "gatewayd exit 0")


def test_smpp_smart_encoding_per_campaign(ctx):
    """Typographic quotes and a dash: UCS-2 as they are, GSM-7 when the job
    switches smart encoding on (the provider's default is off)."""
    red = ctx.redis()
    r = red.client()
    with FakeSmsc(ctx.workdir) as smsc:
        gw = _gateway(ctx, red, smsc.port).start()
        text = " \u201cSpring\u201d sale \u2013 20% off\u2026"
        xadd_jobs(r, [message_job(1, channel="sms",
                                  vars={"n": 1, "offer": text}),
                      message_job(2, channel="sms", smart_encoding=True,
                                  vars={"n": 2, "offer": text})])
        wait_until(lambda: _all_in(r, [1, 2], {"accepted"}), 20,
                   "both accepted")
        by_dest = {}
        for s in smsc.submits():
            by_dest[s.get("dest_addr") or s.get("destination_addr")] = s
        plain = by_dest["+4915100000001".lstrip("+")] if \
            "+4915100000001".lstrip("+") in by_dest else \
            by_dest.get("+4915100000001")
        smart = by_dest["+4915100000002".lstrip("+")] if \
            "+4915100000002".lstrip("+") in by_dest else \
            by_dest.get("+4915100000002")
        check(plain is not None and smart is not None,
              "both submitted: %r" % list(by_dest))
        check(plain["data_coding"] == 8, "as written: UCS-2 (%r)"
              % plain["data_coding"])
        check(smart["data_coding"] == 0, "smart: GSM-7 (%r)"
              % smart["data_coding"])
        check(gw.stop() == 0, "gatewayd exit 0")

"""Intake, dispatch and the outbox against a real redis-server: volume,
malformed jobs, metrics (checked by promtool) and a clean SIGTERM."""

import json
import os
import signal
import subprocess
import time

from harness import (check, message_job, promtool_check, recipients,
                     wait_until, xadd_jobs)


def test_10k_jobs_reach_outbox(ctx):
    red = ctx.redis()
    gw = ctx.gateway(red.url).start()
    r = red.client()
    chans = ["email", "sms", "fax"]
    jobs = [message_job(i, chans[i % 3]) for i in range(10000)]
    xadd_jobs(r, jobs)
    total = lambda: sum(len(gw.outbox_files(c)) for c in chans)
    wait_until(lambda: total() >= 10000, 180, "10,000 outbox files")
    time.sleep(0.5)
    check(total() == 10000, "expected 10000 files, found %d" % total())
    for c in chans:
        check(len(gw.outbox_files(c)) == len([j for j in jobs
                                              if j["channel"] == c]),
              "files per channel %s" % c)
    # A file holds what the job asked for.
    with open(os.path.join(gw.outbox, "sms", "m-sms-1.json")) as f:
        doc = json.load(f)
    check(doc["to"] == "+4915100000001", "recipient in file")
    check(doc["template"] == "welcome" and doc["sms"] == "Hi , code 1",
          "rendered sms in file: %r" % doc)
    # Ledger, queue and metrics agree.
    check(r.hget("gw:msg:m-email-3", "state") == "delivered", "ledger state")
    wait_until(lambda: gw.metric_sum("gw_stream_pending") == 0, 10,
               "no pending entries")
    check(r.xlen("gw:jobs") == 0 and r.xlen("gw:q:email") == 0,
          "acked entries are deleted")
    check(gw.metric_sum("gw_jobs_received_total", type="message") == 10000,
          "jobs received metric")
    check(gw.metric_sum("gw_messages_total", state="delivered") == 10000,
          "delivered metric")
    for c in chans:
        n = len([j for j in jobs if j["channel"] == c])
        check(gw.metric_sum("gw_messages_total", channel=c,
                            state="delivered") == n, "per-channel metric")
    check(gw.metric_sum("gw_jobs_dead_total") == 0, "no dead jobs")
    check(r.xlen("gw:dead") == 0, "gw:dead is empty")
    # queued, sending, delivered: three events a message.
    check(r.xlen("gw:events") == 30000, "events: %d" % r.xlen("gw:events"))
    promtool_check(gw.metrics_text())
    # The same jobs again are idempotent: nothing new is sent.
    xadd_jobs(r, jobs[:100])
    wait_until(lambda: r.xlen("gw:jobs") == 0, 20, "duplicates acked")
    check(r.xlen("gw:events") == 30000, "no events for duplicate jobs")
    check(gw.stop() == 0, "gatewayd exit code after SIGTERM")


MALFORMED = [
    ("not json", "{nope", "json:"),
    ("duplicate keys", '{"type":"message","type":"message"}', "json:"),
    ("array", "[1,2,3]", "json:"),
    ("missing type", {"id": "x1"}, "type:"),
    ("unknown type", {"type": "pigeon", "id": "x2"}, "type:"),
    ("missing template", {"type": "message", "id": "x3", "channel": "email",
                          "recipient": {"customer_id": "c",
                                        "email": "a@example.org"}},
     "template:"),
    ("mistyped channel", {"type": "message", "id": "x4", "channel": 5,
                          "template": "t",
                          "recipient": {"customer_id": "c"}}, "channel:"),
    ("unknown channel", {"type": "message", "id": "x5", "channel": "pigeon",
                         "template": "t",
                         "recipient": {"customer_id": "c"}}, "channel:"),
    ("unknown provider", {"type": "message", "id": "x6", "channel": "email",
                          "provider": "nope", "template": "t",
                          "recipient": {"customer_id": "c",
                                        "email": "a@example.org"}},
     "provider:"),
    ("bad address", {"type": "message", "id": "x7", "channel": "email",
                     "template": "t",
                     "recipient": {"customer_id": "c",
                                   "email": "a@b.org\r\nBcc: x@evil.org"}},
     "recipient.email:"),
    ("bad E.164", {"type": "message", "id": "x8", "channel": "sms",
                   "template": "t",
                   "recipient": {"customer_id": "c", "phone": "0151-123"}},
     "recipient.phone:"),
    ("oversized", {"type": "message", "id": "x9", "channel": "email",
                   "template": "t", "vars": {"pad": "x" * 5000},
                   "recipient": {"customer_id": "c",
                                 "email": "a@example.org"}}, "job:"),
    ("bad send_at", {"type": "message", "id": "x10", "channel": "email",
                     "template": "t", "send_at": "tomorrow",
                     "recipient": {"customer_id": "c",
                                   "email": "a@example.org"}}, "send_at:"),
    ("missing audience key", {"type": "campaign", "id": "x11",
                              "channel": "email", "template": "t",
                              "audience": {"key": "gw:aud:none"}},
     "audience.key:"),
    ("unknown campaign", {"type": "control", "id": "x12",
                          "campaign": "nope", "action": "pause"},
     "campaign:"),
]


def test_malformed_jobs_go_to_dead(ctx):
    red = ctx.redis()
    gw = ctx.gateway(red.url, sets=["intake.max_job_bytes=4096"]).start()
    r = red.client()
    xadd_jobs(r, [j for _, j, _ in MALFORMED])
    r.xadd("gw:jobs", {"notjob": "x"})      # an entry without a job field
    wait_until(lambda: r.xlen("gw:dead") >= len(MALFORMED) + 1, 30,
               "every bad job in gw:dead")
    dead = r.xrange("gw:dead")
    check(len(dead) == len(MALFORMED) + 1, "dead count %d" % len(dead))
    by_job = {e.get("job", ""): e for _, e in dead}
    for what, job, field in MALFORMED:
        raw = job if isinstance(job, str) else json.dumps(job)
        check(raw in by_job, "%s: the job is kept verbatim in gw:dead" % what)
        reason = by_job[raw]["reason"]
        check(reason.startswith(field),
              "%s: reason %r should name %r" % (what, reason, field))
        check("\r" not in reason and "\n" not in reason,
              "%s: no raw CR/LF in the reason" % what)
    check(by_job[""]["reason"].startswith("job:"), "entry without job field")
    check(gw.alive() and gw.healthz() == 200, "daemon alive and healthy")
    check(gw.metric_sum("gw_jobs_dead_total") == len(MALFORMED) + 1,
          "dead metric")
    check(gw.metric_sum("gw_jobs_dead_total", reason="too_large") == 1,
          "too_large metric")
    evs = [e for _, e in r.xrange("gw:events") if e["type"] == "job_dead"]
    check(len(evs) == len(MALFORMED) + 1, "a job_dead event each")
    # It goes on: a good job after the bad ones is delivered.
    xadd_jobs(r, [message_job(1)])
    wait_until(lambda: gw.outbox_files("email"), 20, "good job delivered")
    check(r.xlen("gw:jobs") == 0, "bad jobs were acked")
    check(gw.stop() == 0, "clean exit")


def test_bad_audience_recipients_are_dead_lettered(ctx):
    red = ctx.redis()
    gw = ctx.gateway(red.url).start()
    r = red.client()
    rs = recipients(20)
    rs[3]["email"] = "not-an-address"
    rs[7] = {"email": "x@example.org"}               # no customer_id
    r.rpush("gw:aud:a1", *[json.dumps(x) for x in rs])
    r.rpush("gw:aud:a1", "{broken")
    xadd_jobs(r, [{"type": "campaign", "id": "a1", "channel": "email",
                   "template": "t", "audience": {"key": "gw:aud:a1"}}])
    wait_until(lambda: r.hget("gw:campaign:a1", "expansion") == "done", 20,
               "expansion done")
    wait_until(lambda: len(gw.outbox_files("email")) == 18, 20,
               "18 good recipients delivered")
    dead = [e for _, e in r.xrange("gw:dead")]
    check(len(dead) == 3, "three recipients rejected: %r" % dead)
    reasons = sorted(e["reason"] for e in dead)
    check(reasons[0].startswith("audience[20]: not JSON"), reasons[0])
    check(reasons[1].startswith("audience[3].email:"), reasons[1])
    check(reasons[2].startswith("audience[7].customer_id: missing"),
          reasons[2])
    check(r.hget("gw:campaign:a1", "rejected") == "3", "rejected counter")
    check(gw.stop() == 0, "clean exit")


def test_config_check_and_set(ctx):
    import harness
    red_url = "redis://127.0.0.1:1/0"
    gw = ctx.gateway(red_url)
    run = lambda *a: subprocess.run([harness.GATEWAYD, "-c", gw.config] +
                                    list(a), capture_output=True, text=True,
                                    timeout=30)
    p = run("--check")
    check(p.returncode == 0, "--check of a good config: %s" % p.stderr)
    p = run("--check", "--set", "intake.batch=0")
    check(p.returncode == 1 and "intake.batch = 0 is out of range"
          in p.stderr, "--set range error: %r" % p.stderr)
    p = run("--check", "--set", "redis.url=redis://127.0.0.1:7000/3")
    check(p.returncode == 0, "--set a bare string")
    with open(gw.config, "a") as f:
        f.write("\n[dispatch]\nbatchsize = 10\n")
    p = run("--check")
    check(p.returncode == 1, "unknown key fails")
    check(p.stderr.startswith(gw.config + ":"), "file name first: %r"
          % p.stderr)
    lines = open(gw.config).read().splitlines()
    n = lines.index("batchsize = 10") + 1
    check(":%d:1: unknown key 'batchsize'" % n in p.stderr and
          "did you mean 'batch'" in p.stderr, "line:col and hint: %r"
          % p.stderr)
    with open(gw.config, "w") as f:
        f.write('[redis]\nurl = "redis://x\n')
    p = run("--check")
    check(p.returncode == 1 and ":2:" in p.stderr, "syntax error position: %r"
          % p.stderr)
    example = os.path.join(os.getcwd(), "gateway.toml.example")
    p = subprocess.run([harness.GATEWAYD, "-c", example, "--check"],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 0, "gateway.toml.example passes --check: %s"
          % p.stderr)


def test_sighup_and_sigterm(ctx):
    red = ctx.redis()
    gw = ctx.gateway(red.url).start()
    with open(gw.config) as f:
        text = f.read()
    with open(gw.config, "w") as f:
        f.write(text.replace('log_level = "info"', 'log_level = "debug"'))
    gw.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "log_level = debug applied" in gw.logtext(), 10,
               "SIGHUP applied the new log level")
    with open(gw.config, "w") as f:
        f.write("[bogus]\n")
    gw.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "keeping the running config" in gw.logtext(), 10,
               "a bad config on SIGHUP is refused")
    check(gw.alive(), "still running after a bad SIGHUP")
    # SIGTERM in the middle of work: exit 0, then nothing lost or doubled.
    r = red.client()
    xadd_jobs(r, [message_job(i) for i in range(5000)])
    time.sleep(0.3)
    with open(gw.config, "w") as f:
        f.write(text)
    check(gw.stop() == 0, "exit code 0 after SIGTERM under load")
    check("handle left open" not in gw.logtext(), "no handle left open")
    gw.start()
    wait_until(lambda: len(gw.outbox_files("email")) == 5000, 120,
               "all 5000 delivered after the restart")
    wait_until(lambda: r.xlen("gw:jobs") == 0 and r.xlen("gw:q:email") == 0,
               20, "queues drained")
    delivered = [e for _, e in r.xrange("gw:events")
                 if e.get("to") == "delivered"]
    check(len(delivered) == 5000, "exactly one delivery each: %d"
          % len(delivered))
    check(gw.stop() == 0, "clean exit")

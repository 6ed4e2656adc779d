#!/usr/bin/python3
"""bench_smtp.py -- end to end from gw:jobs to Postfix's smtp-sink: one
campaign of N recipients (audience list), a 4 KB HTML + text template, 16
SMTP connections. Runs it RUNS times with a fresh redis-server (no
persistence) and prints messages/s (median, min, max), gatewayd CPU
seconds per 1,000 messages and its peak RSS, plus smtp-sink's own count.
Everything started is stopped; every wait is bounded."""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(os.environ.get("BENCH_N", "100000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
CONNS = int(os.environ.get("BENCH_CONNS", "16"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise SystemExit("bench: timed out waiting for %s" % what)


def proc_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    hwm = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) // 1024
    return cpu, hwm


HTML = ("<html><body><h1>Hello {{first_name}}</h1>" +
        "".join("<p>Paragraph %d for {{first_name}} on the {{plan}} plan: "
                "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed "
                "do eiusmod tempor incididunt ut labore.</p>" % i
                for i in range(22)) +
        "<p><a href=\"https://example.org/r?c={{customer_id}}\">Renew</a></p>"
        "</body></html>")
TEXT = ("Hello {{first_name}}\n\n" +
        "".join("Paragraph %d for {{first_name}} on the {{plan}} plan: lorem "
                "ipsum dolor sit amet.\n" % i for i in range(22)))


LAST = {}   # the peers' CPU seconds of the last one_run (bench/cases.py)


def one_run(work):
    rport, hport, sport = free_port(), free_port(), free_port()
    procs = []
    try:
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", work],
            stdout=subprocess.DEVNULL))
        r = redis.Redis(port=rport, decode_responses=True)
        wait(lambda: _ping(r), 10, "redis")
        sink_out = open(os.path.join(work, "sink.out"), "w")
        procs.append(subprocess.Popen(
            ["/usr/sbin/smtp-sink", "-c", "-u", "nobody",
             "127.0.0.1:%d" % sport, "256"], stdout=sink_out,
            stderr=subprocess.STDOUT))
        r.hset("gw:tpl:bench", mapping={"subject": "Offer for {{first_name}}",
                                        "html": HTML, "text": TEXT})
        aud = [json.dumps({"customer_id": "c%d" % i,
                           "email": "u%d@example.org" % i,
                           "vars": {"first_name": "N%d" % i, "plan": "Gold"}})
               for i in range(N)]
        p = r.pipeline(transaction=False)
        for i in range(0, N, 10000):
            p.rpush("gw:aud:bench", *aud[i:i + 10000])
        p.execute()
        log = open(os.path.join(work, "gatewayd.log"), "w")
        gw = subprocess.Popen(
            [os.path.join(ROOT, "bin/gatewayd"), "-c",
             os.path.join(ROOT, "examples/demo.toml"),
             "--set", "redis.url=redis://127.0.0.1:%d/0" % rport,
             "--set", "http.listen=127.0.0.1:%d" % hport,
             "--set", "provider.outbox.dir=%s/ob" % work,
             "--set", "provider.mail.type=smtp",
             "--set", "provider.mail.url=smtp://127.0.0.1:%d" % sport,
             "--set", "provider.mail.tls=off",
             "--set", "provider.mail.from=Shop <news@example.org>",
             "--set", "provider.mail.max_connections=%d" % CONNS,
             "--set", "provider.mail.max_messages_per_connection=0",
             "--set", "channel.email.provider=mail",
             # batches of 250: the begin script's replies are rendered
             # and handed to the sessions in one loop turn, so a bigger
             # batch keeps SMTP replies waiting longer (1000/8000 measured
             # slower and 3x the RSS; docs/performance.md)
             "--set", "dispatch.batch=250",
             "--set", "dispatch.max_inflight=2000",
             "--set", "intake.expand_batch=2000",
             "--set", "gateway.log_level=warn"] +
            [a for x in os.environ.get("BENCH_SETS", "").split()
             for a in ("--set", x)],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        procs.append(gw)
        wait(lambda: _healthy(hport), 20, "gatewayd")
        cpu0, _ = proc_stat(gw.pid)
        rcpu0, _ = proc_stat(procs[0].pid)
        scpu0, _ = proc_stat(procs[1].pid)
        t0 = time.monotonic()
        r.xadd("gw:jobs", {"job": json.dumps(
            {"type": "campaign", "id": "bench", "channel": "email",
             "template": "bench", "audience": {"key": "gw:aud:bench"}})})
        wait(lambda: int(r.hget("gw:campaign:bench", "n_accepted") or 0) >= N,
             600, "%d accepted" % N)
        took = time.monotonic() - t0
        cpu1, hwm = proc_stat(gw.pid)
        rcpu1, _ = proc_stat(procs[0].pid)
        scpu1, _ = proc_stat(procs[1].pid)
        print("    CPU in %.2f s: gatewayd %.2f s, redis-server %.2f s, "
              "smtp-sink %.2f s" % (took, cpu1 - cpu0, rcpu1 - rcpu0,
                                    scpu1 - scpu0))
        LAST.update(redis_cpu_s=rcpu1 - rcpu0, sink_cpu_s=scpu1 - scpu0,
                    took_s=took)
        gw.terminate()
        gw.wait(60)
        return N / took, (cpu1 - cpu0) * 1000 / N, hwm
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


def _ping(r):
    try:
        return r.ping()
    except redis.exceptions.ConnectionError:
        return False


def _healthy(port):
    import urllib.request
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port,
                                    timeout=1) as resp:
            return resp.status == 200
    except Exception:
        return False


def main():
    rates, cpus, rss = [], [], []
    for i in range(RUNS):
        with tempfile.TemporaryDirectory(prefix="gw-bench-") as work:
            rate, cpu, hwm = one_run(work)
        rates.append(rate)
        cpus.append(cpu)
        rss.append(hwm)
        print("  run %d: %.0f msg/s, %.3f CPU s per 1000, peak RSS %d MB"
              % (i + 1, rate, cpu, hwm), flush=True)
    print("email end to end (%d recipients, 4 KB html+text, %d conns -> "
          "smtp-sink): median %.0f msg/s (min %.0f, max %.0f); gatewayd "
          "%.3f CPU s per 1000 msgs; peak RSS %d MB"
          % (N, CONNS, statistics.median(rates), min(rates), max(rates),
             statistics.median(cpus), max(rss)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""demo.py -- `make demo`: a campaign end to end into the outbox. Starts a
private redis-server on a free loopback port and gatewayd with
examples/demo.toml, loads the audience from examples/audience.jsonl,
submits examples/campaign.json, waits until every message reached the
outbox, prints a summary, and stops what it started."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "demo-out")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    sys.exit("demo: timed out waiting for %s" % what)


def main():
    rport, hport = free_port(), free_port()
    work = tempfile.mkdtemp(prefix="gw-demo-")
    shutil.rmtree(OUT, ignore_errors=True)
    procs = []
    try:
        print("demo: redis-server on 127.0.0.1:%d (data in %s)" % (rport, work))
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
             "--dir", work, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        r = redis.Redis(port=rport, decode_responses=True)
        wait(lambda: _ping(r), 10, "redis-server")

        log = open(os.path.join(work, "gatewayd.log"), "w")
        gw = subprocess.Popen(
            [os.path.join(ROOT, "bin/gatewayd"), "-c",
             os.path.join(ROOT, "examples/demo.toml"),
             "--set", "redis.url=redis://127.0.0.1:%d/0" % rport,
             "--set", "http.listen=127.0.0.1:%d" % hport,
             "--set", "provider.outbox.dir=%s" % OUT],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        procs.append(gw)
        print("demo: gatewayd (pid %d), metrics on http://127.0.0.1:%d/metrics"
              % (gw.pid, hport))
        wait(lambda: _get(hport, "/healthz") == 200, 20, "gatewayd")

        with open(os.path.join(ROOT, "examples/audience.jsonl")) as f:
            audience = [line.strip() for line in f if line.strip()]
        job = json.load(open(os.path.join(ROOT, "examples/campaign.json")))
        r.rpush(job["audience"]["key"], *audience)
        t0 = time.monotonic()
        r.xadd("gw:jobs", {"job": json.dumps(job)})
        print("demo: submitted campaign %s to %d recipients"
              % (job["id"], len(audience)))
        ck = "gw:campaign:" + job["id"]
        wait(lambda: r.hget(ck, "expansion") == "done", 60, "expansion")
        final = ("n_delivered", "n_failed", "n_expired", "n_cancelled")
        wait(lambda: sum(int(r.hget(ck, k) or 0) for k in final)
             + int(r.hget(ck, "rejected") or 0) >= len(audience), 60,
             "every message to reach a final state")
        took = time.monotonic() - t0
        c = r.hgetall(ck)
        files = sorted(os.listdir(os.path.join(OUT, job["channel"])))
        print()
        print("campaign %s: %s recipients expanded, %s delivered, %s failed,"
              " %s rejected, in %.2f s" % (job["id"], c.get("expanded"),
                                          c.get("n_delivered", 0),
                                          c.get("n_failed", 0),
                                          c.get("rejected", 0), took))
        print("events written to gw:events: %d" % r.xlen("gw:events"))
        print("outbox: %d files in %s/%s/" % (len(files), OUT,
                                              job["channel"]))
        if files:
            sample = os.path.join(OUT, job["channel"], files[0])
            print("\n--- %s ---" % sample)
            print(open(sample).read().rstrip())
        print("\nmetrics (excerpt):")
        for line in _metrics(hport).splitlines():
            if line.startswith(("gw_jobs_received_total{type=\"campaign\"}",
                                "gw_recipients_expanded_total",
                                "gw_messages_total{channel=\"email\","
                                "state=\"delivered\"}",
                                "gw_redis_up")):
                print("  " + line)
        dead = r.xlen("gw:dead")
        if dead:
            print("\n%d entries in gw:dead, e.g. %r" % (dead,
                                                      r.xrange("gw:dead")[0]))
        gw.send_signal(signal.SIGTERM)
        rc = gw.wait(30)
        print("\ndemo: gatewayd stopped (exit %d); log in %s" % (rc, log.name))
        return 0 if rc == 0 and len(files) == int(c.get("n_delivered", 0)) \
            else 1
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


def _get(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                    timeout=2) as resp:
            return resp.status
    except Exception:
        return None


def _metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                timeout=5) as resp:
        return resp.read().decode()


if __name__ == "__main__":
    sys.exit(main())

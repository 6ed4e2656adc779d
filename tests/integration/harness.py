"""harness.py -- real peers for the integration tests: a private
redis-server on a free loopback port, gatewayd started from a generated
config, and helpers to wait, read metrics and check the outbox. Every wait
is bounded; everything started is stopped by its own pid."""

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request

import redis

GATEWAYD = os.environ.get("GATEWAYD", os.path.abspath("bin/gatewayd"))
TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "templates")


class TestFailure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise TestFailure("timed out after %ss waiting for %s (last: %r)"
                      % (timeout, what, last))


class RedisServer:
    """redis-server on 127.0.0.1 with AOF, so a restart keeps the data."""

    def __init__(self, workdir, port=None, aof=True):
        self.dir = os.path.join(workdir, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self.aof = aof              # benchmarks also run without it
        self.proc = None

    def start(self):
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", self.dir, "--save", "",
             "--appendonly", "yes" if self.aof else "no",
             "--appendfsync", "everysec", "--maxmemory-policy", "noeviction",
             "--daemonize", "no"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self._ping, 10, "redis-server to answer")
        return self

    def _ping(self):
        try:
            return self.client().ping()
        except redis.exceptions.ConnectionError:
            return False

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port,
                           decode_responses=True, socket_timeout=10)

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def stop(self):
        """SHUTDOWN: Redis fsyncs the AOF first, so nothing written is lost."""
        if not self.proc:
            return
        try:
            self.client().shutdown(nosave=False)
        except redis.exceptions.ConnectionError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.log.close()


CONFIG = """\
[gateway]
consumer = "{consumer}"
log_level = "info"
shutdown_timeout_ms = 20000

[redis]
url = "{redis_url}"
prefix = "gw:"
timeout_ms = 3000
reconnect_max_ms = 1000

[intake]
claim_idle_ms = 600000

[http]
listen = "127.0.0.1:{http_port}"

[templates]
dir = "{templates}"

[channel.email]
provider = "outbox"

[channel.sms]
provider = "outbox"

[channel.fax]
provider = "outbox"

[provider.outbox]
type = "outbox"
dir = "{outbox}"
fsync = false
"""


class Gateway:
    def __init__(self, workdir, redis_url, consumer="gw-test", sets=(),
                 name="gatewayd"):
        self.workdir = workdir
        self.outbox = os.path.join(workdir, "outbox")
        self.templates = TEMPLATES
        self.http_port = free_port()
        self.config = os.path.join(workdir, name + ".toml")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(consumer=consumer, redis_url=redis_url,
                                  http_port=self.http_port,
                                  outbox=self.outbox,
                                  templates=self.templates))
        self.sets = list(sets)
        self.logpath = os.path.join(workdir, name + ".log")
        self.proc = None

    def start(self, wait_healthy=True):
        args = [GATEWAYD, "-c", self.config]
        for s in self.sets:
            args += ["--set", s]
        self.log = open(self.logpath, "ab")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.proc = subprocess.Popen(args, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)
        if wait_healthy:
            wait_until(lambda: self.healthz() == 200, 20,
                       "gatewayd /healthz to answer 200")
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def get(self, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s"
                                        % (self.http_port, path),
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (urllib.error.URLError, ConnectionError, OSError):
            return None, ""

    def healthz(self):
        return self.get("/healthz")[0]

    def metrics_text(self):
        status, body = self.get("/metrics")
        check(status == 200, "/metrics answered %r" % status)
        return body

    def metrics(self):
        """{name: {labels-string: value}} from the Prometheus text."""
        out = {}
        for line in self.metrics_text().splitlines():
            if not line or line.startswith("#"):
                continue
            m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$',
                         line)
            check(m, "unparseable metrics line %r" % line)
            out.setdefault(m.group(1), {})[m.group(2) or ""] = \
                float(m.group(3))
        return out

    def metric_sum(self, name, **labels):
        total = 0.0
        for lab, v in self.metrics().get(name, {}).items():
            if all('%s="%s"' % (k, val) in lab for k, val in labels.items()):
                total += v
        return total

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Signal it and wait; returns the exit code."""
        if not self.proc:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise TestFailure("gatewayd did not exit within %ss of %s"
                              % (timeout, sig))
        self.proc = None
        self.log.close()
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self.log.close()

    def logtext(self):
        if not os.path.exists(self.logpath):
            return ""
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def outbox_files(self, channel):
        d = os.path.join(self.outbox, channel)
        if not os.path.isdir(d):
            return []
        return [f for f in os.listdir(d) if f.endswith(".json")]


def xadd_jobs(r, jobs, chunk=1000):
    """Pipeline jobs into gw:jobs; returns the entry ids."""
    ids = []
    for i in range(0, len(jobs), chunk):
        p = r.pipeline(transaction=False)
        for j in jobs[i:i + chunk]:
            p.xadd("gw:jobs", {"job": j if isinstance(j, str)
                               else json.dumps(j)})
        ids += p.execute()
    return ids


def message_job(i, channel="email", **extra):
    rcpt = {"customer_id": "c%d" % i}
    if channel == "email":
        rcpt["email"] = "user%d@example.org" % i
    elif channel == "sms":
        rcpt["phone"] = "+49151%08d" % i
    else:
        rcpt["fax"] = "+4930%08d" % i
    job = {"type": "message", "id": "m-%s-%d" % (channel, i),
           "channel": channel, "template": "welcome", "recipient": rcpt,
           "vars": {"n": i}}
    job.update(extra)
    return job


def recipients(n, channel="email", start=0):
    out = []
    for i in range(start, start + n):
        r = {"customer_id": "c%d" % i, "vars": {"first_name": "N%d" % i}}
        if channel == "email":
            r["email"] = "user%d@example.org" % i
        elif channel == "sms":
            r["phone"] = "+49151%08d" % i
        else:
            r["fax"] = "+4930%08d" % i
        out.append(r)
    return out


def promtool_check(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    check(p.returncode == 0, "promtool check metrics failed: %s%s"
          % (p.stdout.decode(), p.stderr.decode()))


def proc_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks

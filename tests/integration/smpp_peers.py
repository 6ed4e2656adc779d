"""smpp_peers.py -- SMSCs for the SMPP channel tests, each its own process
on 127.0.0.1, stopped by its own pid:

  FakeSmsc  tests/fakes/fake_smsc (build/fakes/fake_smsc-san if built,
            else build/fakes/fake_smsc; $FAKE_SMSC overrides): fault
            injection by option, control lines on stdin ("mo FROM TEXT",
            "raw HEX", "drop", "unbind", "silent on", "stats"), one JSON
            line per submit_sm in its --log. Stopping it closes stdin; it
            must exit 0 (under ASan: no leak either).
  NpmSmsc   the npm `smpp` package's server (tests/integration/
            npm_smsc.js, package in build/npm), an independent SMSC that
            answers submit_sm with an id and sends a delivery receipt.

smpp_sets() builds the gatewayd --set list for an SMPP provider."""

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

sys.path.insert(0, HERE)
from harness import TestFailure, check, wait_until  # noqa: E402


def fake_path():
    env = os.environ.get("FAKE_SMSC")
    if env:
        return env
    for name in ("fake_smsc-san", "fake_smsc"):
        p = os.path.join(ROOT, "build", "fakes", name)
        if os.path.exists(p):
            return p
    raise TestFailure("build/fakes/fake_smsc is not built: make "
                      "build/fakes/fake_smsc build/fakes/fake_smsc-san")


class _Proc:
    """A child with stdout lines collected by a thread."""

    def _start(self, args, env=None):
        self.lines = queue.Queue()
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=self.errlog, env=env)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        line = self._line(15)
        m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line or "")
        if not m:
            self.kill()
            raise TestFailure("%s did not start: %r (stderr in %s)"
                              % (args[0], line, self.errpath))
        self.port = int(m.group(1))

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode(errors="replace").rstrip("\n"))
        self.lines.put(None)

    def _line(self, timeout):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class FakeSmsc(_Proc):
    def __init__(self, workdir, *opts, name="fake_smsc"):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.logpath = os.path.join(self.dir, "submits.jsonl")
        self.errpath = os.path.join(self.dir, "stderr.log")
        self.opts = list(opts)
        self.proc = None

    def start(self):
        self.errlog = open(self.errpath, "ab")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        self._start([fake_path(), "--port", "0", "--log", self.logpath,
                     "--lifetime-s", "600"] + self.opts, env)
        return self

    def cmd(self, line, timeout=10):
        """Send a control line; returns its answer line."""
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        ans = self._line(timeout)
        check(ans is not None, "fake_smsc: no answer to %r" % line)
        return ans

    def stats(self):
        return json.loads(self.cmd("stats"))

    def submits(self):
        """Every submit_sm seen so far (the --log lines)."""
        if not os.path.exists(self.logpath):
            return []
        out = []
        with open(self.logpath) as f:
            for line in f:
                if line.endswith("\n"):
                    out.append(json.loads(line))
        return out

    def stop(self, timeout=20):
        """Close stdin (the fake stops), wait; it must exit 0."""
        if not self.proc:
            return None
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TestFailure("fake_smsc did not stop")
        self.proc = None
        self.errlog.close()
        check(rc == 0, "fake_smsc exited %d (stderr: %s)" % (rc, self.errpath))
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        if self.proc:
            if a[0] is None:
                self.stop()
            else:
                self.kill()


NPM_DIR = os.path.join(ROOT, "build", "npm")


def npm_smpp_installed():
    return os.path.isdir(os.path.join(NPM_DIR, "node_modules", "smpp"))


class NpmSmsc(_Proc):
    """node npm_smsc.js: options as environment (see the script)."""

    def __init__(self, workdir, name="npm_smsc", **conf):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.logpath = os.path.join(self.dir, "submits.jsonl")
        self.errpath = os.path.join(self.dir, "stderr.log")
        self.conf = conf
        self.proc = None

    def start(self):
        if not npm_smpp_installed():
            raise TestFailure("npm smpp is not installed: npm install "
                              "--prefix build/npm smpp@0.5.1")
        self.errlog = open(self.errpath, "ab")
        env = dict(os.environ)
        env["NODE_PATH"] = os.path.join(NPM_DIR, "node_modules")
        for k, v in self.conf.items():
            env["SMSC_" + k.upper()] = str(v)
        node = shutil.which("node") or "node"
        self._start([node, os.path.join(HERE, "npm_smsc.js"), "0",
                     self.logpath], env)
        return self

    def submits(self):
        if not os.path.exists(self.logpath):
            return []
        with open(self.logpath) as f:
            return [json.loads(x) for x in f if x.endswith("\n")]

    def stop(self, timeout=10):
        if not self.proc:
            return None
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            rc = -9
        self.proc = None
        self.errlog.close()
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()


def smpp_sets(port, name="sms1", **kw):
    """--set lines for provider NAME (type smpp) on 127.0.0.1:port, made
    the SMS channel's provider. Keyword arguments are provider keys."""
    conf = {"host": "\"127.0.0.1\"", "port": port,
            "system_id": "\"gwtest\"", "password": "\"pw\"",
            "source_addr": "\"Shop\"", "reconnect_min_ms": 100,
            "reconnect_max_ms": 1000, "response_timeout_ms": 3000,
            "channels": "[\"sms\"]"}
    for k, v in kw.items():
        if isinstance(v, bool):
            conf[k] = "true" if v else "false"
        elif isinstance(v, int):
            conf[k] = v
        else:
            conf[k] = json.dumps(v)
    out = ["provider.%s.type=smpp" % name]
    out += ["provider.%s.%s=%s" % (name, k, v) for k, v in conf.items()]
    out.append("channel.sms.provider=%s" % name)
    return out


def wait_log(gw, pattern, timeout, what=None):
    """Wait until gatewayd's log matches the regular expression."""
    rx = re.compile(pattern)
    return wait_until(lambda: rx.search(gw.logtext()), timeout,
                      what or "gatewayd log: %s" % pattern)


def settle(seconds):
    time.sleep(seconds)


# ---- benchmark: python3 tests/integration/smpp_peers.py bench [N] ----

def _rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


ALL_HOURS = """
[[window]]
class = "marketing"
channels = ["sms", "fax"]
start = "00:00"
end = "24:00"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
"""


def bench(n=50000, binds=2, window=100):
    """End to end: one campaign of n recipients (~100-character SMS) from
    gw:jobs through gatewayd (bin/gatewayd unless $GATEWAYD) to the C fake
    SMSC (build/fakes/fake_smsc, no sanitizers). Prints submit_sm/s, the
    CPU seconds of gatewayd and its peak RSS."""
    import tempfile
    from harness import Gateway, RedisServer, proc_cpu_seconds, xadd_jobs

    os.environ.setdefault("FAKE_SMSC", os.path.join(ROOT, "build", "fakes",
                                                    "fake_smsc"))
    work = tempfile.mkdtemp(prefix="smpp-bench-")
    red = RedisServer(work, aof=os.environ.get("BENCH_AOF", "1") == "1"
                      ).start()
    smsc = FakeSmsc(work, "--no-lib-check", "--window", "0").start()
    gw = None
    try:
        r = red.client()
        gw = Gateway(work, red.url, sets=smpp_sets(
            smsc.port, binds=binds, window=window,
            response_timeout_ms=30000) + ["gateway.log_level=\"warn\""])
        # a throughput figure must not depend on the time of day: open the
        # default marketing SMS quiet hours around the clock
        with open(gw.config, "a") as f:
            f.write(ALL_HOURS)
        offer = " - spring sale: 20% off everything in store and online, " \
                "this week only!"
        triggered = os.environ.get("BENCH_TRIGGERED") == "1"
        if triggered:
            # n separately triggered message jobs, queued before the daemon
            # starts (as the intake case): the figure is from the first
            # submit to the last, not the Python producer's speed
            for i in range(0, n, 10000):
                xadd_jobs(r, [{"type": "message", "id": "t%d" % k,
                               "channel": "sms", "template": "spring",
                               "class": "marketing",
                               "recipient": {"customer_id": "b%d" % k,
                                             "phone": "+49151%08d" % k},
                               "vars": {"first_name": "Anna", "n": 123456,
                                        "offer": offer}}
                              for k in range(i, min(n, i + 10000))],
                          chunk=10000)
        gw.start()
        wait_until(lambda: "bind %d up" % binds in gw.logtext() or
                   smsc.stats()["binds"] >= binds, 10, "binds up")
        for i in range(0, n if not triggered else 0, 10000):
            r.rpush("gw:aud:bench", *[json.dumps(
                {"customer_id": "b%d" % k, "phone": "+49151%08d" % k,
                 "vars": {"first_name": "Anna"}})
                for k in range(i, min(n, i + 10000))])
        cpu0 = proc_cpu_seconds(gw.proc.pid)
        rcpu0 = proc_cpu_seconds(red.proc.pid)
        fcpu0 = proc_cpu_seconds(smsc.proc.pid)
        t0 = time.monotonic()
        if not triggered:
            xadd_jobs(r, [{"type": "campaign", "id": "bench",
                           "channel": "sms", "template": "spring",
                           "audience": {"key": "gw:aud:bench"},
                           "vars": {"n": 123456, "offer": offer}}])
        first = wait_until(lambda: smsc.stats()["submit_ok"] > 0 and
                           time.monotonic(), 60, "first submit")
        wait_until(lambda: smsc.stats()["submit_ok"] >= n, 600,
                   "%d submits" % n, interval=0.2)
        t1 = time.monotonic()
        cpu = proc_cpu_seconds(gw.proc.pid) - cpu0
        rcpu = proc_cpu_seconds(red.proc.pid) - rcpu0
        fcpu = proc_cpu_seconds(smsc.proc.pid) - fcpu0
        rss = _rss_kb(gw.proc.pid)
        def accepted():
            if not triggered:
                return int(r.hget("gw:campaign:bench", "n_accepted") or 0)
            m = gw.metrics().get("gw_messages_total", {})
            return sum(int(v) for k, v in m.items()
                       if 'channel="sms"' in k and 'state="accepted"' in k)
        wait_until(lambda: accepted() >= n, 120, "ledger caught up",
                   interval=0.5)
        t2 = time.monotonic()
        sample = smsc.submits()[:1]
        print("SMPP bench: %d %s messages (%d chars), %d binds, window %d"
              % (n, "triggered" if triggered else "campaign", len(bytes.fromhex(sample[0]["short_message"]))
                 if sample else 0, binds, window))
        print("  first submit after %.2f s; all %d submit_sm in %.2f s from "
              "the XADD: %.0f submit_sm/s end to end (%.0f/s from the first)"
              % (first - t0, n, t1 - t0, n / (t1 - t0), n / (t1 - first)))
        print("  ledger all accepted after %.2f s" % (t2 - t0))
        print("  gatewayd CPU %.2f s (%.0f%% of one core), peak RSS %d MB"
              % (cpu, 100 * cpu / (t1 - t0), rss // 1024))
        print("  redis-server CPU %.2f s, fake SMSC CPU %.2f s" % (rcpu, fcpu))
    finally:
        if gw and gw.alive():
            gw.stop()
        smsc.stop()
        red.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "bench":
        bench(int(sys.argv[2]) if len(sys.argv) > 2 else 50000)
    else:
        print("usage: smpp_peers.py bench [N]")

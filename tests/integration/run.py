"""run.py -- runs the integration tests (tests/integration/test_*.py):
each test function gets a fresh work directory and a context that starts
real peers and stops them afterwards, whatever happened. Prints one line a
test and exits non-zero if any failed. Usage: run.py [name-substring...]"""

import importlib.util
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PER_TEST_LIMIT = 600  # seconds; each test's own waits are far shorter


class Context:
    def __init__(self, workdir):
        self.workdir = workdir
        self.started = []

    def redis(self, port=None):
        r = harness.RedisServer(self.workdir, port).start()
        self.started.append(r)
        return r

    def gateway(self, redis_url, **kw):
        g = harness.Gateway(self.workdir, redis_url, **kw)
        self.started.append(g)
        return g

    def cleanup(self):
        for p in reversed(self.started):
            try:
                if isinstance(p, harness.Gateway) and p.alive():
                    p.proc.kill()
                    p.proc.wait()
                elif isinstance(p, harness.RedisServer) and p.proc:
                    p.proc.kill()
                    p.proc.wait()
            except Exception:
                pass


def on_alarm(signum, frame):
    raise harness.TestFailure("test exceeded %ds" % PER_TEST_LIMIT)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    wanted = sys.argv[1:]
    tests = []
    for fn in sorted(os.listdir(here)):
        if fn.startswith("test_") and fn.endswith(".py"):
            spec = importlib.util.spec_from_file_location(fn[:-3],
                                                          os.path.join(here, fn))
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            for name in dir(mod):
                if name.startswith("test_") and callable(getattr(mod, name)):
                    full = "%s.%s" % (fn[:-3], name)
                    if not wanted or any(w in full for w in wanted):
                        tests.append((full, getattr(mod, name)))
    signal.signal(signal.SIGALRM, on_alarm)
    failed = []
    print("gatewayd under test: %s" % harness.GATEWAYD)
    for full, fn in tests:
        workdir = tempfile.mkdtemp(prefix="gwtest-")
        ctx = Context(workdir)
        t0 = time.monotonic()
        signal.alarm(PER_TEST_LIMIT)
        try:
            fn(ctx)
            for p in ctx.started:
                if isinstance(p, harness.Gateway):
                    harness.check("does not compile" not in p.logtext(),
                                  "a Lua script failed to load: see %s"
                                  % p.logpath)
            status = "PASS"
        except Exception as e:
            status = "FAIL"
            failed.append(full)
            print("---- %s: %s" % (full, e))
            traceback.print_exc()
            for p in ctx.started:
                if isinstance(p, harness.Gateway):
                    print("---- tail of %s" % p.logpath)
                    print("\n".join(p.logtext().splitlines()[-30:]))
        finally:
            signal.alarm(0)
            ctx.cleanup()
        print("%s %-55s %6.1fs" % (status, full, time.monotonic() - t0),
              flush=True)
        if status == "PASS":
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print("     work dir kept: %s" % workdir)
    print("integration: %d passed, %d failed"
          % (len(tests) - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

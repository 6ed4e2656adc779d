#!/usr/bin/python3
"""bench/perfstages.py -- where gatewayd's CPU goes, per message and stage.

    /usr/bin/python3 bench/perfstages.py [--case email|sms|intake|fax]
        [--n N] [--delay S] [--seconds S] [--freq HZ]

Runs one bench case (bench/cases.py, the same peers and settings as
`make bench`), attaches `perf record --call-graph dwarf` to gatewayd (all
its threads) once it has been busy for --delay seconds, for --seconds, and
classifies every sample by the innermost frame of its stack that belongs to
a stage (the table STAGES below: function names of our modules, libxml2,
jansson, hiredis, libcurl, the kernel). Prints each stage's share of the
samples and, with the case's gatewayd CPU seconds per 1,000 messages, its
microseconds per message; then redis-server's own CPU per message (the
Lua scripts' side of intake and tracking), which is a separate process.

The stage of a sample is the innermost one because the outer frames are
shared: a message is rendered inside the reply callback of the begin
script, so on_ops_reply is on most stacks; malloc and memcpy count for the
stage that called them. Needs perf (linux-perf) and permission to attach
(root or kernel.perf_event_paranoid <= 1 for own processes).
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cases  # noqa: E402

# (stage, our functions, library functions). A sample belongs to the
# innermost of our functions on its stack; only a stack with none of ours
# (a libuv callback into hiredis, say) is placed by a library function.
STAGES = [
    ("render", r"tpl_\w+|render|keep_parts|html_process|walk_text|"
               r"mustache_\w+|fax_render\w*|render_work|add_images",
               r"htmlParse\w*|htmlRead\w*|pango_\w+|cairo_\w+"),
    ("encode/MIME", r"mime_\w+|put_\w+|hw_\w+|multipart_\w+|sms_\w+|"
                    r"pack7|write_parts|part_open|air_size|fill_bits|"
                    r"pack_submit|smpp_pack\w*|smpp_put32|prepare",
                    r""),
    ("tracking", r"links_\w+|track_link|token_\w+|unsub_url|b64_encode|"
                 r"ops_\w+|gw_redis_eval|on_ops_reply|dispatch_flush|"
                 r"flush_channel|on_finished|on_sent|outcome|on_begun|"
                 r"begin_batch|on_receipt|receipt|on_done",
                 r"HMAC\w*|SHA256\w*|EVP_\w+"),
    ("policy", r"admit_batch|go_batch|policy_\w+|throttle_\w+|window_\w+|"
               r"bucket_\w+|arm_wait_timer|on_wait_timer|wgroup_\w+|"
               r"dbatch_new|send_one|channel_for",
               r""),
    ("intake", r"job_\w+|jobs_handler|route_jobs|on_enqueued|"
               r"message_payload|dmsg_new|dmsg_free|dispatch_entries|"
               r"add_recipient|write_batch|on_fetched|on_expanded|"
               r"campaign_job|entry_free|stream_done",
               r""),
    ("wire", r"sess_\w+|on_sess_\w+|smtp_send|xfer_\w+|txn_\w+|kick|"
             r"on_read|on_write|flush_bind|on_flush|pump|send_part|"
             r"on_submit_resp|handle_pdu|smpp_send|write_one|batch_work|"
             r"outbox_send|render_json|upload\w*|curl_uv\w*|cu_\w+|"
             r"conn_\w+|easy_\w+",
             r"curl_\w+|Curl_\w+|__x64_sys_\w+|tcp_\w+|uv__write\w*|"
             r"uv__read"),
    ("redis client", r"on_reply|send_argv|on_live|deliver",
                     r"redis\w+|sds\w+|freeReplyObject"),
]
OWN = [(n, re.compile("^(%s)$" % own)) for n, own, _ in STAGES]
LIB = [(n, re.compile("^(%s)$" % lib)) for n, _, lib in STAGES if lib]


def classify(stack):
    stack = [s.replace(" (inlined)", "") for s in stack]   # leaf first
    for table in (OWN, LIB):
        for sym in stack:
            for name, rx in table:
                if rx.match(sym):
                    return name
    return "other (loop, allocator, libuv, kernel)"


def samples(data):
    out = subprocess.run(["perf", "script", "-i", data, "-F", "tid,ip,sym"],
                         capture_output=True, text=True, timeout=600).stdout
    stack = []
    for line in out.splitlines() + [""]:
        s = line.strip()
        if not s:
            if stack:
                yield stack
            stack = []
        elif line.startswith("\t") or line.startswith(" " * 8):
            parts = s.split(None, 1)
            stack.append(parts[1] if len(parts) > 1 else parts[0])


def find_gatewayd(after):
    out = subprocess.run(["pgrep", "-n", "-x", "gatewayd"],
                         capture_output=True, text=True).stdout.split()
    return int(out[0]) if out and int(out[0]) not in after else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", default="email",
                    choices=["email", "sms", "intake", "fax"])
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--delay", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--freq", type=int, default=499)
    ap.add_argument("--detail", type=int, default=0,
                    help="also the N hottest leaf functions of each stage")
    a = ap.parse_args()
    counts = dict(cases.FULL)
    if a.n:
        counts[a.case] = a.n
    elif a.case == "intake":
        counts["intake"] = 300000
    before = set(int(p) for p in subprocess.run(
        ["pgrep", "-x", "gatewayd"], capture_output=True,
        text=True).stdout.split())
    result = {}

    def run():
        try:
            result["res"] = cases.run_case(a.case, counts, False)
        except BaseException as e:  # noqa: B902
            result["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    pid = cases.wait_for(lambda: find_gatewayd(before), 120, "gatewayd")
    print("gatewayd pid %d" % pid, flush=True)
    # intake preloads before gatewayd starts; the others start it first
    time.sleep(a.delay)
    data = tempfile.mktemp(prefix="gw-perf-", suffix=".data")
    subprocess.run(["perf", "record", "-q", "-F", str(a.freq), "-g",
                    "--call-graph", "dwarf,16384", "-p", str(pid), "-o",
                    data, "--", "sleep", str(a.seconds)],
                   stdout=subprocess.DEVNULL, timeout=a.seconds + 120)
    t.join(900)
    cases.stop_all()
    if "error" in result:
        print("case failed: %s" % result["error"])
        return 1
    res = result["res"]
    by = collections.Counter()
    leaves = collections.defaultdict(collections.Counter)
    for st in samples(data):
        name = classify(st)
        by[name] += 1
        leaves[name][st[0].replace(" (inlined)", "")] += 1
    os.unlink(data)
    total = sum(by.values()) or 1
    cpu = res.get("cpu_per_1000")
    fig = next(iter(res["figures"].values()))
    print("%s: %s %s; gatewayd %.1f us CPU per message; %d samples"
          % (a.case, cases_fmt(fig["value"]), fig["unit"],
             cpu * 1000 if cpu else float("nan"), total))
    for name, n in by.most_common():
        print("  %-40s %5.1f%%  %6.1f us/msg" % (
            name, 100.0 * n / total, cpu * 1000 * n / total if cpu else 0))
        for leaf, k in leaves[name].most_common(a.detail):
            print("      %-36s %5.1f%%" % (leaf[:36], 100.0 * k / total))
    if res.get("redis_cpu_per_1000") is not None:
        print("  redis-server (another process)           %6.1f us/msg"
              % (res["redis_cpu_per_1000"] * 1000))
        for k, v in (res.get("redis_commands") or {}).items():
            print("    %-12s %7.2f us/msg" % (k, v["usec_per_job"]))
    return 0


def cases_fmt(v):
    return "{:,.0f}".format(v) if isinstance(v, (int, float)) else str(v)


if __name__ == "__main__":
    sys.exit(main())

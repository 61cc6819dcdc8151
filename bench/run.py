#!/usr/bin/env python3
"""Gateway load benchmark: direct calls to a fast OpenAI-compatible upstream versus the same
calls through Rampart (API-key auth, Cedar authorization, limits and metrics all on).

It builds the release binary, starts `rampart demo-upstream` (the fast mock upstream) and
`rampart serve` in front of it, drives both with wrk, and prints throughput, p50/p99 latency
and the ratios, non-streaming and streaming, at concurrency 1 and 32. Every pair is measured
back to back in one run: the machine is shared and noisy, so only ratios mean much.

Usage: bench/run.py [--seconds 10] [--no-build] [--bin PATH]

To compare two versions, run it once per binary, back to back (`--bin` takes an already
built `rampart`, e.g. one built from the previous commit in a worktree).
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "rampart")
LUA = os.path.join(ROOT, "bench", "chat.lua")


def ensure_wrk():
    if shutil.which("wrk"):
        return
    print("installing wrk (Debian package)...", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)


def start(args, env=None):
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    lines = []
    while True:
        line = p.stdout.readline()
        if not line:
            raise SystemExit(f"{args[1]} exited early: {lines}")
        lines.append(line.strip())
        m = re.search(r"listening on (https?://\S+)", line)
        if m:
            return p, m.group(1), lines


def wrk(url, path, conns, seconds, key="", stream=False):
    env = dict(os.environ, BENCH_KEY=key, BENCH_STREAM="1" if stream else "0")
    threads = 1 if conns == 1 else 2
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", LUA, url + path],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    m = re.search(r"RESULT rps=([\d.]+) p50_us=(\d+) p99_us=(\d+) requests=(\d+) errors=(\d+)", out)
    if not m:
        raise SystemExit(f"cannot read wrk output:\n{out}")
    rps, p50, p99, n, errors = float(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5])
    if errors:
        raise SystemExit(f"{errors} failed requests out of {n} against {url}{path}: not a valid measurement")
    return rps, p50, p99


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10, help="duration of each wrk run")
    ap.add_argument("--no-build", action="store_true", help="use the existing release binary")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--bin", help="benchmark this rampart binary (nothing is built)")
    ap.add_argument("--ledger", metavar="MODES",
                    help="compare audit ledger modes instead, e.g. off,sync,group: one gateway per mode, "
                         "non-streamed requests at 1 and 32 connections, each beside a direct run")
    a = ap.parse_args()
    global BIN
    if a.bin:
        BIN = os.path.abspath(a.bin)
        a.no_build = True
    ensure_wrk()
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "rampart"], cwd=ROOT, check=True)

    tmp = tempfile.mkdtemp(prefix="rampart-bench-")
    procs = []
    try:
        up, up_url, _ = start([BIN, "demo-upstream", "--listen", "127.0.0.1:0"])
        procs.append(up)
        base = up_url  # http://127.0.0.1:PORT/v1
        def gateway(name, audit_toml):
            data = os.path.join(tmp, name)
            os.makedirs(data, exist_ok=True)
            config = os.path.join(data, "rampart.toml")
            with open(config, "w") as f:
                f.write(f"""version = 1
[log]
level = "warn"
[[upstreams]]
name = "mock"
base_url = "{base}"
[[models]]
name = "rampart-demo"
targets = [{{ upstream = "mock", model = "rampart-demo-1" }}]
[limits.per_key]
requests_per_minute = 100000000
tokens_per_minute = 100000000000
concurrent_requests = 1024
{audit_toml}
""")
            gw, gw_url, lines = start([BIN, "serve", "--config", config, "--listen", "127.0.0.1:0",
                                       "--data-dir", os.path.join(data, "data")], env=dict(os.environ, RAMPART_LOG="warn"))
            procs.append(gw)
            admin = next(l.split(": ", 1)[1] for l in lines if l.startswith("admin credential"))
            req = urllib.request.Request(gw_url + "/admin/keys", data=json.dumps({"owner": "bench"}).encode(),
                                         headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
            return gw_url, json.load(urllib.request.urlopen(req))["key"]

        if a.ledger:
            audit = {"off": "[audit]\nenabled = false", "sync": "[audit]\ndurability = \"sync\"",
                     "group": "[audit]\ndurability = \"group\""}
            rows = []
            gws = {m: gateway(m, audit[m]) for m in a.ledger.split(",")}
            for m, (u, k) in gws.items():
                wrk(u, "/v1/chat/completions", 4, 2, k)
            for conns in (1, 32):
                for m, (u, k) in gws.items():
                    d = wrk(base.removesuffix("/v1"), "/v1/chat/completions", conns, a.seconds)
                    g = wrk(u, "/v1/chat/completions", conns, a.seconds, k)
                    rows.append({"mode": f"ledger={m}", "conns": conns,
                                 "direct": {"rps": d[0], "p50_us": d[1], "p99_us": d[2]},
                                 "gateway": {"rps": g[0], "p50_us": g[1], "p99_us": g[2]},
                                 "added_p50_us": g[1] - d[1], "throughput_ratio": g[0] / d[0] if d[0] else 0.0})
            report(a, rows)
            return
        gw_url, key = gateway("main", "")

        # Warm both paths (connection pools, allocator, tokenizer caches).
        wrk(base.removesuffix("/v1"), "/v1/chat/completions", 4, 2)
        wrk(gw_url, "/v1/chat/completions", 4, 2, key)

        rows = []
        for stream in (False, True):
            for conns in (1, 32):
                d = wrk(base.removesuffix("/v1"), "/v1/chat/completions", conns, a.seconds, "", stream)
                g = wrk(gw_url, "/v1/chat/completions", conns, a.seconds, key, stream)
                rows.append({"mode": "stream" if stream else "json", "conns": conns,
                             "direct": {"rps": d[0], "p50_us": d[1], "p99_us": d[2]},
                             "gateway": {"rps": g[0], "p50_us": g[1], "p99_us": g[2]},
                             "added_p50_us": g[1] - d[1], "throughput_ratio": g[0] / d[0] if d[0] else 0.0})
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    report(a, rows)


def report(a, rows):
    print(f"\nrampart gateway benchmark ({a.seconds}s per run, {os.cpu_count()} cores, wrk)")
    print(f"{'mode':<13}{'conns':>6} | {'direct rps':>11}{'p50 µs':>9}{'p99 µs':>9} | {'gateway rps':>12}{'p50 µs':>9}{'p99 µs':>9} | {'added p50':>10}{'rps ratio':>10}")
    for r in rows:
        d, g = r["direct"], r["gateway"]
        print(f"{r['mode']:<13}{r['conns']:>6} | {d['rps']:>11.0f}{d['p50_us']:>9}{d['p99_us']:>9} | "
              f"{g['rps']:>12.0f}{g['p50_us']:>9}{g['p99_us']:>9} | {r['added_p50_us']:>8}µs{r['throughput_ratio']:>10.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()

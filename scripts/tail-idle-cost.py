#!/usr/bin/env python3
"""Idle cost of live-tail clients (issue 16): CPU of the edge-host process (and, on PostgreSQL,
of the database's backends for the test database) while N clients wait on
`GET /events?after=<cursor>&wait=25` and nothing is published.

    scripts/build-release.sh                       # release edge-host and component
    scripts/tail-idle-cost.py [--clients 100] [--seconds 30] [--store sqlite|postgres]

Starts its own edge-host on a free port with a fresh state directory (PostgreSQL: a fresh
database `edgelog_idle_<pid>` and Redis database 13, flushed before and after), publishes one
event, measures a quiet baseline with no clients, then the same window with N waiting clients,
and prints both as % of one core (utime + stime from /proc/PID/stat). Not a test: figures
depend on the machine; compare them within one run.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except FileNotFoundError:
            pass
    return total / TICK


def backends(database):
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith("postgres: ") and f" {database} " in cmd:
            pids.append(int(pid))
    return pids


def get(url, timeout=60):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--host-bin", default=os.path.join(ROOT, "target/release/edge-host"))
    args = ap.parse_args()

    state = tempfile.mkdtemp(prefix="edgelog-idle-")
    env = dict(os.environ, RUST_LOG="warn")
    cmd = [args.host_bin, "up", "--from", os.path.join(ROOT, "spin.toml"), "--listen",
           "127.0.0.1:0", "--state-dir", state]
    database = None
    if args.store == "postgres":
        database = f"edgelog_idle_{os.getpid()}"
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc",
                        f"CREATE DATABASE {database}"], check=True)
        subprocess.run(["redis-cli", "-n", "13", "flushdb"], check=True, capture_output=True)
        rc = os.path.join(state, "rc.toml")
        with open(rc, "w") as f:
            f.write('[key_value_store.default]\ntype = "redis"\nurl = "redis://127.0.0.1:6379/13"\n')
        cmd += ["--runtime-config-file", rc]
        env["SPIN_VARIABLE_STORE"] = "postgres"
        env["SPIN_VARIABLE_DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{database}"
    host = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    stop = threading.Event()
    try:
        url = None
        for line in host.stdout:
            m = re.match(r"Serving (\S+)", line)
            if m:
                url = m.group(1)
                break
        threading.Thread(target=lambda: [None for _ in host.stdout], daemon=True).start()
        body = json.dumps({"topic": "idle", "event_id": "1", "timestamp": "2024-05-01T00:00:00Z",
                           "source": "s", "level": "info", "payload": {"message": "one"}}).encode()
        req = urllib.request.Request(url + "/publish", data=body,
                                     headers={"content-type": "application/json"})
        urllib.request.urlopen(req, timeout=60).read()
        cursor = get(url + "/events?limit=1")["tail_cursor"]

        def measure():
            """% of one core used by edge-host (+ the database's backends) over the window."""
            pids = [host.pid] + (backends(database) if database else [])
            t0, c0 = time.monotonic(), cpu_seconds(pids)
            time.sleep(args.seconds)
            pids = [host.pid] + (backends(database) if database else [])
            t1, c1 = time.monotonic(), cpu_seconds(pids)
            return (c1 - c0) / (t1 - t0) * 100, pids

        base, _ = measure()
        polls = [0]

        def client():
            while not stop.is_set():
                try:
                    page = get(f"{url}/events?after={cursor}&wait=25", timeout=40)
                    assert page["count"] == 0, page
                    polls[0] += 1
                except Exception as e:  # noqa: BLE001 - report and go on
                    print("client error:", e, file=sys.stderr)
                    time.sleep(1)

        threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
        for t in threads:
            t.start()
        time.sleep(3)  # every client is waiting
        h0, t0 = cpu_seconds([host.pid]), time.monotonic()
        loaded, pids = measure()
        h1, t1 = cpu_seconds([host.pid]), time.monotonic()
        stop.set()
        host_pct = (h1 - h0) / (t1 - t0) * 100
        print(f"store {args.store}: {args.clients} waiting clients for {args.seconds:.0f} s")
        print(f"  baseline (no clients), edge-host{' + PostgreSQL backends' if database else ''}: {base:.2f} % of one core")
        print(f"  with clients, edge-host alone: {host_pct:.2f} % of one core")
        if database:
            print(f"  with clients, edge-host + PostgreSQL backends ({len(pids) - 1}): {loaded:.2f} % of one core")
        print(f"  long polls answered (wait expired, empty): {polls[0]}")
    finally:
        stop.set()
        host.terminate()
        try:
            host.wait(timeout=60)
        except subprocess.TimeoutExpired:
            host.kill()
        shutil.rmtree(state, ignore_errors=True)
        if database:
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc",
                            f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"])
            subprocess.run(["redis-cli", "-n", "13", "flushdb"], capture_output=True)


if __name__ == "__main__":
    main()

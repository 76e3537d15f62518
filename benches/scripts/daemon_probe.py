#!/usr/bin/env python3
"""Starts `tickler run` as systemd would (NOTIFY_SOCKET set) and measures:

  ready   time from exec to READY=1, over --runs starts;
  idle    VmRSS once the first tick is over (its summary is logged) and the daemon
          has waited --idle-wait seconds for the next;
  send    with --expect N: time until N sends are recorded `sent` or `skipped`, and VmHWM (peak
          RSS) meanwhile.

    daemon_probe.py --bin tickler --config tickler.yaml --db var/tickler.db \
        [--runs 10] [--expect 20000] [--idle-wait 5]
"""
import argparse
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time


def status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])  # kB
    return 0


def start(args, sock_path, log=subprocess.DEVNULL):
    # The daemon's own lines (the tick summary), not one line per send.
    env = dict(os.environ, NOTIFY_SOCKET=sock_path, TICKLER_LOG="warn,tickler::daemon=info")
    started = time.perf_counter()
    proc = subprocess.Popen([args.bin, "--config", args.config, "run"], env=env,
                            stdout=subprocess.DEVNULL, stderr=log)
    return proc, started


def wait_first_tick(proc, log_path, timeout=900):
    """Waits until the daemon logs the summary of its first tick."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        with open(log_path, errors="replace") as f:
            if "tick summary" in f.read():
                return
        if proc.poll() is not None:
            sys.exit("tickler run exited before its first tick ended")
        time.sleep(0.1)
    sys.exit(f"the first tick did not end within {timeout} s")


def wait_ready(sock, started, timeout=30):
    sock.settimeout(timeout)
    while True:
        msg = sock.recv(4096).decode()
        if "READY=1" in msg.split("\n"):
            return time.perf_counter() - started


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def sent(db):
    """Sends settled: sent, or skipped (a contact without an address, opted out...)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(
            "SELECT COUNT(*) FROM sends WHERE status IN ('sent', 'skipped')").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--expect", type=int, default=0)
    p.add_argument("--idle-wait", type=float, default=5.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sock_path = os.path.join(tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        if args.expect:
            proc, started = start(args, sock_path)
            wait_ready(sock, started)
            peak, count = 0, 0
            while count < args.expect:
                time.sleep(0.05)
                peak = max(peak, status(proc.pid, "VmHWM"))
                count = sent(args.db)
                if proc.poll() is not None:
                    sys.exit("tickler run exited early")
                if time.perf_counter() - started > 600:
                    sys.exit(f"only {count} sent after 600 s")
            elapsed = time.perf_counter() - started
            peak = max(peak, status(proc.pid, "VmHWM"))
            stop(proc)
            print(f"send: {count} sent or skipped in {elapsed:.2f} s from start ({count / elapsed:.0f}/s), peak RSS {peak / 1024:.1f} MB")
            return
        readies, idles = [], []
        log_path = os.path.join(tmp, "run.log")
        for _ in range(args.runs):
            with open(log_path, "w") as log:
                proc, started = start(args, sock_path, log)
                readies.append(wait_ready(sock, started))
                wait_first_tick(proc, log_path)
                time.sleep(args.idle_wait)
                idles.append(status(proc.pid, "VmRSS"))
                stop(proc)
        print(f"ready: median {statistics.median(readies) * 1000:.0f} ms, max {max(readies) * 1000:.0f} ms over {len(readies)} starts")
        print(f"idle RSS: median {statistics.median(idles) / 1024:.1f} MB, max {max(idles) / 1024:.1f} MB")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Peak memory of `tickler run` while its HTTP endpoint is abused (SPEC section 10).

Starts the daemon on a workspace of its own (a temporary directory, file transport,
the API on), then for each phase resets the kernel's peak-RSS mark of the process
(/proc/PID/clear_refs, as root) and reports VmHWM afterwards:

  idle            nothing
  unauth-slow     600 connections that send half a header, a byte a second (512 are
                  served, the rest wait to be accepted), and 16 clients that POST 1 MiB
                  bodies without the token, over and over, for 12 s
  auth-empties    16 clients at once, each POSTing a 1 MiB body of 349,524 `{}` with
                  the token, 4 times
  auth-records    16 clients at once, each POSTing 1,000 valid records of about 1 KB
                  (1 MiB), 4 times

Usage: benches/scripts/http_abuse.py [--binary target/release/tickler] [--clients 16]
Targets: under 40 MB whatever an unauthenticated client sends, under 100 MB with the
token. Python 3 standard library only.
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

TOKEN = "abuse-token-0123456789abcdef"
MIB = 1 << 20


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pid):
    """Sets VmHWM back to the current RSS; returns False where the kernel refuses."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Sampler:
    """The largest VmRSS seen every 20 ms: the peak where clear_refs is refused."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0, False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                self.peak = max(self.peak, status_kb(self.pid, "VmRSS"))
            except OSError:
                return
            time.sleep(0.02)

    def finish(self):
        self.stop = True
        self.thread.join()
        return self.peak


def workspace(root, port):
    def write(name, text):
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    write(
        "tickler.yaml",
        "business:\n  name: Abuse Tiles\n  email: hello@abuse.example\n"
        "  address: { line1: 1 Harbour St, city: Troy, postal_code: \"12180\", country: US }\n"
        "  timezone: America/New_York\nstate_dir: state\ntemplates: templates\n"
        "cadences: cadences.yaml\nemail:\n  transport: file\n"
        f"http:\n  listen: 127.0.0.1:{port}\n  api_token_file: token.txt\n",
    )
    write(
        "cadences.yaml",
        "cadences:\n  - id: thanks\n    channel: email\n    template: thanks\n"
        "    trigger: { after: purchase, delay: 2d }\n",
    )
    write("templates/thanks.subject.hbs", "Thanks")
    write("templates/thanks.txt.hbs", "Thank you, {{contact.first_name}}.")
    write("token.txt", TOKEN)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port, path, body, token=True, timeout=60):
    """One POST on its own connection; the status, or 0 when the server cut it off."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    )
    if token:
        head += f"Authorization: Bearer {TOKEN}\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(head.encode() + b"\r\n" + body)
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        return int(reply.split(b" ", 2)[1])
    except (OSError, IndexError, ValueError):
        return 0


def in_parallel(count, work):
    results = []
    lock = threading.Lock()

    def run(i):
        r = work(i)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def slow_header(port, seconds, opened):
    """Half a header, then a byte a second, until the server closes or time is up."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=seconds)
        opened.append(s)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        end = time.time() + seconds
        while time.time() < end:
            s.sendall(b"X")
            time.sleep(1)
    except OSError:
        pass


def phase_unauthenticated(port, clients):
    seconds = 12
    opened = []
    slow = [
        threading.Thread(target=slow_header, args=(port, seconds, opened), daemon=True)
        for _ in range(600)
    ]
    for t in slow:
        t.start()
    body = b"[" + b",".join([b"{}"] * 349_524) + b"]"
    end = time.time() + seconds
    counts = {}

    def flood(_):
        while time.time() < end:
            code = post(port, "/api/v1/contacts", body, token=False, timeout=15)
            counts[code] = counts.get(code, 0) + 1

    in_parallel(clients, flood)
    for t in slow:
        t.join()
    for s in opened:
        s.close()
    return f"slow connections opened: {len(opened)}; 1 MiB POSTs by status: {counts}"


def phase_authenticated(port, clients, body, rounds=4):
    codes = in_parallel(
        clients,
        lambda _: [post(port, "/api/v1/contacts", body) for _ in range(rounds)],
    )
    flat = [c for r in codes for c in r]
    return f"{len(flat)} POSTs by status: { {c: flat.count(c) for c in set(flat)} }"


def records_body(count=1000):
    pad = "x" * 960
    records = [
        f'{{"id":"R-{i:04}","email":"r{i}@example.com","note":"{pad}"}}' for i in range(count)
    ]
    body = ("[" + ",".join(records) + "]").encode()
    assert len(body) <= MIB, len(body)
    return body


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default="target/release/tickler")
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    with tempfile.TemporaryDirectory() as root:
        port = free_port()
        workspace(root, port)
        daemon = subprocess.Popen(
            [binary, "--config", "tickler.yaml", "run"],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "NO_COLOR": "1"},
        )
        try:
            deadline = time.time() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline or daemon.poll() is not None:
                        sys.exit("the daemon did not come up")
                    time.sleep(0.1)
            time.sleep(2)
            pid = daemon.pid
            phases = [
                ("idle", lambda: (time.sleep(2), "")[1]),
                ("unauth-slow", lambda: phase_unauthenticated(port, args.clients)),
                (
                    "auth-empties",
                    lambda: phase_authenticated(
                        port, args.clients, b"[" + b",".join([b"{}"] * 349_524) + b"]"
                    ),
                ),
                ("auth-records", lambda: phase_authenticated(port, args.clients, records_body())),
            ]
            highest = 0
            print(f"{'phase':<14} {'peak RSS':>10} {'RSS after':>10}  what happened")
            for name, run in phases:
                exact = reset_peak(pid)
                sampler = Sampler(pid)
                started = time.time()
                note = run()
                sampled = sampler.finish()
                peak = status_kb(pid, "VmHWM") if exact else sampled
                after = status_kb(pid, "VmRSS")
                took = time.time() - started
                highest = max(highest, peak)
                print(
                    f"{name:<14} {peak / 1024:>8.1f} MB {after / 1024:>7.1f} MB"
                    f"  {took:.1f} s; {note}",
                    flush=True,
                )
            how = "VmHWM" if exact else "sampled VmRSS"
            print(f"highest peak: {highest / 1024:.1f} MB ({how})")
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)


if __name__ == "__main__":
    main()

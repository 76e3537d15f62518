#!/usr/bin/env python3
"""Runs commands in turn, round after round, and reports each one's wall time, CPU
time and peak RSS, with the ratio of its median to the first command's (the
reference). Alternating puts every command under the same background load.

    alternate.py --runs 5 \
        --name reference --cmd 'smtp-source ...' \
        --name tickler --setup 'cp a.db b.db' --cmd 'tickler tick ...'

A --setup runs before each run of the command that follows it, untimed.

--max-total S, --max-rss MB and --max-ratio R check a target against the commands after
the reference taken together (the sum of their medians, the largest peak RSS, that sum
over the reference's median) and print whether it holds.
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time


def run(cmd):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, shell=True, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, code


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--ok-codes", default="0", help="exit codes that count as success")
    parser.add_argument("--max-total", type=float, help="target: seconds, all but the reference")
    parser.add_argument("--max-rss", type=float, help="target: MB, the largest peak")
    parser.add_argument("--max-ratio", type=float, help="target: their time over the reference's")
    args, rest = parser.parse_known_args()
    entries, current = [], None
    it = iter(rest)
    for flag in it:
        value = next(it)
        if flag == "--name":
            current = {"name": value, "setup": None, "cmd": None, "runs": []}
            entries.append(current)
        elif flag in ("--setup", "--cmd"):
            current[flag[2:]] = value
        else:
            sys.exit(f"unknown option {flag}")
    ok = {int(c) for c in args.ok_codes.split(",")}
    for round_ in range(args.runs):
        for e in entries:
            if e["setup"]:
                subprocess.run(e["setup"], shell=True, check=True, stdout=subprocess.DEVNULL)
            wall, cpu, rss, code = run(e["cmd"])
            if code not in ok:
                sys.exit(f"{e['name']}: exit code {code}: {e['cmd']}")
            e["runs"].append({"wall": wall, "cpu": cpu, "maxrss_kb": rss})
            print(f"round {round_ + 1} {e['name']}: {wall:.3f} s wall, {cpu:.3f} s cpu, {rss / 1024:.0f} MB", file=sys.stderr)
    ref = statistics.median(r["wall"] for r in entries[0]["runs"])
    print(f"{'command':<28} {'median s':>9} {'min s':>8} {'max s':>8} {'cpu s':>8} {'peak MB':>8} {'/ ref':>7}")
    for e in entries:
        walls = [r["wall"] for r in e["runs"]]
        med = statistics.median(walls)
        e["median_wall"] = med
        e["ratio"] = med / ref
        print(f"{e['name']:<28} {med:>9.3f} {min(walls):>8.3f} {max(walls):>8.3f} "
              f"{statistics.median(r['cpu'] for r in e['runs']):>8.3f} "
              f"{max(r['maxrss_kb'] for r in e['runs']) / 1024:>8.0f} {med / ref:>7.2f}")
    report_targets(args, entries[1:], ref)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(entries, f, indent=1)


def report_targets(args, measured, ref):
    total = sum(e["median_wall"] for e in measured)
    rss = max((r["maxrss_kb"] for e in measured for r in e["runs"]), default=0) / 1024
    checks = []
    if args.max_total is not None:
        checks.append((f"{total:.2f} s <= {args.max_total:g} s", total <= args.max_total))
    if args.max_rss is not None:
        checks.append((f"peak {rss:.0f} MB <= {args.max_rss:g} MB", rss <= args.max_rss))
    if args.max_ratio is not None:
        ratio = total / ref
        checks.append((f"{ratio:.2f} of the reference's time <= {args.max_ratio:g} "
                       f"(rate {1 / ratio:.2f} of the reference's)", ratio <= args.max_ratio))
    for what, holds in checks:
        print(f"target: {what}: {'holds' if holds else 'DOES NOT HOLD'}")


if __name__ == "__main__":
    main()

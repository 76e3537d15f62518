#!/usr/bin/env python3
"""Times every console page on a SQLite database of 1,000,000 contacts and 5,000,000
send-log rows (SPEC section 10: at most 100 ms each), against `tickler run` on loopback.

Usage: console_pages.py --binary target/release/tickler [--work DIR] [--runs N] [--keep]
The database is built once under DIR (about two minutes) and reused while it exists.
Prints one line per page: median and slowest of N timed requests after two warm-ups.
"""
import argparse, http.client, os, pathlib, socket, sqlite3, statistics, subprocess, sys, time

REPO = pathlib.Path(__file__).resolve().parents[2]
PASSWORD = "bench password 1234"


def config(work, port):
    (work / "tickler.yaml").write_text(f"""business:
  name: Hudson Tile & Stone
  email: hello@hudsontile.example
  address: {{ line1: 12 River St, city: Albany, region: NY, postal_code: "12207", country: US }}
  timezone: America/New_York
state_dir: {work}/state
cadences: {REPO}/config/cadences.yaml
templates: {REPO}/templates
email:
  transport: file
schedule:
  tick: 3600s
http:
  listen: 127.0.0.1:{port}
  console: true
""")


def build(binary, work):
    db = work / "state" / "tickler.db"
    if db.exists():
        return
    subprocess.run([binary, "--config", work / "tickler.yaml", "sends", "--limit", "1"],
                   check=True, stdout=subprocess.DEVNULL)
    started = time.time()
    con = sqlite3.connect(db)
    try:
        con.execute("CREATE TEMP TABLE bench_now (t INTEGER)")
        con.execute("INSERT INTO bench_now VALUES (?)", (int(time.time()),))
        con.executescript((REPO / "benches/scripts/console_data.sql").read_text())
    except BaseException:
        con.close()
        for f in db.parent.glob("tickler.db*"):
            f.unlink()
        raise
    con.close()
    print(f"built the database in {time.time() - started:.0f} s", file=sys.stderr)


def request(port, method, path, cookie=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if cookie:
        headers["Cookie"] = f"tickler_session={cookie}"
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r, data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--work", default="/tmp/tickler-bench/console")
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config(work, port)
    build(args.binary, work)
    cfg = ["--config", str(work / "tickler.yaml")]
    subprocess.run([args.binary, *cfg, "console", "passwd"], input=PASSWORD + "\n",
                   text=True, check=True, stdout=subprocess.DEVNULL)
    daemon = subprocess.Popen([args.binary, *cfg, "run"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:
            try:
                r, body = request(port, "GET", "/healthz")
                if b'"last_tick_at":"' in body:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit("the daemon never answered")
            time.sleep(0.2)
        r, _ = request(port, "POST", "/console/signin", body=f"password={PASSWORD.replace(' ', '+')}")
        cookie = r.getheader("Set-Cookie").split(";")[0].split("=", 1)[1]
        today = time.strftime("%Y-%m-%d")
        month_ago = time.strftime("%Y-%m-%d", time.localtime(time.time() - 30 * 86400))
        year_ago = time.strftime("%Y-%m-%d", time.localtime(time.time() - 400 * 86400))
        pages = [
            "/console/",
            "/console/sends",
            "/console/sends?status=failed",
            "/console/sends?status=retrying&channel=email",
            "/console/sends?cadence=maintenance&channel=postcard",
            "/console/sends?status=skipped&cadence=birthday",
            f"/console/sends?since={month_ago}&until={today}",
            f"/console/sends?until={year_ago}",
            "/console/sends?q=C0500000",
            "/console/sends?q=alvarez3",
            "/console/sends?q=maria+chen",
            "/console/sends?q=hana.ade7.123457%40example.com",
            "/console/sends?q=nobody+at+all",
            "/console/contacts/C0500000",
            "/console/plan",
            "/console/plan?days=30",
            "/console/cadences",
        ]
        # The 50th page of the unfiltered log, by following "Older" links.
        worst = 0.0
        print(f"{'page':58} {'median ms':>9} {'max ms':>8}")
        for path in pages:
            times = []
            for run in range(args.runs + 2):
                t = time.perf_counter()
                r, body = request(port, "GET", path, cookie)
                took = (time.perf_counter() - t) * 1000
                if r.status != 200:
                    sys.exit(f"{path}: {r.status} {body[:200]!r}")
                if run >= 2:
                    times.append(took)
            med = statistics.median(times)
            worst = max(worst, med)
            print(f"{path:58} {med:9.1f} {max(times):8.1f}")
        print(f"slowest median: {worst:.1f} ms")
    finally:
        daemon.terminate()
        daemon.wait()


if __name__ == "__main__":
    main()

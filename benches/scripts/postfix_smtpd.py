#!/usr/bin/env python3
"""A private, strict Postfix smtpd on 127.0.0.1 for the benchmarks, set up as the
integration tests' helper (tests/integration/postfix_server.rs) sets up its own: no
unauthorised pipelining, no bare <LF>, every recipient domain delivered by virtual(8)
into one Maildir, nothing relayed, and no connection or rate limits beyond Postfix's
defaults (the helper's `Limits::default()`).

    postfix_smtpd.py PORT BASEDIR     start an instance in BASEDIR (created; an earlier
                                      instance there is stopped and removed first),
                                      print `ready` once the port greets, and stop it
                                      on EOF on stdin or on SIGTERM
    postfix_smtpd.py --maildir-count BASEDIR
                                      print how many messages the Maildir holds
    postfix_smtpd.py --drain BASEDIR [--timeout S]
                                      wait until the instance's queue is empty, then
                                      empty the Maildir; print how many it held

BASEDIR holds conf/ (root's files only, as `postfix check` wants), queue/, data/,
mail/ (owned by nobody, who owns the delivered mail) and log/maillog. Runs as root
only, as Postfix does. The system's own Postfix is never started or touched.
"""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
POSTQUEUE = "/usr/sbin/postqueue"
# Unprivileged, and at or above Postfix's virtual_minimum_uid (100).
MAIL_USER = "nobody"


def installed_parameters():
    out = subprocess.run([POSTCONF, "-d"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, check=True).stdout
    params = set()
    for line in out.splitlines():
        if " = " in line:
            params.add(line.split(" = ", 1)[0])
        elif line.endswith(" ="):
            params.add(line[:-2])
    return params


def main_cf(base, port, params, uid, gid):
    cf = (
        f"# A private benchmark instance: it listens on 127.0.0.1:{port} only and\n"
        f"# delivers every recipient into one Maildir under {base}/mail; nothing leaves.\n"
        "compatibility_level = 3.6\n"
        f"queue_directory = {base}/queue\n"
        f"data_directory = {base}/data\n"
        f"maillog_file_prefixes = {base}/log\n"
        f"maillog_file = {base}/log/maillog\n"
        f"syslog_name = tickler-test-postfix-{port}\n"
        "myhostname = mx.tickler.test\n"
        "mydomain = tickler.test\n"
        "myorigin = $myhostname\n"
        "mydestination =\n"
        "relay_domains =\n"
        "alias_maps =\n"
        "alias_database =\n"
        "inet_interfaces = 127.0.0.1\n"
        "inet_protocols = ipv4\n"
        "mynetworks = 127.0.0.0/8\n"
        "smtpd_relay_restrictions = permit_mynetworks, reject\n"
        "smtpd_data_restrictions = reject_unauth_pipelining\n"
        "# Loopback is in $mynetworks, which is exempt from the limits by default.\n"
        "smtpd_client_event_limit_exceptions =\n"
        f"virtual_mailbox_domains = regexp:{base}/conf/domains\n"
        "# virtual(8) allows no $1 substitution in its maps: one Maildir for all.\n"
        "virtual_mailbox_maps = static:maildir/\n"
        f"virtual_mailbox_base = {base}/mail\n"
        f"virtual_uid_maps = static:{uid}\n"
        f"virtual_gid_maps = static:{gid}\n"
        "default_transport = error:this test server relays nothing\n"
        "relay_transport = error:this test server relays nothing\n"
        "local_transport = error:this test server has no local delivery\n"
    )
    if "smtpd_forbid_unauth_pipelining" in params:
        cf += "smtpd_forbid_unauth_pipelining = yes\n"
    if "smtpd_forbid_bare_newline_reject_code" in params:
        # `reject` came with the reject code (3.9, 3.8.5, 3.7.10, ...); before it
        # only `yes`, which normalises instead of refusing.
        cf += "smtpd_forbid_bare_newline = reject\n"
    elif "smtpd_forbid_bare_newline" in params:
        cf += "smtpd_forbid_bare_newline = yes\n"
    if "smtpd_forbid_bare_newline_exclusions" in params:
        cf += "smtpd_forbid_bare_newline_exclusions =\n"
    return cf


def master_cf(port):
    # The stock services that receive and deliver mail, without chroot; no SMTP or
    # LMTP client, no local delivery, and only the one smtpd listens on the network.
    return (
        "# service type  private unpriv  chroot  wakeup  maxproc command\n"
        f"127.0.0.1:{port} inet n - n - - smtpd\n"
        "pickup    unix  n       -       n       60      1       pickup\n"
        "cleanup   unix  n       -       n       -       0       cleanup\n"
        "qmgr      unix  n       -       n       300     1       qmgr\n"
        "rewrite   unix  -       -       n       -       -       trivial-rewrite\n"
        "bounce    unix  -       -       n       -       0       bounce\n"
        "defer     unix  -       -       n       -       0       bounce\n"
        "trace     unix  -       -       n       -       0       bounce\n"
        "verify    unix  -       -       n       -       1       verify\n"
        "flush     unix  n       -       n       1000?   0       flush\n"
        "proxymap  unix  -       -       n       -       -       proxymap\n"
        "showq     unix  n       -       n       -       -       showq\n"
        "error     unix  -       -       n       -       -       error\n"
        "retry     unix  -       -       n       -       -       error\n"
        "discard   unix  -       -       n       -       -       discard\n"
        "virtual   unix  -       n       n       -       -       virtual\n"
        "anvil     unix  -       -       n       -       1       anvil\n"
        "postlog   unix-dgram n  -       n       -       1       postlogd\n"
    )


def alive(pid):
    """Whether pid runs (a zombie that nobody reaps has stopped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return not stat.rpartition(") ")[2].startswith("Z")


def master_pid(base):
    try:
        with open(os.path.join(base, "queue/pid/master.pid")) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def log(base):
    try:
        with open(os.path.join(base, "log/maillog"), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def greets(port):
    """Whether the port answers with a 220 greeting (then QUIT, so that the log holds
    no lost connection)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            f = s.makefile("rb")
            if not f.readline().startswith(b"220 "):
                return False
            s.sendall(b"QUIT\r\n")
            f.read()
            return True
    except OSError:
        return False


def quiet(*args):
    subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def stop(base):
    conf = os.path.join(base, "conf")
    pid = master_pid(base)
    quiet(POSTFIX, "-c", conf, "stop")
    if pid is None:
        return
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if alive(pid):
        quiet(POSTFIX, "-c", conf, "abort")
        time.sleep(0.2)
        quiet("kill", "-KILL", str(pid))


def start(port, base):
    if os.path.exists(base):
        if os.listdir(base) and not os.path.exists(os.path.join(base, "conf/main.cf")):
            sys.exit(f"{base} exists and holds no private Postfix instance; not removing it")
        stop(base)
        shutil.rmtree(base)
    os.makedirs(base)
    # The unprivileged daemons and the delivery user walk through this directory.
    os.chmod(base, 0o755)
    for sub in ("conf", "queue", "mail", "log"):
        os.mkdir(os.path.join(base, sub))
    user = pwd.getpwnam(MAIL_USER)
    os.chown(os.path.join(base, "mail"), user.pw_uid, user.pw_gid)
    conf = os.path.join(base, "conf")
    with open(os.path.join(conf, "domains"), "w") as f:
        f.write("/./ ok\n")
    with open(os.path.join(conf, "main.cf"), "w") as f:
        f.write(main_cf(base, port, installed_parameters(), user.pw_uid, user.pw_gid))
    with open(os.path.join(conf, "master.cf"), "w") as f:
        f.write(master_cf(port))
    out = subprocess.run([POSTFIX, "-c", conf, "start"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if out.returncode != 0:
        sys.exit(f"postfix start: exit {out.returncode}\n{out.stdout}\nlog:\n{log(base)}")
    # The master binds the port before it answers `start`; smtpd answers the first
    # connection once it has started.
    deadline = time.monotonic() + 20
    while not greets(port):
        if time.monotonic() > deadline or master_pid(base) is None:
            stop(base)
            sys.exit(f"no greeting on {port}\nlog:\n{log(base)}")
        time.sleep(0.05)


def maildir_count(base):
    maildir = os.path.join(base, "mail/maildir")
    n = 0
    for sub in ("new", "cur"):
        try:
            n += len(os.listdir(os.path.join(maildir, sub)))
        except FileNotFoundError:
            pass
    return n


def queue_empty(base):
    out = subprocess.run([POSTQUEUE, "-c", os.path.join(base, "conf"), "-p"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    return out.returncode == 0 and "Mail queue is empty" in out.stdout


def drain(base, timeout):
    deadline = time.monotonic() + timeout
    while not queue_empty(base):
        if time.monotonic() > deadline:
            sys.exit(f"the queue of {base} is not empty after {timeout:.0f} s")
        time.sleep(0.2)
    maildir = os.path.join(base, "mail/maildir")
    n = 0
    for sub in ("new", "cur"):
        d = os.path.join(maildir, sub)
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            continue
        for name in names:
            os.unlink(os.path.join(d, name))
            n += 1
    return n


def serve(port, base):
    stopping = False

    def on_term(signum, frame):
        nonlocal stopping
        if not stopping:
            stopping = True
            stop(base)
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    # A signal while Postfix starts would find no master to stop yet: it waits until
    # the instance greets.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    start(port, base)
    print("ready", flush=True)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        while sys.stdin.buffer.read(65536):
            pass
    finally:
        if not stopping:
            stopping = True
            stop(base)


def main():
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "--maildir-count":
        print(maildir_count(args[1]))
    elif args[:1] == ["--drain"] and (len(args) == 2 or len(args) == 4 and args[2] == "--timeout"):
        timeout = float(args[3]) if len(args) == 4 else 600
        n = drain(args[1], timeout)
        print(f"drained: the Maildir held {n} messages", file=sys.stderr)
        print(n)
    elif len(args) == 2 and args[0].isdigit():
        if os.geteuid() != 0:
            sys.exit("a private postfix runs only as root")
        serve(int(args[0]), os.path.abspath(args[1]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Reproduces the figures of BENCHMARKS.md. Usage:
#   benches/scripts/bench.sh [machine|import|first-pass|tick|smtp|smtp-pg|smtp-postfix|daemon|console|all]
#   (default: all)
# Work files go to $BENCH_DIR (default /tmp/tickler-bench); the release build to
# $CARGO_TARGET_DIR (default target/). Needs: python3, sqlite3, /usr/bin/time, and
# Postfix's smtp-sink and smtp-source for `smtp` and `daemon`; `smtp-pg` also needs
# PostgreSQL at $BENCH_POSTGRES (default postgres://postgres@127.0.0.1:5432), where it
# makes databases named tickler_bench*. Run as root for
# smtp-sink (-u nobody), or set SINK_USER to your own user. `smtp-postfix` needs
# Postfix itself and root: it starts a private smtpd on $POSTFIX_SMTP_PORT (default
# 2526) that delivers into a Maildir under $BENCH_DIR.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${BENCH_DIR:-/tmp/tickler-bench}
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
RUNS=${RUNS:-5}
SEED=${SEED:-1}
PORT=${SMTP_PORT:-2525}
PG=${BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
POSTFIX_PORT=${POSTFIX_SMTP_PORT:-2526}
SINK_USER=${SINK_USER:-nobody}
# BENCH_BIN: measure that binary (an earlier build, say) instead of building this tree's.
BIN=${BENCH_BIN:-$TARGET/release/tickler}
GEN=$TARGET/release/examples/gen_data
ALT=$REPO/benches/scripts/alternate.py
PROBE=$REPO/benches/scripts/daemon_probe.py
SMTPD=$REPO/benches/scripts/postfix_smtpd.py
# The planned instant of the tick benchmarks (a Wednesday inside the send window) and
# the day before it, when a first real tick plans every contact ahead.
T1=2026-03-04T15:00:00-05:00
T0=2026-03-03T15:00:00-05:00
mkdir -p "$WORK"

build() {
    (cd "$REPO" && cargo build --release --bin tickler --example gen_data)
}

# config NAME [smtp] [all-day]: a configuration using the shipped cadences (or the file
# $CADENCES) and templates, its database in $WORK/NAME (or at $DB_URL).
config() {
    local name=$1 transport=${2:-file} window=${3:-"09:00-18:00"} days="[mon, tue, wed, thu, fri, sat]"
    local db=${DB_URL:-sqlite://$WORK/$name/tickler.db} cadences=${CADENCES:-$REPO/config/cadences.yaml}
    [ "$window" = all-day ] && window="00:00-24:00" && days="[mon, tue, wed, thu, fri, sat, sun]"
    mkdir -p "$WORK/$name"
    cat > "$WORK/$name/tickler.yaml" <<YAML
business:
  name: Hudson Tile & Stone
  email: hello@hudsontile.example
  reply_to: owner@hudsontile.example
  phone: "518-555-0143"
  address: { line1: 12 River St, city: Albany, region: NY, postal_code: "12207", country: US }
  timezone: America/New_York
state_dir: $WORK/$name
database:
  url: $db
cadences: $cadences
templates: $REPO/templates
email:
  transport: $transport
  file: { dir: $WORK/$name/outbox }
  smtp: { url: "smtp://127.0.0.1:$PORT?tls=none", max_connections: 4, timeout: 30s }
schedule:
  tick: 60s
  send_window: "$window"
  days: $days
  max_lateness: 7d
YAML
    echo "$WORK/$name/tickler.yaml"
}

machine() {
    echo "## machine"
    uname -srm
    grep -m1 'model name' /proc/cpuinfo
    echo "cores: $(nproc)"
    free -m | awk 'NR==2 {print "memory: " $2 " MB"}'
    uptime
    "$BIN" --version 2>/dev/null || true
    rustc --version
    echo "sqlite3 (the reference tool; tickler bundles its own SQLite): $(sqlite3 --version | cut -d" " -f1)"
}

# dataset NAME GEN-ARGS...: the files gen_data writes for GEN-ARGS, in $WORK/NAME and
# made once; prints the directory.
dataset() {
    local dir=$WORK/$1
    shift
    [ -f "$dir/events.csv" ] || "$GEN" --seed "$SEED" "$@" --out "$dir" >&2
    echo "$dir"
}

# import_data CONFIG DIR: the contacts, then the events, of DIR imported as CONFIG says.
import_data() {
    "$BIN" --config "$1" import contacts "$2/contacts.csv"
    "$BIN" --config "$1" import events "$2/events.csv"
}

# The three data sets of a million contacts and two million events: events spread at
# random over the contacts, and a shop's customer list (every contact with a birthday,
# a purchase and a service next to each other, then 1,000 rows for random contacts)
# in that order and shuffled.
SHAPES="data-1m data-customers data-customers-shuffled"
shape_args() {
    case $1 in
        data-1m) echo "--contacts 1000000 --events 2000000 --due 1000" ;;
        data-customers) echo "--shape customers --contacts 1000000 --events 2000000 --due 1000" ;;
        data-customers-shuffled) echo "--shape customers --order shuffled --contacts 1000000 --events 2000000 --due 1000" ;;
    esac
}

# import: each data set into a fresh SQLite database, against the sqlite3 shell loading
# the same files into tables with the same keys. Target: contacts and events together
# in at most 8 s and 200 MB.
import_bench() {
    local shape data cfg
    cfg=$(config import)
    for shape in $SHAPES; do
        echo "## import ($shape)"
        # shellcheck disable=SC2046
        data=$(dataset "$shape" $(shape_args "$shape"))
        cat > "$WORK/reference.sql" <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE contacts (id TEXT PRIMARY KEY, first_name, last_name, email, address_line1, address_line2, city, region, postal_code, country, birthday, timezone, tags, email_opt_out, postcard_opt_out, favorite_tile);
CREATE TABLE events (id, contact_id, kind, at, item, amount, PRIMARY KEY (contact_id, id));
.import --csv --skip 1 $data/contacts.csv contacts
.import --csv --skip 1 $data/events.csv events
SQL
        python3 "$ALT" --runs "$RUNS" --max-total 8 --max-rss 200 \
            --name "sqlite3 .import (reference)" --setup "rm -f $WORK/reference.db*" \
            --cmd "sqlite3 $WORK/reference.db < $WORK/reference.sql" \
            --name "tickler import contacts" --setup "rm -f $WORK/import/tickler.db*" \
            --cmd "$BIN --config $cfg import contacts $data/contacts.csv" \
            --name "tickler import events" \
            --cmd "$BIN --config $cfg import events $data/events.csv"
    done
}

# The three cadences of a shop's first pass: a thank-you after each purchase, the
# 90-day maintenance card since the latest service, and the birthday greeting.
three_cadences() {
    python3 - "$REPO/config/cadences.yaml" <<'PY'
import sys
text = open(sys.argv[1]).read()
blocks = text.split("\n  - id: ")
keep = [b for b in blocks[1:] if b.split("\n")[0] in ("thank-you", "maintenance", "birthday")]
print("cadences:\n" + "".join("  - id: " + b.rstrip() + "\n\n" for b in keep), end="")
PY
}

# first-pass: the first real tick after importing the customer list (nothing is due
# at T0, so it plans every contact ahead and sends nothing), from a fresh copy of the
# imported database each time, against the sqlite3 shell reading every contact and
# event of that database in key order. Target: 10 s and 150 MB.
first_pass_bench() {
    echo "## first-pass"
    local data cfg dir=$WORK/first-pass
    data=$(dataset data-customers $(shape_args data-customers))
    three_cadences > "$WORK/three-cadences.yaml"
    cfg=$(CADENCES=$WORK/three-cadences.yaml config first-pass)
    if [ ! -f "$dir/template.db" ]; then
        rm -f "$dir"/tickler.db*
        import_data "$cfg" "$data"
        sqlite3 "$dir/tickler.db" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
        cp "$dir/tickler.db" "$dir/template.db"
    fi
    python3 "$ALT" --runs "$RUNS" --max-total 10 --max-rss 150 \
        --name "sqlite3 reads it (reference)" \
        --cmd "sqlite3 $dir/template.db 'SELECT count(*), sum(length(c.first_name) + length(e.kind)) FROM contacts c JOIN events e ON e.contact_id = c.id'" \
        --name "tickler first tick" \
        --setup "rm -f $dir/tickler.db*; cp $dir/template.db $dir/tickler.db" \
        --cmd "$BIN --config $cfg tick --now $T0"
    echo "planned in the last run: $(sqlite3 "$dir/tickler.db" "SELECT count(*) FROM contacts WHERE next_due_at > strftime('%s', '$T0')") contacts ahead, $(sqlite3 "$dir/tickler.db" "SELECT count(*) FROM sends") send-log rows"
}

# tick: a dry-run tick with 1,000 sends due, at 10,000 and at 1,000,000 contacts.
tick_bench() {
    echo "## tick"
    local size
    for size in 10000 1000000; do
        local data cfg
        data=$(dataset "data-$size" --contacts $size --events $((2 * size)) --due 1000)
        cfg=$(config tick-$size)
        if [ ! -f "$WORK/tick-$size/ready" ]; then
            rm -f "$WORK/tick-$size"/tickler.db*
            import_data "$cfg" "$data"
            # The first real tick plans every contact ahead (nothing is due at T0).
            /usr/bin/time -f "first tick at $size contacts: %e s, %M KB" "$BIN" --config "$cfg" tick --now "$T0"
            touch "$WORK/tick-$size/ready"
        fi
    done
    python3 "$ALT" --runs "$((RUNS * 2))" \
        --name "dry-run, 10,000 contacts" --cmd "$BIN --config $WORK/tick-10000/tickler.yaml tick --dry-run --now $T1" \
        --name "dry-run, 1,000,000 contacts" --cmd "$BIN --config $WORK/tick-1000000/tickler.yaml tick --dry-run --now $T1"
}

SINK=
start_sink() {
    [ -n "$SINK" ] && return
    /usr/sbin/smtp-sink -u "$SINK_USER" "127.0.0.1:$PORT" 1000 &
    SINK=$!
    sleep 0.5
}

# start_postfix BASEDIR: a private, strict Postfix smtpd on $POSTFIX_PORT, set up as
# the integration tests set up theirs, delivering into BASEDIR/mail/maildir. It runs
# as a coprocess and stops when its stdin closes (stop_postfix, or this script's exit).
start_postfix() {
    local line= out
    coproc SMTPD_PROC { exec python3 "$SMTPD" "$POSTFIX_PORT" "$1"; }
    out=${SMTPD_PROC[0]}
    read -r line <&"$out" || true
    [ "$line" = ready ] || { echo "the private postfix did not start" >&2; exit 1; }
}

stop_postfix() {
    [ -n "${SMTPD_PROC_PID:-}" ] || return 0
    local pid=$SMTPD_PROC_PID fd=${SMTPD_PROC[1]}
    exec {fd}>&-
    wait "$pid" || true
    unset SMTPD_PROC_PID
}

cleanup() {
    [ -z "$SINK" ] || kill "$SINK" 2>/dev/null || true
    stop_postfix
}
trap cleanup EXIT

# smtp_import NAME CONFIG: the 20,000 due emails imported into $WORK/NAME, and a copy
# of that database (template.db) for each tick to start from.
smtp_import() {
    local name=$1 cfg=$2
    rm -f "$WORK/$name"/tickler.db*
    import_data "$cfg" "$(smtp_data)"
    sqlite3 "$WORK/$name/tickler.db" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
    cp "$WORK/$name/tickler.db" "$WORK/$name/template.db"
}

# The 20,000 due emails' data, made once; prints its directory.
smtp_data() {
    dataset data-smtp --contacts 20000 --events 20000 --due 20000
}

# smtp_race MAX_RATIO CONFIG SETUP: smtp-source to the sink, against a tick of CONFIG
# sending the 20,000 from the fresh database SETUP makes; alternated.
smtp_race() {
    start_sink
    python3 "$ALT" --runs "$RUNS" --max-ratio "$1" \
        --name "smtp-source (reference)" --cmd "/usr/sbin/smtp-source -d -s 4 -m 20000 -l 3000 127.0.0.1:$PORT" \
        --name "tickler tick, 20,000 sends" --setup "$3" --cmd "$BIN --config $2 tick --now $T1"
}

# smtp: 20,000 due emails sent by a tick over 4 connections, each recorded, against
# smtp-source sending as many 3,000-byte messages over 4 connections; alternated.
# Target: at least 0.8 of smtp-source's rate.
smtp_bench() {
    echo "## smtp"
    local cfg
    cfg=$(config smtp smtp)
    smtp_import smtp "$cfg"
    smtp_race 1.25 "$cfg" "rm -f $WORK/smtp/tickler.db*; cp $WORK/smtp/template.db $WORK/smtp/tickler.db"
    echo "sent in the last run: $(sqlite3 "$WORK/smtp/tickler.db" "SELECT status, COUNT(*) FROM sends GROUP BY status")"
}

# smtp-pg: the same with the send log on PostgreSQL at $PG: the data imported once into
# tickler_bench_template, and each tick on a fresh copy of it. Target: at least 0.6 of
# smtp-source's rate.
smtp_pg_bench() {
    echo "## smtp-pg"
    local cfg copy="psql -q $PG/postgres -c"
    cfg=$(DB_URL=$PG/tickler_bench config smtp-pg smtp)
    $copy "DROP DATABASE IF EXISTS tickler_bench" -c "DROP DATABASE IF EXISTS tickler_bench_template" \
        -c "CREATE DATABASE tickler_bench"
    import_data "$cfg" "$(smtp_data)"
    $copy "CREATE DATABASE tickler_bench_template TEMPLATE tickler_bench"
    smtp_race 1.667 "$cfg" \
        "$copy 'DROP DATABASE tickler_bench' -c 'CREATE DATABASE tickler_bench TEMPLATE tickler_bench_template'"
    echo "sent in the last run: $(psql -qtA "$PG/tickler_bench" -c "SELECT status, COUNT(*) FROM sends GROUP BY status" | tr '\n' ' ')"
}

# smtp-postfix: the same as smtp, but to a real, strict Postfix smtpd (a private
# instance; no connection or rate limits) that delivers every message into a Maildir.
smtp_postfix_bench() {
    echo "## smtp-postfix"
    local cfg base=$WORK/postfix-smtpd db=$WORK/smtp-postfix/tickler.db drain
    cfg=$(PORT=$POSTFIX_PORT config smtp-postfix smtp)
    smtp_import smtp-postfix "$cfg"
    start_postfix "$base"
    # Postfix keeps working after a run has handed it the last message: its queue
    # manager and virtual(8) deliver into the Maildir for a while yet. Every run waits
    # until the queue is empty, so that it starts with an idle Postfix rather than one
    # still busy with the previous run's mail (the other command's, every other run),
    # and empties the Maildir, so that every run writes into an empty directory (not
    # one of 20,000 more files every run).
    drain="python3 $SMTPD --drain $base"
    python3 "$ALT" --runs "$RUNS" \
        --name "smtp-source (reference)" --setup "$drain" \
        --cmd "/usr/sbin/smtp-source -d -s 4 -m 20000 -l 3000 127.0.0.1:$POSTFIX_PORT" \
        --name "tickler tick, 20,000 sends" \
        --setup "$drain; rm -f $db*; cp $WORK/smtp-postfix/template.db $db" \
        --cmd "$BIN --config $cfg tick --now $T1"
    echo "delivered into the Maildir in the last run: $($drain 2>/dev/null)"
    echo "sent in the last run: $(sqlite3 "$db" "SELECT status, COUNT(*) FROM sends GROUP BY status")"
    stop_postfix
}

# daemon: `tickler run` ready latency and idle RSS at 1,000,000 contacts, then its
# peak RSS and rate while sending 20,000 due emails to smtp-sink.
daemon_bench() {
    echo "## daemon"
    tick_bench >/dev/null
    # A copy of the tick benchmark's million contacts (a daemon plans them at the wall
    # clock's time, which would leave nothing due at T1 for the dry runs).
    local cfg
    cfg=$(config daemon-1m)
    sqlite3 "$WORK/tick-1000000/tickler.db" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
    rm -f "$WORK/daemon-1m"/tickler.db*
    cp "$WORK/tick-1000000/tickler.db" "$WORK/daemon-1m/tickler.db"
    # The first start re-plans every contact at the wall clock's time (their March
    # follow-ups are stale by then); the others find little to do.
    python3 "$PROBE" --bin "$BIN" --config "$cfg" --db "$WORK/daemon-1m/tickler.db" --runs 10 --idle-wait 5
    # Sending: data due now by the wall clock, a window open all day.
    local data=$WORK/data-daemon now
    now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    rm -rf "$data"
    "$GEN" --seed "$SEED" --contacts 20000 --events 20000 --due 20000 --now "$now" --out "$data"
    cfg=$(config daemon smtp all-day)
    rm -f "$WORK/daemon"/tickler.db*
    import_data "$cfg" "$data"
    start_sink
    python3 "$PROBE" --bin "$BIN" --config "$cfg" --db "$WORK/daemon/tickler.db" --expect 20000
}

# Every console page at 1,000,000 contacts and 5,000,000 send-log rows (SPEC section
# 10: at most 100 ms each); the database is built once under $WORK/console.
console_bench() {
    python3 "$REPO/benches/scripts/console_pages.py" --binary "$BIN" --work "$WORK/console" --runs 15
}

what=${1:-all}
[ -n "${BENCH_BIN:-}" ] && [ -x "$GEN" ] || build >&2
case $what in
    machine) machine ;;
    import) import_bench ;;
    first-pass) first_pass_bench ;;
    tick) tick_bench ;;
    smtp) smtp_bench ;;
    smtp-pg) smtp_pg_bench ;;
    smtp-postfix) smtp_postfix_bench ;;
    daemon) daemon_bench ;;
    console) console_bench ;;
    all) machine; import_bench; first_pass_bench; tick_bench; smtp_bench; smtp_pg_bench; smtp_postfix_bench
        daemon_bench; console_bench ;;
    *) echo "usage: $0 [machine|import|first-pass|tick|smtp|smtp-pg|smtp-postfix|daemon|console|all]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Scale-out throughput: N due digests planned and sent by 1, 2 and 3 `paperboy run` instances
# sharing one PostgreSQL database, and by one instance on SQLite, against one Postfix smtp-sink
# on loopback (no dump files). Each configuration starts from a fresh database with the same
# papers (the real Hugging Face day 2024-10-25 of tests/fixtures/hf) and the same subscribers;
# the clock starts when the daemons are launched and stops when every subscriber has a delivery
# that is `sent` or `empty` (nothing matched: nothing to send), planning by the leader
# included, polled every 0.2 s. The figure is digests settled per second.
#
# Usage: bench/scaleout.sh [N]        (default 10000; CONNECTIONS=10 SMTP sessions per instance)
# Needs: a release build (made here), smtp-sink (Postfix), python3, psql and a PostgreSQL on
#        127.0.0.1:5432 that lets `postgres` create databases (trust auth).
# Not a test: numbers go to BENCHMARKS.md by hand, with the machine they were measured on.
set -euo pipefail

N=${1:-10000}
CONNECTIONS=${CONNECTIONS:-10}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/paperboy
SINK=$(command -v smtp-sink || echo /usr/sbin/smtp-sink)
[ -x "$SINK" ] || { echo "missing smtp-sink: apt-get install postfix" >&2; exit 2; }
PSQL=(psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -qtA)
"${PSQL[@]}" -d postgres -c 'SELECT 1' >/dev/null || { echo "no PostgreSQL on 127.0.0.1:5432" >&2; exit 2; }

(cd "$ROOT" && cargo build --release --quiet --bin paperboy)

WORK=$(mktemp -d /tmp/paperboy-scaleout.XXXXXX)
chmod 755 "$WORK"
PIDS=()
DBS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for d in "${DBS[@]}"; do "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 1 100); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2; exit 1
}

# The Hugging Face API for one day: the fixture's papers, a page of `limit` at a time.
HTTP_PORT=$(free_port)
python3 "$ROOT/bench/hf_day_server.py" "$ROOT/tests/fixtures/hf/daily_papers_2024-10-25.json" "$HTTP_PORT" >/dev/null 2>&1 &
PIDS+=($!)

SINK_PORT=$(free_port)
AS_NOBODY=()
[ "$(id -u)" -eq 0 ] && AS_NOBODY=(-u nobody)
"$SINK" "${AS_NOBODY[@]}" "127.0.0.1:$SINK_PORT" 1024 >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$HTTP_PORT"
wait_port "$SINK_PORT"

# The same N subscribers for every configuration: interests drawn from words of the day.
python3 - "$N" "$WORK/subscribers.csv" <<'PY'
import csv, random, sys
n, out = int(sys.argv[1]), sys.argv[2]
rng = random.Random(8)
words = ["memory", "language models", "diffusion", "\"contrastive loss\"", "agents", "video",
         "reasoning", "benchmark", "retrieval", "vision", "speech", "robot", "attention"]
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["email", "status", "interests", "frequency", "send_time", "timezone", "max_papers"])
    for i in range(n):
        w.writerow([f"reader{i:07d}@example.net", "active", " ".join(rng.sample(words, 2)),
                    "daily", "07:00", "UTC", 10])
PY

# Deliveries settled so far (sent, or empty: nothing matched) in database URL $1.
SETTLED="SELECT COUNT(*) FROM deliveries WHERE status IN ('sent', 'empty')"
sent_count() {
    case "$1" in
        sqlite://*) python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])" "${1#sqlite://}" "$SETTLED" ;;
        *) "${PSQL[@]}" -d "${1##*/}" -c "$SETTLED" ;;
    esac
}

# run_config LABEL URL INSTANCES: prepares the database, runs the daemons until all is sent.
run_config() {
    local label=$1 url=$2 k=$3 run=$WORK/$1
    mkdir -p "$run"
    cat >"$run/paperboy.toml" <<TOML
secret_key = "bench-secret-key-0123456789abcdef0123456789"
[database]
url = "$url"
[web]
bind = "127.0.0.1:0"
base_url = "https://paperboy.example.org"
[mail]
transport = "smtp"
smtp_url = "smtp://127.0.0.1:$SINK_PORT"
from = "Paperboy <digest@paperboy.example.org>"
max_connections = $CONNECTIONS
[schedule]
fetch = "0 0 0 1 1 *"
[sources.hf]
enabled = true
base_url = "http://127.0.0.1:$HTTP_PORT"
[sources.arxiv]
enabled = false
[log]
level = "warn"
TOML
    env PAPERBOY_CONFIG="$run/paperboy.toml" PAPERBOY_NOW=2024-10-25T06:00:00Z "$BIN" migrate >/dev/null
    env PAPERBOY_CONFIG="$run/paperboy.toml" PAPERBOY_NOW=2024-10-25T06:00:00Z "$BIN" fetch --date 2024-10-25 >/dev/null
    env PAPERBOY_CONFIG="$run/paperboy.toml" PAPERBOY_NOW=2024-10-25T06:00:00Z "$BIN" subscriber import --confirmed "$WORK/subscribers.csv" >/dev/null 2>&1
    local start end daemons=()
    start=$(date +%s.%N)
    for i in $(seq 1 "$k"); do
        env PAPERBOY_CONFIG="$run/paperboy.toml" PAPERBOY_NOW=2024-10-25T09:00:00Z \
            PAPERBOY__DAEMON__INSTANCE_ID="bench$i" "$BIN" run >"$run/node$i.log" 2>&1 &
        daemons+=($!)
        PIDS+=($!)
    done
    until [ "$(sent_count "$url")" -ge "$N" ]; do
        for p in "${daemons[@]}"; do
            kill -0 "$p" 2>/dev/null || { echo "an instance died:" >&2; tail -20 "$run"/node*.log >&2; exit 1; }
        done
        sleep 0.2
    done
    end=$(date +%s.%N)
    for p in "${daemons[@]}"; do kill -TERM "$p"; done
    for p in "${daemons[@]}"; do wait "$p" || true; done
    local empty
    empty=$(case "$url" in
        sqlite://*) python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT COUNT(*) FROM deliveries WHERE status='empty'\").fetchone()[0])" "${url#sqlite://}" ;;
        *) "${PSQL[@]}" -d "${url##*/}" -c "SELECT COUNT(*) FROM deliveries WHERE status = 'empty'" ;;
    esac)
    python3 -c "w=$end-$start; print(f'$label: $N digests ($empty empty) in {w:.1f} s = {$N/w:.0f} digests/s')"
}

echo "machine: $(nproc) cores, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "paperboy $(git -C "$ROOT" rev-parse --short HEAD), N=$N, connections per instance=$CONNECTIONS"
run_config sqlite-1 "sqlite://$WORK/sqlite-1.db" 1
for k in 1 2 3; do
    db="paperboy_bench_$$_$k"
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE $db" >/dev/null
    DBS+=("$db")
    run_config "postgres-$k" "postgres://postgres@127.0.0.1:5432/$db" "$k"
done

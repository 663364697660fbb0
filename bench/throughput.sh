#!/usr/bin/env bash
# Delivery throughput: `paperboy send` against Postfix's smtp-sink on loopback, and, in the same
# run and against the same sink, Postfix's smtp-source with the same number of connections and
# the same message (one of our digests, via -F). Reports messages per second and the ratio.
# Also the one-connection figures with TCP_NODELAY off (lettre 0.11.23's behaviour) and on, and
# the same figures for the SMTP pool alone (examples/smtp_pool_bench.rs: the same digest sent
# again and again, no rendering, no database), which separates transport from rendering.
#
# Usage: bench/throughput.sh  (N=20000 CONNECTIONS=10 ONE_N=1500 SLOW_N=400 by default; SLOW_N
#                              is the message count for the runs without TCP_NODELAY)
#        BIN=/path/to/paperboy POOL_BENCH=/path/to/smtp_pool_bench bench/throughput.sh
#        runs those binaries instead of building this tree's (both must be set together, e.g.
#        an older commit's release build, to compare two builds with one script).
# Needs: a release build (made here unless BIN and POOL_BENCH are set), smtp-sink and smtp-source (Postfix), sqlite3, python3.
# Not a test: numbers go to BENCHMARKS.md by hand, with the machine they were measured on.
set -euo pipefail

N=${N:-20000}
CONNECTIONS=${CONNECTIONS:-10}
ONE_N=${ONE_N:-1500}
SLOW_N=${SLOW_N:-400}
NOW=2024-10-25T09:00:00Z
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-}
POOL_BENCH=${POOL_BENCH:-}
SINK=$(command -v smtp-sink || echo /usr/sbin/smtp-sink)
SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
for tool in "$SINK" "$SOURCE"; do
    [ -x "$tool" ] || { echo "missing $tool: apt-get install postfix" >&2; exit 2; }
done
command -v sqlite3 >/dev/null || { echo "missing sqlite3" >&2; exit 2; }

if [ -z "$BIN$POOL_BENCH" ]; then
    (cd "$ROOT" && cargo build --release --quiet --bin paperboy --example smtp_pool_bench)
    BIN=$ROOT/target/release/paperboy
    POOL_BENCH=$ROOT/target/release/examples/smtp_pool_bench
    LABEL=$(git -C "$ROOT" rev-parse --short HEAD)
elif [ -n "$BIN" ] && [ -n "$POOL_BENCH" ]; then
    LABEL="binaries $BIN, $POOL_BENCH"
else
    echo "set both BIN and POOL_BENCH, or neither" >&2; exit 2
fi

WORK=$(mktemp -d /tmp/paperboy-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 1 100); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2; exit 1
}

# The papers: the real Hugging Face fixture served by a static web server (one short page).
mkdir -p "$WORK/www/api"
cp "$ROOT/tests/fixtures/hf/daily_papers_2024-10-25.json" "$WORK/www/api/daily_papers"
HTTP_PORT=$(free_port)
python3 -m http.server --bind 127.0.0.1 "$HTTP_PORT" --directory "$WORK/www" >/dev/null 2>&1 &
PIDS+=($!)

# The sink: no dump files (disk would be the bottleneck), a deep listen queue.
SINK_PORT=$(free_port)
AS_NOBODY=()
[ "$(id -u)" -eq 0 ] && AS_NOBODY=(-u nobody)
"$SINK" "${AS_NOBODY[@]}" "127.0.0.1:$SINK_PORT" 1024 >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$HTTP_PORT"
wait_port "$SINK_PORT"

CONFIG=$WORK/paperboy.toml
cat >"$CONFIG" <<TOML
secret_key = "bench-secret-key-0123456789abcdef0123456789"
[database]
url = "sqlite://$WORK/paperboy.db"
[web]
bind = "127.0.0.1:0"
base_url = "https://paperboy.example.org"
[mail]
transport = "smtp"
smtp_url = "smtp://127.0.0.1:$SINK_PORT"
from = "Paperboy <digest@paperboy.example.org>"
[sources.hf]
enabled = true
base_url = "http://127.0.0.1:$HTTP_PORT"
[log]
level = "warn"
TOML

pb() { env PAPERBOY_CONFIG="$CONFIG" "$@"; }
pb PAPERBOY_NOW=2024-10-25T06:00:00Z "$BIN" migrate >/dev/null
pb PAPERBOY_NOW=2024-10-25T06:00:00Z "$BIN" fetch --date 2024-10-25 >/dev/null

# N subscribers with four kinds of interests, so digests differ as real ones do.
sqlite3 "$WORK/paperboy.db" <<SQL
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $N - 1)
INSERT INTO subscribers (email, status, interests, frequency, send_time, timezone, max_papers,
                         created_at, confirmed_at, updated_at)
SELECT printf('reader%06d@example.net', i), 'active',
       CASE i % 4 WHEN 0 THEN '"contrastive loss" memory "in-context" classifiers'
                  WHEN 1 THEN 'diffusion video generation'
                  WHEN 2 THEN 'reinforcement learning agents reasoning'
                  ELSE 'large language models benchmark evaluation' END,
       'daily', '07:00', 'UTC', 10, 0, 0, 0
  FROM n;
SQL

# One of our digests, as the message smtp-source sends (-F wants LF line ends; it adds CR).
mkdir -p "$WORK/sample"
pb PAPERBOY_NOW=$NOW PAPERBOY__DATABASE__URL="sqlite://$WORK/sample.db" "$BIN" migrate >/dev/null
sqlite3 "$WORK/paperboy.db" ".backup $WORK/sample.db"
sqlite3 "$WORK/sample.db" "DELETE FROM subscribers WHERE id > 40;"
pb PAPERBOY_NOW=$NOW PAPERBOY__DATABASE__URL="sqlite://$WORK/sample.db" \
    "$BIN" send --dry-run "$WORK/sample" >/dev/null
SAMPLE=$(ls -S "$WORK"/sample/*.eml | sed -n "$(( $(ls "$WORK"/sample/*.eml | wc -l) / 2 + 1 ))p")
tr -d '\r' <"$SAMPLE" >"$WORK/message.txt"
MEAN=$(python3 -c "import glob,os; f=glob.glob('$WORK/sample/*.eml'); print(sum(os.path.getsize(x) for x in f)//len(f))")
SIZE=$(wc -c <"$SAMPLE")

reset_outbox() {
    # Forget what was sent so the same subscribers are due again; planning is not timed.
    sqlite3 "$WORK/paperboy.db" "DELETE FROM delivery_papers; DELETE FROM deliveries;
        UPDATE subscribers SET status = CASE WHEN id <= $1 THEN 'active' ELSE 'paused' END;"
}

# paperboy: prints messages/s of the send phase (rendering and database included).
run_paperboy() { # connections nodelay subscribers
    reset_outbox "$3"
    local out
    out=$(pb PAPERBOY_NOW=$NOW PAPERBOY__MAIL__MAX_CONNECTIONS="$1" PAPERBOY__MAIL__TCP_NODELAY="$2" \
        "$BIN" send)
    echo "$out" | grep -q "sent $3 in" || { echo "paperboy did not send all $3: $out" >&2; exit 1; }
    echo "$out" | sed -n 's/.*(\([0-9.]*\) messages\/s).*/\1/p'
}

# smtp-source: same sink, same message, same connections, connections reused (-d).
run_source() { # sessions messages
    local start end
    start=$(date +%s.%N)
    "$SOURCE" -d -s "$1" -m "$2" -F "$WORK/message.txt" -f digest@paperboy.example.org \
        -t reader@example.net "127.0.0.1:$SINK_PORT"
    end=$(date +%s.%N)
    python3 -c "print(round($2 / ($end - $start)))"
}

run_pool() { # connections nodelay messages
    "$POOL_BENCH" "smtp://127.0.0.1:$SINK_PORT" "$WORK/message.txt" "$3" "$1" "$2"
}
ratio() { python3 -c "print(round($1 / $2, 2))"; }

echo "machine: $(nproc) cores, $(uname -sr); message: $SIZE bytes (mean digest $MEAN bytes)"
echo "paperboy $LABEL, N=$N, connections=$CONNECTIONS"
PB=$(run_paperboy "$CONNECTIONS" true "$N")
SRC=$(run_source "$CONNECTIONS" "$N")
POOL=$(run_pool "$CONNECTIONS" true "$N")
echo "$CONNECTIONS connections, $N messages: smtp-source $SRC msg/s; paperboy send $PB msg/s (ratio $(ratio "$PB" "$SRC")); paperboy's pool alone $POOL msg/s (ratio $(ratio "$POOL" "$SRC"))"
SRC1=$(run_source 1 "$ONE_N")
PB1_OFF=$(run_paperboy 1 false "$SLOW_N")
PB1_ON=$(run_paperboy 1 true "$ONE_N")
POOL1_OFF=$(run_pool 1 false "$SLOW_N")
POOL1_ON=$(run_pool 1 true "$ONE_N")
echo "1 connection: smtp-source $SRC1 msg/s; paperboy send without TCP_NODELAY $PB1_OFF msg/s, with $PB1_ON msg/s; pool alone without $POOL1_OFF msg/s, with $POOL1_ON msg/s"

#!/usr/bin/env bash
# The whole pipeline at scale: N subscribers, 2,000 new papers, fetch → import → plan → render
# and send to Postfix's smtp-sink on loopback; in the same run smtp-source with the same number
# of connections and a message of the same size. Reports each stage's time and throughput and
# each process's peak RSS and CPU time (from wait4, via python's resource module).
#
# Usage: bench/scale.sh [N ...]     (default: 10000 100000 300000; CONNECTIONS=10)
#        BIN=/path/to/paperboy bench/scale.sh 100000   runs that binary instead of building this
#        tree's (e.g. an older commit's release build, to compare two builds with one script).
# Needs: a release build (made here unless BIN is set), smtp-sink and smtp-source (Postfix), python3,
#        ../shared/eval/inspec/docs.jsonl and ../shared/fixtures/hf (read in place).
# Not a test: numbers go to BENCHMARKS.md by hand, with the machine they were measured on.
set -euo pipefail

SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(10000 100000 300000)
CONNECTIONS=${CONNECTIONS:-10}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}
[ -d "$SHARED/eval" ] || SHARED=/work/shared
DOCS=$SHARED/eval/inspec/docs.jsonl
BIN=${BIN:-}
SINK=$(command -v smtp-sink || echo /usr/sbin/smtp-sink)
SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
for tool in "$SINK" "$SOURCE"; do
    [ -x "$tool" ] || { echo "missing $tool: apt-get install postfix" >&2; exit 2; }
done
[ -f "$DOCS" ] || { echo "missing $DOCS (set SHARED=)" >&2; exit 2; }

if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build --release --quiet --bin paperboy)
    BIN=$ROOT/target/release/paperboy
    LABEL=$(git -C "$ROOT" rev-parse --short HEAD)
else
    LABEL="binary $BIN"
fi

WORK=$(mktemp -d /tmp/paperboy-scale.XXXXXX)
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

# Runs a command; prints its output, then "rss_mb=… wall_s=… cpu_s=…" (user + system) for it alone.
measured() {
    python3 - "$@" <<'PY'
import resource, subprocess, sys, time
start = time.monotonic()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.monotonic() - start
sys.stdout.write(p.stdout)
sys.stderr.write(p.stderr[-4000:])
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"rss_mb={ru.ru_maxrss / 1024:.0f} wall_s={wall:.2f} cpu_s={ru.ru_utime + ru.ru_stime:.2f}")
sys.exit(p.returncode)
PY
}

# The day's papers as Hugging Face serves them: /api/daily_papers?date=&limit=&p=, in pages.
mkdir -p "$WORK/world"
HTTP_PORT=$(free_port)
python3 "$ROOT/bench/hf_day_server.py" "$WORK/world/papers.json" "$HTTP_PORT" >/dev/null 2>&1 &
PIDS+=($!)

SINK_PORT=$(free_port)
AS_NOBODY=()
[ "$(id -u)" -eq 0 ] && AS_NOBODY=(-u nobody)
"$SINK" "${AS_NOBODY[@]}" "127.0.0.1:$SINK_PORT" 1024 >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$HTTP_PORT"
wait_port "$SINK_PORT"

echo "machine: $(nproc) cores, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "paperboy $LABEL, connections=$CONNECTIONS"
for N in "${SIZES[@]}"; do
    RUN=$WORK/n$N
    mkdir -p "$RUN"
    python3 "$ROOT/bench/scale_world.py" "$DOCS" "$SHARED/fixtures/hf" "$N" "$WORK/world"
    cat >"$RUN/paperboy.toml" <<TOML
secret_key = "bench-secret-key-0123456789abcdef0123456789"
[database]
url = "sqlite://$RUN/paperboy.db"
[web]
bind = "127.0.0.1:0"
base_url = "https://paperboy.example.org"
[mail]
transport = "smtp"
smtp_url = "smtp://127.0.0.1:$SINK_PORT"
from = "Paperboy <digest@paperboy.example.org>"
max_connections = $CONNECTIONS
[sources.hf]
enabled = true
base_url = "http://127.0.0.1:$HTTP_PORT"
[sources.arxiv]
enabled = false
[log]
level = "warn"
TOML
    # Fetch at 06:00, send at 09:00: the papers must be first seen before planning's "now".
    # `env` cannot run a shell function, so `measured` is called around `env`, not inside it.
    pb() { env PAPERBOY_CONFIG="$RUN/paperboy.toml" PAPERBOY_NOW=2024-10-25T06:00:00Z "$@"; }
    pb9() { env PAPERBOY_CONFIG="$RUN/paperboy.toml" PAPERBOY_NOW=2024-10-25T09:00:00Z "$@"; }
    pb "$BIN" migrate >/dev/null
    echo "== N=$N"
    echo "-- fetch";  measured env PAPERBOY_CONFIG="$RUN/paperboy.toml" PAPERBOY_NOW=2024-10-25T06:00:00Z "$BIN" fetch --date 2024-10-25
    echo "-- import"; measured env PAPERBOY_CONFIG="$RUN/paperboy.toml" PAPERBOY_NOW=2024-10-25T06:00:00Z "$BIN" subscriber import --confirmed "$WORK/world/subscribers.csv"
    # One of our digests, for smtp-source: the median-sized one of a dry run over 200 subscribers.
    mkdir -p "$RUN/sample"
    head -201 "$WORK/world/subscribers.csv" >"$RUN/sample.csv"
    env PAPERBOY_CONFIG="$RUN/paperboy.toml" PAPERBOY__DATABASE__URL="sqlite://$RUN/sample.db" \
        sh -c "PAPERBOY_NOW=2024-10-25T06:00:00Z '$BIN' fetch --date 2024-10-25 >/dev/null &&
        PAPERBOY_NOW=2024-10-25T06:00:00Z '$BIN' subscriber import --confirmed '$RUN/sample.csv' >/dev/null &&
        PAPERBOY_NOW=2024-10-25T09:00:00Z '$BIN' send --now --dry-run '$RUN/sample' >/dev/null"
    SAMPLE=$(ls -S "$RUN"/sample/*.eml | sed -n "$(( $(ls "$RUN"/sample/*.eml | wc -l) / 2 + 1 ))p")
    tr -d '\r' <"$SAMPLE" >"$RUN/message.txt"
    echo "-- plan + render + send (send --now)"
    measured env PAPERBOY_CONFIG="$RUN/paperboy.toml" PAPERBOY_NOW=2024-10-25T09:00:00Z "$BIN" send --now
    start=$(date +%s.%N)
    "$SOURCE" -d -s "$CONNECTIONS" -m "$N" -F "$RUN/message.txt" -f digest@paperboy.example.org \
        -t reader@example.net "127.0.0.1:$SINK_PORT"
    end=$(date +%s.%N)
    echo "-- smtp-source: $N messages of $(wc -c <"$SAMPLE") bytes, $CONNECTIONS sessions: $(python3 -c "print(round($N / ($end - $start)))") messages/s"
    rm -rf "$RUN"
done

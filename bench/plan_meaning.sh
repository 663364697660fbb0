#!/usr/bin/env bash
# Planning with and without meaning, on one world, binaries run alternately: the figure behind
# issue 18's speed target (100,000 subscribers × 2,000 papers within 10 s with the hybrid on).
#
# The scale world (`bench/scale_world.py`: 2,000 Inspec papers, N subscribers whose interests
# are Inspec keyphrases and title words) is fetched and imported once with the first binary,
# which embeds every paper and every distinct interest clause (minutes: see BENCHMARKS.md).
# A copy of that database without the interests' vectors is the words-alone baseline: the
# planner matches a subscriber with no clause vector by words alone, as before issue 18. Then,
# ROUNDS times, each binary plans a fresh copy of each database (`send --now` against a closed
# SMTP port: planning runs in full, sending stops at once), and its own "planned … in" line is
# reported with its CPU time and peak RSS.
#
# Usage: bench/plan_meaning.sh N BIN [BIN ...]     e.g.
#        bench/plan_meaning.sh 100000 target/release/paperboy /tmp/paperboy-old
# Env:   ROUNDS (default 3), SHARED (../shared), WORLD (a directory: the world's two databases
#        are kept there once built, and the next run naming it reuses them instead of building
#        again, which takes minutes, most of them embedding).
# Not a test: numbers go to BENCHMARKS.md by hand.
set -euo pipefail

N=${1:?usage: bench/plan_meaning.sh N BIN [BIN ...]}
shift
BINS=("$@")
[ ${#BINS[@]} -gt 0 ] || { echo "give at least one paperboy binary" >&2; exit 2; }
ROUNDS=${ROUNDS:-3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}
[ -d "$SHARED/eval" ] || SHARED=/work/shared
DOCS=$SHARED/eval/inspec/docs.jsonl
[ -f "$DOCS" ] || { echo "missing $DOCS (set SHARED=)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/paperboy-plan.XXXXXX)
SERVER=""
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

WORLD=${WORLD:-}
REUSE=""
[ -n "$WORLD" ] && [ -f "$WORLD/meaning.db" ] && [ -f "$WORLD/words.db" ] && REUSE=1
mkdir -p "$WORK/world"
[ -n "$REUSE" ] || python3 "$ROOT/bench/scale_world.py" "$DOCS" "$SHARED/fixtures/hf" "$N" "$WORK/world" >/dev/null
HTTP_PORT=$(free_port)
python3 "$ROOT/bench/hf_day_server.py" "$WORK/world/papers.json" "$HTTP_PORT" >/dev/null 2>&1 &
SERVER=$!
sleep 1

# Nothing listens on this port: planning is measured, sending gives up at once.
CLOSED=$(free_port)
cat >"$WORK/paperboy.toml" <<TOML
secret_key = "bench-secret-key-0123456789abcdef0123456789"
[database]
url = "sqlite://$WORK/run.db"
[web]
base_url = "https://paperboy.example.org"
[mail]
transport = "smtp"
smtp_url = "smtp://127.0.0.1:$CLOSED"
from = "Paperboy <digest@paperboy.example.org>"
[sources.hf]
enabled = true
base_url = "http://127.0.0.1:$HTTP_PORT"
[sources.arxiv]
enabled = false
[log]
level = "warn"
TOML
export PAPERBOY_CONFIG=$WORK/paperboy.toml

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); world: $N subscribers"
if [ -n "$REUSE" ]; then
echo "-- reusing the world in $WORLD"
cp "$WORLD/meaning.db" "$WORLD/words.db" "$WORK/"
else
echo "-- building the world with ${BINS[0]} (fetch and import embed)"
PAPERBOY_NOW=2024-10-25T06:00:00Z "${BINS[0]}" migrate >/dev/null
PAPERBOY_NOW=2024-10-25T06:00:00Z "${BINS[0]}" fetch --date 2024-10-25 >/dev/null 2>&1
PAPERBOY_NOW=2024-10-25T06:00:00Z "${BINS[0]}" subscriber import --confirmed "$WORK/world/subscribers.csv" 2>&1 \
    | tr '\r' '\n' | grep -E '^(imported|embedded|warning|stopped)' || true
# SQLite keeps the last writes in run.db-wal until a checkpoint: fold them in before the
# file is moved (moving run.db alone lost the import's last rounds of clause vectors once).
python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA wal_checkpoint(TRUNCATE)")' "$WORK/run.db"
mv "$WORK/run.db" "$WORK/meaning.db"
rm -f "$WORK/run.db-wal" "$WORK/run.db-shm"
cp "$WORK/meaning.db" "$WORK/words.db"
python3 - "$WORK/meaning.db" "$WORK/words.db" <<'PY'
import sqlite3, sys
with_vectors = sqlite3.connect(sys.argv[1])
papers, clauses = (with_vectors.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                   for t in ("paper_vectors", "interest_vectors"))
print(f"   {papers} paper vectors, {clauses} interest clause vectors")
words = sqlite3.connect(sys.argv[2])
words.execute("DELETE FROM interest_vectors")
words.commit()
words.execute("VACUUM")
PY
if [ -n "$WORLD" ]; then
    mkdir -p "$WORLD"
    cp "$WORK/meaning.db" "$WORK/words.db" "$WORLD/"
fi
fi

# Planning alone: `send --now`'s own "planned … in" line, with the process's CPU and peak RSS.
plan_once() {
    python3 - "$@" <<'PY'
import re, resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True, text=True, env=None)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
m = re.search(r"planned (\d+) subscribers in ([0-9.]+) s", p.stdout + p.stderr)
planned = f"{m.group(2)} s for {m.group(1)} subscribers" if m else "no 'planned' line: " + (p.stdout + p.stderr)[-300:]
print(f"{planned}; process CPU {ru.ru_utime + ru.ru_stime:.1f} s, peak RSS {ru.ru_maxrss / 1024:.0f} MB")
PY
}

# A binary still being built (another commit's, say) is waited for: the world takes minutes.
for bin in "${BINS[@]}"; do
    until [ -x "$bin" ]; do sleep 10; done
done
echo "machine load before the rounds: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
    for bin in "${BINS[@]}"; do
        for db in meaning words; do
            cp "$WORK/$db.db" "$WORK/run.db"
            rm -f "$WORK/run.db-wal" "$WORK/run.db-shm"
            printf 'round %s  %-40s %-8s ' "$round" "$bin" "$db"
            PAPERBOY_NOW=2024-10-25T09:00:00Z plan_once "$bin" send --now
        done
    done
done

#!/usr/bin/env bash
# Builds the Debian package with cargo-deb, installs it with dpkg on this machine, checks that
# every file landed and works, verifies the installed unit with systemd-analyze, and removes
# the package again (unless it was installed before this script ran).
#
#   scripts/package-test.sh              # needs root (dpkg -i) and Debian/Ubuntu
#   PACKAGE_TEST_KEEP=1 scripts/...      # leave the package installed
#   PACKAGE_PROFILE=dev scripts/...      # pack the debug build instead (what CI does)
#
# Build cost: one `cargo build` in PACKAGE_PROFILE (default release: what operators get), then
# `cargo deb --no-build`, which only packs. A release build takes 10-20 minutes on two cores, so
# CI packs the dev build that its test run compiles anyway (cargo-deb warns that dev builds are
# not for releases; the files, unit and scripts are the same). cargo-deb is installed from
# crates.io, at the version this script was written against, when missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '==> %s\n' "$*"; }
fail() { printf 'package-test: FAILED: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ] || ! command -v dpkg >/dev/null 2>&1; then
    if [ "${PAPERBOY_REQUIRE_ALL:-}" = "1" ]; then
        fail "needs root and dpkg (Debian/Ubuntu) to install the package"
    fi
    say "SKIPPED: installing a .deb needs root and dpkg; run this as root on Debian/Ubuntu"
    exit 0
fi

if ! cargo deb --version >/dev/null 2>&1; then
    say "installing cargo-deb from crates.io"
    cargo install cargo-deb --locked --version 3.8.0
fi

profile=${PACKAGE_PROFILE:-release}
say "building the binary (profile $profile)"
cargo build --profile "$profile" --locked --bin paperboy

say "packing the .deb (cargo deb --no-build --profile $profile)"
deb_out=$(cargo deb --no-build --locked --profile "$profile" --fast 2>&1) \
    || { echo "$deb_out" >&2; fail "cargo deb"; }
echo "$deb_out"
deb=$(printf '%s\n' "$deb_out" | grep -E '\.deb$' | tail -n1)
[ -f "$deb" ] || fail "cargo deb printed no .deb path"
say "package: $deb"
dpkg-deb --info "$deb" | sed -n '1,20p'

was_installed=0
if dpkg -s paperboy >/dev/null 2>&1; then
    was_installed=1
fi

cleanup() {
    if [ "$was_installed" = 0 ] && [ "${PACKAGE_TEST_KEEP:-}" != "1" ]; then
        say "purging the test install"
        dpkg --purge paperboy >/dev/null || true
    fi
    [ -n "${work:-}" ] && rm -rf "$work"
    if [ -n "${pid:-}" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" || true; fi
}
trap cleanup EXIT

say "installing with dpkg -i"
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb"

say "checking the installed files"
unit=""
for u in /lib/systemd/system/paperboy.service /usr/lib/systemd/system/paperboy.service; do
    [ -f "$u" ] && unit=$u
done
[ -n "$unit" ] || fail "the unit is not in /lib/systemd/system or /usr/lib/systemd/system"
for f in /usr/bin/paperboy /etc/paperboy/paperboy.toml /etc/paperboy/secret_key \
         /usr/share/doc/paperboy/README.md /usr/share/doc/paperboy/default.toml \
         /usr/share/doc/paperboy/NOTICE /usr/share/doc/paperboy/all-MiniLM-L6-v2.LICENSE; do
    [ -f "$f" ] || fail "$f is missing"
    echo "  ok $f"
done
echo "  ok $unit"
[ "$(stat -c %a /etc/paperboy/secret_key)" = 600 ] || fail "secret_key is not mode 0600"
key_len=$(tr -d '\n' < /etc/paperboy/secret_key | wc -c)
[ "$key_len" -ge 32 ] || fail "the generated secret_key has $key_len characters, fewer than 32"
dpkg-query -W -f='${Conffiles}\n' paperboy | grep -q /etc/paperboy/paperboy.toml \
    || fail "/etc/paperboy/paperboy.toml is not a conffile (upgrades would overwrite it)"
/usr/bin/paperboy --version

say "systemd-analyze verify $unit"
if command -v systemd-analyze >/dev/null 2>&1; then
    verify_out=$(systemd-analyze verify "$unit" 2>&1) || { echo "$verify_out"; fail "systemd-analyze verify"; }
    if printf '%s\n' "$verify_out" | grep -q paperboy; then
        echo "$verify_out"
        fail "systemd-analyze verify warned about the unit"
    fi
    echo "  ok"
elif [ "${PAPERBOY_REQUIRE_ALL:-}" = "1" ]; then
    fail "systemd-analyze is missing (apt-get install systemd)"
else
    say "SKIPPED verify: systemd-analyze is missing"
fi

# Run the installed binary the way the unit does (config in /etc, key as a credential), with
# the state in a scratch directory and no source (no network needed).
work=$(mktemp -d)
cp /etc/paperboy/secret_key "$work/secret_key"
export CREDENTIALS_DIRECTORY=$work
export PAPERBOY__DATABASE__URL="sqlite://$work/paperboy.db"
export PAPERBOY__MAIL__FILE_DIR="$work/outbox"
export PAPERBOY__SOURCES__HF__ENABLED=false
port=$(( 20000 + RANDOM % 20000 ))
export PAPERBOY__WEB__BIND="127.0.0.1:$port"

say "paperboy check with the installed config"
/usr/bin/paperboy --config /etc/paperboy/paperboy.toml check || fail "paperboy check"

say "paperboy run with the installed config: /readyz, /metrics, SIGTERM"
/usr/bin/paperboy --config /etc/paperboy/paperboy.toml run >"$work/run.log" 2>&1 &
pid=$!
ready=""
for _ in $(seq 1 100); do
    if ready=$(curl -fsS "http://127.0.0.1:$port/readyz" 2>/dev/null); then break; fi
    sleep 0.1
done
[ "$ready" = "ready" ] || { cat "$work/run.log"; fail "/readyz did not answer ready"; }
curl -fsS "http://127.0.0.1:$port/metrics" | grep -q '^paperboy_build_info{version=' \
    || fail "/metrics has no paperboy_build_info"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
[ "$status" = 0 ] || { cat "$work/run.log"; fail "paperboy run exited $status on SIGTERM"; }
pid=""
echo "  ok: ready, metrics served, exit 0 on SIGTERM"

say "package test passed"

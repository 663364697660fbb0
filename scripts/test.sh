#!/usr/bin/env bash
# The whole test suite, as README and CI run it: installs what the tests need when it is
# missing, builds once, runs every test target.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh digest_flow     # extra arguments go to the test runner (a filter, ...)
#
# Needs: cargo; Postfix's smtp-sink (installed here via apt when running as root).
# PAPERBOY_REQUIRE_ALL=1 makes tests fail instead of skip when a tool is missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '==> %s\n' "$*"; }

have_smtp_sink() {
    command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ]
}

install_postfix() {
    say "installing postfix (for smtp-sink) with apt"
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update
    apt-get install -y --no-install-recommends postfix
    # "No configuration" leaves Postfix without main.cf, so its daemon does not start; stop it
    # anyway in case an earlier configuration exists. The tests never use port 25: each
    # starts its own smtp-sink on a free port.
    if [ -e /etc/postfix/main.cf ]; then
        postfix stop >/dev/null 2>&1 || true
    fi
}

if have_smtp_sink; then
    say "smtp-sink found: $(command -v smtp-sink || echo /usr/sbin/smtp-sink)"
elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    install_postfix
    have_smtp_sink || { echo "postfix installed but smtp-sink is still missing" >&2; exit 1; }
else
    say "smtp-sink is missing and cannot be installed here (needs root and apt-get):"
    say "  sudo apt-get install postfix   (choose \"No configuration\")"
    say "tests that need it will skip, or fail under PAPERBOY_REQUIRE_ALL=1"
fi

say "building (all targets)"
cargo build --all-targets

if cargo nextest --version >/dev/null 2>&1; then
    say "running the tests with cargo nextest"
    cargo nextest run --all-targets --no-fail-fast "$@"
else
    say "cargo nextest not found: running the tests with cargo test"
    cargo test --all-targets --no-fail-fast "$@"
fi

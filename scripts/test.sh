#!/usr/bin/env bash
# The whole test suite, as README and CI run it: installs what the tests need when it is
# missing, builds once, runs every test target on SQLite and then again on PostgreSQL.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh digest_flow::   # extra arguments go to the test runner (a filter, ...);
#                                   # integration tests are named <area>::<test> (tests/it/)
#
# Needs: cargo. As root with apt it installs what is missing: Postfix (smtp-sink), dkimpy, aiosmtpd, Dovecot,
# Chromium with chromedriver; it starts PostgreSQL when installed.
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

# PostgreSQL, for the tests that run paperboy against a shared database.
if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null 2>&1; then
    for version in $(ls /etc/postgresql); do
        say "starting PostgreSQL ${version}/main (if not running)"
        pg_ctlcluster --skip-systemctl-redirect "${version}" main start 2>&1 || true
    done
else
    say "PostgreSQL is not installed; tests that need it will say so"
fi

# dkimpy (with PyNaCl for Ed25519): the independent DKIM verifier of tests/it/delivery_dkim.rs.
if ! python3 -c "import dkim, nacl" >/dev/null 2>&1; then
    say "installing dkimpy for the DKIM test"
    python3 -m pip install --quiet 'dkimpy[ed25519]' \
        || say "could not install dkimpy; the DKIM test will say so"
fi

# aiosmtpd: the submission server (STARTTLS, implicit TLS, AUTH) of tests/it/delivery_tls.rs.
if ! python3 -c "import aiosmtpd" >/dev/null 2>&1; then
    say "installing aiosmtpd for the TLS and AUTH tests"
    python3 -m pip install --quiet aiosmtpd \
        || say "could not install aiosmtpd; the TLS tests will say so"
fi

# Dovecot: the IMAP server holding the bounce mailbox of tests/it/delivery_bounces.rs. Each test
# runs its own instance from a private configuration; the package's own service is not used.
if ! { command -v dovecot || [ -x /usr/sbin/dovecot ]; } >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing dovecot-imapd for the bounce mailbox tests"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dovecot-imapd
    else
        say "dovecot is missing (apt-get install dovecot-imapd); the bounce mailbox tests will say so"
    fi
fi

# Headless Chromium and chromedriver: the real browser of tests/it/browser.rs (Debian packages).
if ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing chromium and chromium-driver for the browser test"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver
    else
        say "chromium/chromedriver missing (apt-get install chromium chromium-driver); the browser test will say so"
    fi
fi

say "building (all targets)"
cargo build --all-targets

# Two passes over the same build: every test on SQLite, then every test again with each
# harness on a fresh PostgreSQL database (PAPERBOY_TEST_DATABASE=postgres; tests/it/common.rs).
postgres_up() {
    command -v psql >/dev/null 2>&1 \
        && psql -h 127.0.0.1 -U postgres -d postgres -qtAc 'SELECT 1' >/dev/null 2>&1
}

run_suite() {
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --all-targets --no-fail-fast "$@"
    else
        say "cargo nextest not found: running the tests with cargo test"
        cargo test --all-targets --no-fail-fast "$@"
    fi
}

status=0
say "pass 1 of 2: the tests on SQLite"
PAPERBOY_TEST_DATABASE=sqlite run_suite "$@" || status=1

if postgres_up; then
    say "pass 2 of 2: the tests on PostgreSQL (127.0.0.1:5432)"
    PAPERBOY_TEST_DATABASE=postgres run_suite "$@" || status=1
elif [ "${PAPERBOY_REQUIRE_ALL:-}" = "1" ]; then
    say "PostgreSQL does not answer on 127.0.0.1:5432 and PAPERBOY_REQUIRE_ALL=1: failing"
    status=1
else
    say "SKIPPED pass 2 (PostgreSQL): no server answers on 127.0.0.1:5432 as user postgres"
fi
exit "$status"

#!/usr/bin/env bash
# Runs every dirsync test against real peers: installs and starts what is
# missing (Samba AD DC, OpenLDAP, NATS with JetStream, PostgreSQL, Chromium
# and playwright-core for the console's browser tests), checks formatting
# and lints (cargo fmt --check, cargo clippy -D warnings), then builds once
# and runs the whole suite. Any missing peer is an error, never a skip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'tests/run.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@";
  else die "needs root to run: $*"; fi
}
apt_install() {
  log "installing $* (Debian packages)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done
  return 1
}

# --- NATS with JetStream -----------------------------------------------------
if ! port_open 4222; then
  command -v nats-server >/dev/null || apt_install nats-server
  as_root mkdir -p /var/lib/nats-server
  log "starting nats-server -js"
  as_root start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server)" -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_port 4222 || die "nats-server did not start on 127.0.0.1:4222 (see /var/log/nats-server.log)"
fi

# The fault tests run a nats-server of their own, which they kill and start.
command -v nats-server >/dev/null || apt_install nats-server

# --- PostgreSQL ----------------------------------------------------------------
if ! port_open 5432; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql
    ver=$(ls /etc/postgresql | sort -V | tail -1)
    # Local test server: trust connections from loopback.
    as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' \
      "/etc/postgresql/$ver/main/pg_hba.conf"
  fi
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  log "starting PostgreSQL $ver"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  wait_port 5432 || die "PostgreSQL did not start on 127.0.0.1:5432"
fi
# The fault tests run a cluster of their own (initdb, pg_ctl as postgres).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql
command -v runuser >/dev/null || die "runuser is missing (Debian package util-linux)"
# The backup tests: pg_dump/pg_restore (postgresql-client) and sqlite3.
command -v sqlite3 >/dev/null || apt_install sqlite3
pg_url=${DIRSYNC_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
command -v psql >/dev/null || die "psql is missing (Debian package postgresql-client)"
psql "$pg_url" -Atqc 'select 1' >/dev/null || die "cannot connect to PostgreSQL as $pg_url"
# Databases left by earlier runs.
psql "$pg_url" -Atqc "select datname from pg_database where datname like 'dirsync_t_%'" \
  | while read -r db; do psql "$pg_url" -qc "drop database if exists \"$db\"" >/dev/null; done

# --- Samba AD DC ---------------------------------------------------------------
deploy/local/samba-dc.sh up
eval "$(deploy/local/samba-dc.sh env | sed 's/^DIRSYNC_AD_/export DIRSYNC_TEST_AD_/')"

# --- OpenLDAP (the generic LDAP directory type) ----------------------------------
deploy/local/slapd.sh up
eval "$(deploy/local/slapd.sh env | sed 's/^DIRSYNC_LDAP_/export DIRSYNC_TEST_LDAP_/')"

export DIRSYNC_TEST_POSTGRES_URL=$pg_url
export DIRSYNC_TEST_NATS_URL=${DIRSYNC_TEST_NATS_URL:-nats://127.0.0.1:4222}

# --- Chromium and playwright-core (the admin console's browser tests) -----------
# Debian's Chromium, driven by playwright-core from npm; never a browser
# download of a test tool's own.
command -v chromium >/dev/null || apt_install chromium
command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
chromium --version >/dev/null 2>&1 || die "chromium does not start (Debian package chromium)"
log "installing the console tests' npm packages (tests/console, npm ci)"
(cd tests/console && npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
  || die "npm ci in tests/console failed"

# --- Deployment manifests, offline -----------------------------------------------
bash deploy/validate.sh

# --- The code's habits: formatted, and clippy clean (warnings are errors;
# clippy.toml bans ambient time outside the clock module) ------------------------
log "checking formatting (cargo fmt --check)"
cargo fmt --all --check || die "the code is not formatted: run cargo fmt --all"
log "checking lints (cargo clippy -D warnings)"
cargo clippy --workspace --all-targets --quiet -- -D warnings \
  || die "clippy found problems (above); fix them, warnings are errors here"

# --- Build once, test ----------------------------------------------------------
cargo build --workspace --bins --tests
# The revision the tests' reliability records come from (RELIABILITY.md).
mkdir -p target/reliability
rm -f target/reliability/*.json
{ git rev-parse --short HEAD 2>/dev/null || echo unknown; } | tr -d '\n' > target/reliability/revision
git diff --quiet HEAD -- 2>/dev/null || printf '+' >> target/reliability/revision
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi

#!/usr/bin/env bash
# gRPC under concurrent load from a second process, on loopback: 200
# clients (each its own HTTP/2 connection) for 60 s against the gateway of
# the embedded shape holding the 10k-user OpenLDAP directory, mixing
# ListUsers, LookupAddress, ListRuns, GetIntegration, Authenticate (half
# with a right password, half wrong: the sign-in rate limits answer
# RATE_LIMITED, as documented) and Test Connection. Prints per-RPC p50/p99
# and the gateway's resident memory; fails on any error status.
#
#   bash tests/bench/grpc_load.sh [CLIENTS] [SECONDS]     (default 200 60)
#
# The client is Python's grpcio, in a virtualenv of its own
# (~/.cache/dirsync-bench/venv), its stubs generated from proto/ with
# grpcio-tools.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
DIRSYNC_BENCH_LIB=1 source tests/bench/run.sh ldap10k
use ldap10k
clients=${1:-200}
seconds=${2:-60}

venv="$cache/venv"
if [ ! -x "$venv/bin/python" ]; then
  log "installing grpcio and grpcio-tools into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q grpcio grpcio-tools
fi
stubs="$work/stubs"
mkdir -p "$stubs"
"$venv/bin/python" -m grpc_tools.protoc -Iproto --python_out="$stubs" --grpc_python_out="$stubs" \
  proto/dirsync/v1/api.proto
touch "$stubs/dirsync/__init__.py" "$stubs/dirsync/v1/__init__.py"

cli() { DIRSYNC_GATEWAY=$gateway DIRSYNC_TOKEN=$token "$bin" "$@"; }
# Twenty users get a password, for the sign-ins that succeed.
user_pw='Bench-User-1!'
for i in $(seq 0 19); do
  printf 'dn: %s\nchangetype: modify\nreplace: userPassword\nuserPassword: %s\n\n' "$(user_dn "$i")" "$user_pw"
done | ldapmodify -x -H "$url" -D "$admin_dn" -w "$admin_pw" >/dev/null
printf '%s' "$user_pw" > "$work/user.pw"

start embedded
cli sync now Bench --wait >/dev/null || die "the first sync failed"
cli account set --ldap-sign-in true >/dev/null
# RPCs name the integration by id or name; user 0 has a password now.
integration=Bench
address=u0000000@bench.example.com
cli lookup "$address" >/dev/null || die "$address is not in the store"
log "load: $clients clients for $seconds s"
mkdir -p target/reliability
# The revision measured; a "+" marks a work tree that differs from it.
revision=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- || revision="$revision+"
out=target/reliability/grpc-load.md
set +e
DIRSYNC_GRPC_STUBS=$stubs "$venv/bin/python" tests/bench/grpc_load.py --gateway "${gateway#http://}" \
  --token "$token" --account bench --integration "$integration" --pid "${pids[0]}" \
  --clients "$clients" --seconds "$seconds" --address "$address" --password-file "$work/user.pw" \
  | tee "$out.tmp"
rc=${PIPESTATUS[0]}
set -e
stop
{ printf 'Embedded shape (one process), the 10k-user OpenLDAP directory, %s, %s; `bash tests/bench/grpc_load.sh %s %s` at %s.\n\n' \
    "$(nproc) cores" "$(date -u +%Y-%m-%d)" "$clients" "$seconds" "$revision"
  cat "$out.tmp"; } > "$out"
rm -f "$out.tmp"
log "written to $out (tests/reliability/report.py puts it in RELIABILITY.md)"
exit $rc

#!/usr/bin/env bash
# The dirsync demo: a local Samba AD DC with the fixture directory, synced by
# dirsync's embedded shape (every role in one process, SQLite, in-process
# bus); prints the synced directory. With --console it then keeps serving
# the admin console and prints its URL.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

deploy/local/samba-dc.sh up
deploy/local/samba-dc.sh exists demo || deploy/local/samba-dc.sh seed demo demo

mkdir -p .dirsync
umask 077
printf '%s' 'Dirsync-User-1!' > .dirsync/demo-bind-password

exec cargo run --quiet -p dirsync -- demo --password-file .dirsync/demo-bind-password "$@"

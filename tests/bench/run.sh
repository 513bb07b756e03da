#!/usr/bin/env bash
# dirsync benchmark: the raw paged LDAP read of a directory against full,
# unchanged and 1%-changed syncs of it, in the distributed shape (four
# processes on NATS JetStream + PostgreSQL) and the embedded shape (one
# process, SQLite). Prints a Markdown table (and writes it to BENCHMARKS.md
# with the machine and the command).
#
#   bash tests/bench/run.sh            # OU=bulk3000 of the local Samba AD DC
#
# Each figure is the median of 3 runs. Rows written are the run's counts;
# WAL bytes come from pg_current_wal_lsn(); peak RSS is each process's
# VmHWM.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

log() { printf 'bench: %s\n' "$*" >&2; }

deploy/local/samba-dc.sh up
eval "$(deploy/local/samba-dc.sh env)"
deploy/local/samba-dc.sh exists bench || deploy/local/samba-dc.sh seed bench bench
cargo build --release -q -p dirsync
bin=target/release/dirsync

ou="OU=bulk3000,$DIRSYNC_AD_BASE_DN"
reader="CN=Sync Reader,OU=bench,$DIRSYNC_AD_BASE_DN"
pg=${DIRSYNC_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
printf '%s' 'Dirsync-User-1!' > "$work/pw"; chmod 600 "$work/pw"
attrs="objectGUID objectSid objectClass userAccountControl mail proxyAddresses displayName givenName sn department title telephoneNumber company manager userPrincipalName sAMAccountName member;range=0-999 groupType whenChanged uSNChanged"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

raw_read() {
  local t0 t1 n
  t0=$(now)
  # shellcheck disable=SC2086
  n=$(LDAPTLS_REQCERT=never ldapsearch -LLL -E pr=1000/noprompt -H ldaps://127.0.0.1:636 \
    -D "$reader" -y "$work/pw" -b "$ou" \
    "(|(&(objectClass=user)(objectCategory=person))(objectClass=group)(objectClass=contact))" $attrs \
    | grep -c '^dn:')
  t1=$(now)
  echo "$(echo "$t1 - $t0" | bc) $n"
}

# start SHAPE: starts dirsync; sets gateway, token, store URL.
start() {
  local shape=$1 port key="$work/master.key"
  rm -f "$key"; "$bin" key generate "$key" >/dev/null
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  gateway="http://127.0.0.1:$port"
  pids=()
  if [ "$shape" = distributed ]; then
    db="dirsync_bench_$RANDOM"
    psql "$pg" -qc "create database $db" >/dev/null
    store="${pg%/*}/$db"
    local prefix="bench_$RANDOM"
    for role in gateway scheduler collector reconciler; do
      DIRSYNC_ROLES=$role DIRSYNC_LISTEN=127.0.0.1:$port DIRSYNC_DATABASE_URL=$store \
        DIRSYNC_NATS_URL=nats://127.0.0.1:4222 DIRSYNC_SUBJECT_PREFIX=$prefix \
        DIRSYNC_MASTER_KEY_FILE=$key DIRSYNC_LOG=warn "$bin" serve 2>>"$work/$role.log" &
      pids+=($!)
      [ $role = gateway ] && sleep 1
    done
  else
    store="sqlite://$work/bench-$RANDOM.db"
    DIRSYNC_LISTEN=127.0.0.1:$port DIRSYNC_DATABASE_URL=$store DIRSYNC_MASTER_KEY_FILE=$key \
      DIRSYNC_LOG=warn "$bin" serve 2>>"$work/all.log" &
    pids+=($!)
  fi
  sleep 1
  token=$(DIRSYNC_DATABASE_URL=$store "$bin" token create --account bench --name bench 2>/dev/null)
  cat > "$work/bench.toml" <<TOML
name = "Bench"
host = "127.0.0.1"
port = 636
encrypt = true
encryption_mode = "relaxed"
user_dn = "$reader"
root_dn = "$ou"
include_contacts = true
maximum_sync_deletions = 100000
TOML
  DIRSYNC_GATEWAY=$gateway DIRSYNC_TOKEN=$token "$bin" integration create \
    --file "$work/bench.toml" --password-file "$work/pw" >/dev/null
}

stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }

wal() { [ "${store%%:*}" = postgres ] && psql "$pg" -Atc "select pg_current_wal_lsn() - '0/0'::pg_lsn" || echo 0; }
rss() { local total="" p; for p in "${pids[@]}"; do total+="$(awk '/VmHWM/ {printf "%d", $2/1024}' /proc/$p/status 2>/dev/null)MB "; done; echo "$total"; }

# sync: seconds, written rows, WAL bytes of one sync.
sync_once() {
  local t0 t1 w0 w1 out
  w0=$(wal); t0=$(now)
  out=$(DIRSYNC_GATEWAY=$gateway DIRSYNC_TOKEN=$token "$bin" sync now Bench --wait)
  t1=$(now); w1=$(wal)
  local written
  written=$(echo "$out" | awk '{for (i=1;i<=NF;i++) if ($i=="added"||$i=="updated"||$i=="removed") s+=$(i+1)} END {print s+0}')
  echo "$(echo "$t1 - $t0" | bc) $written $((w1 - w0))"
}

change_one_percent() {
  local i
  { for i in $(seq 0 99 2999); do
      printf 'dn: CN=Member %04d,%s\nchangetype: modify\nreplace: displayName\ndisplayName: Member %04d changed %s\n\n' "$i" "$ou" "$i" "$RANDOM"
    done; } | LDAPTLS_REQCERT=never ldapmodify -H ldaps://127.0.0.1:636 -D "$DIRSYNC_AD_ADMIN_DN" -w "$DIRSYNC_AD_ADMIN_PASSWORD" >/dev/null
}

rows=()
read_times=(); objects=0
for _ in 1 2 3; do read -r t n < <(raw_read); read_times+=("$t"); objects=$n; done
raw=$(printf '%s\n' "${read_times[@]}" | median)
log "raw paged read of $objects objects: ${raw}s"

for shape in distributed embedded; do
  for kind in full unchanged changed; do
    times=(); written=0; walb=0
    for _ in 1 2 3; do
      if [ $kind = full ]; then stop; start $shape; fi
      if [ $kind = changed ]; then change_one_percent; fi
      read -r t w b < <(sync_once)
      times+=("$t"); written=$w; walb=$b
    done
    med=$(printf '%s\n' "${times[@]}" | median)
    ratio=$(echo "scale=2; $med / $raw" | bc)
    rate=$(echo "scale=0; $objects / $med" | bc)
    rows+=("| $shape | $kind | $objects | ${med}s | $rate/s | ${ratio}× | $written | $walb | $(rss) |")
    log "$shape $kind: ${med}s (${ratio}× the raw read), $written rows written"
  done
  stop
done

table=$(printf '%s\n' \
  "| shape | sync | objects | wall (median of 3) | objects/s | × raw read | rows written | PostgreSQL WAL bytes | peak RSS per process |" \
  "|---|---|---|---|---|---|---|---|---|" "${rows[@]}")
echo "$table"
{
  echo "# Benchmarks"
  echo
  echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(uname -sr). Command: \`bash tests/bench/run.sh\`."
  echo "Directory: $ou on the local Samba AD DC. Raw paged read (ldapsearch -E pr=1000, the collector's attributes): ${raw}s (median of 3)."
  echo
  echo "$table"
} > BENCHMARKS.md

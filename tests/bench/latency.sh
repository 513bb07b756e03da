#!/usr/bin/env bash
# dirsync delta latency benchmark, on the 10k-user Samba AD directory of
# tests/bench/run.sh (OU=bench10k), in both shapes: how long after a change
# in AD it is visible through the gRPC API, with scheduled deltas every 10 s
# (DIRSYNC_DELTA_INTERVAL_SECONDS=10, a 1 s scheduler tick).
#
# Each of 20 changes adds a user (at a random moment of the delta cycle)
# and polls `dirsync lookup` for its address every 100 ms; the latency is
# from the LDAP add returning to the lookup finding it. With the default
# interval of 5 minutes the same path applies: at most 5 minutes more.
#
#   bash tests/bench/latency.sh    # prints a Markdown table
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
DIRSYNC_BENCH_LIB=1 source tests/bench/run.sh ad10k
use ad10k
changes=${DIRSYNC_BENCH_CHANGES:-20}

cli() { DIRSYNC_GATEWAY=$gateway DIRSYNC_TOKEN=$token "$bin" "$@"; }
ldap_admin() { LDAPTLS_REQCERT=never "$@" -x -H "$url" -D "$admin_dn" -w "$admin_pw"; }
added_dn() { printf 'CN=latency-%02d,OU=People,%s' "$1" "$base"; }

bind_dn=$admin_dn
printf '%s' "$admin_pw" > "$work/pw"
export DIRSYNC_DELTA_INTERVAL_SECONDS=10 DIRSYNC_SCHEDULE_TICK_SECONDS=1
settings="delta_interval_minutes = 5
$settings"
rows=()
for shape in distributed embedded; do
  # Left by an interrupted run.
  for ((i = 0; i < changes; i++)); do printf 'dn: %s\nchangetype: delete\n\n' "$(added_dn "$i")"; done \
    | ldap_admin ldapmodify -c >/dev/null 2>&1 || true
  start "$shape"
  cli sync now Bench --wait >/dev/null || die "the first full sync failed"
  lat=()
  for ((i = 0; i < changes; i++)); do
    sleep "$(python3 -c 'import random; print(round(random.uniform(0, 10), 2))')"
    mail="latency-$RANDOM-$i@bench.example.com"
    printf 'dn: %s\nobjectClass: user\nsAMAccountName: lat%s%02d\nmail: %s\n\n' \
      "$(added_dn "$i")" "$RANDOM" "$i" "$mail" | ldap_admin ldapadd >/dev/null \
      || die "adding $(added_dn "$i") failed"
    t0=$(now)
    until cli lookup "$mail" >/dev/null 2>&1; do
      [ "$(echo "$(now) - $t0 > 120" | bc)" = 1 ] && die "$mail not visible after 120 s"
      sleep 0.1
    done
    t=$(echo "$(now) - $t0" | bc)
    lat+=("$t")
    log "$shape: change $((i + 1)) visible after ${t}s"
  done
  med=$(printf '%s\n' "${lat[@]}" | median)
  max=$(printf '%s\n' "${lat[@]}" | sort -n | tail -1)
  kinds=$(cli runs Bench 2>/dev/null | awk '$4 == "collected" {print $3}' | sort | uniq -c | tr -s ' ' | tr '\n' ',' | sed 's/,$//')
  rows+=("| ad10k | $shape | $changes | 10 s | $(printf '%.1f' "$med") s | $(printf '%.1f' "$max") s | $kinds |")
  for ((i = 0; i < changes; i++)); do printf 'dn: %s\nchangetype: delete\n\n' "$(added_dn "$i")"; done \
    | ldap_admin ldapmodify -c >/dev/null 2>&1 || true
  stop
done
printf '%s\n' \
  "| directory | shape | changes | delta interval | change → visible, median | max | runs (count kind) |" \
  "|---|---|---|---|---|---|---|" "${rows[@]}"

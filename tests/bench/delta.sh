#!/usr/bin/env bash
# dirsync delta benchmark, on a directory of tests/bench/run.sh (ad10k, the
# 10k-user Samba AD directory, by default; ldap10k, ldap100k or ldap1m, the
# OpenLDAP ones, through content synchronization), in both shapes:
#
#   - the raw paged read of the directory and a full sync, for scale;
#   - a delta with nothing changed (median of 5);
#   - a delta after 100 changes: 40 modified users, 20 added, 20 deleted
#     (the previous round's adds), 10 group member adds and 10 removes
#     (median of 3 rounds), and the rows it wrote;
#   - then a full sync, which must write 0 rows: the store after the
#     deltas is the store a full sync leaves.
#
# A run's time is the run's own, from its request to its end as the API
# reports it (the CLI's "took"), not the CLI's start-up. On AD it binds as
# the domain administrator, who holds "Replicating Directory Changes"; on
# OpenLDAP as the read-only sync account.
#
#   bash tests/bench/delta.sh [DIR]    # prints a Markdown table
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
directory=${1:-ad10k}
DIRSYNC_BENCH_LIB=1 source tests/bench/run.sh "$directory"
use "$directory"
case $directory in ad*) ad=1 ;; *) ad= ;; esac

cli() { DIRSYNC_GATEWAY=$gateway DIRSYNC_TOKEN=$token "$bin" "$@"; }
# run_sync ARGS…: the run's seconds, rows written and kind.
run_sync() {
  local out
  out=$(cli sync now Bench --wait "$@" 2>&1) || { log "the sync failed: $out"; return 1; }
  echo "$out" | grep -q succeeded || { log "the sync did not succeed: $out"; return 1; }
  local took written kind
  took=$(echo "$out" | awk '/took/ {sub("s$", "", $2); print $2}')
  written=$(echo "$out" | awk '{for (i=1;i<=NF;i++) if ($i=="added"||$i=="updated"||$i=="removed") s+=$(i+1)} END {print s+0}')
  kind=$(echo "$out" | awk 'NR==1 {print $3}')
  echo "$took $written $kind"
}

ldap_admin() { LDAPTLS_REQCERT=never "$@" -x -H "$url" -D "$admin_dn" -w "$admin_pw"; }

# dc_floor: the directory's own time for an idle delta's read: ldapsearch
# (its start, TLS, bind and the DirSync or content synchronization read)
# with the integration's stored cookie, median of 5.
dc_floor() {
  local cookie t0 times=()
  if [ "${store%%:*}" = postgres ]; then
    cookie=$(psql "$store" -Atc "select encode(value, 'base64') from sync_cursors" | tr -d '\n')
  else
    cookie=$(python3 -c 'import base64, sqlite3, sys; print(base64.b64encode(sqlite3.connect(sys.argv[1]).execute("select value from sync_cursors").fetchone()[0]).decode())' "${store#sqlite://}")
  fi
  for _ in 1 2 3 4 5; do
    t0=$(now)
    if [ -n "$ad" ]; then
      ldap_admin ldapsearch -LLL -E "!dirSync=0x80000000/0/$cookie" -b "$DIRSYNC_AD_BASE_DN" \
        "(|(objectClass=user)(objectClass=group)(objectClass=contact))" objectGUID >/dev/null
    else
      # shellcheck disable=SC2086
      LDAPTLS_REQCERT=never ldapsearch -x -LLL -H "$url" -D "$bind_dn" -y "$work/pw" \
        -E "sync=ro/$(echo "$cookie" | base64 -d)" -b "$base" "$filter" $attrs >/dev/null
    fi
    times+=("$(echo "$(now) - $t0" | bc)")
  done
  printf '%s\n' "${times[@]}" | median
}
if [ -n "$ad" ]; then
  group_dn() { printf 'CN=team%06d,OU=Groups,%s' "$1" "$base"; }
  added_dn() { printf 'CN=delta%s-%02d,OU=People,%s' "$1" "$2" "$base"; }
  # added_entry ROUND I: the attributes of an added user, as LDIF.
  added_entry() { printf 'objectClass: user\nsAMAccountName: d%s%02d\n' "$1" "$2"; }
else
  group_dn() { printf 'cn=team%06d,ou=groups,%s' "$1" "$base"; }
  added_dn() { printf 'uid=delta%s-%02d,ou=people,%s' "$1" "$2" "$base"; }
  added_entry() { printf 'objectClass: inetOrgPerson\nuid: delta%s-%02d\ncn: Delta %s %s\nsn: Delta\n' "$1" "$2" "$1" "$2"; }
fi

# hundred_changes ROUND SALT: 100 changes of the directory (see the top);
# SALT (0, 1, …) picks other users and groups, and other values, so that
# each shape's rounds change what the previous shape's left.
hundred_changes() {
  local round=$1 salt=$2 i
  round=$((round + salt * 4))
  {
    for ((i = 0; i < 40; i++)); do
      printf 'dn: %s\nchangetype: modify\nreplace: title\ntitle: round %s %s\n\n' "$(user_dn $((i * 200 + round)))" "$round" "$RANDOM"
    done
    for ((i = 0; i < 20; i++)); do
      printf 'dn: %s\nchangetype: add\n%s\nmail: delta%s-%02d@bench.example.com\ndisplayName: Delta %s %s\n\n' \
        "$(added_dn "$round" "$i")" "$(added_entry "$round" "$i")" "$round" "$i" "$round" "$i"
    done
    if [ "$round" -gt $((1 + salt * 4)) ]; then
      for ((i = 0; i < 20; i++)); do
        printf 'dn: %s\nchangetype: delete\n\n' "$(added_dn $((round - 1)) "$i")"
      done
    fi
    member_changes "$round" add delete
  } | ldap_admin ldapmodify -c >/dev/null 2>&1 || true
}

# member_changes ROUND IN OUT: one member in, one out, of ten teams (IN=add
# OUT=delete), or back (IN=delete OUT=add).
member_changes() {
  local round=$1 in=$2 out=$3 i
  for ((i = 0; i < 10; i++)); do
    printf 'dn: %s\nchangetype: modify\n%s: member\nmember: %s\n-\n%s: member\nmember: %s\n\n' \
      "$(group_dn $((i * 10 + round)))" "$in" "$(user_dn $(((i * 10 + round + 1) * 50 + 7)))" \
      "$out" "$(user_dn $(((i * 10 + round) * 50 + 3)))"
  done
}

if [ -n "$ad" ]; then
  bind_dn=$admin_dn
  printf '%s' "$admin_pw" > "$work/pw"
fi
# (First: the LDAP settings end in a table.)
settings="delta_interval_minutes = 0
$settings"
read -r raw objects < <(raw_read)
log "raw paged read of $objects objects: ${raw}s"
rows=()
salt=0
for shape in distributed embedded; do
  start "$shape"
  read -r full full_rows _ < <(run_sync)
  log "$shape: full sync ${full}s, $full_rows rows"
  idle=()
  for _ in 1 2 3 4 5; do
    read -r t w k < <(run_sync --delta)
    [ "$k" = delta ] || die "an idle delta ran as $k"
    [ "$w" = 0 ] || die "an idle delta wrote $w rows"
    idle+=("$t")
  done
  idle_med=$(printf '%s\n' "${idle[@]}" | median)
  floor=$(dc_floor)
  log "$shape: idle delta ${idle_med}s (median of 5); the same read by ldapsearch ${floor}s"
  changed=(); written=0
  for round in 1 2 3; do
    hundred_changes "$round" "$salt"
    read -r t w k < <(run_sync --delta)
    [ "$k" = delta ] || die "a delta ran as $k"
    changed+=("$t"); written=$w
    log "$shape: delta after 100 changes (round $round): ${t}s, $w rows"
  done
  changed_med=$(printf '%s\n' "${changed[@]}" | median)
  read -r after after_rows _ < <(run_sync)
  [ "$after_rows" = 0 ] || log "$shape: the full sync after the deltas wrote $after_rows rows"
  rows+=("| $directory | $shape | $objects | ${raw}s | ${full}s | ${idle_med}s | ${floor}s | ${changed_med}s | $(echo "scale=2; 100 * $changed_med / $full" | bc)% | $written | $after_rows |")
  # Clean up the last round's adds, for the next shape and the next run,
  for ((i = 0; i < 20; i++)); do printf 'dn: %s\nchangetype: delete\n\n' "$(added_dn $((3 + salt * 4)) "$i")"; done \
    | ldap_admin ldapmodify -c >/dev/null 2>&1 || true
  # and the member changes, so that the next run makes them again.
  for round in 1 2 3; do member_changes $((round + salt * 4)) delete add; done \
    | ldap_admin ldapmodify -c >/dev/null 2>&1 || true
  stop
  salt=$((salt + 1))
done
printf '%s\n' \
  "| directory | shape | objects | raw paged read | full sync | delta, nothing changed (median of 5) | the directory's read alone (ldapsearch) | delta after 100 changes (median of 3) | delta ÷ full sync | rows the last delta wrote | rows the full sync after the deltas wrote |" \
  "|---|---|---|---|---|---|---|---|---|---|---|" "${rows[@]}"

#!/usr/bin/env bash
# A private OpenLDAP server on loopback for dirsync's generic LDAP directory
# type (DIRECTORY_TYPE_LDAP): the tests' directory and the benchmark's
# bulk-loaded ones. Idempotent: reuses a configured, running server. It
# never touches a system slapd: its configuration, databases and socket
# live under $DIRSYNC_SLAPD_DIR.
#
#   ldap://127.0.0.4:389  plain LDAP (StartTLS is not configured)
#
# Databases (back-mdb, each with room for a million AD-shaped users, each
# with the syncprov overlay for content synchronization, RFC 4533):
#   dc=dirsync,dc=test    the tests' directory, written over LDAP
#   dc=bench<N>,dc=test   benchmark directories (N in 10k 100k 1m), loaded
#                         with slapadd
# and one without syncprov, as many servers are, whose delta syncs poll
# modifyTimestamp:
#   dc=plain,dc=test      a tests' directory without content synchronization
# cn=Monitor (back-monitor) tells the sync accounts the server's time.
#
# Accounts: cn=admin,<suffix> (rootdn; password $admin_pass) and
# cn=dirsync,<suffix> (read-only sync account with no size limits on paged
# searches; password $sync_pass).
#
#   deploy/local/slapd.sh up              install when missing, configure, start
#   deploy/local/slapd.sh load SUFFIX LDIF  replace a database with an LDIF (slapadd)
#   deploy/local/slapd.sh env             print the connection settings
#   deploy/local/slapd.sh down            stop the server
#
# Settings (environment): DIRSYNC_SLAPD_DIR (default /var/tmp/dirsync-slapd).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${DIRSYNC_SLAPD_DIR:-/var/tmp/dirsync-slapd}
host=127.0.0.4
url="ldap://$host:389"
admin_pass='Dirsync-Ldap-Admin-1!'
sync_pass='Dirsync-Ldap-Sync-1!'
suffixes=("dc=dirsync,dc=test" "dc=bench10k,dc=test" "dc=bench100k,dc=test" "dc=bench1m,dc=test")
# Its database comes after those of $suffixes, without syncprov.
plain_suffix="dc=plain,dc=test"

log() { printf 'slapd: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@";
  else die "needs root to run: $*"; fi
}

install_packages() {
  command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ] || {
    log "installing slapd (Debian package; its own database is left unconfigured)"
    echo "slapd slapd/no_configuration boolean true" | as_root debconf-set-selections
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slapd >/dev/null \
      || die "apt-get install slapd failed"
  }
  command -v ldapsearch >/dev/null || {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ldap-utils >/dev/null \
      || die "apt-get install ldap-utils failed"
  }
}

# Content synchronization (RFC 4533) for dirsync's delta syncs: the
# syncprov overlay on every database, with a session log so that a
# refresh from a cookie names deletions rather than every present entry,
# and the indices its searches use.
index_ldif() {
  printf 'olcDbIndex: %s\n' "entryCSN eq" "member eq" "manager eq"
}
syncprov_ldif() { # DATABASE ({1}mdb)
  cat <<EOF
dn: olcOverlay=syncprov,olcDatabase=$1,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: syncprov
olcSpSessionlog: 100000
olcSpCheckpoint: 1000 10
EOF
}
ldapi_url() { echo "ldapi://$(printf %s "$dir/ldapi" | sed 's,/,%2F,g')/"; }

# A server configured before syncprov was: adds it (and its indices) over
# ldapi, in place, to each database that lacks it; databases are kept.
add_syncprov() {
  local config=(-Q -Y EXTERNAL -H "$(ldapi_url)") i=1 changes
  changes=$(
    ldapsearch "${config[@]}" -LLL -b 'cn=module{0},cn=config' -s base olcModuleLoad 2>/dev/null | grep -q 'syncprov' \
      || printf 'dn: cn=module{0},cn=config\nchangetype: modify\nadd: olcModuleLoad\nolcModuleLoad: syncprov\n\n'
    for _ in "${suffixes[@]}"; do
      if ! ldapsearch "${config[@]}" -LLL -b "olcDatabase={$i}mdb,cn=config" -s one dn 2>/dev/null \
          | grep -qi 'syncprov'; then
        if ! ldapsearch "${config[@]}" -LLL -b "olcDatabase={$i}mdb,cn=config" -s base olcDbIndex \
            2>/dev/null | grep -q 'entryCSN'; then
          printf 'dn: olcDatabase={%s}mdb,cn=config\nchangetype: modify\nadd: olcDbIndex\n' "$i"
          index_ldif
          printf '\n'
        fi
        syncprov_ldif "{$i}mdb" | sed '1a changetype: add'
        printf '\n'
      fi
      i=$((i + 1))
    done
  )
  [ -n "$changes" ] || return 0
  log "adding the syncprov overlay (content synchronization) where it is missing"
  printf '%s\n' "$changes" | ldapmodify "${config[@]}" >/dev/null || die "adding syncprov over $(ldapi_url) failed"
}

# A back-mdb database of SUFFIX: the admin as rootdn, the read-only sync
# account with no size limits.
database_ldif() { # DATABASE ({1}mdb) SUFFIX ADMIN_HASH
  cat <<EOF
dn: olcDatabase=$1,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: $1
olcSuffix: $2
olcDbDirectory: $(db_dir "$2")
olcDbMaxSize: 21474836480
olcDbNoSync: TRUE
olcRootDN: cn=admin,$2
olcRootPW: $3
olcDbIndex: objectClass eq
olcDbIndex: entryUUID eq
olcDbIndex: mail eq,pres
olcDbIndex: uid eq
olcDbIndex: modifyTimestamp eq
$(index_ldif)
olcLimits: {0}dn.exact="cn=dirsync,$2" size=unlimited size.prtotal=unlimited time=unlimited
olcAccess: {0}to attrs=userPassword by self =xw by anonymous auth by * none
olcAccess: {1}to * by dn.exact="cn=dirsync,$2" read by self read by * none
EOF
}

# cn=Monitor, readable by the sync accounts: the server's clock
# (cn=Current,cn=Time,cn=Monitor), which modifyTimestamp polling reads.
monitor_ldif() {
  cat <<EOF
dn: olcDatabase=monitor,cn=config
objectClass: olcDatabaseConfig
olcDatabase: monitor
olcAccess: {0}to dn.subtree="cn=Monitor" by dn.regex="^cn=dirsync,dc=[^,]+,dc=test\$" read by * none
EOF
}

# A server configured before the plain database and cn=Monitor were: adds
# them over ldapi, in place; the other databases are kept.
add_plain_and_monitor() {
  local config=(-Q -Y EXTERNAL -H "$(ldapi_url)")
  if ! ldapsearch "${config[@]}" -LLL -b cn=config "(olcSuffix=$plain_suffix)" dn 2>/dev/null | grep -q '^dn:'; then
    log "adding the database $plain_suffix (no content synchronization)"
    mkdir -p "$(db_dir "$plain_suffix")"
    database_ldif mdb "$plain_suffix" "$(hash_of "$admin_pass")" | ldapadd "${config[@]}" >/dev/null \
      || die "adding the database $plain_suffix over $(ldapi_url) failed"
    base_ldif "$plain_suffix" | ldapadd -x -H "$url" -D "cn=admin,$plain_suffix" -w "$admin_pass" >/dev/null \
      || die "adding the base entries of $plain_suffix failed"
  fi
  if ! ldapsearch "${config[@]}" -LLL -b cn=config '(olcDatabase=monitor)' dn 2>/dev/null | grep -q '^dn:'; then
    log "adding cn=Monitor (the server's clock, for modifyTimestamp polling)"
    monitor_ldif | ldapadd "${config[@]}" >/dev/null || die "adding cn=Monitor over $(ldapi_url) failed"
  fi
}

db_dir() { # SUFFIX → its database directory
  local name=${1%%,*}
  echo "$dir/db/${name#dc=}"
}

hash_of() { /usr/sbin/slappasswd -s "$1"; }

# The cn=config of the private server.
write_config() {
  local admin_hash sync_hash i=1
  admin_hash=$(hash_of "$admin_pass")
  sync_hash=$(hash_of "$sync_pass")
  {
    cat <<EOF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $dir/slapd.pid
olcArgsFile: $dir/slapd.args
olcSizeLimit: 1000
olcLogLevel: none

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb
olcModuleLoad: ppolicy
olcModuleLoad: syncprov

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

EOF
    for s in core cosine nis inetorgperson; do
      cat "/etc/ldap/schema/$s.ldif"; echo
    done
    cat "$here/slapd-mail.ldif"; echo
    cat <<EOF
dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by dn.exact=gidNumber=$(id -g)+uidNumber=$(id -u),cn=peercred,cn=external,cn=auth manage by * break

EOF
    for suffix in "${suffixes[@]}"; do
      database_ldif "{$i}mdb" "$suffix" "$admin_hash"
      printf '\n'
      syncprov_ldif "{$i}mdb"
      printf '\n'
      i=$((i + 1))
    done
    database_ldif "{$i}mdb" "$plain_suffix" "$admin_hash"
    printf '\n'
    monitor_ldif
  } > "$dir/config.ldif"
  printf '%s\n' "$sync_hash" > "$dir/sync.hash"
}

running() {
  [ -f "$dir/slapd.pid" ] && kill -0 "$(cat "$dir/slapd.pid")" 2>/dev/null
}

start() {
  running && return 0
  /usr/sbin/slapd -F "$dir/config" -h "$url/ $(ldapi_url)" \
    || die "slapd did not start (try: /usr/sbin/slapd -d 1 -F $dir/config -h $url/)"
  for _ in $(seq 1 50); do
    ldapsearch -x -LLL -o nettimeout=2 -H "$url" -b "" -s base namingContexts >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "slapd is not answering on $url"
}

stop() {
  running || return 0
  local pid
  pid=$(cat "$dir/slapd.pid")
  kill "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  die "slapd (pid $pid) did not stop"
}

# The suffix entry and the two accounts of a database, as LDIF.
base_ldif() { # SUFFIX
  local suffix=$1 dc=${1%%,*}
  cat <<EOF
dn: $suffix
objectClass: dcObject
objectClass: organization
dc: ${dc#dc=}
o: ${dc#dc=}

dn: cn=dirsync,$suffix
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: dirsync
description: read-only account of dirsync
userPassword: $(cat "$dir/sync.hash")

EOF
}

up() {
  install_packages
  if [ ! -f "$dir/config/cn=config.ldif" ]; then
    log "configuring a private slapd in $dir"
    rm -rf "$dir"
    mkdir -p "$dir/config"
    for suffix in "${suffixes[@]}" "$plain_suffix"; do mkdir -p "$(db_dir "$suffix")"; done
    write_config
    /usr/sbin/slapadd -n0 -F "$dir/config" -l "$dir/config.ldif" >/dev/null \
      || die "slapadd of the configuration failed"
    for suffix in "${suffixes[@]}" "$plain_suffix"; do
      base_ldif "$suffix" | /usr/sbin/slapadd -q -w -F "$dir/config" -b "$suffix" >/dev/null \
        || die "slapadd of $suffix failed"
    done
  fi
  start
  add_syncprov
  add_plain_and_monitor
  log "OpenLDAP is up on $url"
}

# Replaces a database's entries with an LDIF file (suffix and accounts are
# added first; the file holds everything below them).
load() { # SUFFIX LDIF
  local suffix=$1 file=$2 d
  d=$(db_dir "$suffix")
  [ -d "$d" ] || die "no database for $suffix (one of: ${suffixes[*]})"
  [ -r "$file" ] || die "cannot read $file"
  up
  stop
  rm -f "$d"/*.mdb
  # -w: the suffix gets its contextCSN, where content synchronization
  # starts.
  { base_ldif "$suffix"; cat "$file"; } | /usr/sbin/slapadd -q -w -F "$dir/config" -b "$suffix" \
    || die "slapadd of $file into $suffix failed"
  start
}

print_env() {
  cat <<EOF
DIRSYNC_LDAP_URL=$url
DIRSYNC_LDAP_HOST=$host
DIRSYNC_LDAP_SUFFIX=dc=dirsync,dc=test
DIRSYNC_LDAP_PLAIN_SUFFIX=$plain_suffix
DIRSYNC_LDAP_ADMIN_DN=cn=admin,dc=dirsync,dc=test
DIRSYNC_LDAP_ADMIN_PASSWORD=$admin_pass
DIRSYNC_LDAP_SYNC_DN=cn=dirsync,dc=dirsync,dc=test
DIRSYNC_LDAP_SYNC_PASSWORD=$sync_pass
EOF
}

case "${1:-up}" in
  up) up ;;
  load) [ $# -eq 3 ] || die "usage: $0 load SUFFIX LDIF"; load "$2" "$3" ;;
  env) print_env ;;
  down) stop ;;
  *) die "usage: $0 up|load SUFFIX LDIF|env|down" ;;
esac

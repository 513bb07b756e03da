#!/usr/bin/env bash
# Provisions and starts a local Samba AD domain controller on loopback for the
# dirsync demo and tests. Idempotent: reuses a provisioned, running DC.
#
#   deploy/local/samba-dc.sh up            install when missing, provision, start
#   deploy/local/samba-dc.sh seed OU TAG   load the fixture directory into OU=<OU>
#   deploy/local/samba-dc.sh exists OU     whether OU=<OU> is seeded
#   deploy/local/samba-dc.sh env           print the connection settings
#   deploy/local/samba-dc.sh down          stop the DC
#
# Settings (environment): DIRSYNC_SAMBA_DIR (default /var/tmp/dirsync-samba).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${DIRSYNC_SAMBA_DIR:-/var/tmp/dirsync-samba}
realm=CORP.EXAMPLE.TEST
base_dn="DC=corp,DC=example,DC=test"
admin_dn="CN=Administrator,CN=Users,$base_dn"
admin_pass='Dirsync-Admin-1!'

log() { printf 'samba-dc: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@";
  else die "needs root to run: $*"; fi
}

install_packages() {
  local missing=()
  command -v samba >/dev/null || missing+=(samba samba-ad-dc winbind)
  command -v samba-tool >/dev/null || missing+=(samba-ad-dc)
  command -v ldapsearch >/dev/null || missing+=(ldap-utils)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]} (Debian packages)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq samba samba-ad-dc winbind ldap-utils >/dev/null \
    || die "apt-get install samba samba-ad-dc winbind ldap-utils failed"
}

ldap_ok() {
  LDAPTLS_REQCERT=never ldapsearch -LLL -o nettimeout=3 -H ldaps://127.0.0.1:636 \
    -D "$admin_dn" -w "$admin_pass" -b "$base_dn" -s base dn >/dev/null 2>&1
}

provision() {
  [ -f "$dir/etc/smb.conf" ] && return 0
  log "provisioning $realm in $dir"
  as_root rm -rf "$dir"
  as_root mkdir -p "$dir"
  as_root samba-tool domain provision --targetdir="$dir" --realm="$realm" --domain=CORP \
    --server-role=dc --dns-backend=NONE --adminpass="$admin_pass" \
    --option="interfaces=lo" --option="bind interfaces only=yes" \
    --option="ldap server require strong auth=yes" >"$dir.provision.log" 2>&1 \
    || { tail -20 "$dir.provision.log" >&2; die "samba-tool domain provision failed"; }
  # Passwords of fixture users never expire and need not be complex.
  as_root samba-tool domain passwordsettings set --configfile="$dir/etc/smb.conf" \
    --complexity=off --history-length=0 --min-pwd-age=0 --max-pwd-age=0 >/dev/null
}

start() {
  if ldap_ok; then return 0; fi
  if pgrep -f "samba -s $dir/etc/smb.conf" >/dev/null; then
    log "samba is running but LDAPS does not answer yet"
  else
    log "starting samba"
    as_root bash -c "nohup samba -s '$dir/etc/smb.conf' -i -M single >'$dir/samba.log' 2>&1 &"
  fi
  for _ in $(seq 1 60); do
    ldap_ok && { log "LDAPS is up on 127.0.0.1:636"; return 0; }
    sleep 0.5
  done
  tail -30 "$dir/samba.log" >&2 || true
  die "samba did not answer on ldaps://127.0.0.1:636 within 30 s"
}

print_env() {
  cat <<ENV
DIRSYNC_AD_HOST=127.0.0.1
DIRSYNC_AD_BASE_DN=$base_dn
DIRSYNC_AD_ADMIN_DN=$admin_dn
DIRSYNC_AD_ADMIN_PASSWORD=$admin_pass
ENV
}

# seed OU TAG: the fixture directory under OU=<OU>,<base>; TAG (≤ 8 letters
# or digits) keeps sAMAccountNames unique across seeded OUs.
seed() {
  local ou=$1 tag=$2
  sed -e "s/@BASE@/OU=$ou,$base_dn/g" -e "s/@TAG@/$tag/g" "$here/fixture.ldif" \
    | LDAPTLS_REQCERT=never ldapadd -H ldaps://127.0.0.1:636 -D "$admin_dn" -w "$admin_pass" >/dev/null
}

# exists OU: whether OU=<OU> has been seeded.
exists() {
  LDAPTLS_REQCERT=never ldapsearch -LLL -o nettimeout=3 -H ldaps://127.0.0.1:636 \
    -D "$admin_dn" -w "$admin_pass" -b "OU=$1,$base_dn" -s base dn >/dev/null 2>&1
}

case "${1:-up}" in
  up) install_packages; provision; start ;;
  seed) [ $# -eq 3 ] || die "usage: $0 seed OU TAG"; seed "$2" "$3" ;;
  exists) [ $# -eq 2 ] || die "usage: $0 exists OU"; exists "$2" ;;
  env) print_env ;;
  down) pkill -f "samba -s $dir/etc/smb.conf" || true ;;
  *) die "unknown command ${1}; use up, seed, env or down" ;;
esac

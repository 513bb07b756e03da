#!/usr/bin/env bash
# Provisions and starts local Samba AD domain controllers on loopback for the
# dirsync demo and tests. Idempotent: reuses provisioned, running DCs.
#
# Three DCs of the same domain, each with its own database and certificate:
#   127.0.0.1 and ::1  Samba's self-signed certificate (the Relaxed case)
#   127.0.0.2          a test CA's RSA 2048 certificate naming 127.0.0.2 (Strict passes)
#   127.0.0.3          a test CA's RSA 1024 certificate naming 127.0.0.3 (Strict refuses the key)
# The test CA is $DIRSYNC_SAMBA_DIR-tls/ca.pem.
#
#   deploy/local/samba-dc.sh up            install when missing, provision, start all
#   deploy/local/samba-dc.sh seed OU TAG [HOST]  load the fixture directory into OU=<OU>
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
  command -v openssl >/dev/null || missing+=(openssl)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]} (Debian packages)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq samba samba-ad-dc winbind ldap-utils openssl >/dev/null \
    || die "apt-get install samba samba-ad-dc winbind ldap-utils openssl failed"
}

tls_dir="$dir-tls"

ldap_ok() { # HOST
  LDAPTLS_REQCERT=never ldapsearch -LLL -o nettimeout=3 -H "ldaps://$1:636" \
    -D "$admin_dn" -w "$admin_pass" -b "$base_dn" -s base dn >/dev/null 2>&1
}

# The test CA and the certificates of the two CA-issued DCs.
make_certs() {
  [ -f "$tls_dir/dc1024.pem" ] && return 0
  command -v openssl >/dev/null || die "openssl is missing (Debian package openssl)"
  log "creating the test CA in $tls_dir"
  as_root mkdir -p "$tls_dir"
  as_root bash -c "cd '$tls_dir' && umask 077 &&
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
      -subj '/CN=dirsync test CA' -addext 'basicConstraints=critical,CA:TRUE' \
      -addext 'keyUsage=critical,keyCertSign,cRLSign' 2>/dev/null &&
    for spec in 2048:127.0.0.2 1024:127.0.0.3; do
      bits=\${spec%%:*}; ip=\${spec#*:}
      openssl req -newkey rsa:\$bits -nodes -keyout dc\$bits.key -out dc\$bits.csr -subj /CN=\$ip 2>/dev/null &&
      printf 'subjectAltName=IP:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n' \$ip > dc\$bits.ext &&
      openssl x509 -req -in dc\$bits.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out dc\$bits.pem \
        -days 3650 -extfile dc\$bits.ext 2>/dev/null || exit 1
    done && chmod 644 ca.pem" || die "creating the test certificates failed"
}

# provision NAME DIR OPTIONS…
provision() {
  local name=$1 d=$2; shift 2
  [ -f "$d/etc/smb.conf" ] && return 0
  log "provisioning DC $name ($realm) in $d"
  as_root rm -rf "$d"
  as_root mkdir -p "$d/run"
  as_root samba-tool domain provision --targetdir="$d" --realm="$realm" --domain=CORP \
    --server-role=dc --dns-backend=NONE --adminpass="$admin_pass" \
    --option="bind interfaces only=yes" --option="ldap server require strong auth=yes" \
    "$@" >"$d.provision.log" 2>&1 \
    || { tail -20 "$d.provision.log" >&2; die "samba-tool domain provision of $name failed"; }
  # Passwords of fixture users never expire and need not be complex.
  as_root samba-tool domain passwordsettings set --configfile="$d/etc/smb.conf" \
    --complexity=off --history-length=0 --min-pwd-age=0 --max-pwd-age=0 >/dev/null
}

# start DIR HOST
start() {
  local d=$1 host=$2
  if ldap_ok "$host"; then return 0; fi
  if pgrep -f "samba -s $d/etc/smb.conf" >/dev/null; then
    log "samba ($d) is running but LDAPS does not answer yet"
  else
    log "starting samba for $host"
    as_root bash -c "nohup samba -s '$d/etc/smb.conf' -i -M single >'$d/samba.log' 2>&1 &"
  fi
  for _ in $(seq 1 60); do
    ldap_ok "$host" && { log "LDAPS is up on $host:636"; return 0; }
    sleep 0.5
  done
  tail -30 "$d/samba.log" >&2 || true
  die "samba did not answer on ldaps://$host:636 within 30 s"
}

# exists OU: whether OU=<OU> has been seeded.
exists() {
  LDAPTLS_REQCERT=never ldapsearch -LLL -o nettimeout=3 -H ldaps://127.0.0.1:636 \
    -D "$admin_dn" -w "$admin_pass" -b "OU=$1,$base_dn" -s base dn >/dev/null 2>&1
}

# A group of 3000 contacts under OU=bulk3000, once per DC: more members than
# one range of values.
seed_bulk() {
  exists bulk3000 && return 0
  log "loading OU=bulk3000 (3000 contacts, one group of them)"
  local ou="OU=bulk3000,$base_dn" i
  {
    printf 'dn: %s\nobjectClass: organizationalUnit\n\n' "$ou"
    for i in $(seq -w 0 2999); do
      printf 'dn: CN=Member %s,%s\nobjectClass: contact\ndisplayName: Member %s\nmail: member%s@bulk.example.com\n\n' \
        "$i" "$ou" "$i" "$i"
    done
    printf 'dn: CN=Big Group,%s\nobjectClass: group\nsAMAccountName: bulk3000group\ndisplayName: Big Group\n' "$ou"
    for i in $(seq -w 0 2999); do printf 'member: CN=Member %s,%s\n' "$i" "$ou"; done
  } | LDAPTLS_REQCERT=never ldapadd -H ldaps://127.0.0.1:636 -D "$admin_dn" -w "$admin_pass" >/dev/null \
    || die "loading OU=bulk3000 failed"
}

up() {
  install_packages
  make_certs
  provision main "$dir" --option="interfaces=lo"
  start "$dir" 127.0.0.1
  local spec bits ip d
  for spec in 2048:127.0.0.2 1024:127.0.0.3; do
    bits=${spec%%:*}; ip=${spec#*:}; d="$dir-rsa$bits"
    # LDAP only: the other services of the main DC keep their ports.
    provision "rsa$bits" "$d" --option="interfaces=$ip/8" --option="server services=ldap" \
      --option="pid directory=$d/run" --option="winbindd socket directory=$d/run/winbindd" \
      --option="tls certfile=$tls_dir/dc$bits.pem" --option="tls keyfile=$tls_dir/dc$bits.key" \
      --option="tls cafile=$tls_dir/ca.pem"
    start "$d" "$ip"
  done
  seed_bulk
}

print_env() {
  cat <<ENV
DIRSYNC_AD_HOST=127.0.0.1
DIRSYNC_AD_BASE_DN=$base_dn
DIRSYNC_AD_ADMIN_DN=$admin_dn
DIRSYNC_AD_ADMIN_PASSWORD=$admin_pass
DIRSYNC_AD_STRICT_HOST=127.0.0.2
DIRSYNC_AD_WEAK_KEY_HOST=127.0.0.3
DIRSYNC_AD_CA_FILE=$tls_dir/ca.pem
ENV
}

# seed OU TAG: the fixture directory under OU=<OU>,<base>; TAG (≤ 8 letters
# or digits) keeps sAMAccountNames unique across seeded OUs.
seed() {
  local ou=$1 tag=$2 host=${3:-127.0.0.1}
  sed -e "s/@BASE@/OU=$ou,$base_dn/g" -e "s/@TAG@/$tag/g" "$here/fixture.ldif" \
    | LDAPTLS_REQCERT=never ldapadd -H "ldaps://$host:636" -D "$admin_dn" -w "$admin_pass" >/dev/null
}

case "${1:-up}" in
  up) up ;;
  seed) [ $# -ge 3 ] || die "usage: $0 seed OU TAG [HOST]"; seed "$2" "$3" "${4:-}" ;;
  exists) [ $# -eq 2 ] || die "usage: $0 exists OU"; exists "$2" ;;
  env) print_env ;;
  down) pkill -f "samba -s $dir" || true ;;
  *) die "unknown command ${1}; use up, seed, env or down" ;;
esac

#!/usr/bin/env python3
"""Writes the fuzz targets' first seeds into tests/fuzz/corpus/<target>/:
well-formed examples of what each target reads (LDAP messages as Active
Directory and OpenLDAP send them, bus batches, settings), from which the
fuzzer mutates. The committed corpora grow from these; rerunning this
only rewrites the seed-* files."""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def tlv(tag, content):
    n = len(content)
    if n < 0x80:
        head = bytes([n])
    else:
        b = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(b)]) + b
    return bytes([tag]) + head + content


def octets(v):
    return tlv(0x04, v if isinstance(v, bytes) else v.encode())


def integer(n):
    return tlv(0x02, n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True))


def seq(*parts):
    return tlv(0x30, b"".join(parts))


def attribute(name, *values):
    return seq(octets(name), tlv(0x31, b"".join(octets(v) for v in values)))


GUID = bytes.fromhex("7a1306d27a8341109b307f5b6c102f77")
AD_USER = [
    octets("CN=Alice Anders,OU=People,OU=NY,DC=corp,DC=example,DC=test"),
    seq(
        attribute("objectClass", "top", "person", "organizationalPerson", "user"),
        attribute("objectGUID", GUID),
        attribute("objectSid", bytes.fromhex("010500000000000515000000a1b2c3d4e5f60718293a4b5c51040000")),
        attribute("userAccountControl", "512"),
        attribute("mail", "alice@example.com"),
        attribute("proxyAddresses", "SMTP:alice@example.com", "smtp:a.anders@example.com", "X500:/o=Org/cn=alice", "SIP:alice@example.com"),
        attribute("displayName", "Alice Anders"),
        attribute("givenName", "Alice"),
        attribute("sn", "Anders"),
        attribute("title", "Engineer"),
        attribute("manager", "CN=Bob Brown,OU=People,OU=NY,DC=corp,DC=example,DC=test"),
        attribute("userPrincipalName", "alice@corp.example.test"),
        attribute("sAMAccountName", "alice"),
        attribute("whenChanged", "20261205081500.0Z"),
        attribute("uSNChanged", "41234"),
    ),
]
AD_GROUP = [
    octets("CN=Engineering,OU=Groups,OU=NY,DC=corp,DC=example,DC=test"),
    seq(
        attribute("objectClass", "top", "group"),
        attribute("objectGUID", bytes(reversed(GUID))),
        attribute("groupType", "-2147483646"),
        attribute("mail", "engineering@example.com"),
        attribute("member;range=0-1", "CN=Alice Anders,OU=People,OU=NY,DC=corp,DC=example,DC=test",
                  "<GUID=7a1306d27a8341109b307f5b6c102f77>;<SID=0105>;CN=Carol Chen,OU=People,DC=corp,DC=example,DC=test"),
        attribute("member;range=2-*", "CN=Zoë Ærø,OU=People,OU=NY,DC=corp,DC=example,DC=test"),
    ),
]
LDAP_USER = [
    octets("uid=alice,ou=people,dc=dirsync,dc=test"),
    seq(
        attribute("objectClass", "inetOrgPerson", "mailRecipient"),
        attribute("entryUUID", "d206137a-837a-1041-9b30-7f5b6c102f77"),
        attribute("uid", "alice"),
        attribute("cn", "Alice Anders"),
        attribute("mail", "alice@example.com"),
        attribute("mailAlternateAddress", "a.anders@example.com", "smtp:al@example.com"),
        attribute("departmentNumber", "R&D"),
        attribute("pwdAccountLockedTime", "000001010000Z"),
    ),
]
LDAP_GROUP = [
    octets("cn=engineering,ou=groups,dc=dirsync,dc=test"),
    seq(
        attribute("objectClass", "groupOfNames"),
        attribute("entryUUID", "e206137a-837a-1041-9b30-7f5b6c102f77"),
        attribute("cn", "engineering"),
        attribute("member", "uid=alice,ou=people,dc=dirsync,dc=test", "uid=carol,ou=people,dc=dirsync,dc=test"),
    ),
]


def control(oid, value=None, critical=False):
    parts = [octets(oid)]
    if critical:
        parts.append(tlv(0x01, b"\xff"))
    if value is not None:
        parts.append(octets(value))
    return seq(*parts)


def message(msgid, op, controls=()):
    parts = [integer(msgid), op]
    if controls:
        parts.append(tlv(0xA0, b"".join(controls)))
    return seq(*parts)


def entry(contents, msgid=2, controls=()):
    return message(msgid, tlv(0x64, b"".join(contents)), controls)


def done(rc=0, text="", controls=()):
    op = tlv(0x65, tlv(0x0A, bytes([rc])) + octets("") + octets(text))
    return message(2, op, controls)


PAGED = control("1.2.840.113556.1.4.319", seq(integer(0), octets(b"\x01\x02\x03\x04")))
DIRSYNC_RESPONSE = seq(integer(1), integer(0), octets(b"\x4d\x53\x44\x53" + bytes(60)))
DIRSYNC = control("1.2.840.113556.1.4.841", DIRSYNC_RESPONSE)
COOKIE = b"rid=000,csn=20261203153449.423587Z#000000#000#000000"
SYNC_STATE = seq(tlv(0x0A, b"\x01"), octets(bytes(16)), octets(COOKIE))
SYNC_DONE = seq(octets(COOKIE), tlv(0x01, b"\xff"))
SYNC_INFO_IDSET = tlv(0xA3, tlv(0x01, b"\xff") + tlv(0x31, octets(bytes(range(16))) + octets(bytes(16))))
SYNC_INFO_COOKIE = tlv(0x80, COOKIE)
INTERMEDIATE = message(2, tlv(0x79, tlv(0x80, b"1.3.6.1.4.1.4203.1.9.1.4") + tlv(0x81, SYNC_INFO_IDSET)))
NOTICE = message(0, tlv(0x78, tlv(0x0A, b"\x34") + octets("") + octets("server shutting down")) + tlv(0x8A, b"1.3.6.1.4.1.1466.20036"))


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, value):
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


def lz4_literals(data):
    """An LZ4 block of literals only (valid, uncompressed), its decoded
    length first as dirsync sends it."""
    n = len(data)
    if n < 15:
        token = bytes([n << 4])
    else:
        rest, extra = n - 15, bytearray()
        while rest >= 255:
            extra.append(255)
            rest -= 255
        extra.append(rest)
        token = bytes([0xF0]) + bytes(extra)
    return struct.pack("<I", n) + token + data


def bus_entry(kind, guid, dn, mail, proxies=(), members=(), part=0):
    out = field(1, kind) + field(2, guid) + field(3, dn) + field(6, mail)
    out += b"".join(field(7, p) for p in proxies)
    out += field(8, "Alice Anders")
    out += b"".join(field(18, m) for m in members)
    if part:
        out += field(23, part)
    return out


BATCH = field(1, 3) + field(2, bus_entry(1, "d206137a-837a-1041-9b30-7f5b6c102f77",
                                          "CN=Alice,OU=People,DC=corp,DC=test", "alice@example.com",
                                          ["SMTP:alice@example.com", "smtp:al@example.com", "X500:/o=x"])) \
    + field(2, bus_entry(2, "e206137a-837a-1041-9b30-7f5b6c102f77", "CN=Eng,OU=Groups,DC=corp,DC=test",
                         "eng@example.com", members=["CN=Alice,OU=People,DC=corp,DC=test"])) \
    + field(2, bus_entry(2, "e206137a-837a-1041-9b30-7f5b6c102f77", "", "",
                         members=["CN=Bob,OU=People,DC=corp,DC=test"], part=1))

SETTINGS = b"".join([
    field(1, "Head office AD"), field(2, "New York"), field(3, "dc1.corp.example.com"),
    field(4, "dc2.corp.example.com"), field(6, 636), field(8, "CN=sync,OU=Service,DC=corp,DC=example,DC=com"),
    field(9, "OU=New York,DC=corp,DC=example,DC=com"), field(11, "example.com,example.org"),
    field(13, 10),
])


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def main():
    for name, contents in [("ad-user", AD_USER), ("ad-group", AD_GROUP), ("ldap-user", LDAP_USER), ("ldap-group", LDAP_GROUP)]:
        write("search_entry", name, b"".join(contents))
        write("ldap_message", name, entry(contents))
    write("ldap_message", "stream", entry(AD_USER) + entry(AD_GROUP, controls=[control("1.3.6.1.4.1.4203.1.9.1.2", SYNC_STATE)])
          + INTERMEDIATE + done(controls=[PAGED, DIRSYNC]))
    write("ldap_message", "done-dirsync", done(controls=[DIRSYNC]))
    write("ldap_message", "done-syncdone", done(controls=[control("1.3.6.1.4.1.4203.1.9.1.3", SYNC_DONE)]))
    write("ldap_message", "refused", done(rc=8, text="00002028: LdapErr: DSID-0C090259, comment: The server requires binds to turn on integrity checking"))
    write("ldap_message", "notice", NOTICE)
    write("sync_controls", "dirsync", DIRSYNC_RESPONSE)
    write("sync_controls", "state", SYNC_STATE)
    write("sync_controls", "done", SYNC_DONE)
    write("sync_controls", "idset", SYNC_INFO_IDSET)
    write("sync_controls", "newcookie", SYNC_INFO_COOKIE)
    write("sync_controls", "entry-tree", tlv(0x64, b"".join(AD_USER)))
    write("sync_controls", "extended-dn", b"<GUID=7a1306d27a8341109b307f5b6c102f77>;<SID=010500000000000515000000>;CN=Alice,DC=corp,DC=test")
    write("sync_controls", "time", b"20261205081500.0Z")
    write("sync_controls", "csn", COOKIE + b"\n20261203160000.000000Z#000000#000#000000")
    write("dn_and_addresses", "ad", "CN=Zoë Ærø\\, Jr.,OU=People+CN=x,DC=corp,DC=example,DC=test\nzoe@example.com\nSMTP:zoe@example.com\nsmtp:z@example.com\nX500:/o=Org\nCN=Eng,OU=Groups,DC=corp,DC=test".encode())
    write("dn_and_addresses", "ldap", b"uid=alice,ou=people,dc=dirsync,dc=test\nalice@example.com\nsmtp:al@example.com\n1.2.3.4=#04024869")
    write("dn_and_addresses", "guid", b"d206137a-837a-1041-9b30-7f5b6c102f77")
    write("bus_batch", "batch", BATCH)
    write("bus_batch", "batch-lz4", lz4_literals(BATCH))
    write("bus_batch", "staged-event", field(1, "acme") + field(3, "run") + field(4, 1) + field(13, lz4_literals(BATCH)))
    write("bus_batch", "job", field(1, "acme") + field(6, field(10, 2) + field(11, field(1, "inetOrgPerson") + field(2, "groupOfNames"))))
    write("settings", "api", SETTINGS)
    write("settings", "json", b'{"name":"Head office AD","host":"dc1.corp.example.com","port":636,"encryption":"strict","user_dn":"CN=sync,DC=corp,DC=example,DC=com","root_dn":"DC=corp,DC=example,DC=com","maximum_sync_deletions":10}')
    write("settings", "schedule", b"Europe/London|08:00,13:00,23:00")
    write("settings", "schedule-dst", b"America/New_York|02:30,01:30")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Writes an AD-shaped benchmark directory as LDIF for slapadd (OpenLDAP,
inetOrgPerson + mailRecipient with proxyAddresses) or ldapadd (Samba AD).

Every user has a display name, given name, surname, mail, 3-6
proxyAddresses, department, title, phone and a manager (the first user of
their team of ten). Every 50 users form a group; a few large groups hold
the first 5k, 20k and 50k users (those that fit).

    gen_ldif.py --users N --base BASE [--flavour openldap|ad] > file.ldif

The entries are written below BASE (which must already exist), under
ou=people/OU=People and ou=groups/OU=Groups.
"""

import argparse
import sys

GIVEN = ["Ada", "Ben", "Chloe", "Dev", "Ella", "Finn", "Grace", "Hugo", "Iris", "Jon",
         "Kira", "Liam", "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sam", "Tara"]
SUR = ["Adams", "Baker", "Clark", "Diaz", "Evans", "Fox", "Garcia", "Hill", "Ito", "Jones",
       "Khan", "Lopez", "Moore", "Nagy", "Ortiz", "Patel", "Quist", "Reyes", "Smith", "Tanaka"]
TITLES = ["Engineer", "Analyst", "Manager", "Designer", "Consultant", "Administrator"]
BIG_GROUPS = [5_000, 20_000, 50_000]
TEAM = 10
GROUP = 50


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--base", required=True)
    p.add_argument("--flavour", choices=["openldap", "ad"], default="openldap")
    a = p.parse_args()
    ad = a.flavour == "ad"
    out = sys.stdout
    w = out.write
    if ad:
        people, groups = f"OU=People,{a.base}", f"OU=Groups,{a.base}"
        w(f"dn: {people}\nobjectClass: organizationalUnit\n\n")
        w(f"dn: {groups}\nobjectClass: organizationalUnit\n\n")
    else:
        people, groups = f"ou=people,{a.base}", f"ou=groups,{a.base}"
        w(f"dn: {people}\nobjectClass: organizationalUnit\nou: people\n\n")
        w(f"dn: {groups}\nobjectClass: organizationalUnit\nou: groups\n\n")

    def user_dn(i: int) -> str:
        return f"CN=u{i:07d},{people}" if ad else f"uid=u{i:07d},{people}"

    for i in range(a.users):
        given, sur = GIVEN[i % len(GIVEN)], SUR[(i // len(GIVEN)) % len(SUR)]
        uid = f"u{i:07d}"
        mail = f"{uid}@bench.example.com"
        proxies = [f"SMTP:{mail}", f"smtp:{given.lower()}.{sur.lower()}.{i}@bench.example.com",
                   f"X500:/o=Bench/ou=Exchange/cn=Recipients/cn={uid}"]
        extra = i % 4  # 3-6 values
        proxies += [f"smtp:{uid}.{n}@bench.example.org" for n in range(extra)]
        lines = [f"dn: {user_dn(i)}"]
        if ad:
            lines += ["objectClass: user", f"sAMAccountName: {uid}",
                      f"userPrincipalName: {uid}@bench.example.com", "userAccountControl: 514",
                      f"department: Department {i % 40}", f"company: Bench {i % 7}"]
        else:
            lines += ["objectClass: inetOrgPerson", "objectClass: mailRecipient", f"uid: {uid}",
                      f"cn: {given} {sur} {i}", f"departmentNumber: Department {i % 40}",
                      f"o: Bench {i % 7}"]
        lines += [f"displayName: {given} {sur} {i}", f"givenName: {given}", f"sn: {sur}",
                  f"mail: {mail}", *[f"proxyAddresses: {x}" for x in proxies],
                  f"title: {TITLES[i % len(TITLES)]}", f"telephoneNumber: +1 555 {i:07d}"]
        lead = i - i % TEAM
        if lead != i:
            lines.append(f"manager: {user_dn(lead)}")
        w("\n".join(lines) + "\n\n")

    def group(name: str, members: range, mail: str) -> None:
        dn = f"CN={name},{groups}" if ad else f"cn={name},{groups}"
        lines = [f"dn: {dn}"]
        if ad:
            lines += ["objectClass: group", f"sAMAccountName: {name}", "groupType: -2147483646"]
        else:
            lines += ["objectClass: groupOfNames", "objectClass: mailRecipient", f"cn: {name}"]
        lines += [f"displayName: {name}"] if ad else []
        lines.append(f"mail: {mail}")
        lines += [f"member: {user_dn(m)}" for m in members]
        w("\n".join(lines) + "\n\n")

    for g in range((a.users + GROUP - 1) // GROUP):
        group(f"team{g:06d}", range(g * GROUP, min(a.users, (g + 1) * GROUP)),
              f"team{g:06d}@bench.example.com")
    for size in BIG_GROUPS:
        if size <= a.users:
            group(f"all{size}", range(size), f"all{size}@bench.example.com")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes RELIABILITY.md from what the tests and the fuzzer recorded:

- target/reliability/*.json: one per fault or bad-input scenario, written
  by the integration test that injected it (dirsync_tests::Reliability),
  during the last run of the suite (bash tests/run.sh);
- tests/fuzz/results.tsv: one row per fuzzing run (bash tests/fuzz/run.sh),
  of which the latest per target is shown.

Nothing in the tables is typed by hand: run the suite and the fuzzer,
then this, and commit RELIABILITY.md with what it shows.

    python3 tests/reliability/report.py [--check]

--check fails when a scenario the tests define left no record (the suite
was not run whole, or a test stopped recording).
"""
import csv
import glob
import json
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def scenarios():
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "target", "reliability", "*.json"))):
        with open(path, encoding="utf-8") as f:
            rec = json.load(f)
        rec["_mtime"] = os.path.getmtime(path)
        out.append(rec)
    out.sort(key=lambda r: r["scenario"])
    return out


def fuzz_rows():
    path = os.path.join(ROOT, "tests", "fuzz", "results.tsv")
    if not os.path.exists(path):
        return []
    latest = {}
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            latest[row["target"]] = row
    return list(latest.values())


def main():
    recs = scenarios()
    fuzz = fuzz_rows()
    # The revision the suite ran at (tests/run.sh writes it), + when its
    # work tree differed.
    rev_file = os.path.join(ROOT, "target", "reliability", "revision")
    if os.path.exists(rev_file):
        revision = open(rev_file, encoding="utf-8").read().strip()
    else:
        revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                  capture_output=True, text=True).stdout.strip() + " (run outside tests/run.sh)"
    lines = [
        "# Reliability",
        "",
        "What was done to dirsync to make it fail, and what held. Written by",
        "`tests/reliability/report.py` from the records the integration tests",
        "write as they inject each fault (`target/reliability/`) and from the",
        "fuzzer's results (`tests/fuzz/results.tsv`); regenerate it after",
        "`bash tests/run.sh` and `bash tests/fuzz/run.sh`.",
        "",
        f"Tests recorded at revision {revision}.",
        "",
        "## Faults and bad input",
        "",
        "Each scenario ends with the store compared with the directory it",
        "should hold: *compared* counts the objects checked, *duplicates* the",
        "objects or changes applied twice, *lost* those missing.",
        "",
        "| scenario | injected | times | runs settled | compared | duplicates | lost | recovery | what held |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in recs:
        settled = r["runs_settled"]
        recovery = f"{r['recovery_seconds']:.1f} s" if r["recovery_seconds"] else "—"
        lines.append("| " + " | ".join(cell(x) for x in [
            r["scenario"], r["injected"], r["times"], f"{settled[0]}/{settled[1]}",
            r["objects_compared"], r["duplicates"], r["lost"], recovery, r["held"],
        ]) + " |")
    if not recs:
        lines.append("| (no records: run `bash tests/run.sh` first) | | | | | | | | |")
    load = os.path.join(ROOT, "target", "reliability", "grpc-load.md")
    lines += [
        "",
        "## gRPC under load",
        "",
        "A second process (Python grpcio, `tests/bench/grpc_load.sh`) drives",
        "the gateway with many clients at once, each on its own connection,",
        "mixing directory reads, run and integration reads, Authenticate (half",
        "with a wrong password: the sign-in limits answer `RATE_LIMITED`, as",
        "documented) and Test Connection. Any error status fails the run.",
        "",
    ]
    if os.path.exists(load):
        with open(load, encoding="utf-8") as f:
            lines += f.read().rstrip("\n").split("\n")
    else:
        lines.append("(no result: run `bash tests/bench/grpc_load.sh`)")
    lines += [
        "",
        "## Fuzzing",
        "",
        "Coverage-guided fuzzing (libFuzzer through `cargo fuzz`, with",
        "AddressSanitizer) of what dirsync reads from untrusted peers; an",
        "allocation over 64 MB, over 1 GB resident or an input running over",
        "10 s counts as a crash. Corpora are committed under",
        "`tests/fuzz/corpus/`; crashes found became regression tests",
        "(`shared/ldap/src/hostile.rs`).",
        "",
        "| target | reads | seconds | executions | exec/s | edges | features | corpus | crashes | run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    reads = {
        "ldap_message": "a server's bytes through the connection's decoder (vendored ldap3) and the collector's entry reader",
        "search_entry": "a search entry into a bus entry (AD and generic LDAP) and a directory object",
        "sync_controls": "DirSync and RFC 4533 control values, extended DNs, directory times",
        "dn_and_addresses": "DNs, proxyAddresses and mail values, objectGUIDs",
        "bus_batch": "batches off the bus: LZ4 blocks, staged events, entries as the reconciler reads them; sync jobs",
        "settings": "integration settings (API protobuf, stored JSON), schedules and time zones",
    }
    for row in fuzz:
        lines.append("| " + " | ".join(cell(x) for x in [
            row["target"], reads.get(row["target"], ""), row["seconds"],
            f"{int(row['executions']):,}", row["execs_per_s"], row["edges"], row["features"],
            row["corpus"], row["crashes"], f"{row['date']} {row['revision']}",
        ]) + " |")
    if not fuzz:
        lines.append("| (no results: run `bash tests/fuzz/run.sh`) | | | | | | | | | |")
    lines.append("")
    text = "\n".join(lines)
    with open(os.path.join(ROOT, "RELIABILITY.md"), "w", encoding="utf-8") as f:
        f.write(text)
    print(f"RELIABILITY.md: {len(recs)} scenarios, {len(fuzz)} fuzz targets")
    if "--check" in sys.argv and not recs:
        sys.exit("no reliability records: run the suite first")


if __name__ == "__main__":
    main()

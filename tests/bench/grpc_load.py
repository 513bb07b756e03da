#!/usr/bin/env python3
"""gRPC load from a second process: N clients, each on its own channel,
mixing directory reads, run and integration reads, Authenticate and Test
Connection against one gateway for a fixed time; prints per-RPC latency
percentiles, errors by status code, and the gateway process's resident
memory sampled every second. Run by tests/bench/grpc_load.sh.

    grpc_load.py --gateway 127.0.0.1:PORT --token TOKEN --account A
                 --integration ID --pid PID [--clients 200] [--seconds 60]
                 [--address user@example.com --password-file F]
"""
import argparse
import asyncio
import collections
import os
import random
import sys
import time

import grpc

sys.path.insert(0, os.environ["DIRSYNC_GRPC_STUBS"])
from dirsync.v1 import api_pb2 as pb  # noqa: E402
from dirsync.v1 import api_pb2_grpc as rpc  # noqa: E402


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def client(args, n, stop, lat, errors, answers, password):
    rng = random.Random(n)
    meta = (("authorization", f"Bearer {args.token}"),)
    async with grpc.aio.insecure_channel(args.gateway) as channel:
        directory = rpc.DirectoryServiceStub(channel)
        sync = rpc.SyncServiceStub(channel)
        integrations = rpc.IntegrationServiceStub(channel)
        auth = rpc.AuthServiceStub(channel)
        acct = args.account

        async def list_users():
            r = await directory.ListUsers(
                pb.ListObjectsRequest(account_id=acct, page_size=50, query=rng.choice(["", "u000", "Bench"])),
                metadata=meta)
            return "ok"

        async def lookup():
            try:
                await directory.LookupAddress(
                    pb.LookupAddressRequest(account_id=acct, address=f"u{rng.randrange(10000):07d}@bench.example.com"),
                    metadata=meta)
            except grpc.aio.AioRpcError as e:
                if e.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            return "ok"

        async def runs():
            await sync.ListRuns(pb.ListRunsRequest(account_id=acct, integration=args.integration, limit=10), metadata=meta)
            return "ok"

        async def get_integration():
            await integrations.GetIntegration(
                pb.GetIntegrationRequest(account_id=acct, integration=args.integration), metadata=meta)
            return "ok"

        async def authenticate():
            good = password and rng.random() < 0.5
            r = await auth.Authenticate(pb.AuthenticateRequest(
                account_id=acct,
                address=args.address if good else f"u{rng.randrange(10000):07d}@bench.example.com",
                password=password if good else "wrong-password"), metadata=meta)
            return pb.AuthResult.Name(r.result)

        async def test_connection():
            steps = 0
            async for _ in integrations.TestConnection(
                    pb.TestConnectionRequest(account_id=acct, integration=args.integration), metadata=meta):
                steps += 1
            return f"{steps} steps"

        ops = [(list_users, 35), (lookup, 20), (runs, 10), (get_integration, 15),
               (authenticate, 15), (test_connection, 5)]
        names = [f.__name__ for f, _ in ops]
        weights = [w for _, w in ops]
        funcs = dict((f.__name__, f) for f, _ in ops)
        while not stop.is_set():
            name = rng.choices(names, weights)[0]
            t0 = time.perf_counter()
            try:
                answer = await funcs[name]()
                answers[(name, answer)] += 1
            except grpc.aio.AioRpcError as e:
                errors[(name, e.code().name, (e.details() or "")[:80])] += 1
            lat[name].append(time.perf_counter() - t0)


def pct(values, p):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--account", required=True)
    ap.add_argument("--integration", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--address", default="")
    ap.add_argument("--password-file", default="")
    args = ap.parse_args()
    password = open(args.password_file).read().strip() if args.password_file else ""
    lat = collections.defaultdict(list)
    errors = collections.Counter()
    answers = collections.Counter()
    stop = asyncio.Event()
    rss = [rss_mb(args.pid)]

    async def sampler():
        while not stop.is_set():
            await asyncio.sleep(1)
            rss.append(rss_mb(args.pid))

    tasks = [asyncio.create_task(client(args, n, stop, lat, errors, answers, password))
             for n in range(args.clients)]
    sample = asyncio.create_task(sampler())
    t0 = time.perf_counter()
    await asyncio.sleep(args.seconds)
    stop.set()
    await asyncio.gather(*tasks)
    await sample
    elapsed = time.perf_counter() - t0
    total = sum(len(v) for v in lat.values())
    print(f"{args.clients} clients, {elapsed:.0f} s, {total} calls, {total / elapsed:.0f} calls/s; "
          f"gateway RSS {rss[0]:.0f} MB before, {max(rss):.0f} MB peak, {rss[-1]:.0f} MB at the end")
    print()
    print("| RPC | calls | p50 | p99 | max | answers | errors |")
    print("|---|---|---|---|---|---|---|")
    for name in sorted(lat):
        v = lat[name]
        ans = ", ".join(f"{a} {n}" for (op, a), n in sorted(answers.items()) if op == name)
        err = ", ".join(f"{code} {n}" for (op, code, _), n in sorted(errors.items()) if op == name) or "0"
        print(f"| {name} | {len(v)} | {pct(v, 50) * 1000:.1f} ms | {pct(v, 99) * 1000:.1f} ms | "
              f"{max(v) * 1000:.1f} ms | {ans} | {err} |")
    if errors:
        print()
        for (op, code, detail), n in sorted(errors.items()):
            print(f"- {op}: {code} ×{n}: {detail}")
    return 1 if any(code != "RESOURCE_EXHAUSTED" for (_, code, _) in errors) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

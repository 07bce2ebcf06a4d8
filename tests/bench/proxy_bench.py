#!/usr/bin/python3
"""tape-proxy's overhead (docs/benchmarks.md, "The proxy"): the round-trip
latency of small requests (MCP ping) from the SDK client to server-everything
through tape-proxy, against the same client talking to the server directly,
measured in the same run, and against the least any stdio proxy adds:
tape-bench-relay (proxy_bench.c), two threads copying bytes, no recording.

    proxy_bench.py [--quick] [--requests N] [--rounds R] [--dir DIR]

Each round runs the client once directly, once through the bare relay and
once through tape-proxy (the order rotating from round to round), each
sending N/R pings one after the other; the proxy records into a
filesystem store with the default durability. Printed: the median round
trip of each (over all rounds), tape-proxy's ratio to the direct one (goal:
under 1.1x) and to the relay, and the latency it adds per round trip and
per message (a round trip is two messages). The tapes are checked
afterwards: every ping and its answer recorded and correlated. --quick
(ctest bench_proxy_quick) sends 400 pings: a check that it runs and
records, not a timing.

Needs TAPE_PROXY and TAPE_BENCH_RELAY (the programs), PYTHONPATH to the
Python binding, and node_modules from npm ci (TAPE_NODE_MODULES, default:
the source tree's).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import tapestore

ROOT = Path(__file__).resolve().parents[2]
NODE = os.environ.get("TAPE_NODE", "node")
NODE_MODULES = Path(os.environ.get("TAPE_NODE_MODULES", ROOT / "node_modules"))
SERVER = [NODE, str(NODE_MODULES / "@modelcontextprotocol/server-everything/dist/index.js"),
          "stdio"]
CLIENT = [NODE, str(ROOT / "examples/c-proxy/mcp_client.mjs")]
ENV = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "TAPESTORE_STORE")}


def pings(n, command):
    r = subprocess.run(CLIENT + ["--only-pings", "--pings", str(n), "--"] + command,
                       capture_output=True, timeout=600, env=ENV)
    if r.returncode != 0:
        sys.exit(f"proxy_bench: the client failed ({r.returncode}): {r.stderr.decode()}")
    return json.loads(r.stdout)["ping_rtt_us"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="400 pings, 2 rounds: checks it runs")
    ap.add_argument("--requests", type=int, default=10000, help="pings per side (default 10000)")
    ap.add_argument("--rounds", type=int, default=4, help="rounds the pings are split into")
    ap.add_argument("--dir", default=None, help="scratch directory (default: a temporary one)")
    a = ap.parse_args()
    if a.quick:
        a.requests, a.rounds = 400, 2
    if a.requests < a.rounds or a.rounds < 1:
        ap.error("--requests must be at least --rounds, and --rounds at least 1")
    proxy = os.environ.get("TAPE_PROXY", "tape-proxy")
    scratch = Path(tempfile.mkdtemp(prefix="proxy-bench-", dir=a.dir))
    try:
        spec = "filesystem:" + json.dumps({"path": str(scratch / "tapes")})
        per_round = a.requests // a.rounds
        relay = os.environ.get("TAPE_BENCH_RELAY", "tape-bench-relay")
        modes = [("direct", SERVER), ("relay", [relay, "--"] + SERVER),
                 ("proxy", [proxy, "--store", spec, "--"] + SERVER)]
        rtt = {name: [] for name, _ in modes}
        for i in range(a.rounds):
            for name, command in modes[i % 3:] + modes[:i % 3]:
                rtt[name].extend(pings(per_round, command))
                print(f"proxy_bench: round {i + 1}/{a.rounds}: {name} done", file=sys.stderr)
        direct, through = rtt["direct"], rtt["proxy"]

        # Every ping through the proxy is on a tape, answered and correlated.
        with tapestore.open(spec) as store:
            entries = list(store.query())
            if len(entries) != a.rounds:
                sys.exit(f"proxy_bench: expected {a.rounds} tapes, found {len(entries)}")
            for e in entries:
                t = store.load(e.id)
                ping_frames = [f for f in t.frames() if b'"method":"ping"' in f.raw]
                corr = [c for c in t.correlations if c.status == "ok"]
                if t.status != tapestore.FINALIZED or len(ping_frames) != per_round or \
                        len(corr) != per_round + 1:      # + initialize
                    sys.exit(f"proxy_bench: tape {e.id}: status {t.status}, "
                             f"{len(ping_frames)} pings, {len(corr)} correlations; "
                             f"expected {per_round} pings answered")

        md, mp = statistics.median(direct), statistics.median(through)
        mr = statistics.median(rtt["relay"])
        ratio = mp / md
        fig = {"figure": "proxy_ping_rtt", "requests": len(through), "us_per_op": round(mp, 2),
               "baseline": "direct_ping_rtt", "baseline_us_per_op": round(md, 2),
               "ratio": round(ratio, 4), "added_us_per_round_trip": round(mp - md, 2),
               "added_us_per_message": round((mp - md) / 2, 2),
               "relay_us_per_op": round(mr, 2), "ratio_to_relay": round(mp / mr, 4),
               "added_us_per_message_over_relay": round((mp - mr) / 2, 2),
               "p90_us": round(statistics.quantiles(through, n=10)[-1], 2),
               "baseline_p90_us": round(statistics.quantiles(direct, n=10)[-1], 2),
               "goal": "<1.1", "goal_met": ratio < 1.1}
        print(json.dumps(fig, separators=(",", ":")))
        print(f"  median round trip: direct {md:.1f} us, bare relay {mr:.1f} us, through "
              f"tape-proxy {mp:.1f} us: {ratio:.3f}x direct (goal < 1.1x), {mp / mr:.3f}x the "
              f"relay; added {(mp - md) / 2:.1f} us per message ({(mp - mr) / 2:.1f} us over "
              f"the relay)", file=sys.stderr)
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

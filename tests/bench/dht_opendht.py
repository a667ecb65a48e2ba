#!/usr/bin/python3
"""OpenDHT half of tests/bench/dht.sh: N OpenDHT nodes on loopback in one
process; times N-node puts (until done) and gets (until the first value) for
a set of keys, and prints one JSON line like kadsip-dht-bench --json."""
import argparse
import json
import random
import resource
import threading
import time

import opendht as dht


def quantile(v, p):
    v = sorted(v)
    i = max(1, min(len(v), int(-(-len(v) * p // 1)))) - 1
    return round(v[i], 3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=50)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--port", type=int, default=24000)
    a = ap.parse_args()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    nodes = []
    for i in range(a.nodes):
        n = dht.DhtRunner()
        n.run(port=a.port + i)
        if i:
            n.bootstrap("127.0.0.1", str(a.port))
        nodes.append(n)
    # Let the routing tables fill (OpenDHT has no routing-table size in its
    # Python API; a get from every node for a probe key warms them up).
    time.sleep(min(2 + a.nodes * 0.05, 15))
    for n in nodes:
        n.get(dht.InfoHash.get("warm-up"))
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) * 1024
    rnd = random.Random(7)
    keys = [dht.InfoHash.get("k%d-%d" % (i, rnd.random() * 1e9)) for i in range(a.keys)]
    puts, gets, found = [], [], 0
    for i, k in enumerate(keys):
        done = threading.Event()
        ok = []
        t = time.perf_counter()
        nodes[i % a.nodes].put(k, dht.Value(b"sip:k%d@192.0.2.1" % i), lambda s, _n: (ok.append(s), done.set()))
        done.wait(2)
        puts.append((time.perf_counter() - t) * 1000)
    for i, k in enumerate(keys):
        first = threading.Event()
        stamp = []

        def on_value(v, stamp=stamp, first=first):
            if not stamp:
                stamp.append(time.perf_counter())
                first.set()
            return False

        t = time.perf_counter()
        nodes[(i + a.nodes // 2 + 1) % a.nodes].get(k, on_value, lambda s, _n, first=first: first.set())
        first.wait(2)
        if stamp:
            found += 1
            gets.append((stamp[0] - t) * 1000)
        else:
            gets.append((time.perf_counter() - t) * 1000)
    for n in nodes:
        n.join()
    print(json.dumps({
        "overlay": "opendht",
        "nodes": a.nodes,
        "keys": a.keys,
        "put_ms": {"p50": quantile(puts, 0.5), "p99": quantile(puts, 0.99)},
        "get_ms": {"p50": quantile(gets, 0.5), "p99": quantile(gets, 0.99)},
        "found": found,
        "rss_bytes_per_node": rss // max(1, a.nodes),
    }))


if __name__ == "__main__":
    main()

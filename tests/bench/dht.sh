#!/usr/bin/env bash
# DHT put/get on kadsip's overlay vs OpenDHT, same N, same keys count, on
# loopback, in one run. Prints both and the ratios (kadsip / OpenDHT).
#   tests/bench/dht.sh            # N=50, 1,000 keys
#   NODES=200 KEYS=500 tests/bench/dht.sh
#   REPLICATION=8 tests/bench/dht.sh   # kadsip stores at 8 peers, as OpenDHT does
set -euo pipefail
cd "$(dirname "$0")/../.."
NODES=${NODES:-50}
KEYS=${KEYS:-1000}
REPLICATION=${REPLICATION:-20}
if ! /usr/bin/python3 -c 'import opendht' 2>/dev/null; then
    echo "error: OpenDHT's Python bindings are missing: apt-get install -y python3-opendht" >&2
    exit 1
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p kadsip-sim --bin kadsip-dht-bench
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "kadsip: $NODES nodes, $KEYS keys, records at $REPLICATION peers ..." >&2
"$CARGO_TARGET_DIR/release/kadsip-dht-bench" --nodes "$NODES" --keys "$KEYS" --replication "$REPLICATION" --json > "$out/kadsip.json"
echo "OpenDHT: $NODES nodes, $KEYS keys ..." >&2
/usr/bin/python3 tests/bench/dht_opendht.py --nodes "$NODES" --keys "$KEYS" --port $((30000 + RANDOM % 20000)) > "$out/opendht.json"
/usr/bin/python3 - "$out/kadsip.json" "$out/opendht.json" <<'PY'
import json, sys
k, o = (json.load(open(p)) for p in sys.argv[1:3])
print(f"DHT put/get, N={k['nodes']}, {k['keys']} keys, loopback; kadsip stores at {k['replication']} peers, OpenDHT at 8")
print("get = until the lookup answers (kadsip: two agreeing valid records; OpenDHT: first value);")
print("first = until the first valid (signature-checked) record, the same point OpenDHT's get is timed at")
print(f"{'':10}{'put p50':>10}{'put p99':>10}{'get p50':>10}{'get p99':>10}{'first p50':>11}{'first p99':>11}{'found':>8}{'KB/node':>10}")
ms = lambda x: '-' if x is None else x  # null: no lookup found a valid record
for r in (k, o):
    first = r.get('get_first_ms', r['get_ms'])
    print(f"{r['overlay']:10}{ms(r['put_ms']['p50']):>10}{ms(r['put_ms']['p99']):>10}{ms(r['get_ms']['p50']):>10}"
          f"{ms(r['get_ms']['p99']):>10}{ms(first['p50']):>11}{ms(first['p99']):>11}{r['found']:>8}{r['rss_bytes_per_node'] // 1024:>10}")
ratio = lambda a, b: a / b if a is not None and b else float('nan')
print(f"ratio kadsip/OpenDHT: put p50 {ratio(k['put_ms']['p50'], o['put_ms']['p50']):.2f}x"
      f"  get p50 {ratio(k['get_ms']['p50'], o['get_ms']['p50']):.2f}x"
      f"  first-value get p50 {ratio(k['get_first_ms']['p50'], o['get_ms']['p50']):.2f}x"
      f"   (goal: put <= 2x, get <= 1x)")
PY

# Shared helpers for tests/bench/register.sh and tests/bench/call.sh.
# Sourced, not run. Everything binds and sends to 127.0.0.1 only.

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/../.." && pwd)"
KADSIP_BIN="${KADSIP_BIN:-${CARGO_TARGET_DIR:-$REPO_DIR/target}/release/kadsip}"
KAMAILIO_BIN="${KAMAILIO_BIN:-$(command -v kamailio || echo /usr/sbin/kamailio)}"
KADSIP_LOG_LEVEL="${BENCH_KADSIP_LOG:-warn}"
BENCH_QUICK="${BENCH_QUICK:-0}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need_tools() {
    local missing=() t
    command -v sipp >/dev/null || missing+=("sipp (apt-get install -y sip-tester)")
    [ -x "$KAMAILIO_BIN" ] || missing+=("kamailio (apt-get install -y kamailio)")
    command -v tshark >/dev/null || missing+=("tshark (apt-get install -y tshark)")
    command -v curl >/dev/null || missing+=("curl (apt-get install -y curl)")
    /usr/bin/python3 -c 'import json' 2>/dev/null || missing+=("python3 (apt-get install -y python3)")
    for t in "$@"; do
        case "$t" in
        opendht) /usr/bin/python3 -c 'import opendht' 2>/dev/null ||
            missing+=("python3-opendht (apt-get install -y python3-opendht)") ;;
        esac
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        printf 'error: missing tools:\n' >&2
        printf '  - %s\n' "${missing[@]}" >&2
        printf 'install with: apt-get install -y sip-tester kamailio tshark curl python3 python3-opendht\n' >&2
        exit 2
    fi
    [ -x "$KADSIP_BIN" ] || die "no kadsip binary at $KADSIP_BIN; build it with: cargo build --release -p kadsip-node (or set KADSIP_BIN)"
}

# --- process bookkeeping: every background process we start is killed on exit.
BENCH_PIDS=()
BENCH_TMP=""
bench_init() {
    BENCH_TMP="$(mktemp -d "${TMPDIR:-/tmp}/kadsip-bench.XXXXXX")"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}
bench_cleanup() {
    local rc=$? p
    for p in "${BENCH_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${BENCH_PIDS[@]}"; do
        # bounded wait, then SIGKILL
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    if [ -n "$BENCH_TMP" ] && [ -d "$BENCH_TMP" ]; then
        if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
            log "kept work dir $BENCH_TMP"
        else
            rm -rf "$BENCH_TMP"
        fi
    fi
}
stop_pid() { # stop one process we started, bounded
    local p="$1"
    kill "$p" 2>/dev/null || return 0
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
}

# A free loopback port (UDP and TCP both free). Ports handed out once per run.
declare -A BENCH_USED_PORTS=()
free_port() {
    local p
    while :; do
        p="$(/usr/bin/python3 - <<'EOF'
import socket
t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", p))
print(p)
EOF
)" || continue
        [ -z "${BENCH_USED_PORTS[$p]:-}" ] && break
    done
    BENCH_USED_PORTS[$p]=1
    echo "$p"
}

# --- kadsip overlay -----------------------------------------------------
# start_overlay N EXTRA_ARGS...: starts N nodes; fills NODE_SIP[i], NODE_HTTP[i], NODE_PID[i] (1-based)
declare -a NODE_SIP NODE_HTTP NODE_PID
BOOT_ADDR=""
wait_healthz() {
    local http="$1" pid="$2" logf="$3"
    for _ in $(seq 200); do
        if curl -fsS "http://$http/healthz" >/dev/null 2>&1; then return 0; fi
        kill -0 "$pid" 2>/dev/null || { tail -20 "$logf" >&2; die "kadsip node exited during start-up (log: $logf)"; }
        sleep 0.1
    done
    tail -20 "$logf" >&2
    die "kadsip node on $http did not answer /healthz within 20 s"
}
start_overlay() {
    local n="$1"; shift
    local i dir logf args
    for i in $(seq 1 "$n"); do
        dir="$BENCH_TMP/node$i"; mkdir -p "$dir"
        logf="$BENCH_TMP/node$i.log"
        NODE_SIP[$i]="127.0.0.1:$(free_port)"
        NODE_HTTP[$i]="127.0.0.1:$(free_port)"
        args=(node --data-dir "$dir" --open --no-mdns --sip "${NODE_SIP[$i]}" --http "${NODE_HTTP[$i]}"
            --p2p /ip4/127.0.0.1/tcp/0 "$@")
        [ "$i" -gt 1 ] && args+=(--bootstrap "$BOOT_ADDR")
        KADSIP_LOG="$KADSIP_LOG_LEVEL" "$KADSIP_BIN" "${args[@]}" >"$logf" 2>&1 &
        NODE_PID[$i]=$!
        BENCH_PIDS+=("${NODE_PID[$i]}")
        wait_healthz "${NODE_HTTP[$i]}" "${NODE_PID[$i]}" "$logf"
        if [ "$i" -eq 1 ]; then
            BOOT_ADDR="$(curl -fsS "http://${NODE_HTTP[1]}/status" | /usr/bin/python3 -c '
import json, sys
addrs = json.load(sys.stdin)["listen_addrs"]
lo = [a for a in addrs if a.startswith("/ip4/127.0.0.1/tcp/") and "/p2p/" in a]
print(lo[0] if lo else "")')"
            [ -n "$BOOT_ADDR" ] || die "node 1 reports no /ip4/127.0.0.1/tcp/.../p2p/... listen address"
        fi
    done
    # Wait until every node is connected to the other n-1.
    local ok=0 counts
    for _ in $(seq 150); do
        ok=1; counts=""
        for i in $(seq 1 "$n"); do
            local pr
            pr="$(curl -fsS "http://${NODE_HTTP[$i]}/status" | /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)
p, rt = s.get("peers"), s.get("routing_table")
n = lambda v: len(v) if isinstance(v, list) else int(v or 0)
print(n(p), n(rt))')"
            counts+="${pr/ //} "
            [ "${pr%% *}" -ge $((n - 1)) ] || ok=0
        done
        [ "$ok" = 1 ] && break
        sleep 0.2
    done
    [ "$ok" = 1 ] || log "warning: not every node is connected to the other $((n - 1)) after 30 s (peers/routing table: $counts)"
    log "overlay of $n kadsip nodes up (node 1: sip ${NODE_SIP[1]}, $BOOT_ADDR)"
}
stop_overlay() {
    local i
    for i in "${!NODE_PID[@]}"; do stop_pid "${NODE_PID[$i]}"; done
    NODE_PID=(); NODE_SIP=(); NODE_HTTP=()
}
check_overlay_alive() {
    local i
    for i in "${!NODE_PID[@]}"; do
        kill -0 "${NODE_PID[$i]}" 2>/dev/null || {
            local st=0
            wait "${NODE_PID[$i]}" 2>/dev/null || st=$?
            tail -30 "$BENCH_TMP/node$i.log" >&2
            die "kadsip node $i (pid ${NODE_PID[$i]}) died, exit status $st$([ "$st" -gt 128 ] && echo " (signal $((st - 128)))"); log: $BENCH_TMP/node$i.log"
        }
    done
}

# --- Kamailio -------------------------------------------------------------
# start_kamailio CFG PORT NAME [-A DEFINE=VALUE ...]
KAM_PID=""
start_kamailio() {
    local cfg="$1" port="$2" name="$3"; shift 3
    local rt="$BENCH_TMP/kam-$name"; mkdir -p "$rt"
    "$KAMAILIO_BIN" -f "$cfg" -c >"$rt/check.log" 2>&1 || { cat "$rt/check.log" >&2; die "kamailio rejects $cfg"; }
    "$KAMAILIO_BIN" -f "$cfg" -DD -E -l "udp:127.0.0.1:$port" -n "${BENCH_KAM_CHILDREN:-2}" \
        -m "${BENCH_KAM_SHM:-1024}" -M 16 -P "$rt/kamailio.pid" -Y "$rt" -w "$rt" "$@" >"$rt/kamailio.log" 2>&1 &
    KAM_PID=$!
    BENCH_PIDS+=("$KAM_PID")
    # ready when it answers OPTIONS
    for _ in $(seq 100); do
        kill -0 "$KAM_PID" 2>/dev/null || { tail -20 "$rt/kamailio.log" >&2; die "kamailio exited at start-up"; }
        if /usr/bin/python3 - "$port" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2); s.bind(("127.0.0.1", 0))
lp = s.getsockname()[1]
m = ("OPTIONS sip:ping@127.0.0.1:%s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKping%d\r\n"
     "From: <sip:ping@bench.example>;tag=1\r\nTo: <sip:ping@bench.example>\r\nCall-ID: ping%d\r\n"
     "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n") % (sys.argv[1], lp, lp, lp)
s.sendto(m.encode(), ("127.0.0.1", int(sys.argv[1])))
try:
    s.recv(4096); sys.exit(0)
except Exception:
    sys.exit(1)
EOF
        then
            log "kamailio ($name) up on udp:127.0.0.1:$port, pid $KAM_PID"
            return 0
        fi
        sleep 0.1
    done
    die "kamailio did not answer OPTIONS on 127.0.0.1:$port"
}
stop_kamailio() { [ -n "$KAM_PID" ] && stop_pid "$KAM_PID"; KAM_PID=""; }

# --- SIPp -------------------------------------------------------------------
# run_sipp OUTPREFIX ARGS...: runs SIPp in the foreground (no stdin, no screen),
# returns 0 when every call succeeded. Writes OUTPREFIX.{out,stat,err}.
# Sets SIPP_OK SIPP_FAILED SIPP_RETRANS SIPP_TOTAL after it.
run_sipp() {
    local pre="$1"; shift
    local rc=0
    (cd "$(dirname "$pre")" && timeout "${SIPP_WALL_TIMEOUT:-120}" sipp "$@" -nostdin \
        -trace_stat -stf "$pre.stat" -fd 1 -trace_err -error_file "$pre.err" \
        >"$pre.out" 2>&1) || rc=$?
    sipp_stats "$pre.stat"
    return "$rc"
}
# sipp_stats STATFILE: last line of a -trace_stat CSV → SIPP_OK/FAILED/RETRANS/TOTAL
sipp_stats() {
    read -r SIPP_TOTAL SIPP_OK SIPP_FAILED SIPP_RETRANS < <(/usr/bin/python3 - "$1" <<'EOF'
import csv, sys
try:
    rows = list(csv.reader(open(sys.argv[1]), delimiter=";"))
except OSError:
    print("0 0 0 0"); sys.exit()
if len(rows) < 2:
    print("0 0 0 0"); sys.exit()
h, last = rows[0], rows[-1]
def col(name):
    try:
        return int(last[h.index(name)])
    except (ValueError, IndexError):
        return 0
print(col("TotalCallCreated(C)"), col("SuccessfulCall(C)"), col("FailedCall(C)"), col("Retransmissions(C)"))
EOF
)
}

# --- latency from a capture -------------------------------------------------
# capture_start PCAP PORT: tshark on lo for udp port PORT; CAP_PID set
CAP_PID=""
capture_start() {
    local pcap="$1" port="$2"
    tshark -q -i lo -B 64 -f "udp port $port" -w "$pcap" >"$pcap.log" 2>&1 &
    CAP_PID=$!
    BENCH_PIDS+=("$CAP_PID")
    for _ in $(seq 100); do
        grep -q "Capturing on" "$pcap.log" 2>/dev/null && { sleep 0.3; return 0; }
        kill -0 "$CAP_PID" 2>/dev/null || { cat "$pcap.log" >&2; die "tshark failed to start"; }
        sleep 0.1
    done
    die "tshark did not start capturing"
}
capture_stop() {
    sleep 0.3
    [ -n "$CAP_PID" ] && { kill -INT "$CAP_PID" 2>/dev/null || true; for _ in $(seq 100); do kill -0 "$CAP_PID" 2>/dev/null || break; sleep 0.1; done; }
    CAP_PID=""
}
# latency PCAP METHOD [FILTER]: prints "p50 p99 n unmatched" (ms) of METHOD request → first 200,
# matched by Call-ID + CSeq number, first request copy to first 200; FILTER is
# an extra tshark display filter (e.g. sip.CSeq.seq == 1).
latency() {
    local pcap="$1" method="$2" extra="${3:-}"
    tshark -r "$pcap" -Y "sip.CSeq.method == \"$method\"${extra:+ && ($extra)}" -T fields -E separator=/t \
        -e frame.time_epoch -e sip.Call-ID -e sip.CSeq.seq -e sip.Status-Code 2>/dev/null |
        /usr/bin/python3 -c '
import sys
req, resp = {}, {}
for line in sys.stdin:
    f = line.rstrip("\n").split("\t")
    if len(f) < 4:
        continue
    t, cid, seq, code = float(f[0]), f[1], f[2], f[3]
    k = (cid, seq)
    if code == "":
        req.setdefault(k, t)
    elif code == "200":
        resp.setdefault(k, t)
lat = sorted((resp[k] - t) * 1000.0 for k, t in req.items() if k in resp and resp[k] >= t)
def pct(p):
    if not lat:
        return float("nan")
    i = min(len(lat) - 1, max(0, int(round(p / 100.0 * len(lat) + 0.5)) - 1))
    return lat[i]
print("%.3f %.3f %d %d" % (pct(50), pct(99), len(lat), len(req) - len(lat)))'
}

ratio() { # ratio A B → A/B with 2 decimals, or n/a
    /usr/bin/python3 -c '
import sys
try:
    a, b = float(sys.argv[1]), float(sys.argv[2])
    print("%.2f" % (a / b) if b else "n/a")
except ValueError:
    print("n/a")' "$1" "$2"
}

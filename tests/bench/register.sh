#!/usr/bin/env bash
# REGISTER throughput and latency: one kadsip node in a 5-node loopback
# overlay (open mode: every first registration is a signed DHT publication)
# against Kamailio with in-memory usrloc, same SIPp load, one run.
# Reports first registrations apart from refreshes, the highest rate with zero
# failed REGISTERs (stepped), p50/p99 REGISTER→200 from a tshark capture, and
# first registrations against OpenDHT puts at the same N.
#   tests/bench/register.sh          # full (~10 min)
#   BENCH_QUICK=1 tests/bench/register.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_tools opendht
bench_init

if [ "$BENCH_QUICK" = 1 ]; then
    RATES=(500 2000 5000)
    STEP_SECS=2
    LAT_RATE=500
else
    # Past 20,000/s so Kamailio's own ceiling is found, not the top step.
    RATES=(250 500 1000 2000 4000 7000 10000 12000 14000 17000 20000 28000 40000)
    STEP_SECS=4
    LAT_RATE=500
fi
NODES=5
# Kamailio keeps every registered user in shared memory (~300k in a full run).
export BENCH_KAM_SHM="${BENCH_KAM_SHM:-1024}"
SIPP_PORT=$(free_port)

# inject FILE PREFIX FIRST COUNT CSEQ [MOD]: users PREFIX<i> for i in
# FIRST..FIRST+COUNT-1 (modulo MOD: refreshes cycle over registered users)
inject() {
    /usr/bin/python3 - "$@" <<'PY'
import sys
path, prefix, first, count, cseq = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
mod = int(sys.argv[6]) if len(sys.argv) > 6 else 0
with open(path, "w") as f:
    f.write("SEQUENTIAL\n")
    for i in range(first, first + count):
        f.write(f"{prefix}{i % mod if mod else i};{cseq}\n")
PY
}

# step TARGET NAME RATE PREFIX FIRST CSEQ [MOD]: one SIPp run of RATE/s for
# STEP_SECS; true when every REGISTER got its 200.
step() {
    local target="$1" name="$2" rate="$3" prefix="$4" first="$5" cseq="$6" mod="${7:-0}"
    local n=$((rate * STEP_SECS)) pre="$BENCH_TMP/$name-$rate"
    inject "$pre.csv" "$prefix" "$first" "$n" "$cseq" "$mod"
    run_sipp "$pre" -sf "$BENCH_DIR/register.xml" -inf "$pre.csv" -i 127.0.0.1 -p "$SIPP_PORT" \
        -r "$rate" -m "$n" -l $((rate * 2)) -timeout $((STEP_SECS * 4 + 20))s "$target" || true
    log "$name $rate/s: $SIPP_OK ok, $SIPP_FAILED failed of $n"
    # Let the server drain (late answers, publications) before the next step;
    # an overloaded one gets longer.
    if [ "$SIPP_OK" -eq "$n" ] && [ "$SIPP_FAILED" -eq 0 ]; then
        sleep "${BENCH_PAUSE:-3}"
        return 0
    fi
    sleep "${BENCH_DRAIN:-20}"
    return 1
}

# wait_quiet: until the machine uses under a fifth of a core for 3 s in a
# row (a kadsip node keeps publishing what an overload step accepted), at most
# QUIET_MAX seconds; logs how long that took.
wait_quiet() {
    local start=$SECONDS quiet=0 a b
    while [ "$quiet" -lt 3 ] && [ $((SECONDS - start)) -lt "${QUIET_MAX:-300}" ]; do
        a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat)
        sleep 1
        b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat)
        # /proc/stat counts in USER_HZ (100/s): 20 = a fifth of a core.
        if [ $((b - a)) -lt 20 ]; then quiet=$((quiet + 1)); else quiet=0; fi
    done
    log "quiet after $((SECONDS - start)) s"
}

# measure TARGET LABEL: sets R_<LABEL>_{FIRST,REFRESH} max rates and latencies
measure() {
    local target="$1" label="$2" rate first=0 max_first=0 max_refresh=0 pool=0
    # Latency first, at a fixed sustainable rate on the fresh server (after
    # the overload steps below, a node would still be working off their
    # publications), from a capture on the SIPp port.
    local pcap="$BENCH_TMP/$label.pcap"
    capture_start "$pcap" "$SIPP_PORT"
    step "$target" "$label-latfirst" "$LAT_RATE" "${label}lat" 0 1 || true
    step "$target" "$label-latrefresh" "$LAT_RATE" "${label}lat" 0 2 || true
    capture_stop
    # First registrations: fresh users at each step.
    for rate in "${RATES[@]}"; do
        local ok=0
        step "$target" "$label-first" "$rate" "${label}u" "$first" 1 && ok=1
        # Users of a failed step are mostly registered too: all refresh below.
        first=$((first + rate * STEP_SECS)); pool=$first
        [ "$ok" = 1 ] || break
        max_first=$rate
    done
    # Refreshes are measured on a server that has finished the work the
    # first registrations gave it, as Kamailio has at once.
    wait_quiet
    # Refreshes: users registered above, again (new Call-ID, same Contact),
    # cycling over them when a step needs more REGISTERs than there are users.
    for rate in "${RATES[@]}"; do
        if step "$target" "$label-refresh" "$rate" "${label}u" 0 2 "$pool"; then max_refresh=$rate; else break; fi
    done
    # Split the capture by CSeq: 1 = first registration, 2 = refresh.
    read -r f50 f99 _ _ < <(latency "$pcap" REGISTER 'sip.CSeq.seq == 1')
    read -r r50 r99 _ _ < <(latency "$pcap" REGISTER 'sip.CSeq.seq == 2')
    eval "R_${label}_FIRST=$max_first R_${label}_REFRESH=$max_refresh"
    eval "L_${label}_F50=$f50 L_${label}_F99=$f99 L_${label}_R50=$r50 L_${label}_R99=$r99"
}

log "kadsip: $NODES-node overlay"
start_overlay "$NODES"
measure "${NODE_SIP[1]}" kadsip
check_overlay_alive
stop_overlay

KAM_PORT=$(free_port)
start_kamailio "$BENCH_DIR/kamailio-registrar.cfg" "$KAM_PORT" registrar
measure "127.0.0.1:$KAM_PORT" kamailio
stop_kamailio

log "OpenDHT: $NODES nodes, 1000 puts"
ODHT=$(/usr/bin/python3 "$BENCH_DIR/dht_opendht.py" --nodes "$NODES" --keys 1000 --port $((30000 + RANDOM % 20000)))
ODHT_PUT=$(echo "$ODHT" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["put_ms"]["p50"])')

echo
echo "REGISTER, one node of a $NODES-node overlay vs Kamailio (usrloc in memory); SIPp on loopback"
printf '%-22s %12s %12s %10s\n' "" kadsip Kamailio ratio
printf '%-22s %12s %12s %10s\n' "first: max rate /s" "$R_kadsip_FIRST" "$R_kamailio_FIRST" "$(ratio "$R_kadsip_FIRST" "$R_kamailio_FIRST")"
printf '%-22s %12s %12s %10s\n' "first: p50 ms" "$L_kadsip_F50" "$L_kamailio_F50" "$(ratio "$L_kadsip_F50" "$L_kamailio_F50")"
printf '%-22s %12s %12s %10s\n' "first: p99 ms" "$L_kadsip_F99" "$L_kamailio_F99" "$(ratio "$L_kadsip_F99" "$L_kamailio_F99")"
printf '%-22s %12s %12s %10s\n' "refresh: max rate /s" "$R_kadsip_REFRESH" "$R_kamailio_REFRESH" "$(ratio "$R_kadsip_REFRESH" "$R_kamailio_REFRESH")"
printf '%-22s %12s %12s %10s\n' "refresh: p50 ms" "$L_kadsip_R50" "$L_kamailio_R50" "$(ratio "$L_kadsip_R50" "$L_kamailio_R50")"
printf '%-22s %12s %12s %10s\n' "refresh: p99 ms" "$L_kadsip_R99" "$L_kamailio_R99" "$(ratio "$L_kadsip_R99" "$L_kamailio_R99")"
echo "max rates are the highest step of ${RATES[*]} /s (each ${STEP_SECS} s) with zero failures;"
echo "latency is REGISTER→200 at $LAT_RATE/s from a tshark capture."
echo "OpenDHT put p50 at N=$NODES: $ODHT_PUT ms; kadsip first-registration p50 / OpenDHT put p50: $(ratio "$L_kadsip_F50" "$ODHT_PUT")"
echo "(a kadsip 200 is sent once the binding is on disk (commit log, fdatasync); the DHT publication follows it)"

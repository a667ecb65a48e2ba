#!/usr/bin/env bash
# Call-setup benchmark: SIPp UAC -> kadsip node A -> 5-node overlay -> node B
# -> SIPp UAS, against SIPp UAC -> Kamailio (stateful proxy, tm + rr, callee
# by registrar lookup) -> SIPp UAS. Full calls: INVITE/180/200/ACK, 100 ms,
# BYE/200 (tests/sipp/uac_call.xml and uas_answer.xml).
#
# Reports INVITE->200 p50/p99 from a tshark capture on the UAC's port and the
# highest calls/s with zero failed calls (rates stepped). kadsip calls are
# split into cold (first call to a callee: node A runs a DHT lookup) and warm
# (callee called before, answer taken from node A's lookup cache; nodes run
# with --lookup-cache-ttl 600s). kadsip's warm latency run is at half its
# ceiling; Kamailio's at the same rate (the same offered load), or at half its
# own ceiling if that is lower.
#
#   tests/bench/call.sh                 # full run, ~7 min
#   BENCH_QUICK=1 tests/bench/call.sh   # quick run, < 2 min
# Needs: a release build (cargo build --release -p kadsip-node), sipp,
# kamailio, tshark. Not part of cargo test / CI.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_tools
bench_init

if [ "$BENCH_QUICK" = 1 ]; then
    RATES=(100 300 600 1000 2000 4000)
    STEP_SECS=2
    BISECT=0
    COLD_BUDGET=2400   # callees registered for cold calls
    WARM_SET=500       # callees called warm (cycled)
    LAT_MAX=1500       # calls in a latency run
    SUSTAIN_SECS=${BENCH_SUSTAIN_SECS:-0}
else
    RATES=(100 200 400 700 1000 1500 2000 2500 3000 4000 5000)
    STEP_SECS=3
    BISECT=1
    COLD_BUDGET=7500
    WARM_SET=2000
    LAT_MAX=4000
    SUSTAIN_SECS=${BENCH_SUSTAIN_SECS:-60}
fi
NODES=5
UAC_SCEN="$REPO_DIR/tests/sipp/uac_call.xml"
UAS_SCEN="$REPO_DIR/tests/sipp/uas_answer.xml"
REG_SCEN="$BENCH_DIR/register_callee.xml"
W="$BENCH_TMP/work"; mkdir -p "$W"
UAC_PORT="$(free_port)"
STEP_LOG="$BENCH_TMP/steps.txt"; : >"$STEP_LOG"

# callees FILE RANGES...: injection file of callee%06d, ranges "a-b" (b exclusive)
callees() {
    local f="$1"; shift
    /usr/bin/python3 - "$f" "$@" <<'EOF'
import sys
f, ranges = sys.argv[1], sys.argv[2:]
with open(f, "w") as out:
    out.write("SEQUENTIAL\n")
    for r in ranges:
        a, b = map(int, r.split("-"))
        out.write("".join("callee%06d\n" % i for i in range(a, b)))
EOF
}

# register_callees ADDR RATE RANGE [METRICS_URL]: REGISTER callees from the UAS
# port, so their Contact is the UAS (sip:calleeN@127.0.0.1:UAS_PORT). With a
# kadsip /metrics URL it goes in chunks of 1000 and lets the node finish its
# DHT publications between chunks (a long burst of first registrations
# builds a publication backlog that delays the 200s past SIPp's timeout).
register_callees() {
    local addr="$1" rate="$2" range="$3" metrics="${4:-}" a b c n pre
    a=${range%-*}; b=${range#*-}
    while [ "$a" -lt "$b" ]; do
        c=$((a + 1000)); [ -z "$metrics" ] && c=$b; [ "$c" -gt "$b" ] && c=$b
        n=$((c - a)); pre="$W/reg-$a"
        callees "$pre.csv" "$a-$c"
        run_sipp "$pre" -sf "$REG_SCEN" -inf "$pre.csv" -r "$rate" -m "$n" -l 15000 \
            -i 127.0.0.1 -p "$UAS_PORT" "$addr" ||
            die "registering callees $a..$c at $addr failed ($SIPP_FAILED failed; $pre.err)"
        if [ -n "$metrics" ]; then
            local prev="" cur same=0
            for _ in $(seq 80); do
                cur="$(curl -fsS "$metrics" | awk '/^kadsip_publishes_total/ {s += $2} END {print s + 0}')"
                if [ "$cur" = "$prev" ]; then same=$((same + 1)); else same=0; fi
                [ "$same" -ge 3 ] && break
                prev="$cur"; sleep 0.5
            done
        fi
        a=$c
    done
    log "registered callees $range at $addr (contact 127.0.0.1:$UAS_PORT)"
}

UAS_PID=""
start_uas() {
    (cd "$W" && exec sipp -sf "$UAS_SCEN" -i 127.0.0.1 -p "$UAS_PORT" -nostdin -l 15000 \
        -trace_stat -stf "$W/uas-$1.stat" -fd 1 -trace_err -error_file "$W/uas-$1.err" \
        >"$W/uas-$1.out" 2>&1) &
    UAS_PID=$!
    BENCH_PIDS+=("$UAS_PID")
    sleep 0.5
    kill -0 "$UAS_PID" 2>/dev/null || { cat "$W/uas-$1.out" >&2; die "SIPp UAS did not start"; }
}
stop_uas() { [ -n "$UAS_PID" ] && stop_pid "$UAS_PID"; UAS_PID=""; }

drain() {
    sleep 1
    if [ "$1" = kadsip ]; then
        check_overlay_alive
        # completed BYE server transactions linger 32 s (Timer J) in a table
        # of 65,536 per node: start each step from a near-empty table
        local i tx
        for _ in $(seq 80); do
            tx=0
            for i in 1 "$NODES"; do
                tx=$((tx + $(curl -fsS "http://${NODE_HTTP[$i]}/status" 2>/dev/null |
                    /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["node"]["transactions"])' || echo 0)))
            done
            [ "$tx" -le 20000 ] && break
            sleep 0.5
        done
    fi
}

# calls TARGET ADDR LABEL RATE N RANGES... : one UAC run; 0 when all N calls
# completed at >= 90% of RATE
calls() {
    local target="$1" addr="$2" label="$3" rate="$4" n="$5"; shift 5
    local pre="$W/$target-${label//\*/lat}-$rate-$RANDOM" rc=0 t0 t1 achieved verdict unexp codes
    callees "$pre.csv" "$@"
    t0="$(date +%s.%N)"
    # A 180 that a multi-process proxy forwards after the 200 is no failure:
    # unexpected messages are logged, not fatal; a call still fails when its
    # 200 does not come within -recv_timeout.
    SIPP_WALL_TIMEOUT=$((n / rate + 30)) run_sipp "$pre" -sf "$UAC_SCEN" -inf "$pre.csv" \
        -r "$rate" -m "$n" -l 15000 -default_behaviors all,-abortunexp -recv_timeout 8000 \
        -i 127.0.0.1 -p "$UAC_PORT" "$addr" || rc=$?
    t1="$(date +%s.%N)"
    # the 100 ms pause before BYE is part of every call: rate over the send span
    achieved="$(/usr/bin/python3 -c "print(int($SIPP_OK / max(0.001, $t1 - $t0 - 0.2)))")"
    unexp="$(grep -ac 'Continuing call on unexpected message' "$pre.err" 2>/dev/null || true)"
    # final answers other than 200 that reached the UAC (e.g. 480, 503, 408)
    codes="$(grep -ao "received 'SIP/2.0 [3-6][0-9][0-9]" "$pre.err" 2>/dev/null |
        awk '{print $NF}' | sort | uniq -c | awk '{printf "%s%sx%s", sep, $2, $1; sep=","}' || true)"
    verdict=ok
    if [ "$rc" -ne 0 ] || [ "$SIPP_FAILED" -ne 0 ] || [ "$SIPP_OK" -ne "$n" ]; then
        verdict=FAIL
    elif [ "$achieved" -lt $((rate * 9 / 10)) ]; then
        verdict="FAIL(sipp reached $achieved/s)"
    fi
    printf '%-8s %-5s rate %5d/s  calls %6d  ok %6d  failed %6d  retrans %6d  achieved %5d/s  unexpected %5s  %s%s\n' \
        "$target" "$label" "$rate" "$n" "$SIPP_OK" "$SIPP_FAILED" "$SIPP_RETRANS" "$achieved" "${unexp:-0}" "$verdict" \
        "${codes:+ (non-200 finals: $codes)}" |
        tee -a "$STEP_LOG" >&2
    drain "$target"
    [ "$verdict" = ok ]
}

# latency_calls TARGET ADDR LABEL RATE N RANGES...: a captured run → R_<target>_<label>_{p50,p99,lrate}
latency_calls() {
    local target="$1" addr="$2" label="$3" rate="$4" n="$5"; shift 5
    local pcap="$W/$target-$label.pcap" p50 p99 cnt miss
    capture_start "$pcap" "$UAC_PORT"
    calls "$target" "$addr" "$label*" "$rate" "$n" "$@" || log "warning: $target $label latency run had failures"
    capture_stop
    read -r p50 p99 cnt miss < <(latency "$pcap" INVITE)
    log "$target $label INVITE->200 at $rate/s: p50 $p50 ms, p99 $p99 ms ($cnt matched, $miss without 200)"
    eval "R_${target}_${label}_p50=$p50; R_${target}_${label}_p99=$p99; R_${target}_${label}_lrate=$rate"
}

# step_rates TARGET ADDR LABEL MODE: steps RATES; MODE "warm:RANGE" cycles over
# RANGE, "cold" takes fresh callees from NEXT_COLD up to COLD_END
# → R_<target>_<label>_max (and _capped when the callee budget ran out)
step_rates() {
    local target="$1" addr="$2" label="$3" mode="$4" r passed=0 failed=0 rc
    try() {
        local r="$1" n=$(($1 * STEP_SECS))
        if [ "$mode" = cold ]; then
            if [ $((NEXT_COLD + n)) -gt "$COLD_END" ]; then
                log "$target cold: callee budget used up before $r/s (max is at least $passed/s)"
                return 2
            fi
            local a=$NEXT_COLD; NEXT_COLD=$((NEXT_COLD + n))
            calls "$target" "$addr" "$label" "$r" "$n" "$a-$NEXT_COLD"
        else
            calls "$target" "$addr" "$label" "$r" "$n" "${mode#warm:}"
        fi
    }
    for r in "${RATES[@]}"; do
        rc=0; try "$r" || rc=$?
        if [ "$rc" = 0 ]; then
            passed=$r
        elif [ "$rc" = 2 ]; then
            failed=0; eval "R_${target}_${label}_capped='>='"; break
        else
            failed=$r; break
        fi
    done
    if [ "$BISECT" = 1 ] && [ "$failed" -gt 0 ] && [ "$passed" -gt 0 ]; then
        for _ in 1 2; do
            r=$(((passed + failed) / 2 / 50 * 50))
            [ "$r" -le "$passed" ] && break
            rc=0; try "$r" || rc=$?
            if [ "$rc" = 0 ]; then passed=$r; elif [ "$rc" = 2 ]; then break; else failed=$r; fi
        done
    fi
    eval "R_${target}_${label}_max=$passed"
}

half() { local h=$(($1 / 2)); [ "$h" -lt 20 ] && h=20; echo "$h"; }
lat_n() { local n=$(($1 * STEP_SECS)); [ "$n" -gt "$LAT_MAX" ] && n=$LAT_MAX; [ "$n" -lt 200 ] && n=200; echo "$n"; }

# ---------------------------------------------------------------- Setup A
log "setup A: SIPp UAC -> kadsip node 1 -> $NODES-node overlay -> node $NODES -> SIPp UAS"
start_overlay "$NODES" --lookup-cache-ttl 600s
A="${NODE_SIP[1]}"; B="${NODE_SIP[$NODES]}"
UAS_PORT="$(free_port)"
# callees 0..WARM_SET-1: called first cold (latency run), then warm;
# WARM_SET..WARM_SET+COLD_BUDGET-1: fresh callees for the cold rate steps
register_callees "$B" 400 "0-$((WARM_SET + COLD_BUDGET))" "http://${NODE_HTTP[$NODES]}/metrics"
# every callee resolvable from another node (not node 1: no cache warming)
last="callee$(printf %06d $((WARM_SET + COLD_BUDGET - 1)))"
out=""
for _ in $(seq 100); do
    out="$(curl -fsS "http://${NODE_HTTP[3]}/lookup?aor=sip%3A$last%40campus.example" || true)"
    grep -q '"found"' <<<"$out" && break
    sleep 0.2
done
grep -q '"found"' <<<"$out" || die "the last callee is not found through the overlay: $out"
sleep 2
start_uas kadsip
NEXT_COLD=$WARM_SET; COLD_END=$((WARM_SET + COLD_BUDGET))

step_rates kadsip "$A" cold cold
latency_calls kadsip "$A" cold 100 "$WARM_SET" "0-$WARM_SET"   # first call to each: cold
step_rates kadsip "$A" warm "warm:0-$WARM_SET"
r="$(half "$R_kadsip_warm_max")"
latency_calls kadsip "$A" warm "$r" "$(lat_n "$r")" "0-$WARM_SET"
# sustained: the latency run's rate held for SUSTAIN_SECS (transactions
# linger 64*T1 = 32 s after a call, so a short step does not show whether
# a rate can be held)
sustain() {
    local target="$1" addr="$2" rate="$3"
    [ "$SUSTAIN_SECS" -gt 0 ] || return 0
    calls "$target" "$addr" held "$rate" $((rate * SUSTAIN_SECS)) "0-$WARM_SET" || true
    eval "R_${target}_held=\"$rate/s: $SIPP_OK ok, $SIPP_FAILED failed\""
}
sustain kadsip "$A" "$r"
KADSIP_LOOKUPS="$(curl -fsS "http://${NODE_HTTP[1]}/metrics" | grep -E '^kadsip_lookups_total' | tr '\n' ' ')"
stop_uas
stop_overlay

# ---------------------------------------------------------------- Setup B
log "setup B: SIPp UAC -> Kamailio proxy (tm, rr, registrar lookup) -> SIPp UAS"
KAM_PORT="$(free_port)"
UAS_PORT="$(free_port)"
start_kamailio "$BENCH_DIR/kamailio-proxy.cfg" "$KAM_PORT" proxy
register_callees "127.0.0.1:$KAM_PORT" 2000 "0-$WARM_SET"
start_uas kamailio
step_rates kamailio "127.0.0.1:$KAM_PORT" call "warm:0-$WARM_SET"
# Kamailio's latency run at the same offered load as kadsip's warm run, or
# at half its own ceiling if that is lower.
r="$(half "$R_kamailio_call_max")"
[ "$R_kadsip_warm_lrate" -lt "$r" ] && r="$R_kadsip_warm_lrate"
latency_calls kamailio "127.0.0.1:$KAM_PORT" call "$r" "$(lat_n "$r")" "0-$WARM_SET"
sustain kamailio "127.0.0.1:$KAM_PORT" "$r"
stop_uas
stop_kamailio

# ---------------------------------------------------------------- summary
goal() { /usr/bin/python3 -c "import sys; print('met' if float(sys.argv[1]) $2 float(sys.argv[3]) else 'NOT met')" "$1" "$2" "$3" 2>/dev/null || echo n/a; }
K50=$R_kamailio_call_p50; K99=$R_kamailio_call_p99; KMAX=$R_kamailio_call_max
{
echo
echo "Call-setup benchmark — kadsip $(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo '?') (UAC -> node 1 -> $NODES-node overlay -> node $NODES -> UAS) vs $("$KAMAILIO_BIN" -v | head -1 | awk '{print $2, $3}') (tm + rr proxy, ${BENCH_KAM_CHILDREN:-2} UDP children)"
echo "SIPp $(sipp -v 2>&1 | grep -o 'v[0-9.]*' | head -1) over UDP loopback; full calls (INVITE..200, ACK, 100 ms, BYE); ${STEP_SECS}s per rate step; INVITE->200 from tshark on the UAC port$([ "$BENCH_QUICK" = 1 ] && echo '; QUICK mode')"
echo
printf '%-26s %14s %14s %14s %12s %12s\n' metric "kadsip warm" "kadsip cold" Kamailio "warm/Kam." "cold/Kam."
printf '%-26s %14s %14s %14s %12s %12s\n' -------------------------- -------------- -------------- -------------- ------------ ------------
printf '%-26s %14s %14s %14s %12s %12s\n' "max calls/s, 0 failures" "$R_kadsip_warm_max/s" "${R_kadsip_cold_capped:-}$R_kadsip_cold_max/s" "$KMAX/s" \
    "$(ratio "$R_kadsip_warm_max" "$KMAX")" "$(ratio "$R_kadsip_cold_max" "$KMAX")"
printf '%-26s %14s %14s %14s %12s %12s\n' "p50 INVITE->200" "$R_kadsip_warm_p50 ms" "$R_kadsip_cold_p50 ms" "$K50 ms" \
    "$(ratio "$R_kadsip_warm_p50" "$K50")" "$(ratio "$R_kadsip_cold_p50" "$K50")"
printf '%-26s %14s %14s %14s %12s %12s\n' "p99 INVITE->200" "$R_kadsip_warm_p99 ms" "$R_kadsip_cold_p99 ms" "$K99 ms" \
    "$(ratio "$R_kadsip_warm_p99" "$K99")" "$(ratio "$R_kadsip_cold_p99" "$K99")"
printf '%-26s %14s %14s %14s\n' "  (latency run rate)" "$R_kadsip_warm_lrate/s" "$R_kadsip_cold_lrate/s" "$R_kamailio_call_lrate/s"
if [ "$SUSTAIN_SECS" -gt 0 ]; then
    echo "held ${SUSTAIN_SECS} s (warm): kadsip ${R_kadsip_held:-?}; Kamailio ${R_kamailio_held:-?}"
fi
echo
echo "cold = first call to each callee (node 1 resolves it through the DHT); the cold max rate uses fresh callees per step (budget $COLD_BUDGET)."
echo "warm = callees called before, within --lookup-cache-ttl 600s."
echo
echo "goals:"
echo "  warm p50 <= 2x Kamailio's:        $(goal "$R_kadsip_warm_p50" '<=' "$(/usr/bin/python3 -c "print(2*$K50)")")  ($R_kadsip_warm_p50 vs 2 x $K50 ms)"
echo "  cold p50 < 5 ms:                  $(goal "$R_kadsip_cold_p50" '<' 5)  ($R_kadsip_cold_p50 ms)"
echo "  calls/s >= 1/2 Kamailio's (warm): $(goal "$R_kadsip_warm_max" '>=' "$((KMAX / 2))")  ($R_kadsip_warm_max vs $((KMAX / 2)) /s)"
echo
echo "kadsip node 1 lookups: ${KADSIP_LOOKUPS:-?}"
echo "steps (* = captured latency run):"
sed 's/^/  /' "$STEP_LOG"
} | tee "$BENCH_TMP/summary.txt"

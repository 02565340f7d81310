#!/usr/bin/env bash
# Inbound decisions under load: `nbo-stream api` driven at a steady rate by `nbo-api-load`, with
# the stream idle and then taking a steady STREAM_RATE events/s beside it, on this machine.
#
#   scripts/api-load.sh                              # 2,000 decisions/s, 100,000 customers
#   RATE=1000 SECS=20 CUSTOMERS=20000 scripts/api-load.sh
#
# What it does:
#   1. builds the release binaries; starts a Tansu broker (in memory) and a Redis of its own on
#      free ports;
#   2. `generate`s EVENTS records for CUSTOMERS customers and drains them with `run`, so every
#      customer has state in Redis (profile, features, contact history);
#   3. starts `nbo-stream api` with the rules of examples/inbound/offers and a fresh key;
#   4. stream idle: `nbo-api-load` sends RATE requests/s for WARMUP seconds (not counted), then
#      for SECS (customers drawn uniformly, channels APP 50%, WEB 30%, CALL_CENTRE 15%,
#      BRANCH 5%), and prints p50/p99/p99.9 as the client saw them (from when each request was
#      due), the API's own p50/p99 (nbo_api_decision_seconds, request in to answer out) and its
#      CPU per 1,000 decisions;
#   5. the same while `generate` produces STREAM_RATE events/s that `run` takes in.
#
# Needs: tansu (scripts/test.sh installs it), redis-server, redis-cli, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${EVENTS:-1000000}
CUSTOMERS=${CUSTOMERS:-100000}
RATE=${RATE:-2000}
SECS=${SECS:-30}
STREAM_RATE=${STREAM_RATE:-20000}
WARMUP=${WARMUP:-5}
TANSU=${NBOTEST_TANSU_BIN:-${CARGO_HOME:-$HOME/.cargo}/bin/tansu}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'api-load: %s\n' "$*" >&2; exit 1; }
[ -x "$TANSU" ] || die "no Tansu at $TANSU: cargo install tansu --version 0.6.0 --locked --features dynostore"
for tool in redis-server redis-cli curl python3; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install redis-server redis-tools curl python3)"
done

say "building the release binaries"
cargo build --release --quiet --bins
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listens on port $1"
}
consumed() {
  curl -fsS "http://127.0.0.1:$mport/metrics" | awk '/^nbo_events_consumed_total/ {n += $NF} END {print int(n)}'
}

kport=$(free_port); rport=$(free_port); mport=$(free_port); aport=$(free_port); amport=$(free_port)
say "starting Tansu on 127.0.0.1:$kport and Redis on 127.0.0.1:$rport"
"$TANSU" broker --listener-url "tcp://127.0.0.1:$kport" --advertised-listener-url "tcp://127.0.0.1:$kport" \
  --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1 &
tansu_pid=$!; pids+=("$tansu_pid")
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no >"$work/redis.log" 2>&1 &
redis_pid=$!; pids+=("$redis_pid")
wait_port "$kport"; wait_port "$rport"

key_line=$("$bin/nbo-stream" api --new-key)
key=$(awk '/^key:/ {print $2}' <<<"$key_line")
sha=$(awk '/^sha256:/ {print $2}' <<<"$key_line")
common() { # $1 = telemetry port
  cat <<EOF
[kafka]
brokers = "127.0.0.1:$kport"
group_id = "nbo-api-load"
# Tansu 0.6 loses records after a mid-batch pause (see scripts/bench.sh).
pause_after = "60s"

[redis]
url = "redis://127.0.0.1:$rport"

[telemetry]
listen = "127.0.0.1:$1"
log_level = "warn"
EOF
}
common "$mport" >"$work/stream.toml"
{
  common "$amport"
  cat <<EOF

[rules]
path = "examples/inbound/offers"

[api]
listen = "127.0.0.1:$aport"

[[api.key]]
name = "load"
sha256 = "$sha"
rate_per_second = 100000
burst = 10000
EOF
} >"$work/api.toml"
export NBO_CUSTOMER_KEY_SECRET=nbo-api-load-customer-key-secret
"$bin/nbo-stream" topics create --config "$work/stream.toml" --partitions 4 >/dev/null

say "generating $EVENTS events for $CUSTOMERS customers, and draining them with run"
"$bin/nbo-stream" generate --config "$work/stream.toml" --brokers "127.0.0.1:$kport" --customers "$CUSTOMERS" \
  --events "$EVENTS" --rate 0 --seed 42 --compression none >"$work/generate.txt"
"$bin/nbo-stream" run --config "$work/stream.toml" >"$work/run.log" 2>&1 &
run_pid=$!; pids+=("$run_pid")
wait_port "$mport"
deadline=$(( $(date +%s) + 600 ))
until [ "$(consumed 2>/dev/null || echo 0)" -ge "$EVENTS" ]; do
  kill -0 "$run_pid" 2>/dev/null || { tail -20 "$work/run.log" >&2; die "run stopped"; }
  [ "$(date +%s)" -lt "$deadline" ] || die "run did not drain $EVENTS events in 10 minutes"
  sleep 0.2
done
say "state stored: $(redis-cli -p "$rport" dbsize) Redis keys"

say "starting nbo-stream api on 127.0.0.1:$aport (rules: examples/inbound/offers)"
"$bin/nbo-stream" api --config "$work/api.toml" >"$work/api.log" 2>&1 &
api_pid=$!; pids+=("$api_pid")
wait_port "$aport"

# p50 and p99 (ms) of the API's histogram $3 between two scrapes (files $1, $2), over the series
# whose labels contain $4 (all when empty), interpolated within buckets as histogram_quantile does;
# printed as "$5_p50=.. $5_p99=..".
server_quantiles() { python3 - "$@" <<'PY'
import sys
path0, path1, metric, label, name = sys.argv[1:6]
def buckets(path):
    out = {}
    for line in open(path):
        if line.startswith(metric + "_bucket{") and label in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            le = float("inf") if le == "+Inf" else float(le)
            out[le] = out.get(le, 0.0) + float(line.rsplit(" ", 1)[1])
    return out
a, b = buckets(path0), buckets(path1)
les = sorted(b)
counts = [b[le] - a.get(le, 0.0) for le in les]
total = counts[-1] if counts else 0.0
def q(p):
    if total <= 0:
        return float("nan")
    rank, prev_le, prev_c = p * total, 0.0, 0.0
    for le, c in zip(les, counts):
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-9)
        prev_le, prev_c = le, c
    return prev_le
print(f"{name}_p50={q(0.5) * 1000:.2f} {name}_p99={q(0.99) * 1000:.2f}")
PY
}
# WARMUP seconds at RATE first (connections opened, caches warm), not counted; then the
# measured SECS, with the API's own histogram read around them.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
machine_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8}' /proc/stat; }
load() {
  local t0 r0 s0 m0 m1 t1 r1 s1
  "$bin/nbo-api-load" --url "http://127.0.0.1:$aport" --key "$key" --rate "$RATE" \
    --duration "${WARMUP}s" --customers "$CUSTOMERS" --seed 99 >/dev/null
  curl -fsS "http://127.0.0.1:$amport/metrics" >"$work/api0"
  t0=$(ticks "$tansu_pid"); r0=$(ticks "$redis_pid"); s0=$(ticks "$run_pid"); m0=$(machine_busy)
  "$bin/nbo-api-load" --url "http://127.0.0.1:$aport" --key "$key" --rate "$RATE" \
    --duration "${SECS}s" --customers "$CUSTOMERS" --pid "$api_pid"
  t1=$(ticks "$tansu_pid"); r1=$(ticks "$redis_pid"); s1=$(ticks "$run_pid"); m1=$(machine_busy)
  curl -fsS "http://127.0.0.1:$amport/metrics" >"$work/api1"
  # CPU cores each used over the measured window (clock ticks are 1/100 s), and the machine's.
  python3 - "$SECS" "$t0" "$t1" "$r0" "$r1" "$s0" "$s1" $m0 $m1 <<'PY'
import sys
secs = float(sys.argv[1])
t0, t1, r0, r1, s0, s1 = (float(x) for x in sys.argv[2:8])
b0, a0, b1, a1 = (float(x) for x in sys.argv[8:12])
cores = lambda a, b: (b - a) / 100 / secs
print(f"tansu_cores={cores(t0, t1):.2f} redis_cores={cores(r0, r1):.2f} run_cores={cores(s0, s1):.2f} "
      f"machine_busy={100 * (b1 - b0) / max(a1 - a0, 1):.0f}")
PY
  server_quantiles "$work/api0" "$work/api1" nbo_api_decision_seconds "" server
  server_quantiles "$work/api0" "$work/api1" nbo_api_stage_seconds 'stage="state"' state
  server_quantiles "$work/api0" "$work/api1" nbo_api_stage_seconds 'stage="audit"' audit
}
say "stream idle: $RATE decisions/s for ${SECS}s"
idle=$(load)

say "stream taking $STREAM_RATE events/s: $RATE decisions/s for ${SECS}s"
before=$(consumed)
"$bin/nbo-stream" generate --config "$work/stream.toml" --brokers "127.0.0.1:$kport" --customers "$CUSTOMERS" --rate "$STREAM_RATE" \
  --duration "$(( SECS + WARMUP + 10 ))s" --seed 7 --compression none >"$work/stream-gen.txt" &
gen_pid=$!; pids+=("$gen_pid")
sleep 5
busy=$(load)
wait "$gen_pid" || die "the stream's generator failed"
taken=$(( $(consumed) - before ))

pick() { sed -nE "s/.*$2=([0-9.]+).*/\1/p" <<<"$1" | head -1; }
row() { # $1 = label, $2 = output of load
  printf '| %s | %s | %s | %s | %s | %s / %s | %s | %s | %s | %s |\n' "$1" "$(pick "$2" rate)" \
    "$(pick "$2" ' p50')" "$(pick "$2" ' p99')" "$(pick "$2" 'p99\.9')" "$(pick "$2" server_p50)" \
    "$(pick "$2" server_p99)" "$(pick "$2" state_p99)" "$(pick "$2" audit_p99)" \
    "$(pick "$2" per_1000)" "$(pick "$2" failed)"
}
echo
for phase in idle busy; do
  out=$idle; [ "$phase" = busy ] && out=$busy
  echo "$phase: CPU cores used: api $(python3 -c "print(round($(pick "$out" api_cpu_s) / $SECS, 2))")," \
    "load client $(python3 -c "print(round($(pick "$out" client_cpu_s) / $SECS, 2))")," \
    "run $(pick "$out" run_cores), redis $(pick "$out" redis_cores), tansu $(pick "$out" tansu_cores);" \
    "machine $(pick "$out" machine_busy)% busy"
done
echo
echo "inbound decisions, $CUSTOMERS customers with state, $RATE/s for ${SECS}s (rules: examples/inbound/offers)"
echo
echo "| stream | decisions/s | p50 ms | p99 ms | p99.9 ms | in the API: p50 / p99 ms | state read p99 ms | audit write p99 ms | API CPU s per 1,000 | failed |"
echo "|---|---|---|---|---|---|---|---|---|---|"
row "idle" "$idle"
row "taking $STREAM_RATE events/s ($taken taken in)" "$busy"

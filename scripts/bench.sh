#!/usr/bin/env bash
# The pipeline's throughput, CPU and latency on this machine, every figure from one run, in one
# table (the README's performance table comes from it).
#
#   scripts/bench.sh                      # 1,000,000 events, 100,000 customers
#   EVENTS=200000 CUSTOMERS=20000 scripts/bench.sh
#   CHECKPOINT_INTERVAL=0s scripts/bench.sh   # another state.checkpoint_interval than the default
#   WRITE_FORMAT=7 scripts/bench.sh       # state written in format 7 (state.write_format)
#   WARM=1 scripts/bench.sh               # the drain meets every customer's state in Redis
#   AUDIT_ROLLUP=6h scripts/bench.sh      # cooldown repeats rolled up (operator.audit_rollup)
#   BIN_DIR=/tmp/before scripts/bench.sh  # binaries already built (no build): to compare two builds
#
# What it does:
#   1. builds the release binaries; starts a Tansu broker (in memory) and a Redis of its own on
#      free ports, so nothing else's load is counted;
#   2. `generate`s EVENTS uncompressed records (the default config, the starter features and
#      rules), then reads them back with `nbo-consume-floor`: the same client library with no
#      processing, the floor `run` is compared with;
#   3. starts `run` (at-least-once, the default config) and times the drain from its first
#      consumed record to the last, with the CPU seconds of nbo-stream, Redis and the broker, the
#      bytes Redis received per event, and the customer writes per event (with WARM=1, a first
#      `run` drains the events and stops, and the measured one drains as many new events for
#      the same customers, their state in Redis and its cache cold, as after a restart);
#   4. with `run` still live, produces a steady LATENCY_RATE events/s for LATENCY_SECS and reads
#      the p50/p99 of nbo_processing_latency_seconds over that window (at-least-once, Tansu);
#   5. the same latency phase in exactly-once on librdkafka's mock broker (`nbo-mock-broker`):
#      Tansu 0.6 has no transactions.
#
# Needs: tansu (scripts/test.sh installs it), redis-server, redis-cli, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${EVENTS:-1000000}
CUSTOMERS=${CUSTOMERS:-100000}
LATENCY_RATE=${LATENCY_RATE:-20000}
LATENCY_SECS=${LATENCY_SECS:-20}
TANSU=${NBOTEST_TANSU_BIN:-${CARGO_HOME:-$HOME/.cargo}/bin/tansu}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
[ -x "$TANSU" ] || die "no Tansu at $TANSU: cargo install tansu --version 0.6.0 --locked --features dynostore"
for tool in redis-server redis-cli curl python3; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install redis-server redis-tools curl python3)"
done

if [ -n "${BIN_DIR:-}" ]; then
  bin=$BIN_DIR
  [ -x "$bin/nbo-stream" ] || die "no nbo-stream in BIN_DIR=$bin"
else
  say "building the release binaries"
  cargo build --release --quiet --bins
  # Where cargo put them: CARGO_TARGET_DIR when set, else ./target.
  bin=${CARGO_TARGET_DIR:-target}/release
fi
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
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listens on port $1"
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
metrics() { curl -fsS "http://127.0.0.1:$mport/metrics"; }
# Sum of every sample of metric $1 in the scrape on stdin. awk, not python3: the drain is polled
# every 50 ms, and a python3 start costs ~80 ms of CPU, which the drain would lose to it.
sum_of() { awk -v name="$1" 'index($0, name "{") == 1 || index($0, name " ") == 1 { total += $NF }
  END { printf "%d\n", total }'; }
consumed() { metrics | sum_of nbo_events_consumed_total; }
redis_in() { redis-cli -p "$rport" info stats | awk -F: '/^total_net_input_bytes/ {print $2+0}'; }
# Customer writes so far: each writes its state with one SETEX (SET … EX before).
redis_writes() { redis-cli -p "$rport" info commandstats | awk -F'[:=,]' '/^cmdstat_(set|setex):/ {n += $3} END {print n+0}'; }

kport=$(free_port); rport=$(free_port); mport=$(free_port)
say "starting Tansu on 127.0.0.1:$kport and Redis on 127.0.0.1:$rport"
"$TANSU" broker --listener-url "tcp://127.0.0.1:$kport" --advertised-listener-url "tcp://127.0.0.1:$kport" \
  --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1 &
tansu_pid=$!; pids+=("$tansu_pid")
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no >"$work/redis.log" 2>&1 &
redis_pid=$!; pids+=("$redis_pid")
wait_port "$kport"; wait_port "$rport"

config() { # $1 = file, $2 = brokers, $3 = group, $4 = delivery
  cat >"$1" <<EOF
[kafka]
brokers = "$2"
group_id = "$3"
delivery = "$4"
mirror_transaction_offsets = $([ "$4" = exactly_once ] && echo true || echo false)
# Tansu 0.6 answers a fetch from the middle of a record batch with the next batch, so a pause for
# backpressure (a worker's queue full for pause_after, e.g. behind a long checkpoint) loses
# records there: the drain would never reach EVENTS. Kafka has no such fault; the tests on Tansu
# set the same.
pause_after = "60s"

[redis]
url = "redis://127.0.0.1:$rport"

[telemetry]
listen = "127.0.0.1:$mport"
log_level = "warn"
EOF
  if [ -n "${CHECKPOINT_INTERVAL:-}${WRITE_FORMAT:-}" ]; then
    printf '[state]\n' >>"$1"
    [ -z "${CHECKPOINT_INTERVAL:-}" ] || printf 'checkpoint_interval = "%s"\n' "$CHECKPOINT_INTERVAL" >>"$1"
    [ -z "${WRITE_FORMAT:-}" ] || printf 'write_format = %s\n' "$WRITE_FORMAT" >>"$1"
  fi
  if [ -n "${AUDIT_ROLLUP:-}" ]; then
    printf '[operator]\naudit_rollup = "%s"\n' "$AUDIT_ROLLUP" >>"$1"
  fi
}
export NBO_CUSTOMER_KEY_SECRET=nbo-bench-customer-key-secret
config "$work/alo.toml" "127.0.0.1:$kport" nbo-bench at_least_once
# Tansu, like the mock broker below, answers a fetch only when its wait (fetch.wait.max.ms, 500 ms
# by default) ends, not when a record arrives as Kafka does: without this, the latency phase's
# records reach `run` in bursts of up to half a second's worth, and the phase measures how long
# a burst takes, not a record (the README's "fetch.wait.max.ms and latency"). While the drain
# has records to fetch, every fetch is answered at once either way.
printf '[kafka.options]\n"fetch.wait.max.ms" = "10"\n' >>"$work/alo.toml"
"$bin/nbo-stream" topics create --config "$work/alo.toml" --partitions 4 >/dev/null

say "generating $EVENTS events for $CUSTOMERS customers (uncompressed)"
"$bin/nbo-stream" generate --config "$work/alo.toml" --brokers "127.0.0.1:$kport" --customers "$CUSTOMERS" \
  --events "$EVENTS" --rate 0 --seed 42 --compression none >"$work/generate.txt"

say "consume floor: the same topics read by a plain consumer"
floor=$("$bin/nbo-consume-floor" --config "$work/alo.toml" --records "$EVENTS")
floor_rate=$(sed -E 's/.*rate=([0-9]+).*/\1/' <<<"$floor")

if [ "${WARM:-0}" = 1 ]; then
  # As in production, where customers come back: Redis holds their state, the cache is cold.
  say "WARM=1: a first run drains these events into Redis; then $EVENTS more are generated"
  "$bin/nbo-stream" run --config "$work/alo.toml" >"$work/run-warm.log" 2>&1 &
  warm_pid=$!; pids+=("$warm_pid")
  wait_port "$mport"
  for _ in $(seq 6000); do [ "$(consumed 2>/dev/null || echo 0)" -ge "$EVENTS" ] && break; sleep 0.1; done
  kill -TERM "$warm_pid"; wait "$warm_pid" 2>/dev/null || true
  "$bin/nbo-stream" generate --config "$work/alo.toml" --brokers "127.0.0.1:$kport" --customers "$CUSTOMERS" \
    --events "$EVENTS" --rate 0 --seed 43 --compression none >"$work/generate-2.txt"
fi

say "draining the topics with run (at-least-once)"
t_before=$(ticks "$tansu_pid"); r_before=$(ticks "$redis_pid"); rin_before=$(redis_in); writes_before=$(redis_writes)
"$bin/nbo-stream" run --config "$work/alo.toml" >"$work/run.log" 2>&1 &
run_pid=$!; pids+=("$run_pid")
wait_port "$mport"
first="" ; done_at=""
deadline=$(( $(date +%s) + 600 ))
while :; do
  kill -0 "$run_pid" 2>/dev/null || { tail -20 "$work/run.log" >&2; die "run stopped"; }
  n=$(consumed 2>/dev/null || echo 0)
  now=$(date +%s.%N)
  [ -z "$first" ] && [ "$n" -gt 0 ] && first=$now
  if [ "$n" -ge "$EVENTS" ]; then done_at=$now; break; fi
  [ "$(date +%s)" -lt "$deadline" ] || die "run drained $n of $EVENTS in 10 minutes"
  sleep 0.05
done
run_cpu=$(ticks "$run_pid"); t_cpu=$(( $(ticks "$tansu_pid") - t_before )); r_cpu=$(( $(ticks "$redis_pid") - r_before ))
rin=$(( $(redis_in) - rin_before )); writes=$(( $(redis_writes) - ${writes_before:-0} ))
audits=$(metrics | sum_of nbo_audit_records_total); decisions=$(metrics | sum_of nbo_decisions_total)


# p50 and p99 of nbo_processing_latency_seconds between two scrapes (files), interpolated within
# buckets as Prometheus' histogram_quantile does.
quantiles() { python3 - "$1" "$2" <<'EOF'
import sys
def buckets(path):
    out = {}
    for line in open(path):
        if line.startswith("nbo_processing_latency_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return out
a, b = buckets(sys.argv[1]), buckets(sys.argv[2])
les = sorted(b)
counts = [b[le] - a.get(le, 0.0) for le in les]
total = counts[-1]
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
print(f"{q(0.5) * 1000:.1f} {q(0.99) * 1000:.1f} {int(total)}")
EOF
}
latency_phase() { # $1 = config, $2 = brokers; prints "p50 p99 samples"
  local before_n target
  metrics >"$work/h0"; before_n=$(consumed)
  "$bin/nbo-stream" generate --config "$1" --brokers "$2" --customers "$CUSTOMERS" --rate "$LATENCY_RATE" \
    --duration "${LATENCY_SECS}s" --seed 7 --compression none >"$work/latency-gen.txt"
  target=$(( before_n + $(awk '/^generated/ {print $2}' "$work/latency-gen.txt") ))
  for _ in $(seq 300); do [ "$(consumed)" -ge "$target" ] && break; sleep 0.1; done
  # Quantiles over a window the pipeline has not finished would leave out its slowest records.
  [ "$(consumed)" -ge "$target" ] || { say "run did not catch up within 30 s of the latency phase"; return 1; }
  sleep 1
  metrics >"$work/h1"
  quantiles "$work/h0" "$work/h1"
}

say "latency at $LATENCY_RATE events/s for ${LATENCY_SECS}s (at-least-once, Tansu)"
read -r alo_p50 alo_p99 alo_n < <(latency_phase "$work/alo.toml" "127.0.0.1:$kport")
kill -TERM "$run_pid"; wait "$run_pid" 2>/dev/null || true

say "latency at $LATENCY_RATE events/s for ${LATENCY_SECS}s (exactly-once, mock broker)"
redis-cli -p "$rport" flushall >/dev/null
# The mock broker creates its topics itself (it takes no CreateTopics): the default names, from
# the specs in topics/.
mock_topics=()
for spec in topics/*.toml; do
  mock_topics+=(--topic "$(sed -nE 's/^name = "(.*)"/\1/p' "$spec")")
done
coproc MOCK { exec "$bin/nbo-mock-broker" --brokers 1 --partitions 4 "${mock_topics[@]}"; }
read -r mock_brokers <&"${MOCK[0]}"
pids+=("$MOCK_PID")
config "$work/eo.toml" "$mock_brokers" nbo-bench-eo exactly_once
# The mock broker answers a fetch only when its wait (fetch.wait.max.ms, 500 ms by default) ends,
# not when a record arrives as Kafka does: without this, records sit at the broker for up to half
# a second (the README's "fetch.wait.max.ms and latency").
printf '[kafka.options]\n"fetch.wait.max.ms" = "10"\n' >>"$work/eo.toml"
"$bin/nbo-stream" run --config "$work/eo.toml" >"$work/run-eo.log" 2>&1 &
eo_pid=$!; pids+=("$eo_pid")
wait_port "$mport"
# The latency phase starts once the group has its partitions (the join is not the pipeline's).
for _ in $(seq 300); do
  [ "$(metrics | sum_of nbo_assigned_partitions)" -gt 0 ] && break
  sleep 0.1
done
read -r eo_p50 eo_p99 eo_n < <(latency_phase "$work/eo.toml" "$mock_brokers")
kill -TERM "$eo_pid"; wait "$eo_pid" 2>/dev/null || true

python3 - <<EOF
events, floor = $EVENTS, $floor_rate
seconds = $done_at - $first
drain = events / seconds if seconds > 0 else 0
per_m = 1_000_000 / events
hz = $hz
rows = [
    ("events drained (customers)", f"{events:,} ({$CUSTOMERS:,}{', state already in Redis' if '${WARM:-0}' == '1' else ''})"),
    ("consume floor, same topics, same client", f"{floor:,.0f} records/s"),
    ("run drain (first record to last)", f"{drain:,.0f} events/s in {seconds:.2f} s"),
    ("run / floor", f"{drain / floor:.2f}" if floor else "n/a"),
    ("nbo-stream CPU per 1M events", f"{$run_cpu / hz * per_m:.2f} s (whole process, start-up included)"),
    ("Redis CPU per 1M events", f"{$r_cpu / hz * per_m:.2f} s"),
    ("broker (Tansu) CPU per 1M events", f"{$t_cpu / hz * per_m:.2f} s"),
    ("Redis bytes received per event", f"{$rin / events:,.0f}"),
    ("audit records per 1M events (decisions they count)", f"{$audits * per_m:,.0f} ({$decisions * per_m:,.0f}; audit_rollup {'${AUDIT_ROLLUP:-off}'})"),
    ("customer writes per event (Redis bytes per write, loads included)", f"{$writes / events:.2f} ({$rin / max($writes, 1):,.0f})"),
    ("processing latency at $LATENCY_RATE ev/s, at-least-once (Tansu)", f"p50 $alo_p50 ms, p99 $alo_p99 ms ({$alo_n:,} records)"),
    ("processing latency at $LATENCY_RATE ev/s, exactly-once (mock broker)", f"p50 $eo_p50 ms, p99 $eo_p99 ms ({$eo_n:,} records)"),
]
width = max(len(k) for k, _ in rows)
print(f"| {'what'.ljust(width)} | figure |")
print(f"|{'-' * (width + 2)}|--------|")
for k, v in rows:
    print(f"| {k.ljust(width)} | {v} |")
EOF

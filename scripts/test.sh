#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a developer's: installs and starts what the tests
# need (Debian packages, Redis, the Tansu broker), then runs fmt, clippy, deploy validation and
# every test. The same command runs in CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. System packages: a C toolchain for librdkafka, OpenSSL headers, Redis, Python YAML,
#    headless Chromium with its WebDriver for the console's browser test, and Prometheus's
#    promtool.
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v make >/dev/null || missing+=(make)
command -v cc >/dev/null || missing+=(gcc)
command -v pkg-config >/dev/null || missing+=(pkg-config)
[ -x /bin/kill ] || [ -x /usr/bin/kill ] || missing+=(procps)   # tests send SIGTERM to `run`
[ -e /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
python3 -c 'import yaml' 2>/dev/null || missing+=(python3-yaml)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v promtool >/dev/null || missing+=(prometheus)   # promtool: the rules' unit tests
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet pyyaml

# 2. The real Kafka-protocol broker for the end-to-end test (about 15 minutes to build once).
TANSU_VERSION=0.6.0
tansu_bin="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
if ! [ -x "$tansu_bin" ] || ! "$tansu_bin" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
  say "installing the Tansu broker $TANSU_VERSION (cargo install, one time)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore --quiet
fi
export NBOTEST_TANSU_BIN="$tansu_bin"

# 3. Redis on 127.0.0.1:6379, started here when nothing answers there.
export NBOTEST_REDIS_URL="${NBOTEST_REDIS_URL:-redis://127.0.0.1:6379}"
if ! redis-cli -p 6379 ping >/dev/null 2>&1; then
  say "starting redis-server on 127.0.0.1:6379"
  redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no --daemonize yes >/dev/null
  for _ in $(seq 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

# 4. Checks and tests. A clean build of everything below takes about 12 GB of disk under target/
#    (the test binaries, the release benches and the fuzz build); say so before the linker does.
free_kb=$(df -Pk . | awk 'NR==2 {print $4}')
if [ "${free_kb:-0}" -lt $((12 * 1024 * 1024)) ]; then
  say "warning: $((free_kb / 1024 / 1024)) GB free here; a clean build needs about 12 GB (cargo clean frees old builds)"
fi
say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy -D warnings"
cargo clippy --quiet --all-targets -- -D warnings
say "deploy/ validation"
python3 scripts/validate_deploy.py
say "promtool: the Prometheus configuration and rules, and the recording rules' unit tests"
promtool check config deploy/prometheus/prometheus.yml >/dev/null
promtool test rules tests/prometheus/*.yml
say "cargo test"
cargo test --quiet
say "allocations per event on the hot path (prints; times nothing)"
cargo test --quiet --bench allocations

# 5. Fuzz the decoder for 60 s (scripts/fuzz.sh installs cargo-fuzz once; the first fuzz build
#    takes ~6 minutes on 2 cores).
say "fuzz Codec::decode (60 s)"
scripts/fuzz.sh 60

#!/usr/bin/env bash
# Loopback load benchmark: the proxy (release build, its own process) against the S3 origin directly
# (s3s-fs, its own process, hit through presigned URLs), for 1 KiB, 64 KiB and 1 MiB objects.
# Every request on the proxy path is a miss: the proxy has no cache yet, so this measures the
# streaming read path (routing, SigV4 signing, one origin GET, streaming the body back).
#
#   bash scripts/bench-load.sh            # 10 s per run, 64 connections
#   DURATION=30 CONNECTIONS=128 bash scripts/bench-load.sh
#
# Needs wrk (installed with apt-get when missing). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ORIGIN_PORT=${ORIGIN_PORT:-9100}
PROXY_PORT=${PROXY_PORT:-9180}

if ! command -v wrk >/dev/null 2>&1; then
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi

cargo build --release -q -p yatagarasu -p yatagarasu-examples --example bench_origin --bin yatagarasu
work=$(mktemp -d)
cleanup() { kill "${origin_pid:-}" "${proxy_pid:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

./target/release/examples/bench_origin "$ORIGIN_PORT" >"$work/origin.out" 2>"$work/origin.err" &
origin_pid=$!
for _ in $(seq 1 100); do grep -q '^ready' "$work/origin.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^ready' "$work/origin.out" || { cat "$work/origin.err"; echo "origin did not start" >&2; exit 1; }

cat >"$work/config.yaml" <<YAML
server:
  address: 127.0.0.1
  port: $PROXY_PORT
buckets:
  - name: bench
    path_prefix: /bench
    s3:
      bucket: bench
      endpoint: http://127.0.0.1:$ORIGIN_PORT
      region: us-east-1
      access_key: AKIDBENCH
      secret_key: bench-secret-key
YAML
RUST_LOG=warn ./target/release/yatagarasu --config "$work/config.yaml" >"$work/proxy.out" 2>&1 &
proxy_pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PROXY_PORT/health" >/dev/null && break; sleep 0.1; done

run() { # url -> "req/s|MB/s|p50|p99"
    local out
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$1")
    local rps mbs p50 p99
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    mbs=$(awk '/Transfer\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers in run against $1" >&2; grep "Non-2xx" <<<"$out" >&2; fi
    echo "$rps|$mbs|$p50|$p99"
}

echo "| object | origin direct req/s | proxy req/s | proxy / origin | origin p50 / p99 | proxy p50 / p99 | proxy throughput |"
echo "|---|---|---|---|---|---|---|"
for key in obj-1k obj-64k obj-1m; do
    presigned=$(awk -v k="$key" '$1==k {print $2}' "$work/origin.out")
    IFS='|' read -r o_rps o_mbs o_p50 o_p99 <<<"$(run "$presigned")"
    IFS='|' read -r p_rps p_mbs p_p50 p_p99 <<<"$(run "http://127.0.0.1:$PROXY_PORT/bench/$key")"
    ratio=$(awk -v a="$p_rps" -v b="$o_rps" 'BEGIN { printf "%.0f%%", 100 * a / b }')
    echo "| $key | $o_rps | $p_rps | $ratio | $o_p50 / $o_p99 | $p_p50 / $p_p99 | $p_mbs/s |"
done
echo
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s on $(nproc) cores ($(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | xargs)); load generator, proxy and origin share the machine."

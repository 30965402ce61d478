# Shared pieces of the loopback benchmarks (sourced, not run).

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ORIGIN_PORT=${ORIGIN_PORT:-9100}
PROXY_PORT=${PROXY_PORT:-9180}

need() { # command, Debian package
    command -v "$1" >/dev/null 2>&1 && return
    apt-get install -y "$2" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "$2" >/dev/null; }
}

bench_setup() {
    need wrk wrk
    # PROXY_FEATURES: cargo features of the proxy binary (e.g. otel).
    cargo build --release -q -p yatagarasu -p yatagarasu-examples --example bench_origin --bin yatagarasu ${PROXY_FEATURES:+--features "yatagarasu/$PROXY_FEATURES"}
    work=$(mktemp -d)
    pids=()
    trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
    # The origin takes OPEN and MISS_OBJECTS from the environment (examples/examples/bench_origin.rs);
    # ORIGIN_WAIT: seconds it may take to start (creating many objects takes minutes).
    ./target/release/examples/bench_origin "$ORIGIN_PORT" >"$work/origin.out" 2>"$work/origin.err" &
    pids+=($!)
    for _ in $(seq 1 $((${ORIGIN_WAIT:-10} * 10))); do grep -q '^ready' "$work/origin.out" 2>/dev/null && break; sleep 0.1; done
    grep -q '^ready' "$work/origin.out" || { cat "$work/origin.err"; echo "origin did not start" >&2; exit 1; }
}

presigned() { awk -v k="$1" '$1==k {print $2}' "$work/origin.out"; }

# start_proxy PORT EXTRA_YAML: a proxy on PORT in front of the bench origin (log level PROXY_LOG,
# default warn: no request lines; WORKER_THREADS: server.worker_threads, default 0), signing with
# the origin's keys (ANONYMOUS=1: unsigned, for an origin started with OPEN=1).
start_proxy() {
    local port=$1 extra=$2 cfg="$work/config-$1.yaml"
    local auth="access_key: AKIDBENCH
      secret_key: bench-secret-key"
    [ "${ANONYMOUS:-0}" = 1 ] && auth="anonymous: true"
    cat >"$cfg" <<YAML
server:
  address: 127.0.0.1
  port: $port
  worker_threads: ${WORKER_THREADS:-0}
buckets:
  - name: bench
    path_prefix: /bench
    s3:
      bucket: bench
      endpoint: http://127.0.0.1:$ORIGIN_PORT
      region: us-east-1
      $auth
$extra
YAML
    RUST_LOG=${PROXY_LOG:-warn} ./target/release/yatagarasu --config "$cfg" >"$work/proxy-$port.out" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
}

# run URL [WRK_ARGS...] -> "req/s|MB/s|p50|p99"
run() {
    local out rps mbs p50 p99
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "${@:2}" "$1")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    mbs=$(awk '/Transfer\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers in run against $1" >&2; grep "Non-2xx" <<<"$out" >&2; fi
    echo "$rps|$mbs|$p50|$p99"
}

# cpu_ticks PID... -> clock ticks of CPU (user + system) the processes have used so far; processes
# gone since (nginx's cache loader exits a minute after start) count nothing.
cpu_ticks() {
    local t=0 p
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}

# us_per_request TICKS REQUESTS -> CPU microseconds per request, e.g. "41.2".
us_per_request() {
    awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }'
}

# pct A B -> A relative to B, e.g. "-3.2%".
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f%%", 100 * (a - b) / b }'; }

# alternate ROUNDS NAME URL_OFF URL_ON: ROUNDS pairs of runs, off then on, as a Markdown table with
# each round's difference and the total over all rounds (single rounds vary by about 10% here).
alternate() {
    local rounds=$1 name=$2 url_off=$3 url_on=$4 off on off_sum=0 on_sum=0 i
    echo "| round | $name off req/s | $name on req/s | on vs off |"
    echo "|---|---|---|---|"
    for i in $(seq 1 "$rounds"); do
        off=$(run "$url_off" | cut -d'|' -f1)
        on=$(run "$url_on" | cut -d'|' -f1)
        off_sum=$(awk -v a="$off_sum" -v b="$off" 'BEGIN { print a + b }')
        on_sum=$(awk -v a="$on_sum" -v b="$on" 'BEGIN { print a + b }')
        echo "| $i | $off | $on | $(pct "$on" "$off") |"
    done
    echo "| all | $off_sum | $on_sum | $(pct "$on_sum" "$off_sum") |"
}

machine() {
    echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s on $(nproc) cores ($(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | xargs)); load generator, proxies and origin share the machine."
}

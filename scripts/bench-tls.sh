#!/usr/bin/env bash
# Loopback load benchmark of what TLS termination costs on the hit path: two proxies in front of
# one origin, alike but for `server.tls` (a self-signed P-256 certificate made with openssl),
# serving memory-cache hits of OBJECT (default obj-1k; obj-64k, obj-1m also exist) over kept-alive
# connections (wrk's HTTP/1.1; the handshake is paid once per connection); rounds alternate the two.
#
#   bash scripts/bench-tls.sh              # 5 rounds, 10 s per run, 64 connections
#   OBJECT=obj-64k bash scripts/bench-tls.sh
#
# Needs wrk (installed with apt-get when missing) and openssl. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
ROUNDS=${ROUNDS:-5}
TLS_PORT=${TLS_PORT:-9188}
OBJECT=${OBJECT:-obj-1k}

bench_setup
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=localhost -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cache="cache: {cache_layers: [memory]}"
start_proxy "$PROXY_PORT" "$cache"
start_proxy "$TLS_PORT" "$cache"
# start_proxy writes plain listeners; restart the second one with TLS on.
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
sed -i "s|^  port: $TLS_PORT|  port: $TLS_PORT\n  tls: {cert_path: \"$work/cert.pem\", key_path: \"$work/key.pem\"}|" "$work/config-$TLS_PORT.yaml"
RUST_LOG=warn ./target/release/yatagarasu --config "$work/config-$TLS_PORT.yaml" >"$work/proxy-$TLS_PORT.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -skf "https://127.0.0.1:$TLS_PORT/health" >/dev/null && break; sleep 0.1; done
curl -sf -o /dev/null "http://127.0.0.1:$PROXY_PORT/bench/$OBJECT"
curl -skf -o /dev/null "https://127.0.0.1:$TLS_PORT/bench/$OBJECT"

alternate "$ROUNDS" "TLS ($OBJECT)" "http://127.0.0.1:$PROXY_PORT/bench/$OBJECT" "https://127.0.0.1:$TLS_PORT/bench/$OBJECT"
echo
machine

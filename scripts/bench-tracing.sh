#!/usr/bin/env bash
# Loopback load benchmark of what OpenTelemetry tracing costs on the hit path: two proxies built
# with the `otel` feature in front of one origin, alike but for `observability.tracing` (every
# request sampled, spans exported over OTLP/HTTP to a local sink that answers 200), serving 1 KiB
# memory-cache hits; rounds alternate the two. Request log lines are off in both.
#
#   bash scripts/bench-tracing.sh          # 5 rounds, 10 s per run, 64 connections
#   SAMPLE_RATIO=0.01 bash scripts/bench-tracing.sh
#
# Needs wrk (installed with apt-get when missing) and python3 (the OTLP sink). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
export PROXY_FEATURES=otel
. scripts/bench-lib.sh
ROUNDS=${ROUNDS:-5}
TRACED_PORT=${TRACED_PORT:-9186}
SINK_PORT=${SINK_PORT:-9187}
SAMPLE_RATIO=${SAMPLE_RATIO:-1.0}

bench_setup
python3 - "$SINK_PORT" >"$work/sink.out" 2>&1 <<'PY' &
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Sink(BaseHTTPRequestHandler):
    batches = 0
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        Sink.batches += 1
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
        print("batch", Sink.batches, flush=True)
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
pids+=($!)
cache="cache: {cache_layers: [memory]}"
start_proxy "$PROXY_PORT" "$cache"
start_proxy "$TRACED_PORT" "$cache
observability:
  tracing: {enabled: true, otlp_endpoint: \"http://127.0.0.1:$SINK_PORT\", sample_ratio: $SAMPLE_RATIO}"
for port in "$PROXY_PORT" "$TRACED_PORT"; do
    curl -sf -o /dev/null "http://127.0.0.1:$port/bench/obj-1k"
done

alternate "$ROUNDS" "tracing (sample_ratio $SAMPLE_RATIO)" "http://127.0.0.1:$PROXY_PORT/bench/obj-1k" "http://127.0.0.1:$TRACED_PORT/bench/obj-1k"
echo
echo "span batches received by the sink: $(grep -c '^batch' "$work/sink.out" || true)"
machine

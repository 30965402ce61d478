#!/usr/bin/env bash
# Loopback load benchmark of access control on the hit path: 1 KiB memory-cache hits through one
# proxy, from a JWT bucket with an HS256 token and with an RS256 token, and from a JWT bucket whose
# requests a Rego policy also decides (in the process). Each is compared with the public bucket
# sent the very same request headers (the token is ignored there), so the difference is the
# proxy's access control and not the load generator's cost of longer requests (an RS256 token adds
# about 400 bytes to every request, and wrk shares the machine). Rounds alternate all five runs, so
# a drift of the machine shows in every column alike. Request log lines are off (RUST_LOG=warn).
#
#   bash scripts/bench-auth.sh             # 3 rounds, 10 s per run, 64 connections
#   ROUNDS=5 DURATION=20 bash scripts/bench-auth.sh
#
# Needs wrk and openssl (installed with apt-get when missing). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
ROUNDS=${ROUNDS:-3}
need openssl openssl

bench_setup
data=yatagarasu-bin/tests/data/jwt
export JWT_SECRET=an-hmac-secret-of-thirty-two-b!!
cat >"$work/authz.rego" <<'REGO'
package yatagarasu.authz

default allow := false

allow if {
    input.method in {"GET", "HEAD"}
    input.claims.role == "reader"
}
REGO
s3="{bucket: bench, endpoint: \"http://127.0.0.1:$ORIGIN_PORT\", region: us-east-1, access_key: AKIDBENCH, secret_key: bench-secret-key}"
cat >"$work/auth.yaml" <<YAML
server: {address: 127.0.0.1, port: $PROXY_PORT}
jwt:
  enabled: true
  algorithm: HS256
  secret: \${JWT_SECRET}
  keys:
    - {id: rsa-1, algorithm: RS256, path: $data/rsa-public.pem}
  claims:
    - {claim: role, operator: in, value: [reader]}
buckets:
  - {name: pub, path_prefix: /pub, s3: $s3}
  - {name: priv, path_prefix: /priv, s3: $s3, auth: {enabled: true}}
  - name: rego
    path_prefix: /rego
    s3: $s3
    auth: {enabled: true}
    authorization: {type: rego, policy_path: "$work/authz.rego", query: data.yatagarasu.authz.allow}
cache:
  cache_layers: [memory]
  memory: {max_cache_size_mb: 256, max_item_size_mb: 16}
YAML
RUST_LOG=warn ./target/release/yatagarasu --config "$work/auth.yaml" >"$work/proxy.out" 2>&1 &
pids+=($!)
base=http://127.0.0.1:$PROXY_PORT
for _ in $(seq 1 100); do curl -sf "$base/health" >/dev/null && break; sleep 0.1; done

# Tokens made with openssl, as the README shows.
b64() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
body=$(printf '{"sub":"bench","role":"reader","exp":%s}' $(( $(date +%s) + 3600 )) | b64)
head=$(printf '{"alg":"HS256","typ":"JWT"}' | b64)
hs="$head.$body.$(printf '%s.%s' "$head" "$body" | openssl dgst -sha256 -hmac "$JWT_SECRET" -binary | b64)"
rhead=$(printf '{"alg":"RS256","typ":"JWT","kid":"rsa-1"}' | b64)
rs="$rhead.$body.$(printf '%s.%s' "$rhead" "$body" | openssl dgst -sha256 -sign "$data/rsa-private.pem" -binary | b64)"
curl -sf -o /dev/null "$base/pub/obj-1k"
curl -sf -o /dev/null -H "Authorization: Bearer $hs" "$base/priv/obj-1k" || { echo "HS256 token refused" >&2; exit 1; }
curl -sf -o /dev/null -H "Authorization: Bearer $rs" "$base/priv/obj-1k" || { echo "RS256 token refused" >&2; exit 1; }
curl -sf -o /dev/null -H "Authorization: Bearer $hs" "$base/rego/obj-1k" || { echo "Rego policy refused" >&2; exit 1; }

rps() { run "$@" | cut -d'|' -f1; }
echo "| round | public, HS256 header | JWT HS256 | public, RS256 header | JWT RS256 | JWT HS256 + Rego policy |"
echo "|---|---|---|---|---|---|"
for i in $(seq 1 "$ROUNDS"); do
    ph=$(rps "$base/pub/obj-1k" -H "Authorization: Bearer $hs")
    h=$(rps "$base/priv/obj-1k" -H "Authorization: Bearer $hs")
    pr=$(rps "$base/pub/obj-1k" -H "Authorization: Bearer $rs")
    r=$(rps "$base/priv/obj-1k" -H "Authorization: Bearer $rs")
    g=$(rps "$base/rego/obj-1k" -H "Authorization: Bearer $hs")
    echo "| $i | $ph | $h ($(pct "$h" "$ph")) | $pr | $r ($(pct "$r" "$pr")) | $g ($(pct "$g" "$ph")) |"
done
echo
machine

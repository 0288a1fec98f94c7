#!/usr/bin/env bash
# Profile-guided `dist` build of dripgate: the binary the Dockerfile ships.
#
#   scripts/pgo-build.sh            # prints the path of the optimised binary on its last line
#
# 1. builds dripgate with LLVM instrumentation (`-Cprofile-generate`);
# 2. trains it on loopback: pass-through traffic to an nginx origin (small and 16 KiB/256 KiB
#    responses, 4 KiB uploads, 404s, keep-alive and one connection per request), the same over
#    TLS with HTTP/1.1 and HTTP/2, then the sign-in path (`dripgate demo`: first sign-ins that
#    migrate users, later ones routed to the provider, wrong passwords, other pages). Code the
#    training never runs is optimised as cold: a new request-path feature belongs here too;
# 3. merges the profiles with the toolchain's llvm-profdata (rustup's `llvm-tools` component,
#    added if missing);
# 4. rebuilds with `-Cprofile-use`, so that LLVM lays the hot request path out contiguously and
#    inlines along it. docs/BENCHMARKS.md has what it changes.
#
# Needs wrk, nginx, curl and openssl (Debian's packages; installed if missing, as benches/proxy.sh
# does). Takes about 11 minutes on two cores: two LTO builds and 40 s of training.
# Builds go to target/pgo-generate and target/pgo (RUSTFLAGS differ from a plain build, so they
# keep their own directories); `--target` keeps the instrumentation out of build scripts and
# proc macros. Every training run is bounded; only loopback addresses are used.
set -euo pipefail
cd "$(dirname "$0")/.."

host=$(rustc -vV | sed -n 's/^host: //p')
target_root=${CARGO_TARGET_DIR:-target}
gen_dir="$target_root/pgo-generate"
use_dir="$target_root/pgo"
profiles=$(realpath -m "$target_root/pgo-profiles")
merged="$profiles/merged.profdata"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx || ! need curl || ! need openssl; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light curl openssl >/dev/null
fi
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
[ -x "$profdata" ] || rustup component add llvm-tools >&2

echo "== instrumented build" >&2
rm -rf "$profiles"; mkdir -p "$profiles"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$profiles" \
  cargo build --profile dist --locked --bin dripgate --target "$host" --target-dir "$gen_dir" >&2
BIN="$gen_dir/$host/dist/dripgate"

work=$(mktemp -d)
chmod 755 "$work"   # nginx workers run unprivileged and must read the static files
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

ORIGIN=127.0.0.1:18181; DRIPGATE=127.0.0.1:18183; ADMIN=127.0.0.1:18193
DEMO=127.0.0.1:18185; DEMO_ADMIN=127.0.0.1:18195
# stop PID: SIGTERM, then wait for the process to exit; the profile is written at exit.
stop() { kill -TERM "$1"; timeout 60 tail --pid="$1" -f /dev/null; }
# Each process writes its own profile here, whatever path the build recorded.
export LLVM_PROFILE_FILE="$profiles/%p-%m.profraw"
# serve_dripgate LOG [VAR=VALUE...]: starts `dripgate serve` (one worker) in front of the origin,
# with the extra settings given, sets serve_pid and waits until it listens.
serve_dripgate() {
  local log=$1; shift
  env DRIPGATE_SERVER__LISTEN=$DRIPGATE DRIPGATE_ADMIN__LISTEN=$ADMIN \
    DRIPGATE_UPSTREAM__URL=http://$ORIGIN DRIPGATE_SERVER__WORKER_THREADS=1 DRIPGATE_LOG__LEVEL=warn \
    "$@" "$BIN" serve --config config/dripgate.example.toml > "$work/$log" 2>&1 &
  serve_pid=$!; pids+=($serve_pid)
  wait_listening "$DRIPGATE"
}

. benches/nginx.sh
mkdir -p "$work/www" "$work/origin"
head -c 16384 /dev/zero | tr '\0' 'x' > "$work/www/16k.txt"
head -c 262144 /dev/zero | tr '\0' 'y' > "$work/www/256k.bin"
nginx_conf origin "$ORIGIN" "location = /hello { return 200 'Hello World!\n'; }
    location = /upload { client_max_body_size 1m; return 201 'stored\n'; }
    location = /missing { return 404; }
    location / { root $work/www; }"
nginx -c "$work/origin/nginx.conf" & pids+=($!)
wait_listening "$ORIGIN"

echo "== training: pass-through" >&2
serve_dripgate serve.log
cat > "$work/upload.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("u", 4096)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
# load WRK-ARGS...: a bounded wrk run; prints how many requests it made.
load() {
  local out
  out=$(timeout 30 wrk -t1 -d4s "$@")
  echo "   $(echo "$out" | grep -o '[0-9]* requests in.*') (${*: -1})" >&2
}
load -c256 "http://$DRIPGATE/hello"
load -c256 "http://$DRIPGATE/16k.txt"
load -c32 "http://$DRIPGATE/256k.bin"
load -c64 -s "$work/upload.lua" "http://$DRIPGATE/upload"
load -c16 -H "Connection: close" "http://$DRIPGATE/hello"
load -c64 "http://$DRIPGATE/missing"
# A training run that forwarded nothing would give a profile without the request path.
forwarded=$(curl -fsS "http://$ADMIN/metrics" | awk '/^dripgate_upstream_requests_total/ {n += $2} END {print n + 0}')
echo "   dripgate forwarded $forwarded requests" >&2
[ "$forwarded" -gt 10000 ] || { echo "too little pass-through traffic to train on" >&2; exit 1; }
stop "$serve_pid"

echo "== training: TLS, HTTP/1.1 and HTTP/2" >&2
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
serve_dripgate serve-tls.log \
  DRIPGATE_SERVER__TLS__CERT_FILE="$work/cert.pem" DRIPGATE_SERVER__TLS__KEY_FILE="$work/key.pem"
load -c64 "https://$DRIPGATE/hello"
load -c16 -H "Connection: close" "https://$DRIPGATE/16k.txt"
# curl reuses one HTTP/2 connection for the whole URL range.
for path in hello 16k.txt; do
  timeout 60 curl -sk --http2 -o /dev/null "https://$DRIPGATE/$path?[1-2000]"
done
timeout 60 curl -sk --http2 -o /dev/null -d "note=$(head -c 2048 /dev/zero | tr '\0' n)" "https://$DRIPGATE/upload?[1-500]"
h2=$(curl -sk --http2 -o /dev/null -w '%{http_version}' "https://$DRIPGATE/hello")
[ "$h2" = 2 ] || { echo "the TLS listener did not speak HTTP/2 (got $h2)" >&2; exit 1; }
stop "$serve_pid"

echo "== training: sign-in path (dripgate demo)" >&2
"$BIN" demo --users 20 --listen "$DEMO" --admin "$DEMO_ADMIN" > "$work/demo.out" 2> "$work/demo.log" &
demo_pid=$!; pids+=($demo_pid)
wait_listening "$DEMO"
for _ in $(seq 1 100); do grep -q 'Ctrl-C' "$work/demo.out" && break; sleep 0.2; done
users=$(awk '$1 ~ /@example\.com$/ {print $1 " " $2}' "$work/demo.out")
[ -n "$users" ] || { echo "the demo printed no sample users" >&2; cat "$work/demo.out" "$work/demo.log" >&2; exit 1; }
sign_in() { curl -s -o /dev/null --max-time 10 -d "email=$1&password=$2" "http://$DEMO/login"; }
# First sign-ins migrate (beside the legacy answer, hence the pause); later ones are routed to
# the provider; wrong passwords are rejected by the legacy app or the provider.
for round in 1 2 3; do
  while read -r email password; do
    sign_in "$email" "$password"
    sign_in "$email" "wrong-$round"
  done <<< "$users"
  sleep 1
done
for page in / /login /account /nowhere; do curl -s -o /dev/null --max-time 5 "http://$DEMO$page"; done
migrated=$(curl -fsS "http://$DEMO_ADMIN/metrics" | awk '/^dripgate_migrations_total\{result="migrated"\}/ {print $2}')
echo "   the demo migrated ${migrated:-0} users" >&2
[ "${migrated:-0}" -gt 0 ] || { echo "no sign-in was migrated: the sign-in path went untrained" >&2; exit 1; }
stop "$demo_pid"

echo "== merging $(ls "$profiles"/*.profraw | wc -l) profiles" >&2
"$profdata" merge -o "$merged" "$profiles"/*.profraw

echo "== optimised build" >&2
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$merged" \
  cargo build --profile dist --locked --bin dripgate --target "$host" --target-dir "$use_dir" >&2
echo "$use_dir/$host/dist/dripgate"

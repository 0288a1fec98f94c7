#!/usr/bin/env bash
# Instructions per proxied request, dripgate vs nginx (and hyper_floor, examples/hyper_floor.rs:
# the least a proxy on dripgate's HTTP libraries does), counted by valgrind's callgrind: unlike
# req/s it does not depend on what else the machine is doing, so it is the stable ratio to track.
#
#   benches/proxy-instructions.sh [--short 3s] [--long 20s]
#   DRIPGATE_BIN=path/to/dripgate benches/proxy-instructions.sh   (measure a given binary;
#   HYPER_FLOOR_BIN likewise)
#
# Each proxy (one worker) runs under callgrind in front of the same nginx origin serving a 13-byte
# file; wrk (16 connections) drives it twice, for --short and for --long. The per-request figure
# is the difference of the two totals divided by the difference of the request counts, so start-up
# and shutdown cancel out. Only user-space instructions are counted (the kernel's share of a
# loopback request is the same for both). Loopback only; every run is bounded by its duration.
set -euo pipefail
cd "$(dirname "$0")/.."

short=3s; long=20s
while [ $# -gt 0 ]; do
  case "$1" in
    --short) short=$2; shift 2;;
    --long) long=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx || ! need valgrind; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light valgrind >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

. benches/nginx.sh
BIN=$(dripgate_bin)
FLOOR_BIN=$(floor_bin)

work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

ORIGIN=127.0.0.1:18181; NGINX_PROXY=127.0.0.1:18182; DRIPGATE=127.0.0.1:18183; ADMIN=127.0.0.1:18193
FLOOR=127.0.0.1:18184
mkdir -p "$work/www" "$work/origin" "$work/proxy"
echo "hello, world" > "$work/www/hello"
# Connections stay open for the whole run (dripgate never closes them either).
keep="keepalive_requests 1000000;"
nginx_conf origin "$ORIGIN" "$keep root $work/www;"
nginx_conf proxy "$NGINX_PROXY" "$keep $NGINX_PROXY_LOCATION" "master_process off;"
"$NGINX" -c "$work/origin/nginx.conf" & pids+=($!)

# run NAME URL DURATION COMMAND... : prints "instructions requests"
run() {
  local name=$1 url=$2 duration=$3; shift 3
  local out="$work/$name.$duration"
  valgrind --tool=callgrind --callgrind-out-file="$out.cg" "$@" > "$out.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 240); do curl -s -o /dev/null "$url" && break; sleep 0.5; done
  local requests
  requests=$(wrk -t1 -c16 -d"$duration" "$url" | awk '/requests in/ {print $1}')
  kill -TERM "$pid"; wait "$pid" || true
  local instructions
  instructions=$(callgrind_annotate "$out.cg" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "$instructions $requests"
}

per_request() { # name url command...
  local name=$1 url=$2; shift 2
  read -r i1 n1 < <(run "$name" "$url" "$short" "$@")
  read -r i2 n2 < <(run "$name" "$url" "$long" "$@")
  python3 -c "print(round(($i2 - $i1) / ($n2 - $n1)))"
}

ng=$(per_request nginx "http://$NGINX_PROXY/hello" "$NGINX" -c "$work/proxy/nginx.conf")
dg=$(DRIPGATE_SERVER__LISTEN=$DRIPGATE DRIPGATE_ADMIN__LISTEN=$ADMIN DRIPGATE_UPSTREAM__URL=http://$ORIGIN \
  DRIPGATE_SERVER__WORKER_THREADS=1 DRIPGATE_LOG__LEVEL=warn DRIPGATE_SHUTDOWN__DELAY=0s \
  per_request dripgate "http://$DRIPGATE/hello" "$BIN" serve --config config/dripgate.example.toml)
fl=$(per_request hyper_floor "http://$FLOOR/hello" "$FLOOR_BIN" "$FLOOR" "$ORIGIN")
python3 - "$ng" "$dg" "$fl" <<'PY'
import sys
ng, dg, fl = (int(a) for a in sys.argv[1:])
print(f"instructions per proxied request (user space, callgrind):")
print(f"  nginx        {ng:>8}")
print(f"  dripgate     {dg:>8}")
print(f"  hyper_floor  {fl:>8}")
print(f"  ratio dripgate/nginx      {dg / ng:.2f}")
print(f"  ratio hyper_floor/nginx   {fl / ng:.2f}")
print(f"  ratio dripgate/hyper_floor  {dg / fl:.2f}")
PY

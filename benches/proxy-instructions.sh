#!/usr/bin/env bash
# Instructions per proxied request, dripgate vs nginx (and hyper_floor, examples/hyper_floor.rs:
# the least a proxy on dripgate's HTTP libraries does), counted by valgrind's callgrind: unlike
# req/s it does not depend on what else the machine is doing, so it is the stable ratio to track.
#
#   benches/proxy-instructions.sh [--short 3s] [--long 20s] [--connections 16] [--cache-sim]
#   DRIPGATE_BIN=path/to/dripgate benches/proxy-instructions.sh   (measure a given binary;
#   HYPER_FLOOR_BIN likewise)
#
# Each proxy (one worker) runs under callgrind in front of the same nginx origin serving a 13-byte
# file; wrk drives it twice, for --short and for --long. The per-request figure is the difference
# of the two totals divided by the difference of the request counts, so start-up and shutdown
# cancel out. Only user-space instructions are counted (the kernel's share of a loopback request
# is the same for both). --cache-sim adds callgrind's cache simulation (the host's cache sizes):
# L1 instruction and data misses per request, which at the benchmark's 256
# connections (`--connections 256`) explain more of the user-space time than the instruction
# count does (docs/BENCHMARKS.md). Loopback only; every run is bounded by its duration.
set -euo pipefail
cd "$(dirname "$0")/.."

short=3s; long=20s; conns=16; cache_sim=no
while [ $# -gt 0 ]; do
  case "$1" in
    --short) short=$2; shift 2;;
    --long) long=$2; shift 2;;
    --connections) conns=$2; shift 2;;
    --cache-sim) cache_sim=yes; shift;;
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

# run NAME URL DURATION COMMAND... : prints "requests event-totals..." (Ir, and with --cache-sim
# also Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw, in callgrind's order)
run() {
  local name=$1 url=$2 duration=$3; shift 3
  local out="$work/$name.$duration"
  valgrind --tool=callgrind --cache-sim="$cache_sim" --callgrind-out-file="$out.cg" "$@" > "$out.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 240); do curl -s -o /dev/null "$url" && break; sleep 0.5; done
  local requests
  requests=$(wrk -t1 -c"$conns" -d"$duration" "$url" | awk '/requests in/ {print $1}')
  kill -TERM "$pid"; wait "$pid" || true
  local totals
  totals=$(callgrind_annotate "$out.cg" 2>/dev/null | awk '/PROGRAM TOTALS/ {
    for (i = 1; i <= NF; i++) if ($i ~ /^[0-9,]+$/) { gsub(",", "", $i); printf "%s ", $i } }')
  echo "$requests $totals"
}

per_request() { # name url command... : prints the per-request figure of each event
  local name=$1 url=$2; shift 2
  local a b
  a=$(run "$name" "$url" "$short" "$@")
  b=$(run "$name" "$url" "$long" "$@")
  python3 -c "import sys; a, b = (list(map(int, x.split())) for x in sys.argv[1:]); \
print(' '.join(str(round((y - x) / (b[0] - a[0]))) for x, y in zip(a[1:], b[1:])))" "$a" "$b"
}

ng=$(per_request nginx "http://$NGINX_PROXY/hello" "$NGINX" -c "$work/proxy/nginx.conf")
dg=$(DRIPGATE_SERVER__LISTEN=$DRIPGATE DRIPGATE_ADMIN__LISTEN=$ADMIN DRIPGATE_UPSTREAM__URL=http://$ORIGIN \
  DRIPGATE_SERVER__WORKER_THREADS=1 DRIPGATE_LOG__LEVEL=warn DRIPGATE_SHUTDOWN__DELAY=0s \
  per_request dripgate "http://$DRIPGATE/hello" "$BIN" serve --config config/dripgate.example.toml)
fl=$(per_request hyper_floor "http://$FLOOR/hello" "$FLOOR_BIN" "$FLOOR" "$ORIGIN")
python3 - "$conns" "$ng" "$dg" "$fl" <<'PY'
import sys
conns = sys.argv[1]
figures = {who: list(map(int, v.split())) for who, v in zip(("nginx", "dripgate", "hyper_floor"), sys.argv[2:])}
print(f"per proxied request (user space, callgrind, wrk {conns} connections):")
if len(figures["nginx"]) == 1:
    columns = {"instructions": lambda f: f[0]}
else:  # Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw (last-level misses: a handful, noise)
    columns = {
        "instructions": lambda f: f[0],
        "L1i misses": lambda f: f[3],
        "L1d misses": lambda f: f[4] + f[5],
    }
label = 28
print(" " * label + "".join(f"{c:>14}" for c in columns))
for who, f in figures.items():
    print(f"  {who}".ljust(label) + "".join(f"{get(f):>14}" for get in columns.values()))
for a, b in (("dripgate", "nginx"), ("hyper_floor", "nginx"), ("dripgate", "hyper_floor")):
    ratios = "".join(f"{get(figures[a]) / get(figures[b]):>14.2f}" for get in columns.values())
    print(f"  ratio {a}/{b}".ljust(label) + ratios)
PY

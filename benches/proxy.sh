#!/usr/bin/env bash
# Pass-through benchmark: wrk against the origin directly, nginx as a reverse proxy, dripgate, and
# hyper_floor (examples/hyper_floor.rs, the least a proxy on dripgate's HTTP libraries does), at
# the same concurrency, interleaved in each repetition (in an order rotated per repetition). Prints
# req/s, p50/p99 latency, each proxy's CPU time per request and peak RSS, and the ratios
# dripgate/nginx, dripgate/direct, hyper_floor/nginx and dripgate/hyper_floor (median over
# repetitions, with the range of the req/s ratio).
#
#   benches/proxy.sh [--reps N] [--duration 5s] [--connections 256] [--workers 1] [--smoke]
#
# Layout on a 2-core machine: every proxy gets one worker pinned to CPU 0; the origin (nginx,
# one worker) and wrk share CPU 1. `--workers N` (N > 1) measures the multi-worker setting
# instead: nginx `worker_processes N` against dripgate `server.worker_threads = N` (N threads,
# each with its own event loop and socket), nothing pinned, so proxy, origin and wrk share every
# core as they would on one host; hyper_floor (one thread only) is left out. nginx and wrk come
# from Debian's packages and are installed if missing. Only loopback addresses are used; every
# run is bounded by --duration.
set -euo pipefail
cd "$(dirname "$0")/.."

reps=3; duration=5s; conns=256; workers=1
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps=$2; shift 2;;
    --duration) duration=$2; shift 2;;
    --connections) conns=$2; shift 2;;
    --workers) workers=$2; shift 2;;
    --smoke) reps=1; duration=1s; conns=16; shift;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done

case $workers in ''|*[!0-9]*|0) echo "--workers takes a number of workers >= 1" >&2; exit 2;; esac
# CPUs for the proxies and for the origin + wrk: split on one worker, shared otherwise.
if [ "$workers" = 1 ]; then proxy_cpus=0; side_cpus=1; else proxy_cpus=0-$(( $(nproc) - 1 )); side_cpus=$proxy_cpus; fi

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

work=$(mktemp -d)
chmod 755 "$work"   # nginx workers run unprivileged and must read the static files
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

ORIGIN=127.0.0.1:18081; NGINX_PROXY=127.0.0.1:18082; DRIPGATE=127.0.0.1:18083; ADMIN=127.0.0.1:18093
FLOOR=127.0.0.1:18084

. benches/nginx.sh
BIN=$(dripgate_bin)
FLOOR_BIN=$(if [ "$workers" = 1 ]; then floor_bin; fi)

mkdir -p "$work/www" "$work/origin" "$work/proxy"
head -c 16384 /dev/zero | tr '\0' 'x' > "$work/www/16k.txt"
nginx_conf origin "$ORIGIN" "location = /hello { return 200 'Hello World!\n'; } location / { root $work/www; }"
nginx_conf proxy "$NGINX_PROXY" "$NGINX_PROXY_LOCATION" "" "$workers"

taskset -c "$side_cpus" "$NGINX" -c "$work/origin/nginx.conf" & pids+=($!)
taskset -c "$proxy_cpus" "$NGINX" -c "$work/proxy/nginx.conf" & pids+=($!)
# dripgate's upstream pool keeps idle connections as long as nginx's does (its upstream
# `keepalive_timeout`, 60 s by default; the origin keeps them 75 s): with dripgate's default of
# 4 s every repetition after the first found its pool emptied during the other contenders' turns
# and began with 256 new upstream connections, which nginx and hyper_floor never pay
# (docs/BENCHMARKS.md, 2026-11-27 22:00 UTC).
DRIPGATE_SERVER__LISTEN=$DRIPGATE DRIPGATE_ADMIN__LISTEN=$ADMIN DRIPGATE_UPSTREAM__URL=http://$ORIGIN \
DRIPGATE_SERVER__WORKER_THREADS=$workers DRIPGATE_LOG__LEVEL=warn DRIPGATE_UPSTREAM__POOL_MAX_IDLE=512 \
DRIPGATE_UPSTREAM__POOL_IDLE_TIMEOUT=60s \
  taskset -c "$proxy_cpus" "$BIN" serve --config config/dripgate.example.toml > "$work/dripgate.log" 2>&1 & pids+=($!)
dg_pid=$!
contenders="direct nginx dripgate"; addrs="$ORIGIN $NGINX_PROXY $DRIPGATE"; floor_pid=0
if [ "$workers" = 1 ]; then
  taskset -c 0 "$FLOOR_BIN" "$FLOOR" "$ORIGIN" > "$work/hyper_floor.log" 2>&1 & pids+=($!)
  floor_pid=$!
  contenders="$contenders hyper_floor"; addrs="$addrs $FLOOR"
fi
for a in $addrs; do wait_listening "$a"; done

# The nginx proxy's workers are the children of its master.
nginx_master=${pids[1]}
nginx_workers() { pgrep -P "$(cat "$work/proxy/nginx.pid" 2>/dev/null || echo $nginx_master)" | xargs; }
# peak_rss_kb PID...: the sum of the processes' peak RSS (nginx with several workers).
peak_rss_kb() { local t=0 p; for p in "$@"; do t=$(( t + $(awk '/VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0) )); done; echo $t; }

# CPU time (user + system) a process has used, in clock ticks: with it each run also reports the
# proxy's CPU cost per request, which a neighbour slowing the whole VM moves far less than req/s.
cpu_ticks() { local t=0 p; for p in "$@"; do t=$(( t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0) )); done; echo $t; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

results="$work/results.tsv"
run_wrk() { # contender path pid-whose-CPU-to-count (0: none)
  local target=$1 path=$2 pid=$3 out before after
  before=$(cpu_ticks $pid)
  out=$(taskset -c "$side_cpus" wrk -t1 -c"$conns" -d"$duration" --latency "http://$target$path" 2>&1)
  after=$(cpu_ticks $pid)
  if echo "$out" | grep -q "Non-2xx\|Socket errors"; then
    echo "FAILED RUN against $target$path:" >&2; echo "$out" >&2; exit 1
  fi
  python3 - "$out" "$(( (after - before) * TICK_US ))" <<'PY'
import re, sys
out, cpu_us = sys.argv[1], int(sys.argv[2])
def lat(label):
    m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
requests = int(re.search(r"(\d+) requests in", out).group(1))
print(f"{rps:.0f}\t{lat('50'):.3f}\t{lat('99'):.3f}\t{cpu_us / requests:.2f}")
PY
}

nginx_pid=$(nginx_workers)
# rotated LIST N: LIST (words) rotated left by N. Each repetition starts with a different
# contender: a run's place in the rotation moves its result by several percent on these VMs
# (docs/BENCHMARKS.md), so a fixed order would favour one contender in every repetition.
rotated() { local -a w=($1); local n=${#w[@]} i; for ((i = 0; i < n; i++)); do printf '%s ' "${w[(i + $2) % n]}"; done; }
for path in /hello /16k.txt; do
  for rep in $(seq 1 "$reps"); do
    for who in $(rotated "$contenders" "$rep"); do
      case $who in
        direct) t=$ORIGIN; p=0;;
        nginx) t=$NGINX_PROXY; p=$nginx_pid;;
        dripgate) t=$DRIPGATE; p=$dg_pid;;
        hyper_floor) t=$FLOOR; p=$floor_pid;;
      esac
      line=$(run_wrk "$t" "$path" "$p") || exit 1
      printf '%s\t%s\t%s\t%s\n' "$path" "$rep" "$who" "$line" >> "$results"
    done
  done
done
dg_rss=$(peak_rss_kb "$dg_pid"); ng_rss=$(peak_rss_kb $nginx_pid); floor_rss=$(peak_rss_kb "$floor_pid")

python3 - "$results" "$dg_rss" "$ng_rss" "$floor_rss" "$conns" "$duration" "$reps" "$workers" <<'PY'
import statistics, sys, collections
path, dg_rss, ng_rss, floor_rss, conns, duration, reps, workers = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(path)]
by = collections.defaultdict(dict)
for p, rep, who, rps, p50, p99, cpu in rows:
    by[(p, rep)][who] = (float(rps), float(p50), float(p99), float(cpu))
floor = workers == "1"
layout = "one worker each, pinned" if floor else f"{workers} workers each, unpinned"
print(f"wrk -t1 -c{conns} -d{duration}, {reps} interleaved repetitions, {layout}; medians (per-repetition ratios)\n")
print("| path | contender | req/s | p50 ms | p99 ms | proxy CPU µs/request |")
print("|---|---|---|---|---|---|")
paths = sorted({p for p, _ in by})
for p in paths:
    reps_ = [v for (pp, _), v in by.items() if pp == p]
    for who in ("direct", "nginx", "dripgate") + (("hyper_floor",) if floor else ()):
        med = lambda i: statistics.median(r[who][i] for r in reps_)
        cpu = "" if who == "direct" else f"{med(3):.2f}"
        print(f"| {p} | {who} | {med(0):.0f} | {med(1):.3f} | {med(2):.3f} | {cpu} |")
floor_head = " hyper_floor/nginx req/s | dripgate/hyper_floor req/s |" if floor else ""
print("\n| path | dripgate/nginx req/s (range) | dripgate/nginx p99 | dripgate/direct req/s | nginx/dripgate CPU per request |"
      + floor_head)
print("|---|---|---|---|---|" + ("---|---|" if floor else ""))
for p in paths:
    reps_ = [v for (pp, _), v in by.items() if pp == p]
    ratios = lambda a, b, i: [r[a][i] / r[b][i] for r in reps_]
    ratio = lambda a, b, i: statistics.median(ratios(a, b, i))
    rps = ratios('dripgate', 'nginx', 0)
    # The two target columns carry a third decimal: at two, a median of 0.896 reads as 0.90.
    print(f"| {p} | {statistics.median(rps):.3f} ({min(rps):.2f}–{max(rps):.2f}) | {ratio('dripgate','nginx',2):.3f} "
          f"| {ratio('dripgate','direct',0):.2f} | {ratio('nginx','dripgate',3):.2f} |"
          + (f" {ratio('hyper_floor','nginx',0):.2f} | {ratio('dripgate','hyper_floor',0):.2f} |" if floor else ""))
workers_label = "worker" if workers == "1" else f"{workers} workers together"
print(f"\npeak RSS: dripgate {int(dg_rss)/1024:.1f} MiB, nginx proxy {workers_label} {int(ng_rss)/1024:.1f} MiB"
      + (f", hyper_floor {int(floor_rss)/1024:.1f} MiB" if floor else ""))
PY

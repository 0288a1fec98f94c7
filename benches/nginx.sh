# Shared by the benchmark scripts (sourced, not run): the dripgate binary to measure, and nginx
# configurations under $work.

# dripgate_bin: prints the binary to measure. By default the profile-guided `dist` build the
# Dockerfile ships (scripts/pgo-build.sh: two builds and a training run, about 11 minutes on two
# cores), built first; DRIPGATE_BIN=path measures another binary as is (an earlier build kept for
# an A/B comparison on the same machine, or the plain `cargo build --profile dist`).
dripgate_bin() {
  if [ -n "${DRIPGATE_BIN:-}" ]; then
    echo "$DRIPGATE_BIN"
  else
    scripts/pgo-build.sh | tail -n 1
  fi
}

# listening ADDR: whether something accepts TCP connections on ADDR (host:port).
listening() { (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; }

# wait_listening ADDR: waits up to 20 s for ADDR to accept connections; otherwise prints the logs
# under $work and exits.
wait_listening() {
  for _ in $(seq 1 100); do listening "$1" && return 0; sleep 0.2; done
  echo "nothing listens on $1; logs:" >&2
  cat "$work"/*/error.log "$work"/*.log >&2 2>/dev/null || true
  exit 1
}

# floor_bin: prints the hyper_floor example to measure (examples/hyper_floor.rs: the least a
# hyper-based proxy does per request), built with the `dist` profile; HYPER_FLOOR_BIN=path
# measures a given binary as is.
floor_bin() {
  if [ -n "${HYPER_FLOOR_BIN:-}" ]; then
    echo "$HYPER_FLOOR_BIN"
  else
    cargo build --profile dist --example hyper_floor --quiet >&2
    echo "${CARGO_TARGET_DIR:-target}/dist/examples/hyper_floor"
  fi
}

# nginx_conf DIR LISTEN SERVER_BODY [MAIN_EXTRA] [WORKERS]: writes $work/DIR/nginx.conf for
# WORKERS worker processes (default 1), in the foreground, access log off, with an upstream
# `origin` ($ORIGIN, keep-alive pool).
nginx_conf() {
  cat > "$work/$1/nginx.conf" <<CONF
worker_processes ${5:-1};
daemon off;
${4:-}
pid $work/$1/nginx.pid;
error_log $work/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/$1; proxy_temp_path $work/$1; fastcgi_temp_path $work/$1;
  uwsgi_temp_path $work/$1; scgi_temp_path $work/$1;
  upstream origin { server $ORIGIN; keepalive 256; }
  server {
    listen $2 reuseport backlog=4096;
    $3
  }
}
CONF
}

# nginx as a reverse proxy doing the per-request work dripgate does: a keep-alive upstream
# connection, the client's Host kept, X-Forwarded-For appended, X-Forwarded-Proto and
# X-Forwarded-Host set (the headers dripgate sends upstream by default).
NGINX_PROXY_LOCATION='location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Forwarded-Host $host; }'

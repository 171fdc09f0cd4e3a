# tests/lib.sh: what the shell tests share. Source it after `set -uo pipefail`:
#   . "$(dirname "$0")/../lib.sh"
# On sourcing: $T is this run's scratch folder and $fails counts failed checks; at exit every
# process given to `track` is stopped (and reaped) and $T is removed.
# The server helpers read $COGUMI (the cogumi binary) and $REPO (the repository root).

T=$(mktemp -d)
fails=0
_LIB_PIDS=()
_lib_cleanup() {
  local p
  {  # quiet: bash may already have reaped a stopped process and then says so on wait
    for p in "${_LIB_PIDS[@]+"${_LIB_PIDS[@]}"}"; do kill "$p"; done
    for p in "${_LIB_PIDS[@]+"${_LIB_PIDS[@]}"}"; do wait "$p"; done
  } 2>/dev/null
  rm -rf "$T"
}
trap _lib_cleanup EXIT

# track PID...: stopped with SIGTERM at exit (one already gone is skipped).
track() { _LIB_PIDS+=("$@"); }

# check NAME CMD...: runs CMD; its output is shown only when it fails.
check() {
  local name="$1"; shift
  if "$@" >"$T/out" 2>&1; then echo "ok   $name"; else echo "FAIL $name"; cat "$T/out"; fails=$((fails + 1)); fi
}

# finish: prints the count and exits 1 when any check failed.
finish() {
  echo "$fails failure(s)"
  exit $((fails > 0))
}

# need TOOL PACKAGE: fails the test, naming the Debian package, when TOOL is not on PATH.
need() {
  command -v "$1" >/dev/null ||
    { echo "FAIL: '$1' is not installed (Debian package '$2'; scripts/deps.sh --test installs it)"; exit 1; }
}

# free_port: a TCP port free on 127.0.0.1 now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_for SECONDS CMD...: retries CMD (output hidden) every 0.2 s until it succeeds; 1 on timeout.
wait_for() {
  local until=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < until)) || return 1
    sleep 0.2
  done
}

# nano_system OUT: the shipped nano system file with absolute model paths and its session memory
# in $T, written to OUT.
nano_system() {
  sed -e "s#\(nano-[a-z]*\.\(gguf\|json\)\)#$REPO/models/\1#g" -e "s#^memory:.*#memory: $T/sessions.db#" \
    "$REPO/models/nano-system.yaml" >"$1"
}

# start_serve NAME ARGS...: `cogumi serve ARGS --host 127.0.0.1 --port 0` in the background, its
# output in $T/NAME.out and $T/NAME.err; waits up to 120 s for "listening on" and sets PORT_NAME
# and PID_NAME. Exits the test, showing the server's output, when it dies or never listens.
start_serve() {
  local name="$1"; shift
  "$COGUMI" serve "$@" --host 127.0.0.1 --port 0 >"$T/$name.out" 2>"$T/$name.err" &
  local pid=$! until=$((SECONDS + 120))
  track "$pid"
  until grep -q "listening on http://" "$T/$name.out"; do
    if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= until)); then
      echo "FAIL server $name did not start"; cat "$T/$name.out" "$T/$name.err"; exit 1
    fi
    sleep 0.2
  done
  eval "PORT_$name=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$T/$name.out")"
  eval "PID_$name=$pid"
}

# nginx_conf DIR CONNECTIONS HTTP_BODY: DIR/nginx.conf for an nginx run in the foreground with
# every file it writes under DIR (as root it runs its workers as root, the only user here).
nginx_conf() {
  mkdir -p "$1/logs"
  cat >"$1/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/logs/error.log;
$( [ "$(id -u)" = 0 ] && echo "user root;" )
events { worker_connections $2; }
http {
  access_log $1/logs/access.log;
  client_body_temp_path $1/body;
  proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi;
  scgi_temp_path $1/scgi;
$3
}
CONF
}

# start_nginx DIR: nginx on DIR/nginx.conf in the background (stderr in DIR/nginx.err), tracked.
start_nginx() {
  nginx -p "$1" -c "$1/nginx.conf" 2>"$1/nginx.err" &
  track $!
}

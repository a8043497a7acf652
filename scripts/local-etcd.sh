#!/usr/bin/env bash
# A local etcd for trying libregistry by hand: runs in the background and
# outlives this command, until `stop`.
#
#   scripts/local-etcd.sh start     starts it (or finds it running) and prints
#                                   the `export REGISTRY_ENDPOINTS=...` line
#   scripts/local-etcd.sh stop      stops it (only the etcd this script started)
#   scripts/local-etcd.sh status    says whether it runs, where, and if it answers
#   scripts/local-etcd.sh etcdctl ARGS...   etcd's own etcdctl, pointed at it,
#                                   e.g. `etcdctl get --prefix /micro/`
#
# etcd 3.7.3 when scripts/setup.sh built it, else 3.5 (`scripts/etcd-path.sh`);
# once started, the same binary again (etcd refuses data of a newer version).
# Client port 2379 when free, else the last one used when free, else any free
# one; loopback only. Everything lives under .demo/etcd/ ($LOCAL_ETCD_DIR
# when set: the docs test uses a scratch one): data/, etcd.log, etcd.pid,
# endpoint. The data outlives `stop`; `rm -rf .demo/etcd` wipes it.
# Every subcommand is safe to repeat. stdout carries only the export lines
# (so `eval "$(scripts/local-etcd.sh start)"` works); messages go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${LOCAL_ETCD_DIR:-$PWD/.demo/etcd}"
DATA="$DIR/data"
PID_FILE="$DIR/etcd.pid"
LOG="$DIR/etcd.log"
ENDPOINT_FILE="$DIR/endpoint"
PEER_FILE="$DIR/peer"
BIN_FILE="$DIR/binary"

say() { echo "local-etcd: $*" >&2; }

etcd_bin() {
  scripts/etcd-path.sh 3.7.3 2>/dev/null || scripts/etcd-path.sh 2>/dev/null || {
    say "no etcd binary: run scripts/setup.sh (make setup) first"
    exit 1
  }
}

# The PID of the etcd this script started, when it still runs; nothing otherwise.
# "Ours" means: the PID file's process is an etcd whose --data-dir is $DATA
# (a PID reused by another program is not ours).
our_pid() {
  [ -f "$PID_FILE" ] || return 0
  local pid
  pid="$(cat "$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  [ -r "/proc/$pid/cmdline" ] || return 0
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  case "$cmdline" in
    *etcd*"--data-dir $DATA "*) echo "$pid" ;;
  esac
}

# Whether nothing listens on (and nothing holds) 127.0.0.1:$1.
port_free() {
  python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The first free port of the list, else any free one.
choose_port() {
  for port in "$@"; do
    if [ -n "$port" ] && port_free "$port"; then
      echo "$port"
      return
    fi
  done
  free_port
}

# The port of the URL saved in file $1 (empty when none).
saved_port() { sed -n 's/.*:\([0-9]*\)$/\1/p' "$1" 2>/dev/null || true; }

etcdctl_bin() { echo "$(dirname "$(running_bin)")/etcdctl"; }

# The binary of the running etcd (the one started), else the one we would start.
running_bin() {
  local pid
  pid="$(our_pid)"
  if [ -n "$pid" ]; then
    readlink "/proc/$pid/exe"
  else
    etcd_bin
  fi
}

answers() {
  env -u ETCDCTL_ENDPOINTS "$(etcdctl_bin)" --endpoints "$1" --command-timeout=1s endpoint health >/dev/null 2>&1
}

print_exports() {
  local endpoint
  endpoint="$(cat "$ENDPOINT_FILE")"
  echo "export REGISTRY_ENDPOINTS=$endpoint"
}

start() {
  mkdir -p "$DIR"
  local pid
  pid="$(our_pid)"
  if [ -n "$pid" ]; then
    say "already running (pid $pid) on $(cat "$ENDPOINT_FILE")"
    print_exports
    return
  fi
  rm -f "$PID_FILE"
  local bin client_port peer_port endpoint peer
  bin="$(cat "$BIN_FILE" 2>/dev/null || true)"
  [ -n "$bin" ] && [ -x "$bin" ] || bin="$(etcd_bin)"
  client_port="$(choose_port 2379 "$(saved_port "$ENDPOINT_FILE")")"
  peer_port="$(choose_port "$(saved_port "$PEER_FILE")" 2380)"
  if [ "$peer_port" = "$client_port" ]; then peer_port="$(free_port)"; fi
  endpoint="http://127.0.0.1:$client_port"
  peer="http://127.0.0.1:$peer_port"
  # A data dir made with other peer URLs would refuse the new ones: start afresh then.
  if [ -d "$DATA" ] && [ "$(cat "$PEER_FILE" 2>/dev/null)" != "$peer" ]; then
    say "peer port changed: starting on an empty data dir"
    rm -rf "$DATA"
  fi
  echo "$endpoint" >"$ENDPOINT_FILE"
  echo "$peer" >"$PEER_FILE"
  echo "$bin" >"$BIN_FILE"
  echo "== $(date -u +%FT%TZ) starting $bin" >>"$LOG"
  # setsid + nohup: not killed with this shell or its terminal.
  setsid nohup "$bin" --name local --data-dir "$DATA" \
    --listen-client-urls "$endpoint" --advertise-client-urls "$endpoint" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "local=$peer" --log-level warn \
    </dev/null >>"$LOG" 2>&1 &
  pid=$!
  echo "$pid" >"$PID_FILE"
  for _ in $(seq 1 100); do
    if answers "$endpoint"; then
      say "etcd $("$bin" --version | sed -n 's/^etcd Version: //p') running (pid $pid) on $endpoint"
      say "data: $DATA, log: $LOG; stop: scripts/local-etcd.sh stop"
      print_exports
      return
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      say "etcd exited at start; the end of $LOG:"
      tail -n 20 "$LOG" >&2
      say "to start afresh, on an empty data dir: rm -rf $DIR"
      exit 1
    fi
    sleep 0.2
  done
  say "etcd (pid $pid) did not answer on $endpoint within 20 s; see $LOG (still running: stop it with scripts/local-etcd.sh stop)"
  exit 1
}

stop() {
  local pid
  pid="$(our_pid)"
  if [ -z "$pid" ]; then
    if [ -f "$PID_FILE" ]; then
      say "not running (pid $(cat "$PID_FILE") is gone or is not our etcd); removed the stale pid file"
      rm -f "$PID_FILE"
    else
      say "not running"
    fi
    return
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "etcd (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  say "stopped etcd (pid $pid); its data stays in $DATA"
}

status() {
  local pid endpoint
  pid="$(our_pid)"
  if [ -z "$pid" ]; then
    say "not running (start it: scripts/local-etcd.sh start)"
    exit 3
  fi
  endpoint="$(cat "$ENDPOINT_FILE")"
  if answers "$endpoint"; then
    say "running (pid $pid) on $endpoint and answering; data: $DATA, log: $LOG"
    print_exports
  else
    say "running (pid $pid) on $endpoint but not answering; see $LOG"
    exit 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  etcdctl)
    shift
    [ -n "$(our_pid)" ] || { say "not running (start it: scripts/local-etcd.sh start)"; exit 3; }
    exec env -u ETCDCTL_ENDPOINTS "$(etcdctl_bin)" --endpoints "$(cat "$ENDPOINT_FILE")" "$@"
    ;;
  *)
    echo "usage: $0 start|stop|status|etcdctl ARGS..." >&2
    exit 2
    ;;
esac

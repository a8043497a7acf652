# A real etcd for the dist checks, sourced by scripts/dist-check.sh: its own
# process on free loopback ports in a temp dir, checked to be ours (its member
# name is unique) and stopped by its PID.
#   etcd_start DIR   starts it; sets ETCD_ENDPOINT and ETCD_PID
#   etcd_ctl ARGS    etcdctl against it
#   etcd_stop        stops it
# Needs ETCD_BIN; etcdctl is the one beside it, else PATH's.

etcd_ctl() {
  local ctl
  ctl="$(dirname "$ETCD_BIN")/etcdctl"
  [ -x "$ctl" ] || ctl=etcdctl
  ETCDCTL_API=3 "$ctl" --endpoints "$ETCD_ENDPOINT" --dial-timeout 2s --command-timeout 5s "$@"
}

etcd_start() {
  local dir=$1 name ports client peer
  name="dist-check-$$-$RANDOM"
  # Two distinct free ports, held open together while the kernel picks them.
  ports=$(python3 -c 'import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
  read -r client peer <<<"$ports"
  mkdir -p "$dir"
  "$ETCD_BIN" --name "$name" --data-dir "$dir/data" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "$name=http://127.0.0.1:$peer" --initial-cluster-token "$name" \
    >"$dir/etcd.log" 2>&1 &
  ETCD_PID=$!
  ETCD_ENDPOINT="http://127.0.0.1:$client"
  local deadline=$((SECONDS + 30))
  until etcd_ctl member list 2>/dev/null | grep -q ", $name, "; do
    if ! kill -0 "$ETCD_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      echo "etcd did not start as ours on $ETCD_ENDPOINT; its log:" >&2
      tail -n 20 "$dir/etcd.log" >&2
      etcd_stop
      return 1
    fi
    sleep 0.2
  done
}

etcd_stop() {
  if [ -n "${ETCD_PID:-}" ]; then
    kill "$ETCD_PID" 2>/dev/null || true
    wait "$ETCD_PID" 2>/dev/null || true
    ETCD_PID=
  fi
}

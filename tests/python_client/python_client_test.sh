#!/usr/bin/env bash
# docs/PROTOCOL.md is enough to write a client in another language: generate
# Python stubs exactly as the document says (system protoc with
# grpc_python_plugin), start a real devmemd process (simulated backend over
# lo, no root needed), and run devmem_client.py, written from the document
# alone, against it. Debian's python3-grpcio and python3-protobuf (installed
# by scripts/setup.sh) run it.
set -euo pipefail

DEVMEMD=$PWD/daemon/devmemd
CLIENT=$PWD/tests/python_client/devmem_client.py
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/devmemd-py.XXXXXX)
DAEMON_PID=""
cleanup() {
  if [[ -n $DAEMON_PID ]]; then kill -TERM "$DAEMON_PID" 2>/dev/null || true; wait "$DAEMON_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }

"$PY" -c 'import grpc, google.protobuf' 2>/dev/null ||
  fail "python3-grpcio and python3-protobuf are missing: run scripts/setup.sh as root"

# The document's stub-generation command, verbatim in substance.
mkdir -p "$WORK/gen"
protoc -I proto --python_out="$WORK/gen" --grpc_out="$WORK/gen" \
  --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin \
  proto/devmem/v1/devmem.proto proto/devmem/v1/session.proto ||
  fail "protoc could not generate the Python stubs"
[[ -f $WORK/gen/devmem/v1/devmem_pb2_grpc.py ]] || fail "no devmem_pb2_grpc.py generated"

uid=$(id -u)
printf 'allow_uids: %s\nadmin_uids: %s\n' "$uid" "$uid" >"$WORK/devmemd.textproto"
"$DEVMEMD" --config="$WORK/devmemd.textproto" --nic_backend=simulated --nic=lo \
  --runtime_dir="$WORK/run" --state_dir="$WORK/state" --dbus= \
  2>"$WORK/devmemd.log" &
DAEMON_PID=$!
for _ in $(seq 100); do
  [[ -S $WORK/run/session.sock && -S $WORK/run/grpc.sock ]] && break
  kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$WORK/devmemd.log"; fail "devmemd exited"; }
  sleep 0.1
done
[[ -S $WORK/run/session.sock ]] || { cat "$WORK/devmemd.log"; fail "devmemd did not start"; }

if ! "$PY" "$CLIENT" "$WORK/run" "$WORK/gen"; then
  echo "--- devmemd log" >&2
  cat "$WORK/devmemd.log" >&2
  fail "the Python client found devmemd and the document disagreeing"
fi
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || fail "devmemd exited non-zero on SIGTERM"
DAEMON_PID=""
echo "PASS: python_client_test"

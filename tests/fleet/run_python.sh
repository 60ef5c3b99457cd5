#!/usr/bin/env bash
# Runs a Python test with Debian's interpreter (python3-grpcio lives there).
set -euo pipefail
/usr/bin/python3 -c 'import grpc, google.protobuf' 2>/dev/null || {
  echo "FAIL: python3-grpcio and python3-protobuf are missing: run scripts/setup.sh as root" >&2
  exit 1
}
exec /usr/bin/python3 "$@"

#!/usr/bin/env bash
# Interoperability test of `wechatpay serve` with a Python SDK we did not write (wechatpayv3,
# from PyPI, unmodified): see docs/interop.md.
#
#   interop/python/run.sh [PATH/TO/wechatpay]     (or WECHATPAY_BIN=PATH/TO/wechatpay)
#
# Builds nothing: it takes the `wechatpay` binary, installs the pinned requirements into
# interop/python/.venv when it is missing, then for each run of the sandbox (public-key mode,
# certificate mode, public-key mode over HTTPS) starts `wechatpay serve` with a fresh private
# keys directory, sources the env file it writes, and runs story.py against it. serve is always
# stopped; the exit status is non-zero when any step failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

bin=${1:-${WECHATPAY_BIN:-}}
if [ -z "$bin" ]; then
  echo "usage: $0 PATH/TO/wechatpay   (or set WECHATPAY_BIN); build it with: cargo build --locked --bin wechatpay" >&2
  exit 2
fi
case "$bin" in
  */*) bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin") ;;
  *) bin=$(command -v "$bin" || true) ;;
esac
if [ ! -x "$bin" ] || [ -d "$bin" ]; then
  echo "$0: ${1:-${WECHATPAY_BIN}} is not an executable wechatpay binary" >&2
  exit 2
fi
export WECHATPAY_BIN=$bin
command -v python3 >/dev/null 2>&1 || { echo "$0: python3 is missing (Debian: apt-get install python3 python3-venv)" >&2; exit 2; }

cd "$here"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv || { echo "$0: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; rm -rf .venv; exit 2; }
  if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt; then
    rm -rf .venv
    echo "$0: installing requirements.txt from PyPI failed" >&2
    exit 2
  fi
fi
python=$here/.venv/bin/python

work=$(mktemp -d "${TMPDIR:-/tmp}/wechatpay-interop-python.XXXXXX")
chmod 700 "$work"
serve_pid=
stop_serve() {
  if [ -n "$serve_pid" ]; then
    kill -TERM "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
    serve_pid=
  fi
}
cleanup() {
  stop_serve
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

failed=()
# each run: a name (its directory) and serve's options
for run in "public-key:--mode public-key" "certificate:--mode certificate" "tls:--mode public-key --tls"; do
  mode=${run%%:*}
  read -r -a options <<<"${run#*:}"
  echo
  echo "=== wechatpay serve ${options[*]}"
  keys=$work/$mode
  log=$work/$mode.log
  "$bin" serve "${options[@]}" --keys-dir "$keys" >"$log" 2>&1 &
  serve_pid=$!
  # serve prints where its env file is once every file is written
  for _ in $(seq 1 300); do
    grep -q 'keys and settings: source' "$log" 2>/dev/null && break
    if ! kill -0 "$serve_pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if ! grep -q 'keys and settings: source' "$log" 2>/dev/null; then
    echo "wechatpay serve did not start:" >&2
    cat "$log" >&2
    failed+=("serve ${options[*]}")
    stop_serve
    continue
  fi
  head -n 1 "$log"
  echo
  # with --tls the env file names the sandbox's CA in SSL_CERT_FILE: requests takes it as
  # REQUESTS_CA_BUNDLE (it reads its own bundle otherwise)
  if ! (
    set -a && . "$keys/env" && set +a
    if [ -n "${SSL_CERT_FILE:-}" ]; then export REQUESTS_CA_BUNDLE=$SSL_CERT_FILE; fi
    "$python" story.py
  ); then
    failed+=("story.py ($mode)")
    echo "--- wechatpay serve's log ($mode):"
    tail -n 60 "$log"
  fi
  stop_serve
done

echo
if [ ${#failed[@]} -gt 0 ]; then
  printf 'interop/python: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "interop/python: wechatpayv3 accepted every answer and notification of the sandbox (public-key, certificate and TLS runs)"

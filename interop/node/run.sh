#!/usr/bin/env bash
# Interoperability tests of `wechatpay serve` with two Node SDKs we did not write
# (wechatpay-axios-plugin, wechatpay-node-v3): see docs/interop.md.
#
#   interop/node/run.sh [PATH/TO/wechatpay]     (or WECHATPAY_BIN=PATH/TO/wechatpay)
#
# Builds nothing: it takes the `wechatpay` binary, installs the locked npm packages when
# node_modules is missing, then for each run of the sandbox (public-key mode, certificate mode,
# public-key mode over HTTPS) starts `wechatpay serve` with a fresh private keys directory,
# sources the env file it writes, and runs both SDKs' scripts against it. WECHATPAY_CORPUS
# (the conformance corpus) adds its replay through both SDKs. serve is always stopped; the exit status is non-zero when
# any script failed.
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
for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$0: $tool is missing (Debian: apt-get install nodejs npm)" >&2; exit 2; }
done
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' || {
  echo "$0: Node.js 18 or later is needed (fetch, node:test era); found $(node --version)" >&2
  exit 2
}

cd "$here"
if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/wechatpay-interop-node.XXXXXX")
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
  for script in axios-plugin.js node-v3.js; do
    echo
    # with --tls the env file names the sandbox's CA in SSL_CERT_FILE; Node trusts it as an
    # extra CA (its default roots stay)
    if ! (
      set -a && . "$keys/env" && set +a
      if [ -n "${SSL_CERT_FILE:-}" ]; then export NODE_EXTRA_CA_CERTS=$SSL_CERT_FILE; fi
      # the corpus is about answers, which TLS does not change: replayed in the plain runs
      if [ "$mode" = tls ]; then unset WECHATPAY_CORPUS; fi
      node "$script"
    ); then
      failed+=("$script ($mode)")
      echo "--- wechatpay serve's log ($mode):"
      tail -n 60 "$log"
    fi
  done
  stop_serve
done

echo
if [ ${#failed[@]} -gt 0 ]; then
  printf 'interop/node: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "interop/node: both SDKs accepted every answer and notification of the sandbox (public-key, certificate and TLS runs)"

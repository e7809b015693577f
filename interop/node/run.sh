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

. "$here/../serve-runs.sh"
interop_bin "${1:-}"
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

# called by interop_runs for each run of serve
interop_scripts() {
  local mode=$1 keys=$2 log=$3
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
}

interop_runs node "both SDKs accepted every answer and notification of the sandbox (public-key, certificate and TLS runs)"

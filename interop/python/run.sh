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

. "$here/../serve-runs.sh"
interop_bin "${1:-}"
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

# called by interop_runs for each run of serve
interop_scripts() {
  local mode=$1 keys=$2 log=$3
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
}

interop_runs python "wechatpayv3 accepted every answer and notification of the sandbox (public-key, certificate and TLS runs)"

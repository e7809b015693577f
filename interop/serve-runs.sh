# What interop/*/run.sh share, sourced by each: the `wechatpay` binary they are given, and the
# runs of `wechatpay serve` their SDK scripts go against (see docs/interop.md).

# interop_bin ARG: the binary named by ARG (a path or a command) or else by WECHATPAY_BIN, made
# absolute and exported as WECHATPAY_BIN; exits 2 with the usage when there is none.
interop_bin() {
  local bin=${1:-${WECHATPAY_BIN:-}}
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
}

# interop_runs NAME SUCCESS: for each run of the sandbox (public-key mode, certificate mode,
# public-key mode over HTTPS) starts `wechatpay serve` with a fresh private keys directory,
# waits for its env file, calls the caller's `interop_scripts MODE KEYS_DIR LOG` (which adds
# what failed to the array `failed`) and stops serve, even when something failed. Then prints
# NAME's verdict, SUCCESS when nothing failed; exits 1 otherwise.
interop_runs() {
  local name=$1 success=$2
  work=$(mktemp -d "${TMPDIR:-/tmp}/wechatpay-interop-$name.XXXXXX")
  chmod 700 "$work"
  serve_pid=
  trap interop_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  failed=()
  local run mode options keys log
  # each run: a name (its directory) and serve's options
  for run in "public-key:--mode public-key" "certificate:--mode certificate" "tls:--mode public-key --tls"; do
    mode=${run%%:*}
    read -r -a options <<<"${run#*:}"
    echo
    echo "=== wechatpay serve ${options[*]}"
    keys=$work/$mode
    log=$work/$mode.log
    "$WECHATPAY_BIN" serve "${options[@]}" --keys-dir "$keys" >"$log" 2>&1 &
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
      interop_stop_serve
      continue
    fi
    head -n 1 "$log"
    interop_scripts "$mode" "$keys" "$log"
    interop_stop_serve
  done
  echo
  if [ ${#failed[@]} -gt 0 ]; then
    local each
    for each in "${failed[@]}"; do
      echo "interop/$name: FAILED: $each" >&2
    done
    exit 1
  fi
  echo "interop/$name: $success"
}

interop_stop_serve() {
  if [ -n "${serve_pid:-}" ]; then
    kill -TERM "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
    serve_pid=
  fi
}

interop_cleanup() {
  interop_stop_serve
  rm -rf "$work"
}

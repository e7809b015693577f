#!/usr/bin/env bash
# What one `wechatpay get …` costs as a whole process, against `wechatpay serve` on loopback:
# wall time and CPU (user + system) per invocation, over N invocations, in ROUNDS rounds;
# prints each round and the median and range over the rounds.
#
#   benches/cli_startup.sh            # N=200 ROUNDS=5
#   N=50 ROUNDS=3 benches/cli_startup.sh
#   WECHATPAY_BIN=/path/to/wechatpay benches/cli_startup.sh
#
# Cases: plain HTTP (the target: nothing TLS-related is loaded), the same with
# SSL_CERT_FILE=/dev/null for reference, and HTTPS (`serve --tls`) with the emulator's CA
# trusted three ways, to report what the trust store costs: as serve's env file says
# (SSL_CERT_FILE=ca.pem, beside the system's hashed directory), in a hashed directory of its own
# (SSL_CERT_DIR), and appended to the whole system bundle (SSL_CERT_FILE=bundle: every
# certificate parsed, which is what loading the bundle costs). `/bin/true` run the same way is
# the floor of starting any process from the loop.
#
# Needs: bash, GNU time (/usr/bin/time, Debian package `time`), openssl (for `openssl rehash`).
# hyperfine (Debian package `hyperfine`), if installed, adds its own wall-time summary of the
# HTTP case; without it that line is skipped, saying so.
set -euo pipefail

N=${N:-200}
ROUNDS=${ROUNDS:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
BIN=${WECHATPAY_BIN:-$root/target/release/wechatpay}
if [ ! -x "$BIN" ]; then
    echo "building $BIN" >&2
    (cd "$root" && cargo build --release --locked --bin wechatpay)
fi
if [ ! -x /usr/bin/time ]; then
    echo "cli_startup: /usr/bin/time (GNU time) is missing: apt-get install time" >&2
    exit 1
fi

scratch=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$scratch"
}
trap cleanup EXIT

# Starts `wechatpay serve` writing its keys and env file to $scratch/$1; further args go to serve.
serve() {
    local dir=$scratch/$1
    shift
    "$BIN" serve --keys-dir "$dir" "$@" >"$dir.out" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        [ -s "$dir/env" ] && grep -q "Ctrl-C" "$dir.out" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "cli_startup: serve did not start:" >&2
    cat "$dir.out" >&2
    exit 1
}

# Runs "$@" N times from one shell under GNU time; prints "wall_ms cpu_ms" per invocation.
per_call() {
    local out
    out=$(/usr/bin/time -f "%e %U %S" bash -c '
        n=$1; shift
        for ((i = 0; i < n; i++)); do "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; done
    ' _ "$N" "$@" 2>&1 >/dev/null | tail -1)
    awk -v n="$N" '{ printf "%.2f %.2f\n", $1 * 1000 / n, ($2 + $3) * 1000 / n }' <<<"$out"
}

# label, then the command (with `env VAR=…` as needed): ROUNDS rounds, then median and range.
measure() {
    local label=$1
    shift
    local rows=()
    for ((r = 0; r < ROUNDS; r++)); do rows+=("$(per_call "$@")"); done
    printf '%s\n' "${rows[@]}" | awk -v label="$label" -v n="$N" '
        { w[NR] = $1; c[NR] = $2 }
        function median(a, k,   i, j, t, b) {
            for (i = 1; i <= k; i++) b[i] = a[i]
            for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (b[j] < b[i]) { t = b[i]; b[i] = b[j]; b[j] = t }
            lo = b[1]; hi = b[k]
            return (k % 2) ? b[(k + 1) / 2] : (b[k / 2] + b[k / 2 + 1]) / 2
        }
        END {
            mw = median(w, NR); wl = lo; wh = hi
            mc = median(c, NR); cl = lo; ch = hi
            printf "%-58s wall %6.2f ms (%.2f–%.2f)   CPU %6.2f ms (%.2f–%.2f)   [%d rounds × %d]\n",
                label, mw, wl, wh, mc, cl, ch, NR, n
        }'
}

# The HTTP sandbox, and an order to GET (a verified 200 answer).
serve http
set -a
# shellcheck disable=SC1091
. "$scratch/http/env"
set +a
otn="bench$(date +%s)"
"$BIN" post v3/pay/transactions/native "{\"json\":{\"appid\":\"wxd678efh567hg6787\",\"mchid\":\"$WECHATPAY_MCHID\",\"description\":\"bench\",\"out_trade_no\":\"$otn\",\"notify_url\":\"https://example.com/notify\",\"amount\":{\"total\":1,\"currency\":\"CNY\"}}}" >/dev/null
get=("$BIN" get "v3/pay/transactions/out-trade-no/$otn?mchid=$WECHATPAY_MCHID")
"${get[@]}" >/dev/null # fails here, loudly, if the call does not succeed

echo "wechatpay get against wechatpay serve on loopback; $("$BIN" --version 2>/dev/null || true); $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
measure "/bin/true (a process started from the loop: the floor)" /bin/true
measure "http:// get" "${get[@]}"
measure "http:// get, SSL_CERT_FILE=/dev/null (reference)" env SSL_CERT_FILE=/dev/null "${get[@]}"
if command -v hyperfine >/dev/null; then
    # No shell in between (-N): the process alone. Its median, and the mean CPU it reports.
    hyperfine -N --warmup 5 --runs "$((N * ROUNDS))" --style none --export-json "$scratch/hf.json" "${get[*]}" >/dev/null 2>&1
    python3 - "$scratch/hf.json" <<'PY' || true
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
t = sorted(r["times"])
q = lambda p: t[min(len(t) - 1, int(p * len(t)))] * 1000
print(f"{'hyperfine, http:// get (no shell between)':<58} wall {r['median'] * 1000:6.2f} ms "
      f"(p10 {q(0.1):.2f}, p90 {q(0.9):.2f}, min {t[0] * 1000:.2f})   "
      f"CPU {(r['user'] + r['system']) * 1000:6.2f} ms (user {r['user'] * 1000:.2f}, "
      f"system {r['system'] * 1000:.2f})   [{len(t)} runs]")
PY
else
    echo "(hyperfine not installed: skipped its summary; apt-get install hyperfine)"
fi

# HTTPS: serve --tls; its env file sets SSL_CERT_FILE to the emulator's CA.
serve https --tls
tls_env=$(env -i bash -c "set -a; . '$scratch/https/env'; env")
ca=$(grep '^SSL_CERT_FILE=' <<<"$tls_env" | cut -d= -f2-)
mapfile -t tls_vars < <(grep '^WECHATPAY_' <<<"$tls_env")
# env, without the caller's SSL_* settings, with the TLS serve's WECHATPAY_* ones; then the
# trust setting of each case, then the command.
tls=(env -u SSL_CERT_FILE -u SSL_CERT_DIR "${tls_vars[@]}")
# Each serve has keys and orders of its own: a new order on the TLS one.
"${tls[@]}" "SSL_CERT_FILE=$ca" "$BIN" post v3/pay/transactions/native "{\"json\":{\"appid\":\"wxd678efh567hg6787\",\"mchid\":\"$WECHATPAY_MCHID\",\"description\":\"bench\",\"out_trade_no\":\"$otn\",\"notify_url\":\"https://example.com/notify\",\"amount\":{\"total\":1,\"currency\":\"CNY\"}}}" >/dev/null
tls_get=("$BIN" get "v3/pay/transactions/out-trade-no/$otn?mchid=$WECHATPAY_MCHID")

certdir=$scratch/certdir
mkdir "$certdir"
cp "$ca" "$certdir/emulator-ca.pem"
openssl rehash "$certdir"
system_bundle=""
for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do
    if [ -f "$f" ]; then
        system_bundle=$f
        break
    fi
done

"${tls[@]}" "SSL_CERT_FILE=$ca" "${tls_get[@]}" >/dev/null # fails here, loudly, if it does not succeed
measure "https:// get, SSL_CERT_FILE=ca.pem (serve's env file)" "${tls[@]}" "SSL_CERT_FILE=$ca" "${tls_get[@]}"
measure "https:// get, CA in a hashed SSL_CERT_DIR (no bundle)" "${tls[@]}" "SSL_CERT_DIR=$certdir" "${tls_get[@]}"
if [ -n "$system_bundle" ]; then
    bundle=$scratch/bundle.pem
    cat "$system_bundle" "$ca" >"$bundle"
    measure "https:// get, SSL_CERT_FILE=system bundle + CA ($(grep -c 'BEGIN CERT' "$bundle") certs)" \
        "${tls[@]}" "SSL_CERT_FILE=$bundle" "${tls_get[@]}"
else
    echo "(no system CA bundle found: the bundle case is skipped)"
fi

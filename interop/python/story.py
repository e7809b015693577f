"""A whole merchant story through the Python SDK wechatpayv3 (PyPI), unmodified, against
`wechatpay serve`: orders, a payment notification, a refund, a merchant transfer with an
encrypted name, bills, the controls that show the SDK's checks can fail, and `wechatpay
trigger`. See docs/interop.md.

Reads the env file serve writes (run.sh sources it): WECHATPAY_BASE_URI, WECHATPAY_MCHID,
WECHATPAY_SERIAL, WECHATPAY_PRIVATE_KEY, WECHATPAY_APIV3_KEY, then WECHATPAY_PUBLIC_KEY and
WECHATPAY_PUBLIC_KEY_ID (public-key mode) or WECHATPAY_PLATFORM_CERT (certificate mode);
WECHATPAY_SANDBOX_TOKEN when serve guards its control endpoints; WECHATPAY_BIN for trigger.

Each step prints `ok`, `not ok` (with the reason) or `not run` (an earlier step of its chain
failed); the exit status is 1 when any step failed.
"""

import gzip
import hashlib
import json
import os
import queue
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import warnings

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from wechatpayv3 import WeChatPay, WeChatPayType

# the SDK reads a certificate's naive validity dates, which cryptography deprecates: not ours
warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning)

NOTIFY_WAIT = float(os.environ.get("INTEROP_NOTIFY_WAIT_MS", "20000")) / 1000
APPID = "wxd678efh567hg6787"
OPENID = "o-MYE42l80oelYMDE34nYD456Xoy"


def need(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"story.py: {name} is not set: source the env file `wechatpay serve` writes")
    return value


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


class Runner:
    """Sequential steps; a failed step stops the later steps of its chain."""

    def __init__(self, title):
        print(f"# {title}", flush=True)
        self.failed = []
        self.broken = set()
        self.count = 0

    def step(self, name, fn, chain=None):
        self.count += 1
        if chain in self.broken:
            print(f"not run {self.count} - {name} (an earlier {chain} step failed)", flush=True)
            self.failed.append(name)
            return None
        try:
            result = fn()
        except Exception as e:  # every failure is reported, the next chain still runs
            print(f"not ok {self.count} - {name}\n    {type(e).__name__}: {e}", flush=True)
            if os.environ.get("INTEROP_VERBOSE"):
                traceback.print_exc()
            self.failed.append(name)
            if chain:
                self.broken.add(chain)
            return None
        print(f"ok {self.count} - {name}", flush=True)
        return result


def control_request(base, method, path, body=None):
    """A control endpoint of the sandbox (`/emulator/...`), with the env file's control token
    (Authorization: Bearer) when there is one; the answer's JSON."""
    headers = {"Content-Type": "application/json"}
    token = os.environ.get("WECHATPAY_SANDBOX_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if method == "GET" else json.dumps(body or {}).encode()
    req = urllib.request.Request(base + "emulator/" + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(req, timeout=30) as res:
        return json.loads(res.read() or b"null")


class Notifications:
    """The merchant's notify_url on loopback: each notification goes to the SDK's own
    `callback`, which verifies its signature and decrypts its resource; a verified one gets
    204, any other 401. The test waits for a verified one of an event type."""

    def __init__(self, wxpay):
        self.received = queue.Queue()
        self.seen = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    result = wxpay.callback(self.headers, raw)
                except Exception as e:
                    result, why = None, f"{type(e).__name__}: {e}"
                else:
                    why = "the SDK's callback refused it (signature or decryption)"
                self.send_response(204 if result else 401)
                self.end_headers()
                outer.received.put((self.path, result, why, raw, dict(self.headers.items())))

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.server.server_address[1]}/{path}"

    def wait_for(self, path, event_type, match=lambda r: True):
        """The decrypted resource of the first verified `event_type` at `/path` matching."""
        end = time.monotonic() + NOTIFY_WAIT
        while True:
            for at, result, why, raw, _ in self.seen:
                if at != "/" + path:
                    continue
                if result is None:
                    raise AssertionError(f"a notification at /{path} did not verify: {why}\n{raw[:400]!r}")
                if result.get("event_type") == event_type and match(result["resource"]):
                    return result
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no verified {event_type} at /{path} within {NOTIFY_WAIT} s")
            try:
                self.seen.append(self.received.get(timeout=left))
            except queue.Empty:
                pass

    def close(self):
        self.server.shutdown()


def out_no(prefix):
    return (prefix + str(int(time.time() * 1000)) + secrets.token_hex(3))[:32]


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def answer(result, want=range(200, 300)):
    """The SDK's (status, body) as JSON once the status is as wanted (the SDK verified a 2xx
    answer's signature before handing it over)."""
    status, body = result
    expect(status in want, f"status {status}: {body!r}")
    return json.loads(body) if body else None


def main():
    base = need("WECHATPAY_BASE_URI")
    base = base if base.endswith("/") else base + "/"
    mchid = need("WECHATPAY_MCHID")
    cert_path = os.environ.get("WECHATPAY_PLATFORM_CERT")
    mode = "certificate" if cert_path else "public-key"
    keys = dict(
        wechatpay_type=WeChatPayType.NATIVE,
        mchid=mchid,
        private_key=read(need("WECHATPAY_PRIVATE_KEY")),
        cert_serial_no=need("WECHATPAY_SERIAL"),
        appid=APPID,
        apiv3_key=need("WECHATPAY_APIV3_KEY"),
        timeout=(10, 30),
    )
    cert_dir = None
    if cert_path:
        # The SDK downloads certificates while it is constructed, before its host can be set:
        # it is given the configured certificate through its own `cert_dir` instead, and the
        # download is a step below.
        cert_dir = tempfile.mkdtemp(prefix="wechatpayv3-certs.")
        shutil.copy(cert_path, cert_dir)
        keys["cert_dir"] = cert_dir
    else:
        keys["public_key"] = read(need("WECHATPAY_PUBLIC_KEY"))
        keys["public_key_id"] = need("WECHATPAY_PUBLIC_KEY_ID")
    wxpay = WeChatPay(**keys)
    # The one change: the SDK has no base URL option and builds every URL from this attribute.
    wxpay._core._gate_way = base.rstrip("/")

    run = Runner(f"wechatpayv3 against wechatpay serve ({mode} mode, {base})")
    notify = Notifications(wxpay)
    trade_no, refund_no, bill_no, closed_no = (out_no(p) for p in ("PYP", "PYR", "PYT", "PYC"))
    total = 101
    try:
        if cert_path:
            def download():
                wxpay._core._certificates.clear()
                wxpay._core._update_certificates()
                got = [c.serial_number for c in wxpay._core._certificates]
                want = x509.load_pem_x509_certificate(read(cert_path).encode()).serial_number
                expect(got == [want], f"downloaded serials {got}, configured {want}")
            run.step("platform certificates downloaded (v3/certificates) and decrypted by the SDK", download)

        def native():
            data = answer(wxpay.pay(
                description="Image形象店-深圳腾大-QQ公仔 (interop)", out_trade_no=trade_no,
                amount={"total": total, "currency": "CNY"}, notify_url=notify.url("pay")))
            expect(str(data.get("code_url", "")).startswith("weixin://"), f"code_url: {data}")
        run.step("Native payment created (v3/pay/transactions/native)", native, "payment")

        def query_notpay():
            data = answer(wxpay.query(out_trade_no=trade_no))
            expect(data["out_trade_no"] == trade_no and data["trade_state"] == "NOTPAY", data)
        run.step("queried by out-trade-no: NOTPAY", query_notpay, "payment")

        paid = {}

        def pay():
            control_request(base, "POST", f"pay/transactions/out-trade-no/{trade_no}/pay")
            r = notify.wait_for("pay", "TRANSACTION.SUCCESS", lambda r: r.get("out_trade_no") == trade_no)
            res = r["resource"]
            expect(res["trade_state"] == "SUCCESS" and res["mchid"] == mchid, res)
            expect(res["amount"]["total"] == total, res)
            paid.update(res)
        run.step("paid (POST /emulator/.../pay): TRANSACTION.SUCCESS verified and decrypted by the SDK's callback",
                 pay, "payment")

        def query_success():
            data = answer(wxpay.query(out_trade_no=trade_no))
            expect(data["trade_state"] == "SUCCESS", data)
            expect(data["transaction_id"] == paid["transaction_id"], data)
        run.step("queried again: SUCCESS, the notified transaction_id", query_success, "payment")

        def refund():
            data = answer(wxpay.refund(
                out_refund_no=refund_no, amount={"refund": 60, "total": total, "currency": "CNY"},
                out_trade_no=trade_no, reason="interop", notify_url=notify.url("refund")))
            expect(data["out_refund_no"] == refund_no, data)
            expect(data["status"] in ("PROCESSING", "SUCCESS"), data)
        run.step("refund requested (v3/refund/domestic/refunds)", refund, "payment")

        def query_refund():
            data = answer(wxpay.query_refund(out_refund_no=refund_no))
            expect(data["out_refund_no"] == refund_no and data["amount"]["refund"] == 60, data)
        run.step("refund queried", query_refund, "payment")

        def complete_refund():
            control_request(base, "POST", f"refund/domestic/refunds/{refund_no}/complete")
            r = notify.wait_for("refund", "REFUND.SUCCESS", lambda r: r.get("out_refund_no") == refund_no)
            expect(r["resource"]["refund_status"] == "SUCCESS", r["resource"])
            expect(answer(wxpay.query_refund(out_refund_no=refund_no))["status"] == "SUCCESS", "not SUCCESS")
        run.step("refund finished (POST /emulator/.../complete): REFUND.SUCCESS verified", complete_refund,
                 "payment")

        def altered():
            # the notification of the payment, one byte changed, sent to the SDK's callback
            raw, headers = next((raw, h) for at, result, _, raw, h in notify.seen
                                if at == "/pay" and result and result["resource"].get("out_trade_no") == trade_no)
            changed = raw.replace(b'"summary":"', b'"summary":" ')
            expect(changed != raw, "nothing to change")
            req = urllib.request.Request(notify.url("altered"), data=changed, method="POST")
            for k, v in headers.items():
                if k.lower().startswith("wechatpay-") or k.lower() == "content-type":
                    req.add_header(k, v)
            try:
                urllib.request.urlopen(req, timeout=10)
                raise AssertionError("the altered notification was accepted")
            except urllib.error.HTTPError as e:
                expect(e.code == 401, f"status {e.code}")
        run.step("control: the notification, altered by one byte, is refused by the SDK's callback",
                 altered, "payment")

        def recorded():
            end = time.monotonic() + NOTIFY_WAIT
            while True:
                mine = [d for d in control_request(base, "GET", "deliveries")["data"]
                        if d["url"].startswith(notify.url(""))]
                events = {d["event_type"] for d in mine if d["outcome"] == "ACCEPTED"}
                if {"TRANSACTION.SUCCESS", "REFUND.SUCCESS"} <= events:
                    expect(all(d["outcome"] == "ACCEPTED" for d in mine), f"not all accepted: {mine}")
                    return
                expect(time.monotonic() < end, f"deliveries: {mine}")
                time.sleep(0.05)
        run.step("the sandbox recorded both notifications as accepted (GET /emulator/deliveries)",
                 recorded, "payment")

        def jsapi_and_close():
            data = answer(wxpay.pay(
                description="interop: closed", out_trade_no=closed_no,
                amount={"total": 1, "currency": "CNY"}, payer={"openid": OPENID},
                pay_type=WeChatPayType.JSAPI, notify_url=notify.url("pay")))
            expect(str(data.get("prepay_id", "")).startswith("wx"), data)
            status, _ = wxpay.close(out_trade_no=closed_no)
            expect(status == 204, f"close answered {status}")
        run.step("a JSAPI order created (v3/pay/transactions/jsapi), then closed: 204, verified",
                 jsapi_and_close, "close")

        def closed():
            expect(answer(wxpay.query(out_trade_no=closed_no))["trade_state"] == "CLOSED", "not CLOSED")
        run.step("the closed order queried: CLOSED", closed, "close")

        def other_key():
            # the same settings, another key under the platform's serial: the SDK must refuse
            other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            forged = dict(keys)
            if cert_path:
                own = x509.load_pem_x509_certificate(read(cert_path).encode())
                name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "not the platform")])
                cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                        .public_key(other.public_key()).serial_number(own.serial_number)
                        .not_valid_before(own.not_valid_before_utc).not_valid_after(own.not_valid_after_utc)
                        .sign(other, hashes.SHA256()))
                forged["cert_dir"] = tempfile.mkdtemp(prefix="wechatpayv3-forged.", dir=cert_dir)
                with open(os.path.join(forged["cert_dir"], "forged.pem"), "wb") as f:
                    f.write(cert.public_bytes(serialization.Encoding.PEM))
            else:
                forged["public_key"] = other.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
            sdk = WeChatPay(**forged)
            sdk._core._gate_way = wxpay._core._gate_way
            try:
                sdk.query(out_trade_no=closed_no)
            except Exception as e:
                expect("failed to verify the signature" in str(e), f"refused for another reason: {e}")
                return
            raise AssertionError("the SDK accepted an answer signed with a key it was not given")
        run.step("control: given another key under the platform's serial, the SDK refuses the answer",
                 other_key)

        def unknown():
            data = answer(wxpay.query(out_trade_no=out_no("PYN")), want=(404,))
            expect(data["code"] == "ORDER_NOT_EXIST", data)
        run.step("an order that does not exist: 404 ORDER_NOT_EXIST", unknown)

        def transfer():
            data = answer(wxpay.mch_transfer_bills(
                out_bill_no=bill_no, transfer_scene_id="1000", openid=OPENID, transfer_amount=400,
                transfer_remark="interop", user_name="张三", user_recv_perception="现金奖励",
                transfer_scene_report_infos=[{"info_type": "活动名称", "info_content": "注册会员有礼"},
                                             {"info_type": "奖励说明", "info_content": "注册会员抽奖一等奖"}],
                notify_url=notify.url("transfer")))
            expect(data["out_bill_no"] == bill_no and isinstance(data["transfer_bill_no"], str), data)
        run.step("merchant transfer created, user_name encrypted by the SDK for the platform key "
                 "(v3/fund-app/mch-transfer/transfer-bills)", transfer, "transfer")

        def transfer_query():
            data = answer(wxpay.mch_transfer_bills_query(out_bill_no=bill_no))
            expect(data["out_bill_no"] == bill_no and data["state"] == "WAIT_USER_CONFIRM", data)
        run.step("merchant transfer queried by out-bill-no: WAIT_USER_CONFIRM", transfer_query, "transfer")

        def transfer_done():
            control_request(base, "POST", f"transfers/{bill_no}/succeeded")
            r = notify.wait_for("transfer", "MCHTRANSFER.BILL.FINISHED", lambda r: r.get("out_bill_no") == bill_no)
            expect(r["resource"]["state"] == "SUCCESS" and r["resource"]["transfer_amount"] == 400, r)
            expect(answer(wxpay.mch_transfer_bills_query(out_bill_no=bill_no))["state"] == "SUCCESS", "not SUCCESS")
        run.step("merchant transfer confirmed (POST /emulator/transfers/.../succeeded): "
                 "MCHTRANSFER.BILL.FINISHED verified", transfer_done, "transfer")

        def cross_border():
            # documented under https://api.mch.weixin.qq.com/hk/: the SDK signs the whole path
            no = out_no("PYH")
            path = f"/hk/v3/transactions/out-trade-no/{no}?mchid={mchid}&sub_mchid=1900000109&sp_mchid={mchid}"
            data = answer(wxpay._core.request(path))
            expect(data["out_trade_no"] == no, data)
        run.step("cross-border: GET /hk/v3/transactions/out-trade-no/{no} through the SDK's request, verified",
                 cross_border)

        # the sandbox dates bills by Beijing time, as the platform does, and makes a day's bill
        # once that day has ended on its clock: the story moves the clock a day on first
        bill_date = (datetime.now(timezone.utc) + timedelta(hours=8)).strftime("%Y-%m-%d")
        control_request(base, "POST", "clock", {"advance": "1d"})
        for name, apply in (
            ("trade bill (v3/bill/tradebill)", lambda: wxpay.trade_bill(bill_date=bill_date)),
            ("fund flow bill (v3/bill/fundflowbill)", lambda: wxpay.fundflow_bill(bill_date=bill_date)),
        ):
            def bill(apply=apply):
                data = answer(apply())
                status, body = wxpay.download_bill(data["download_url"])
                expect(status == 200, f"download answered {status}")
                csv = gzip.decompress(body)
                expect(hashlib.sha1(csv).hexdigest() == data["hash_value"].lower(), "SHA-1 differs")
                if "tradebill" in name:
                    expect(trade_no.encode() in csv, "the paid order is not in the bill")
            run.step(f"{name} applied for and downloaded by the SDK (gzip, SHA-1 checked)", bill, "payment")

        trigger_section(run, notify)
    finally:
        notify.close()
        if cert_dir:
            shutil.rmtree(cert_dir, ignore_errors=True)
    print(f"1..{run.count}")
    if run.failed:
        print(f"# {len(run.failed)} of {run.count} steps failed", flush=True)
        return 1
    print(f"# all {run.count} steps passed", flush=True)
    return 0


def trigger_section(run, notify):
    """`wechatpay trigger EVENT --to URL` for each event, verified by the SDK's callback."""
    bin_path = os.environ.get("WECHATPAY_BIN")
    # a wechatpay that reads the keys from the environment only when told (`--use-env-secrets`)
    # is told: they are the sandbox's, from its env file
    told = []
    if bin_path:
        usage = subprocess.run([bin_path, "trigger", "--help"], capture_output=True, text=True, timeout=60)
        told = ["--use-env-secrets"] if "--use-env-secrets" in usage.stdout else []
    for event in ("TRANSACTION.SUCCESS", "REFUND.SUCCESS", "MCHTRANSFER.BILL.FINISHED"):
        def fire(event=event):
            expect(bin_path, "WECHATPAY_BIN is not set")
            path = "triggered-" + event.lower()
            r = subprocess.run([bin_path, "trigger", event, *told, "--to", notify.url(path)],
                               capture_output=True, text=True, timeout=60)
            expect(r.returncode == 0, f"wechatpay trigger exited {r.returncode}: {r.stdout}{r.stderr}")
            notify.wait_for(path, event)
        run.step(f"wechatpay trigger {event}: delivered and verified by the SDK", fire)


if __name__ == "__main__":
    sys.exit(main())

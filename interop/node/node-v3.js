'use strict';
// wechatpay-node-v3 against `wechatpay serve`. The SDK writes https://api.mch.weixin.qq.com into
// every URL it builds and has no base URL option; what it documents for this is its HTTP
// service: `pay.createHttp(service)` takes any object with the IPayRequest methods
// (`get(url, headers)`, `post(url, params, headers)`). The one given here sends the SDK's
// request unchanged (its method, path, query, body and Authorization, through its own HTTP
// client) to the sandbox instead of the platform's host, and keeps the answer's headers and raw
// body. The SDK does not verify answers by itself: each one is checked with its `verifySign`,
// and notifications with `verifySign` and `decipher_gcm`. For the operations it has no method
// for (the merchant transfer, the documented-answer operation, the corpus) the request is
// signed with its `buildAuthorization` and sent through the same service.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const WxPay = require('wechatpay-node-v3');
const { sandbox } = require('./lib/harness');
const { drive } = require('./lib/flow');

const PLATFORM = 'https://api.mch.weixin.qq.com';

// The SDK's own HTTP client (its dependency), so that the exchange is the one its PayRequest has.
const superagent = require(require.resolve('superagent', { paths: [require.resolve('wechatpay-node-v3')] }));

/**
 * IPayRequest for the sandbox: the SDK's PayRequest (superagent, the same calls) with the
 * platform's host replaced by the sandbox's base URI, answering as it does plus the answer's
 * headers and raw text, which verification needs.
 */
class SandboxRequest {
  constructor(base) {
    this.base = base;
    this.last = null;
  }

  target(url) {
    assert.ok(url.startsWith(`${PLATFORM}/`), `the SDK called ${url}, not the platform`);
    return new URL(url.slice(PLATFORM.length + 1), this.base).href;
  }

  async exchange(request) {
    let res;
    try {
      res = await request;
    } catch (e) {
      if (!e.response) throw e;
      res = e.response;
    }
    const answer = {
      status: res.status, headers: res.headers, text: res.text, data: res.body,
    };
    this.last = answer;
    if (res.status < 200 || res.status >= 300) answer.error = res.text;
    return answer;
  }

  get(url, headers) {
    return this.exchange(superagent.get(this.target(url)).set(headers));
  }

  /** Any method, as get and post send theirs (for the operations the SDK has no method for). */
  request(method, url, params, headers) {
    const r = superagent(method, this.target(url)).set(headers);
    return this.exchange(params === undefined ? r : r.send(params));
  }

  post(url, params, headers) {
    return this.exchange(superagent.post(this.target(url)).send(params).set(headers));
  }

  upload() {
    throw new Error('uploads are not used by these tests');
  }
}

async function main() {
  const s = sandbox();
  // `publicKey` is the merchant's certificate, from which the SDK reads the serial when none
  // is given; the sandbox issues no merchant certificate without TLS, so the serial is given
  // and the merchant's public key stands in for it.
  const merchantPublicKey = crypto.createPublicKey(s.privateKeyPem).export({ type: 'spki', format: 'pem' });
  const pay = new WxPay({
    appid: 'wxd678efh567hg6787',
    mchid: s.mchid,
    serial_no: s.serial,
    publicKey: Buffer.from(merchantPublicKey),
    privateKey: Buffer.from(s.privateKeyPem),
    key: s.apiv3Key,
  });
  const http = new SandboxRequest(s.base);
  pay.createHttp(http);
  if (s.mode === 'public-key') {
    // verifySign looks the serial up in WxPay.certificates and otherwise downloads the
    // platform certificates, which do not exist in public-key mode: the public key is given.
    WxPay.certificates = { ...WxPay.certificates, [s.platformSerial]: s.platformKeyPem };
  }

  /** The SDK's verifySign of `body` with the Wechatpay-* headers `h` (lower-case names). */
  function signedBy(h, body) {
    return pay.verifySign({
      timestamp: h['wechatpay-timestamp'],
      nonce: h['wechatpay-nonce'],
      serial: h['wechatpay-serial'],
      signature: h['wechatpay-signature'],
      body,
      apiSecret: s.apiv3Key,
    });
  }

  /** The answer once `verifySign` accepted it (an error answer too, when asked for). */
  async function verified(promise, { errors = false } = {}) {
    const res = await promise;
    assert.ok(errors || (res.status >= 200 && res.status < 300), `HTTP ${res.status} ${res.text}`);
    assert.ok(res.headers['wechatpay-signature'], `the answer carries no Wechatpay-Signature: HTTP ${res.status} ${res.text}`);
    assert.equal(await signedBy(res.headers, res.text), true,
      `verifySign refused the answer: ${JSON.stringify(res.headers)} ${res.text}`);
    return res;
  }

  const adapter = {
    name: 'wechatpay-node-v3',
    async nativeCreate(body) {
      const { appid, mchid, ...rest } = body;
      return (await verified(pay.transactions_native(rest))).data;
    },
    async queryByOutTradeNo(no) {
      return (await verified(pay.query({ out_trade_no: no }))).data;
    },
    async close(no) {
      return (await verified(pay.close(no))).status;
    },
    async unknownOrder(no) {
      // the SDK answers {status, error} for an error; the error answer is signed too
      const res = await verified(pay.query({ out_trade_no: no }), { errors: true });
      assert.ok(res.error !== undefined, `an error was expected: ${JSON.stringify(res)}`);
      return { status: res.status, code: JSON.parse(res.error).code };
    },
    async refund(body) {
      return (await verified(pay.refunds(body))).data;
    },
    async queryRefund(no) {
      return (await verified(pay.find_refunds(no))).data;
    },
    async call(method, template, vars = {}, body = undefined, headers = {}, { query, errors = false } = {}) {
      const path = template.replace(/\{([^}]+)\}/g, (_, name) => encodeURIComponent(vars[name]));
      const search = query ? `?${new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]))}` : '';
      const url = `${PLATFORM}/${path}${search}`;
      const m = method.toUpperCase();
      const sent = m === 'GET' ? undefined : body;
      const authorization = pay.buildAuthorization(m, url, sent);
      const all = pay.getHeaders(authorization, sent === undefined ? headers : { 'Content-Type': 'application/json', ...headers });
      const res = await verified(http.request(m, url, sent, all), { errors });
      let { data } = res;
      if (typeof data !== 'object' && res.text) data = JSON.parse(res.text);
      return { status: res.status, data };
    },
    leaveOut(c) {
      // The SDK's getSignature adds the empty body's line for GET only: a POST, PUT, PATCH or
      // DELETE without a body is signed over a string one "\n" short, which the platform (and
      // the sandbox) refuses with 401 SIGN_ERROR. Its own methods always send a body.
      return c.method !== 'GET' && c.body === undefined
        ? 'a request without a body other than GET (the SDK signs it wrongly, see node-v3.js)'
        : null;
    },
    encrypt(plaintext) {
      const key = s.mode === 'certificate' ? crypto.createPublicKey(s.platformCertPem).export({ type: 'spki', format: 'pem' }) : s.platformKeyPem;
      return pay.publicEncrypt(plaintext, key);
    },
    async verifyNotification(headers, raw) {
      assert.equal(await signedBy(headers, raw), true, 'verifySign refused the notification');
      const envelope = JSON.parse(raw);
      const { ciphertext, associated_data: aad, nonce } = envelope.resource;
      const resource = pay.decipher_gcm(ciphertext, aad, nonce, s.apiv3Key);
      assert.equal(typeof resource, 'object', `decipher_gcm gave ${resource}`);
      return { envelope, resource };
    },
  };

  adapter.controls = async (run, { outTradeNo }) => {
    await run.step('control: an answer altered by one byte is refused by verifySign', async () => {
      const res = await verified(pay.query({ out_trade_no: outTradeNo }));
      const altered = res.text.replace(outTradeNo, `${outTradeNo.slice(0, -1)}_`);
      assert.notEqual(altered, res.text);
      assert.equal(await signedBy(res.headers, altered), false);
    });
  };

  if (s.mode === 'certificate') {
    adapter.extra = async (run) => {
      await run.step('platform certificates fetched by the SDK (fetchCertificates, v3/certificates): the configured one', async () => {
        await pay.fetchCertificates(s.apiv3Key);
        const got = WxPay.certificates[s.platformSerial];
        assert.ok(got, `no certificate ${s.platformSerial} in ${JSON.stringify(Object.keys(WxPay.certificates))}`);
        const want = crypto.createPublicKey(s.platformCertPem).export({ type: 'spki', format: 'pem' });
        assert.equal(crypto.createPublicKey(got).export({ type: 'spki', format: 'pem' }), want);
        // and the download itself was signed by it
        await verified(Promise.resolve(http.last));
      });
    };
  }

  await drive(s, adapter, 'NV');
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});

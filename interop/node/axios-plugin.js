'use strict';
// wechatpay-axios-plugin against `wechatpay serve`. Pointed at the sandbox with its documented
// axios option `baseURL`; configured with the sandbox's merchant id, merchant serial and private
// key, and `certs: {platform serial: platform public key or certificate}`. The plugin verifies
// every 2xx answer itself (its response transformer refuses a missing or wrong signature, an
// unknown serial, a timestamp off by more than 300 s), so an answer that reaches us verified.
// Notifications are verified with its own Rsa.verify over Formatter.response(...) and decrypted
// with its Aes.AesGcm, as its documentation describes for callbacks.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const {
  Wechatpay, Rsa, Aes: { AesGcm }, Formatter,
} = require('wechatpay-axios-plugin');
const { sandbox } = require('./lib/harness');
const { drive } = require('./lib/flow');

const MAXIMUM_CLOCK_OFFSET = 300;

/** The answer, once the plugin accepted it; an error with the answer's body otherwise. */
async function answer(promise) {
  try {
    const res = await promise;
    assert.ok(res.headers['wechatpay-signature'], 'the answer carries no Wechatpay-Signature');
    return res;
  } catch (e) {
    if (e && e.response) {
      const body = typeof e.response.data === 'string' ? e.response.data : JSON.stringify(e.response.data);
      throw new Error(`${e.code || ''} ${e.message}: HTTP ${e.response.status} ${body}`, { cause: e });
    }
    throw e;
  }
}

async function main() {
  const s = sandbox();
  const platformKey = Rsa.from(s.platformKeyPem, Rsa.KEY_TYPE_PUBLIC);
  const certs = { [s.platformSerial]: platformKey };
  const wxpay = new Wechatpay({
    baseURL: s.base,
    mchid: s.mchid,
    serial: s.serial,
    privateKey: s.privateKeyPem,
    certs,
  });

  const adapter = {
    name: 'wechatpay-axios-plugin',
    async nativeCreate(body) {
      return (await answer(wxpay.v3.pay.transactions.native.post(body))).data;
    },
    async queryByOutTradeNo(no) {
      return (await answer(wxpay.v3.pay.transactions.outTradeNo._out_trade_no_.get({
        params: { mchid: s.mchid }, out_trade_no: no,
      }))).data;
    },
    async close(no) {
      return (await answer(wxpay.v3.pay.transactions.outTradeNo._out_trade_no_.close.post({ mchid: s.mchid }, { out_trade_no: no }))).status;
    },
    async unknownOrder(no) {
      // the plugin verifies 2xx answers only, and throws an AxiosError carrying the answer
      try {
        await wxpay.v3.pay.transactions.outTradeNo._out_trade_no_.get({ params: { mchid: s.mchid }, out_trade_no: no });
      } catch (e) {
        assert.ok(e.response, `no answer: ${e}`);
        return { status: e.response.status, code: e.response.data && e.response.data.code };
      }
      throw new Error('the query of an order that does not exist succeeded');
    },
    async refund(body) {
      return (await answer(wxpay.v3.refund.domestic.refunds.post(body))).data;
    },
    async queryRefund(no) {
      return (await answer(wxpay.v3.refund.domestic.refunds._out_refund_no_.get({ out_refund_no: no }))).data;
    },
    async call(method, template, vars = {}, body = undefined, headers = {}, { query, errors = false } = {}) {
      // what the chain calls: the decorator's request, `{name}` segments filled from the config
      const m = method.toLowerCase();
      const config = { ...vars, headers };
      if (query) config.params = query;
      try {
        const res = await answer(wxpay.client.request(template, m, m === 'get' ? undefined : body, config));
        return { status: res.status, data: res.data };
      } catch (e) {
        // an error answer (the plugin verifies 2xx answers only) is returned when asked for;
        // the plugin refusing a 2xx answer is thrown
        const status = e.cause && e.cause.response && e.cause.response.status;
        if (errors && status && (status < 200 || status >= 300)) return { status, data: e.cause.response.data };
        throw e;
      }
    },
    encrypt(plaintext) {
      return Rsa.encrypt(plaintext, platformKey);
    },
    verifyNotification(headers, raw) {
      const ts = headers['wechatpay-timestamp'];
      const nonce = headers['wechatpay-nonce'];
      const serial = headers['wechatpay-serial'];
      const signature = headers['wechatpay-signature'];
      assert.ok(ts && nonce && serial && signature, 'Wechatpay-* headers missing');
      assert.ok(Math.abs(Formatter.timestamp() - Number(ts)) <= MAXIMUM_CLOCK_OFFSET, `Wechatpay-Timestamp ${ts} is stale`);
      assert.ok(Object.hasOwn(certs, serial), `unknown Wechatpay-Serial ${serial}`);
      assert.ok(Rsa.verify(Formatter.response(ts, nonce, raw), signature, certs[serial]), 'signature does not verify');
      const envelope = JSON.parse(raw);
      const { ciphertext, nonce: iv, associated_data: aad } = envelope.resource;
      const resource = JSON.parse(AesGcm.decrypt(ciphertext, s.apiv3Key, iv, aad));
      return { envelope, resource };
    },
  };

  adapter.controls = async (run, { outTradeNo }) => {
    await run.step('control: configured with another platform key under the same serial, the plugin refuses the answer', async () => {
      const { publicKey: other } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
      const wrong = new Wechatpay({
        baseURL: s.base, mchid: s.mchid, serial: s.serial, privateKey: s.privateKeyPem, certs: { [s.platformSerial]: other },
      });
      await assert.rejects(
        wrong.v3.pay.transactions.outTradeNo._out_trade_no_.get({ params: { mchid: s.mchid }, out_trade_no: outTradeNo }),
        (e) => e.code === 'EV3_RES_HEADER_SIGNATURE_DIGEST',
      );
    });
  };

  if (s.mode === 'certificate') {
    adapter.extra = async (run) => {
      await run.step('platform certificates downloaded (v3/certificates), decrypted with the APIv3 key: the configured one', async () => {
        const { data } = await answer(wxpay.v3.certificates.get());
        assert.ok(Array.isArray(data.data) && data.data.length > 0, JSON.stringify(data));
        const mine = data.data.find((c) => c.serial_no === s.platformSerial);
        assert.ok(mine, `no certificate ${s.platformSerial} in ${JSON.stringify(data.data.map((c) => c.serial_no))}`);
        const { ciphertext, nonce, associated_data: aad } = mine.encrypt_certificate;
        const pem = AesGcm.decrypt(ciphertext, s.apiv3Key, nonce, aad);
        assert.equal(Rsa.from(pem, Rsa.KEY_TYPE_PUBLIC).export({ type: 'spki', format: 'pem' }),
          platformKey.export({ type: 'spki', format: 'pem' }));
      });
    };
  }

  await drive(s, adapter, 'AX');
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});

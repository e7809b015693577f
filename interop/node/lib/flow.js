'use strict';
// The scenario both SDKs are driven through against `wechatpay serve`. An SDK's script gives an
// adapter whose calls go through that SDK and return the answer's JSON only once the SDK (or
// its own verification function) accepted the answer's signature; they throw otherwise.
//
// adapter = {
//   name,
//   nativeCreate(body), queryByOutTradeNo(outTradeNo), close(outTradeNo) -> HTTP status,
//   refund(body), queryRefund(outRefundNo),
//   unknownOrder(outTradeNo) -> {status, code}: the query of an order that does not exist, whose
//     error answer the SDK surfaces (and verifies where it verifies error answers),
//   call(method, template, vars, body, headers, {query, errors}) -> {status, data}: any other
//     APIv3 operation (template: its documented path, `{name}` segments filled from vars); an
//     error answer is thrown unless `errors` (then returned, verified where the SDK can),
//   encrypt(plaintext) -> ciphertext for the platform's key (sensitive fields),
//   verifyNotification(headers, raw) -> (a promise of) {envelope, resource}; throws unless verified,
//   extra(run): optional mode-specific steps (the certificate download),
//   controls(run, {outTradeNo}): steps showing the SDK refuses an answer that does not verify,
// }

const assert = require('node:assert/strict');
const {
  outNo, runner, control, deliveries, eventually, notificationServer, triggerSection,
} = require('./harness');
const { corpusSection } = require('./corpus');

/**
 * Documented-answer operations: ones the sandbox does not model, answered from the catalogue
 * (every documented required field, the request's values echoed); 2xx and verified.
 */
const DOCUMENTED = [
  {
    method: 'GET',
    template: 'v3/merchant/fund/balance/{account_type}',
    vars: () => ({ account_type: 'BASIC' }),
    check: (data) => {
      assert.equal(typeof data.available_amount, 'number', `available_amount: ${JSON.stringify(data)}`);
    },
  },
  {
    method: 'POST',
    template: 'v3/merchant/fund/withdraw',
    body: (no) => ({
      out_request_no: no, amount: 100, remark: '提现', account_type: 'BASIC',
    }),
    check: (data, no) => {
      assert.equal(data.out_request_no, no, `out_request_no not echoed: ${JSON.stringify(data)}`);
      assert.equal(typeof data.withdraw_id, 'string');
    },
  },
];

async function drive(s, adapter, tag) {
  const run = runner(`${adapter.name} against wechatpay serve (${s.mode} mode, ${s.base})`);
  const notify = await notificationServer((h, raw) => adapter.verifyNotification(h, raw));
  const outTradeNo = outNo(`${tag}P`);
  const outRefundNo = outNo(`${tag}R`);
  const outBillNo = outNo(`${tag}T`);
  const total = 101;

  try {
    if (adapter.extra) await adapter.extra(run);

    await run.step('Native payment created (v3/pay/transactions/native)', async () => {
      const data = await adapter.nativeCreate({
        appid: 'wxd678efh567hg6787',
        mchid: s.mchid,
        description: 'Image形象店-深圳腾大-QQ公仔 (interop)',
        out_trade_no: outTradeNo,
        notify_url: notify.url('pay'),
        amount: { total, currency: 'CNY' },
      });
      assert.match(String(data.code_url), /^weixin:\/\//, `code_url: ${JSON.stringify(data)}`);
    }, { chain: 'payment' });

    await run.step('queried by out-trade-no: NOTPAY', async () => {
      const data = await adapter.queryByOutTradeNo(outTradeNo);
      assert.equal(data.out_trade_no, outTradeNo);
      assert.equal(data.trade_state, 'NOTPAY');
    }, { chain: 'payment' });

    // The checks must be able to fail: the SDK refuses an answer that does not verify.
    if (adapter.controls) await adapter.controls(run, { outTradeNo });

    let paid;
    await run.step('paid by the payer (POST /emulator/.../pay): TRANSACTION.SUCCESS verified', async () => {
      await control(s, `pay/transactions/out-trade-no/${outTradeNo}/pay`);
      // the server keeps every notification: one that came before this wait is found too
      const e = await notify.waitFor('pay', 'TRANSACTION.SUCCESS', (r) => r.out_trade_no === outTradeNo);
      assert.equal(e.resource.trade_state, 'SUCCESS');
      assert.equal(e.resource.mchid, s.mchid);
      assert.equal(e.resource.amount.total, total);
      assert.equal(e.envelope.resource.original_type, 'transaction');
      paid = e.resource;
    }, { chain: 'payment' });

    await run.step('queried again: SUCCESS, the notified transaction_id', async () => {
      const data = await adapter.queryByOutTradeNo(outTradeNo);
      assert.equal(data.trade_state, 'SUCCESS');
      assert.equal(data.transaction_id, paid.transaction_id);
    }, { chain: 'payment' });

    await run.step('refund requested (v3/refund/domestic/refunds)', async () => {
      const data = await adapter.refund({
        out_trade_no: outTradeNo,
        out_refund_no: outRefundNo,
        reason: 'interop',
        notify_url: notify.url('refund'),
        amount: { refund: 60, total, currency: 'CNY' },
      });
      assert.equal(data.out_refund_no, outRefundNo);
      assert.ok(['PROCESSING', 'SUCCESS'].includes(data.status), `status ${data.status}`);
    }, { chain: 'payment' });

    await run.step('refund queried', async () => {
      const data = await adapter.queryRefund(outRefundNo);
      assert.equal(data.out_refund_no, outRefundNo);
      assert.equal(data.amount.refund, 60);
    }, { chain: 'payment' });

    await run.step('refund finished (POST /emulator/.../complete): REFUND.SUCCESS verified', async () => {
      await control(s, `refund/domestic/refunds/${outRefundNo}/complete`);
      const e = await notify.waitFor('refund', 'REFUND.SUCCESS', (r) => r.out_refund_no === outRefundNo);
      assert.equal(e.resource.refund_status, 'SUCCESS');
      assert.equal(e.resource.out_trade_no, outTradeNo);
      assert.equal(e.resource.amount.refund, 60);
      const data = await adapter.queryRefund(outRefundNo);
      assert.equal(data.status, 'SUCCESS');
    }, { chain: 'payment' });

    await run.step('control: the notification, altered by one byte, is refused by the SDK', async () => {
      const e = await notify.waitFor('pay', 'TRANSACTION.SUCCESS', (r) => r.out_trade_no === outTradeNo);
      const altered = e.raw.replace('"summary":"', '"summary":" ');
      assert.notEqual(altered, e.raw);
      const headers = Object.fromEntries(Object.entries(e.headers).filter(([k]) => k.startsWith('wechatpay-')));
      const res = await fetch(notify.url('altered'), {
        method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: altered,
      });
      assert.equal(res.status, 401, 'the altered notification was accepted');
    }, { chain: 'payment' });

    await run.step('the sandbox recorded both notifications as accepted (GET /emulator/deliveries)', async () => {
      await eventually(async () => {
        const mine = (await deliveries(s)).filter((d) => d.url.startsWith(notify.url('')));
        for (const ev of ['TRANSACTION.SUCCESS', 'REFUND.SUCCESS']) {
          assert.ok(mine.some((d) => d.event_type === ev && d.outcome === 'ACCEPTED'), `${ev}: ${JSON.stringify(mine)}`);
        }
        assert.ok(!mine.some((d) => d.outcome !== 'ACCEPTED'), `a notification was not accepted: ${JSON.stringify(mine)}`);
      });
    }, { chain: 'payment' });

    const closedNo = outNo(`${tag}C`);
    await run.step('a second order created, then closed: 204, verified', async () => {
      await adapter.nativeCreate({
        appid: 'wxd678efh567hg6787',
        mchid: s.mchid,
        description: 'interop: closed',
        out_trade_no: closedNo,
        notify_url: notify.url('pay'),
        amount: { total: 1, currency: 'CNY' },
      });
      assert.equal(await adapter.close(closedNo), 204);
    }, { chain: 'close' });

    await run.step('the closed order queried: CLOSED', async () => {
      const data = await adapter.queryByOutTradeNo(closedNo);
      assert.equal(data.trade_state, 'CLOSED');
    }, { chain: 'close' });

    await run.step('an order that does not exist: 404 ORDER_NOT_EXIST, as the SDK surfaces errors', async () => {
      const { status, code } = await adapter.unknownOrder(outNo(`${tag}N`));
      assert.equal(status, 404);
      assert.equal(code, 'ORDER_NOT_EXIST');
    });

    for (const op of DOCUMENTED) {
      await run.step(`documented answer: ${op.method} ${op.template}`, async () => {
        const no = outNo(`${tag}W`);
        const { status, data } = await adapter.call(op.method, op.template, op.vars ? op.vars() : {}, op.body ? op.body(no) : undefined);
        assert.ok(status >= 200 && status < 300, `status ${status}`);
        op.check(data, no);
      });
    }

    await run.step('merchant transfer created (v3/fund-app/mch-transfer/transfer-bills)', async () => {
      const { status, data } = await adapter.call('POST', 'v3/fund-app/mch-transfer/transfer-bills', {}, {
        appid: 'wxd678efh567hg6787',
        out_bill_no: outBillNo,
        transfer_scene_id: '1000',
        openid: 'o-MYE42l80oelYMDE34nYD456Xoy',
        user_name: adapter.encrypt('张三'),
        transfer_amount: 400,
        transfer_remark: 'interop',
        notify_url: notify.url('transfer'),
        user_recv_perception: '现金奖励',
        transfer_scene_report_infos: [
          { info_type: '活动名称', info_content: '注册会员有礼' },
          { info_type: '奖励说明', info_content: '注册会员抽奖一等奖' },
        ],
      }, { 'Wechatpay-Serial': s.platformSerial });
      assert.ok(status >= 200 && status < 300, `status ${status}`);
      assert.equal(data.out_bill_no, outBillNo);
      assert.equal(typeof data.transfer_bill_no, 'string');
    }, { chain: 'transfer' });

    await run.step('merchant transfer queried by out-bill-no', async () => {
      const { status, data } = await adapter.call('GET', 'v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}', { out_bill_no: outBillNo });
      assert.ok(status >= 200 && status < 300, `status ${status}`);
      assert.equal(data.out_bill_no, outBillNo);
      assert.equal(data.state, 'WAIT_USER_CONFIRM');
    }, { chain: 'transfer' });

    await run.step('merchant transfer confirmed (POST /emulator/transfers/.../succeeded): MCHTRANSFER.BILL.FINISHED verified', async () => {
      await control(s, `transfers/${outBillNo}/succeeded`);
      const e = await notify.waitFor('transfer', 'MCHTRANSFER.BILL.FINISHED', (r) => r.out_bill_no === outBillNo);
      assert.equal(e.resource.state, 'SUCCESS');
      assert.equal(e.resource.transfer_amount, 400);
      const { data } = await adapter.call('GET', 'v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}', { out_bill_no: outBillNo });
      assert.equal(data.state, 'SUCCESS');
    }, { chain: 'transfer' });

    await corpusSection(run, s, adapter);

    await triggerSection(run, notify);
  } finally {
    await notify.close();
  }
  run.finish();
}

module.exports = { drive };

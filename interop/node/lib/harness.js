'use strict';
// What both SDK scripts share: the sandbox's settings (from the env file `wechatpay serve`
// writes), a tiny sequential runner, the control endpoints (with the env file's token), a
// merchant notification server that verifies with a given SDK's own functions, and the
// `wechatpay trigger` section.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const { spawn, spawnSync } = require('node:child_process');

/** How long a notification may take to arrive once its cause happened (a bound, not a measure). */
const NOTIFY_WAIT_MS = Number(process.env.INTEROP_NOTIFY_WAIT_MS || 20000);

function need(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set: source the env file \`wechatpay serve\` wrote (run.sh does)`);
  }
  return v;
}

/**
 * The sandbox's settings as `wechatpay serve` exported them: public-key mode (WECHATPAY_PUBLIC_KEY
 * and WECHATPAY_PUBLIC_KEY_ID) or certificate mode (WECHATPAY_PLATFORM_CERT).
 */
function sandbox() {
  const base = new URL(need('WECHATPAY_BASE_URI'));
  const privateKeyPem = fs.readFileSync(need('WECHATPAY_PRIVATE_KEY'), 'utf8');
  const s = {
    base: base.href.endsWith('/') ? base.href : `${base.href}/`,
    mchid: need('WECHATPAY_MCHID'),
    serial: need('WECHATPAY_SERIAL'),
    privateKeyPem,
    apiv3Key: need('WECHATPAY_APIV3_KEY'),
    // what the control endpoints that change state ask for (Authorization: Bearer ...)
    controlToken: need('WECHATPAY_SANDBOX_TOKEN'),
  };
  if (process.env.WECHATPAY_PLATFORM_CERT) {
    const pem = fs.readFileSync(process.env.WECHATPAY_PLATFORM_CERT, 'utf8');
    s.mode = 'certificate';
    s.platformCertPem = pem;
    // serve names the file wechatpay_<serial>.pem after the serial its answers carry in
    // Wechatpay-Serial; it must be the certificate's own serial (upper-case hex).
    const named = /wechatpay_([0-9A-Fa-f]+)\.pem$/.exec(process.env.WECHATPAY_PLATFORM_CERT);
    const own = new crypto.X509Certificate(pem).serialNumber;
    assert.ok(named, `${process.env.WECHATPAY_PLATFORM_CERT} is not named wechatpay_<serial>.pem`);
    assert.equal(BigInt(`0x${named[1]}`), BigInt(`0x${own}`), 'the certificate file is not named after its serial');
    s.platformSerial = named[1];
    s.platformKeyPem = pem;
  } else {
    s.mode = 'public-key';
    s.platformSerial = need('WECHATPAY_PUBLIC_KEY_ID');
    s.platformKeyPem = fs.readFileSync(need('WECHATPAY_PUBLIC_KEY'), 'utf8');
  }
  return s;
}

/** A merchant order number: 6 to 32 of [0-9A-Za-z_-|*], unique per run. */
function outNo(prefix) {
  return `${prefix}${Date.now()}${crypto.randomBytes(3).toString('hex')}`.slice(0, 32);
}

/**
 * A sequential runner: each step runs after the previous one. Steps form chains (the payment
 * and its refund, the transfer, ...): after a failure the later steps of its chain are
 * reported as not run, the other chains go on. `finish()` sets the exit code.
 */
function runner(title) {
  const results = [];
  const broken = new Map();
  console.log(`# ${title}`);
  return {
    async step(name, fn, { chain = name } = {}) {
      if (broken.has(chain)) {
        results.push({ name, status: 'not run' });
        console.log(`not run - ${name} (after: ${broken.get(chain)})`);
        return undefined;
      }
      try {
        const value = await fn();
        results.push({ name, status: 'ok' });
        console.log(`ok - ${name}`);
        return value;
      } catch (e) {
        results.push({ name, status: 'failed' });
        broken.set(chain, name);
        console.log(`not ok - ${name}`);
        console.log(indent(e && e.stack ? e.stack : String(e)));
        return undefined;
      }
    },
    skip(name, why) {
      results.push({ name, status: 'skipped' });
      console.log(`SKIPPED: ${why} - ${name}`);
    },
    finish() {
      const count = (s) => results.filter((r) => r.status === s).length;
      const bad = count('failed') + count('not run');
      console.log(`# ${title}: ${count('ok')} ok, ${count('failed')} failed, ${count('not run')} not run, ${count('skipped')} skipped`);
      process.exitCode = bad > 0 ? 1 : 0;
    },
  };
}

function indent(text) {
  return String(text).split('\n').map((l) => `    ${l}`).join('\n');
}

/**
 * An unsigned control endpoint of the sandbox (`/emulator/...`): what the payer does. It
 * changes the sandbox's state, so it carries the control token of the env file.
 */
async function control(s, path, body = {}) {
  const res = await fetch(new URL(`emulator/${path}`, s.base), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${s.controlToken}` },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.ok, `POST /emulator/${path} answered ${res.status}: ${text}`);
  return JSON.parse(text);
}

/** What the sandbox recorded of its notification attempts (`GET /emulator/deliveries`). */
async function deliveries(s) {
  const res = await fetch(new URL('emulator/deliveries', s.base));
  assert.equal(res.status, 200);
  return (await res.json()).data;
}

/**
 * `check()` until it passes, for what the sandbox records after the merchant answered (its
 * deliveries); the last failure is thrown once NOTIFY_WAIT_MS is over.
 */
async function eventually(check) {
  const end = Date.now() + NOTIFY_WAIT_MS;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() >= end) throw e;
      await new Promise((resolve) => { setTimeout(resolve, 50); });
    }
  }
}

/**
 * The merchant's notify_url: a loopback HTTP server that verifies each notification with
 * `verify(headers, rawBody)` (the SDK's own functions; it returns or resolves to the envelope
 * and the decrypted resource, or throws), answers 204 to a verified one and 401 with the
 * reason to any other, and lets the test wait for a verified notification of an event type.
 */
async function notificationServer(verify) {
  const received = [];
  const waiters = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const entry = { path: req.url, headers: req.headers, raw };
      try {
        const { envelope, resource } = await verify(req.headers, raw);
        Object.assign(entry, { verified: true, eventType: envelope.event_type, envelope, resource });
        res.writeHead(204).end();
      } catch (e) {
        let eventType;
        try { eventType = JSON.parse(raw).event_type; } catch { eventType = undefined; }
        Object.assign(entry, { verified: false, eventType, error: String(e && e.message ? e.message : e) });
        res.writeHead(401, { 'Content-Type': 'application/json' })
          .end(JSON.stringify({ code: 'FAIL', message: entry.error }));
      }
      received.push(entry);
      for (const w of waiters.slice()) w();
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const url = (path) => `http://127.0.0.1:${server.address().port}/${path}`;

  /**
   * The first notification to `path` of `eventType` matching `match(resource)` received from
   * index `from` on; fails on one of them that did not verify, or when none came in time.
   */
  function waitFor(path, eventType, match = () => true, from = 0) {
    const find = () => {
      for (const e of received.slice(from)) {
        if (e.path !== `/${path}` || e.eventType !== eventType) continue;
        if (!e.verified) {
          return { error: new Error(`a ${eventType} notification did not verify: ${e.error}\n${JSON.stringify(e.headers)}\n${e.raw}`) };
        }
        if (match(e.resource)) return { entry: e };
      }
      return null;
    };
    return new Promise((resolve, reject) => {
      let timer;
      const check = () => {
        const found = find();
        if (!found) return false;
        clearTimeout(timer);
        const i = waiters.indexOf(check);
        if (i >= 0) waiters.splice(i, 1);
        if (found.error) reject(found.error); else resolve(found.entry);
        return true;
      };
      if (check()) return;
      waiters.push(check);
      timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(check), 1);
        const seen = received.map((e) => `${e.path} ${e.eventType} verified=${e.verified}${e.error ? ` (${e.error})` : ''}`);
        reject(new Error(`no verified ${eventType} notification at /${path} within ${NOTIFY_WAIT_MS} ms; received: ${JSON.stringify(seen)}`));
      }, NOTIFY_WAIT_MS);
    });
  }

  return {
    url,
    received,
    waitFor,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

/**
 * Whether this `wechatpay` has the `trigger` subcommand: `wechatpay trigger --help` succeeds
 * with the subcommand's own usage (without the subcommand, `trigger` would be read as a method
 * and the general help printed).
 */
function triggerAvailable() {
  const bin = process.env.WECHATPAY_BIN;
  if (!bin) return false;
  const r = spawnSync(bin, ['trigger', '--help'], { encoding: 'utf8' });
  return r.status === 0 && /^Usage: \S*wechatpay\S* trigger\b/m.test(r.stdout || '');
}

/**
 * `wechatpay trigger EVENT --use-env-secrets --to URL` (the keys of the sandbox's env file),
 * its output shown; fails unless it exits 0. Run without blocking: the notification server it
 * posts to lives in this process.
 */
function trigger(eventType, to) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.env.WECHATPAY_BIN, ['trigger', eventType, '--use-env-secrets', '--to', to], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { out += c; });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (out.trim()) console.log(indent(out.trim()));
      if (code === 0) resolve();
      else reject(new Error(`wechatpay trigger ${eventType} --to ${to} exited ${code === null ? `on ${signal}` : code}`));
    });
  });
}

/** The events the trigger section sends to each SDK's notification server. */
const TRIGGERED = ['TRANSACTION.SUCCESS', 'REFUND.SUCCESS', 'MCHTRANSFER.BILL.FINISHED'];

/** The trigger section: each event of TRIGGERED triggered to `notify` and verified there. */
async function triggerSection(run, notify) {
  if (!triggerAvailable()) {
    for (const ev of TRIGGERED) {
      await run.step(`wechatpay trigger ${ev}`, async () => {
        throw new Error(`${process.env.WECHATPAY_BIN} has no trigger subcommand (wechatpay trigger --help)`);
      });
    }
    return;
  }
  for (const ev of TRIGGERED) {
    await run.step(`wechatpay trigger ${ev}: delivered and verified by the SDK`, async () => {
      const from = notify.received.length;
      try {
        await trigger(ev, notify.url('triggered'));
      } catch (err) {
        const refused = notify.received.slice(from).filter((e) => !e.verified);
        if (refused.length) err.message += `; the SDK refused it: ${refused.map((e) => e.error).join('; ')}`;
        throw err;
      }
      const e = await notify.waitFor('triggered', ev, () => true, from);
      assert.equal(typeof e.resource, 'object', `the ${ev} resource decrypted to ${JSON.stringify(e.resource)}`);
    });
  }
}

module.exports = {
  sandbox, outNo, runner, control, deliveries, eventually, notificationServer, triggerSection, TRIGGERED,
};

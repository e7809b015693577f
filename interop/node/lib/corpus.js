'use strict';
// Optional, when WECHATPAY_CORPUS names the conformance corpus (a JSON line per documented
// call, as the wire check reads it; CI passes ../shared/conformance/corpus.dev.jsonl): every
// APIv3 call of it replayed through the SDK against the sandbox. Each answer is either a 2xx
// the SDK accepted (its signature verified) or a platform-shaped error (a business error for a
// modelled flow with no such object, e.g. ORDER_NOT_EXIST); the SDK refusing an answer fails.

const assert = require('node:assert/strict');
const fs = require('node:fs');

/** The APIv3 calls of the corpus the sandbox can be asked, and why others are left out. */
function load(path) {
  const cases = [];
  const left = {};
  const leave = (why) => { left[why] = (left[why] || 0) + 1; };
  for (const line of fs.readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const c = JSON.parse(line);
    if (!c.template.startsWith('v3/')) continue;
    const args = c.args || {};
    const base = args.base_uri ? new URL(args.base_uri) : null;
    if (base && base.pathname !== '/') { leave('a base_uri with a path prefix (/hk/, /global/)'); continue; }
    if (args.sink) { leave('a download to a file'); continue; }
    const names = [...c.template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).filter((n) => n !== 'empty');
    if (names.some((n) => args[n] === undefined)) { leave('a sample without one of its placeholders'); continue; }
    // the sandbox answers these 404 as the platform routes them nowhere; nothing to verify
    if (names.some((n) => args[n] === '')) { leave('a sample with an empty placeholder'); continue; }
    const vars = Object.fromEntries(names.map((n) => [n, String(args[n])]));
    cases.push({
      id: c.id,
      method: c.method,
      template: c.template.replace('{empty}', ''),
      vars,
      query: args.query,
      body: args.json,
      headers: args.headers || {},
    });
  }
  return { cases, left };
}

/**
 * The corpus replayed through `adapter.call` (which throws when the SDK refuses an answer, and
 * returns {status, data} for a 2xx and for an error answer). The answer's Wechatpay-Serial
 * headers in the samples name the samples' platform key: they are given the sandbox's.
 */
async function corpusSection(run, s, adapter) {
  const path = process.env.WECHATPAY_CORPUS;
  if (!path) {
    run.skip('the conformance corpus replayed', 'WECHATPAY_CORPUS not set');
    return;
  }
  await run.step(`every APIv3 call of ${path.split('/').pop()}: each answer accepted by the SDK`, async () => {
    const { cases, left } = load(path);
    assert.ok(cases.length > 0, `no APIv3 call in ${path}`);
    let ok = 0;
    const errors = {};
    const refused = [];
    for (const c of cases) {
      const why = adapter.leaveOut && adapter.leaveOut(c);
      if (why) {
        left[why] = (left[why] || 0) + 1;
        continue;
      }
      const headers = { ...c.headers };
      if (headers['Wechatpay-Serial']) headers['Wechatpay-Serial'] = s.platformSerial;
      let res;
      try {
        res = await adapter.call(c.method, c.template, c.vars, c.body, headers, { query: c.query, errors: true });
      } catch (e) {
        refused.push(`${c.method} ${c.template} (${c.id}): ${e.message}`);
        continue;
      }
      if (res.status >= 200 && res.status < 300) {
        ok += 1;
      } else {
        assert.ok(res.data && typeof res.data.code === 'string' && typeof res.data.message === 'string',
          `${c.method} ${c.template}: ${res.status} without the platform's error shape: ${JSON.stringify(res.data)}`);
        // the sandbox refused the SDK's request itself (signature, serial, merchant)
        assert.notEqual(res.status, 401, `${c.method} ${c.template}: the sandbox refused the SDK's request: ${JSON.stringify(res.data)}`);
        const key = `${res.status} ${res.data.code}`;
        (errors[key] = errors[key] || []).push(process.env.INTEROP_VERBOSE ? `${c.method} ${c.template}: ${res.data.message}` : c.template);
      }
    }
    const summary = Object.entries(errors).map(([k, v]) => `${k} x${v.length}`).join(', ');
    const sent = ok + refused.length + Object.values(errors).reduce((n, v) => n + v.length, 0);
    console.log(`    ${sent} calls: ${ok} 2xx accepted, ${sent - ok - refused.length} errors (${summary || 'none'}), ${refused.length} refused by the SDK`);
    const leftOut = Object.entries(left).map(([k, v]) => `${v} ${k}`).join(', ');
    if (leftOut) console.log(`    left out: ${leftOut}`);
    if (process.env.INTEROP_VERBOSE) {
      for (const [k, v] of Object.entries(errors)) console.log(`    ${k}:\n      ${v.join('\n      ')}`);
    }
    assert.deepEqual(refused, [], 'the SDK refused answers of the sandbox');
  });
}

module.exports = { corpusSection };

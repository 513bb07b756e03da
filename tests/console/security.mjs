// The console's security, over plain HTTP against a running dirsync (the
// distributed shape, PostgreSQL): no session → sign-in page and every data
// request refused; account B's session reads nothing of account A's; a
// state-changing request without the CSRF token, or from another site, is
// refused; the bind password is in no answer; a revoked token ends its
// sessions; the security headers are on every answer.

import { strict as assert } from 'node:assert';
import { env, step } from './common.mjs';

const url = env('CONSOLE_URL');
const tokenA = env('CONSOLE_TOKEN_A');
const tokenB = env('CONSOLE_TOKEN_B');
const integrationA = env('INTEGRATION_A');
const runA = env('RUN_A');
const addressA = env('ADDRESS_A');
const userA = env('USER_A');
const password = env('BIND_PASSWORD');
const dirsync = env('DIRSYNC_BIN');
env('DIRSYNC_DATABASE_URL');

const bodies = [];
async function req(method, path, { session, csrf, body, headers = {} } = {}) {
  const h = { ...headers };
  if (session) h.cookie = `dirsync_session=${session}`;
  if (csrf) h['x-csrf-token'] = csrf;
  if (body !== undefined && !h['content-type']) h['content-type'] = 'application/json';
  const r = await fetch(url + path.replace(/^\//, ''), {
    method, headers: h, redirect: 'manual', body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  bodies.push(text);
  let json = null;
  try { json = JSON.parse(text); } catch (_) { /* not JSON */ }
  return { status: r.status, headers: r.headers, text, json };
}

async function signIn(token) {
  const r = await req('POST', '/api/session', { body: { token } });
  assert.equal(r.status, 200, r.text);
  const cookie = r.headers.get('set-cookie');
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  assert.match(cookie, /Max-Age=\d+/);
  const session = cookie.match(/dirsync_session=([^;]+)/)[1];
  return { session, csrf: r.json.csrf_token, account: r.json.account_id };
}

const RPCS = [
  ['IntegrationService', 'ListIntegrations', {}], ['IntegrationService', 'GetIntegration', { integration: integrationA }],
  ['IntegrationService', 'CreateIntegration', {}], ['IntegrationService', 'UpdateIntegration', { integration: integrationA }],
  ['IntegrationService', 'DeleteIntegration', { integration: integrationA }], ['IntegrationService', 'TestConnection', { integration: integrationA }],
  ['AccountService', 'GetAccount', {}], ['AccountService', 'UpdateAccount', {}],
  ['SyncService', 'SyncNow', { integration: integrationA }], ['SyncService', 'SyncAll', {}],
  ['SyncService', 'GetRun', { run_id: runA }], ['SyncService', 'WatchRun', { run_id: runA }],
  ['SyncService', 'ListRuns', { integration: integrationA }], ['SyncService', 'ListPendingRemovals', { run_id: runA }],
  ['SyncService', 'ApproveRemovals', { run_id: runA }], ['SyncService', 'PreviewSync', { integration: integrationA }],
  ['SyncService', 'ListChanges', { run_id: runA }], ['SyncService', 'ListChanges', { object_id: userA }],
  ['SyncService', 'ListChanges', { address: addressA }],
  ['DirectoryService', 'ListUsers', {}], ['DirectoryService', 'ListUsers', { ids: [userA] }], ['DirectoryService', 'ListGroups', {}],
  ['DirectoryService', 'ListContacts', {}], ['DirectoryService', 'LookupAddress', { address: addressA }],
];

await step('security headers on pages, assets and API answers', async () => {
  for (const path of ['/sign-in', '/assets/app.js', '/api/session']) {
    const r = await req('GET', path);
    const csp = r.headers.get('content-security-policy');
    assert.ok(csp && csp.includes("frame-ancestors 'none'") && csp.includes("script-src 'self'"), `${path}: ${csp}`);
    assert.ok(!csp.includes('unsafe-inline') && !csp.includes('unsafe-eval'), csp);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(r.headers.get('x-frame-options'), 'DENY');
  }
  const page = await req('GET', '/sign-in');
  assert.ok(!/<script(?![^>]*\bsrc=)[^>]*>/i.test(page.text), 'an inline script');
  assert.ok(!/\sstyle=/i.test(page.text) && !/\son[a-z]+=/i.test(page.text), 'inline style or handler');
});

await step('no session: the page redirects to sign-in and every data request is refused', async () => {
  const r = await req('GET', '/');
  assert.equal(r.status, 303);
  assert.equal(r.headers.get('location'), '/sign-in');
  for (const [s, m, body] of RPCS) {
    const a = await req('POST', `/api/${s}/${m}`, { body });
    assert.equal(a.status, 401, `${s}/${m} without a session: ${a.status} ${a.text}`);
    const forged = await req('POST', `/api/${s}/${m}`, { body, session: 'dss_0123456789abcdef_' + 'a'.repeat(64), csrf: 'x' });
    assert.equal(forged.status, 401, `${s}/${m} with a forged session: ${forged.status}`);
  }
  const bearer = await req('POST', '/api/IntegrationService/ListIntegrations', { body: {}, headers: { authorization: `Bearer ${tokenA}` } });
  assert.equal(bearer.status, 401, 'the console takes only sessions, not bearer tokens');
  const bad = await req('POST', '/api/session', { body: { token: 'dst_nope' } });
  assert.equal(bad.status, 401);
});

const a = await signIn(tokenA);
const b = await signIn(tokenB);
assert.notEqual(a.account, b.account);

await step("account B's session reads nothing of account A's", async () => {
  for (const [s, m, body] of RPCS) {
    const r = await req('POST', `/api/${s}/${m}`, { body, ...b });
    const text = r.text;
    for (const secret of [integrationA, runA, addressA, userA]) {
      if (JSON.stringify(body).includes(secret)) continue; // B named it; the answer may repeat the name in a not-found
      assert.ok(!text.includes(secret), `${s}/${m} as B shows A's ${secret}: ${text.slice(0, 300)}`);
    }
    if (r.status === 200 && r.json) {
      const objects = r.json.objects || r.json.integrations || r.json.runs || r.json.changes || [];
      assert.equal(objects.length, 0, `${s}/${m} as B lists A's objects`);
    }
  }
  const other = await req('POST', '/api/IntegrationService/ListIntegrations', { body: { account_id: a.account }, ...b });
  assert.equal(other.status, 403, other.text);
  const own = await req('POST', '/api/IntegrationService/GetIntegration', { body: { integration: integrationA }, ...a });
  assert.equal(own.status, 200, 'A reads its own integration');
});

await step('a request without the CSRF token, with a wrong one, or from another site is refused', async () => {
  const bodyOf = { integration: integrationA };
  for (const csrf of [undefined, 'x'.repeat(64), b.csrf]) {
    const r = await req('POST', '/api/SyncService/SyncNow', { body: bodyOf, session: a.session, csrf });
    assert.equal(r.status, 403, `CSRF ${csrf}: ${r.status} ${r.text}`);
  }
  const cross = await req('POST', '/api/SyncService/SyncNow', { body: bodyOf, ...a, headers: { origin: 'https://attacker.example' } });
  assert.equal(cross.status, 403, cross.text);
  const form = await req('POST', '/api/SyncService/SyncNow', { body: 'integration=x', ...a, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  assert.equal(form.status, 415, form.text);
  const out = await req('DELETE', '/api/session', { session: a.session });
  assert.equal(out.status, 403, 'sign-out without the CSRF token');
  const still = await req('GET', '/api/session', { session: a.session });
  assert.equal(still.status, 200, 'the session ended without its CSRF token');
  const runs = await req('POST', '/api/SyncService/ListRuns', { body: { integration: integrationA }, ...a });
  assert.equal(runs.json.runs.length, 1, 'a refused Sync now started a run');
});

await step('bad input gets an error naming the problem', async () => {
  const unknown = await req('POST', '/api/IntegrationService/CreateIntegration', { body: { settigns: {} }, ...a });
  assert.equal(unknown.status, 400);
  assert.match(unknown.json.error.message, /settigns/);
  const invalid = await req('POST', '/api/IntegrationService/CreateIntegration', {
    body: { settings: { name: '', host: '', port: 70000, user_dn: 'x', root_dn: 'y' }, password: password, validate_only: true }, ...a,
  });
  assert.equal(invalid.status, 400);
  const fields = invalid.json.error.fields.map((f) => f.field);
  for (const f of ['settings.name', 'settings.host', 'settings.port', 'settings.user_dn', 'settings.root_dn']) assert.ok(fields.includes(f), `${f} not named: ${fields}`);
  const auth = await req('POST', '/api/AuthService/Authenticate', { body: { address: addressA, password: 'x' }, ...a });
  assert.equal(auth.status, 404, 'end-user sign-in is not a console call');
});

await step('the bind password is in no answer', async () => {
  await req('POST', '/api/IntegrationService/UpdateIntegration', { body: { integration: integrationA, validate_only: true, password, settings: (await req('POST', '/api/IntegrationService/GetIntegration', { body: { integration: integrationA }, ...a })).json.settings }, ...a });
  await req('POST', '/api/IntegrationService/TestConnection', { body: { integration: integrationA }, ...a });
  await req('POST', '/api/IntegrationService/ListIntegrations', { body: {}, ...a });
  await req('GET', '/', { session: a.session });
  await req('GET', '/assets/app.js');
  for (const text of bodies) assert.ok(!text.includes(password), `an answer holds the bind password: ${text.slice(0, 200)}`);
});

await step('a revoked token ends its sessions; sign-out ends the other', async () => {
  const { execFileSync } = await import('node:child_process');
  const tokenId = tokenA.split('_')[1];
  execFileSync(dirsync, ['token', 'revoke', '--account', a.account, tokenId], { stdio: 'inherit' });
  const r = await req('POST', '/api/IntegrationService/ListIntegrations', { body: {}, ...a });
  assert.equal(r.status, 401, `a revoked token's session answers: ${r.status}`);
  const out = await req('DELETE', '/api/session', { ...b });
  assert.equal(out.status, 204);
  assert.match(out.headers.get('set-cookie'), /Max-Age=0/);
  const after = await req('POST', '/api/DirectoryService/ListUsers', { body: {}, ...b });
  assert.equal(after.status, 401);
});

console.log('console security: every step passed');

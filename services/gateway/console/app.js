// The dirsync admin console. Every screen acts through the gateway's gRPC
// services (POST /api/<Service>/<Method>, proto3 JSON), so the rules, the
// validation and the tenancy are the API's own. No inline script, no data
// in innerHTML: every text is set as text.

const app = document.getElementById('app');
const state = { session: null, integrations: new Map(), watches: new Map(), poll: null };

// ---------------------------------------------------------------- DOM

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, ...children);
  return el;
}

function append(el, ...children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function clear(el, ...children) {
  el.replaceChildren();
  return append(el, ...children);
}

// A DN that may wrap after each of its commas.
function dnText(dn) {
  const parts = String(dn || '').split(/(?<=,)/);
  return parts.flatMap((p, i) => (i ? [h('wbr'), p] : [p]));
}

function toast(text, kind = 'info') {
  const t = h('div', { class: `toast toast-${kind}` }, text);
  const box = document.getElementById('toasts');
  box.append(t);
  while (box.children.length > 3) box.firstChild.remove();
  setTimeout(() => t.remove(), 5000);
}

let fieldSeq = 0;
function fieldId(name) {
  fieldSeq += 1;
  return `f-${name.replace(/[^a-z0-9]/gi, '-')}-${fieldSeq}`;
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(err, status) {
    super(err && err.message ? err.message : `The console's request failed (HTTP ${status}).`);
    this.code = (err && err.code) || 'UNKNOWN';
    this.fields = (err && err.fields) || [];
    this.status = status;
  }
}

// What an error means, in words a directory admin can act on.
function explain(e) {
  if (!(e instanceof ApiError)) return `dirsync could not be reached: ${e.message}. Check that the gateway is running.`;
  const lead = {
    UNAVAILABLE: 'dirsync cannot reach its directory store right now; try again in a moment. ',
    PERMISSION_DENIED: 'Not allowed: ',
    NOT_FOUND: 'Not found: ',
    ALREADY_EXISTS: 'Already exists: ',
    FAILED_PRECONDITION: 'Not possible now: ',
    RESOURCE_EXHAUSTED: 'Too many requests: ',
    INTERNAL: 'dirsync hit an internal error: ',
  }[e.code] || '';
  return lead + e.message;
}

async function call(service, method, body = {}) {
  let r;
  try {
    r = await fetch(`/api/${service}/${method}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': state.session ? state.session.csrf_token : '' },
      body: JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch (e) {
    throw new Error('the network request failed');
  }
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : {}; } catch (_) { json = null; }
  if (r.status === 401) { sessionEnded(); }
  if (!r.ok) throw new ApiError(json && json.error, r.status);
  return json;
}

// A streamed RPC: calls onMessage for each message as it arrives.
async function stream(service, method, body, onMessage, signal) {
  const r = await fetch(`/api/${service}/${method}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-csrf-token': state.session.csrf_token },
    body: JSON.stringify(body),
    credentials: 'same-origin',
    signal,
  });
  if (r.status === 401) sessionEnded();
  if (!r.ok) {
    let err = null;
    try { err = (await r.json()).error; } catch (_) { /* not JSON */ }
    throw new ApiError(err, r.status);
  }
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.trim()) continue;
      const msg = JSON.parse(line);
      if (msg.error) throw new ApiError(msg.error, 200);
      onMessage(msg.result);
    }
  }
}

function sessionEnded() {
  if (state.session) {
    state.session = null;
    stopWatches();
  }
  if (location.pathname !== '/sign-in') location.assign('/sign-in');
}

// ---------------------------------------------------------------- words

const RUN_STATES = {
  RUN_STATE_QUEUED: 'Queued', RUN_STATE_COLLECTING: 'Collecting', RUN_STATE_RECONCILING: 'Reconciling',
  RUN_STATE_SUCCEEDED: 'Succeeded', RUN_STATE_FAILED: 'Failed', RUN_STATE_BLOCKED: 'Blocked',
};
const ACTIVE = new Set(['RUN_STATE_QUEUED', 'RUN_STATE_COLLECTING', 'RUN_STATE_RECONCILING']);
// Full or delta, with how the run was started: "Delta, Scheduled".
function runKind(r) {
  const kind = r.kind === 'RUN_KIND_DELTA' ? 'Delta' : 'Full';
  return TRIGGERS[r.trigger] ? `${kind}, ${TRIGGERS[r.trigger]}` : kind;
}

const TRIGGERS = {
  RUN_TRIGGER_SYNC_NOW: 'Sync now', RUN_TRIGGER_SYNC_ALL: 'Sync All', RUN_TRIGGER_SCHEDULE: 'Scheduled',
  RUN_TRIGGER_PREVIEW: 'Preview',
};
const CHECKS = {
  TEST_CHECK_HOSTNAME: 'Hostname / IP address', TEST_CHECK_CONNECTIVITY: 'Connectivity',
  TEST_CHECK_CERTIFICATE: 'Certificate', TEST_CHECK_AUTHENTICATION: 'Authentication',
  TEST_CHECK_SAMPLE_ADDRESSES: 'Sample addresses',
  TEST_CHECK_DELTA_SYNC: 'Delta sync',
};
const CHECK_ORDER = Object.keys(CHECKS);
const OUTCOMES = {
  TEST_OUTCOME_PASSED: 'Passed', TEST_OUTCOME_WARNING: 'Warning', TEST_OUTCOME_FAILED: 'Failed',
  TEST_OUTCOME_SKIPPED: 'Skipped',
};
const OPERATIONS = {
  CHANGE_OPERATION_ADD: 'Added', CHANGE_OPERATION_UPDATE: 'Updated', CHANGE_OPERATION_DISABLE: 'Disabled',
  CHANGE_OPERATION_ENABLE: 'Enabled', CHANGE_OPERATION_RESTORE: 'Restored', CHANGE_OPERATION_DEMOTE: 'Made unmanaged',
  CHANGE_OPERATION_DELETE: 'Deleted', CHANGE_OPERATION_HELD: 'Held for approval',
};
const KINDS = { OBJECT_KIND_USER: 'User', OBJECT_KIND_GROUP: 'Group', OBJECT_KIND_CONTACT: 'Contact' };

function when(ts) {
  if (!ts) return '—';
  const d = new Date(ts);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

function ago(ts) {
  if (!ts) return '';
  const s = Math.round((Date.now() - new Date(ts).getTime()) / 1000);
  const future = s < 0;
  const a = Math.abs(s);
  const text = a < 60 ? `${a} s` : a < 3600 ? `${Math.round(a / 60)} min` : a < 86400 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86400)} d`;
  return future ? `in ${text}` : `${text} ago`;
}

function timeCell(ts) {
  return ts ? h('time', { datetime: ts, title: when(ts) }, when(ts), h('span', { class: 'muted' }, ` (${ago(ts)})`)) : '—';
}

function stateBadge(s) {
  const name = RUN_STATES[s] || 'Unknown';
  return h('span', { class: `badge state-${name.toLowerCase()}` }, name);
}

function n(v) { return Number(v || 0); }

function countsText(c) {
  if (!c) return '';
  const parts = [`${n(c.collected)} read`];
  if (n(c.added)) parts.push(`${n(c.added)} added`);
  if (n(c.updated)) parts.push(`${n(c.updated)} updated`);
  if (n(c.removed)) parts.push(`${n(c.removed)} removed`);
  if (n(c.unchanged)) parts.push(`${n(c.unchanged)} unchanged`);
  if (n(c.pending)) parts.push(`${n(c.pending)} held`);
  return parts.join(' · ');
}

function encryptionText(s) {
  if (s.encrypt === false) return 'Off (no TLS)';
  const mode = s.encryption_mode === 'ENCRYPTION_MODE_STRICT' ? 'Strict' : 'Relaxed';
  const port = n(s.port) || 636;
  const how = port === 389 || port === 3268 ? 'StartTLS' : 'LDAPS';
  return `${how}, ${mode}`;
}

function hostText(s) {
  const port = n(s.port) || (s.encrypt === false ? 389 : 636);
  return `${s.host}:${port}`;
}

// ---------------------------------------------------------------- shell

function layout(title, actions, ...content) {
  const nav = [
    ['#/integrations', 'Directory Synchronization'],
    ['#/directory/users', 'Users'],
    ['#/directory/groups', 'Groups'],
    ['#/directory/contacts', 'Contacts'],
    ['#/lookup', 'Address lookup'],
    ['#/account', 'Account settings'],
  ];
  const here = location.hash || '#/integrations';
  const main = h('main', { id: 'main', tabindex: '-1' },
    h('div', { class: 'page-head' }, h('h1', {}, title), h('div', { class: 'actions' }, actions)),
    content);
  clear(app,
    h('a', { class: 'skip', href: '#main', onclick: (e) => { e.preventDefault(); main.focus(); } }, 'Skip to content'),
    h('header', { class: 'top' },
      h('a', { class: 'brand', href: '#/integrations' }, h('img', { src: '/assets/logo.svg', alt: '' }), 'dirsync'),
      h('nav', { 'aria-label': 'Main' },
        h('ul', {}, nav.map(([href, label]) => h('li', {},
          h('a', { href, 'aria-current': here.startsWith(href) ? 'page' : false }, label))))),
      h('div', { class: 'who' },
        h('span', { class: 'account', title: 'Account' }, state.session.account_id),
        h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'))),
    main);
  return main;
}

function errorBox(e) {
  return h('div', { class: 'alert alert-error', role: 'alert' }, explain(e));
}

function empty(text, ...more) {
  return h('div', { class: 'empty' }, h('p', {}, text), more);
}

// A table; on a narrow screen each row stacks, its cells labelled.
function table(headers, rows, caption) {
  for (const tr of rows.flat()) {
    [...tr.children].forEach((td, i) => { td.dataset.label = headers[i] || ''; });
  }
  return h('div', { class: 'table-wrap stack' },
    h('table', {},
      caption ? h('caption', { class: 'sr-only' }, caption) : null,
      h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)));
}

function button(label, onclick, cls = '', extra = {}) {
  return h('button', { type: 'button', class: `btn ${cls}`, onclick, ...extra }, label);
}

async function busy(btn, work) {
  btn.disabled = true;
  try { return await work(); } finally { btn.disabled = false; }
}

// A modal dialog; resolves true when confirmed.
function confirmDialog(title, text, confirmLabel) {
  return new Promise((resolve) => {
    const dlg = h('dialog', { class: 'modal', 'aria-labelledby': 'dlg-title' },
      h('h2', { id: 'dlg-title' }, title),
      h('p', {}, text),
      h('div', { class: 'actions' },
        button('Cancel', () => { dlg.close(); resolve(false); }),
        button(confirmLabel, () => { dlg.close(); resolve(true); }, 'primary')));
    dlg.addEventListener('cancel', () => resolve(false));
    dlg.addEventListener('close', () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
  });
}

// ---------------------------------------------------------------- sign-in

function signInPage(message) {
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, 'aria-describedby': 'token-help' });
  const err = h('p', { class: 'field-error', id: 'token-error', role: 'alert' });
  const form = h('form', { class: 'card signin', 'aria-labelledby': 'signin-title' },
    h('div', { class: 'brand big' }, h('img', { src: '/assets/logo.svg', alt: '' }), 'dirsync'),
    h('h1', { id: 'signin-title' }, 'Sign in to the admin console'),
    message ? h('p', { class: 'alert alert-info' }, message) : null,
    h('label', { for: 'token' }, 'API token'),
    input,
    h('p', { class: 'help', id: 'token-help' }, 'Paste a token of your account, made with ',
      h('code', {}, 'dirsync token create --account …'), '. It is exchanged for a session and not kept in the browser.'),
    err,
    h('button', { type: 'submit', class: 'btn primary' }, 'Sign in'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    const btn = form.querySelector('button[type=submit]');
    await busy(btn, async () => {
      try {
        const r = await fetch('/api/session', {
          method: 'POST', headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ token: input.value.trim() }), credentials: 'same-origin',
        });
        const j = await r.json();
        if (!r.ok) throw new ApiError(j.error, r.status);
        input.value = '';
        state.session = j;
        location.assign('/#/integrations');
      } catch (ex) {
        err.textContent = explain(ex);
        input.setAttribute('aria-invalid', 'true');
        input.focus();
      }
    });
  });
  clear(app, h('main', { class: 'signin-wrap' }, form));
  input.focus();
}

async function signOut() {
  try {
    await fetch('/api/session', { method: 'DELETE', headers: { 'x-csrf-token': state.session.csrf_token }, credentials: 'same-origin' });
  } finally {
    stopWatches();
    state.session = null;
    location.assign('/sign-in');
  }
}

// ---------------------------------------------------------------- integrations

// Runs followed by a WatchRun stream at once, at most.
const MAX_WATCHES = 2;

function stopWatches() {
  for (const c of state.watches.values()) c.abort();
  state.watches.clear();
  if (state.poll) { clearInterval(state.poll); state.poll = null; }
}

async function loadIntegrations() {
  const r = await call('IntegrationService', 'ListIntegrations', {});
  state.integrations = new Map(r.integrations.map((i) => [i.id, i]));
  return r.integrations;
}

function integrationName(id) {
  const i = state.integrations.get(id);
  return i ? i.settings.name : id;
}

function healthCell(i) {
  const st = i.status || {};
  const last = st.last_run;
  const items = [];
  if (i.settings.enabled === false) items.push(h('span', { class: 'badge state-paused' }, 'Disabled'));
  if (last && last.state === 'RUN_STATE_FAILED') items.push(h('span', { class: 'badge state-failed' }, 'Failing'), h('div', { class: 'reason' }, last.error));
  if (last && last.state === 'RUN_STATE_BLOCKED') items.push(h('span', { class: 'badge state-blocked' }, 'Blocked'), h('div', { class: 'reason' }, last.hold_reason || 'Removals wait for approval.'), h('a', { href: `#/runs/${last.id}` }, 'Review removals'));
  if (st.destructive_changes_paused && !(last && last.state === 'RUN_STATE_BLOCKED')) items.push(h('span', { class: 'badge state-paused' }, 'Removals paused'), h('div', { class: 'reason' }, st.paused_reason));
  if (!items.length) items.push(last ? h('span', { class: 'badge state-succeeded' }, 'Healthy') : h('span', { class: 'badge' }, 'Never synced'));
  return items;
}

function lastRunCell(run) {
  if (!run) return h('span', { class: 'muted' }, 'No run yet');
  return h('div', { class: 'lastrun' },
    h('a', { href: `#/runs/${run.id}` }, stateBadge(run.state)),
    ' ', h('span', { class: 'counts' }, ACTIVE.has(run.state) ? progressText(run) : countsText(run.counts)),
    h('div', { class: 'muted small' }, run.finished_at ? `${runKind(run)}, ${ago(run.finished_at)}` : `${runKind(run)}, started ${ago(run.started_at || run.created_at)}`));
}

function progressText(run) {
  const c = run.counts || {};
  if (run.state === 'RUN_STATE_QUEUED') return 'waiting for a collector…';
  if (run.state === 'RUN_STATE_COLLECTING') return `${n(c.collected)} objects read so far…`;
  return `${n(c.collected)} read, applying…`;
}

// Follows a run live (WatchRun) and calls update with each state of it.
function watchRun(runId, update) {
  if (state.watches.has(runId)) return;
  const ctl = new AbortController();
  state.watches.set(runId, ctl);
  stream('SyncService', 'WatchRun', { run_id: runId }, update, ctl.signal)
    .catch((e) => { if (e.name !== 'AbortError') toast(explain(e), 'error'); })
    .finally(() => state.watches.delete(runId));
}

async function integrationsPage() {
  const syncAll = button('Sync All', null, 'primary');
  const main = layout('Directory Synchronization', [
    h('a', { class: 'btn', href: '#/integrations/new' }, 'Create New Integration'), syncAll]);
  const body = h('div', {}, h('p', { class: 'loading' }, 'Loading integrations…'));
  main.append(body);
  let list;
  try { list = await loadIntegrations(); } catch (e) { clear(body, errorBox(e)); return; }
  syncAll.disabled = !list.length;
  syncAll.addEventListener('click', () => busy(syncAll, async () => {
    try {
      const r = await call('SyncService', 'SyncAll', {});
      toast(`Sync All started ${r.runs.length} run${r.runs.length === 1 ? '' : 's'}.`);
      for (const run of r.runs) follow(run);
    } catch (e) { toast(explain(e), 'error'); }
  }));
  if (!list.length) {
    clear(body, empty('No directory integrations yet. Connect an Active Directory domain (or another LDAP directory) to sync its users, groups and contacts.',
      h('a', { class: 'btn primary', href: '#/integrations/new' }, 'Create New Integration')));
    return;
  }
  const rows = new Map();
  // A running sync is followed live by WatchRun; past MAX_WATCHES at once
  // (a browser holds few connections per host) the list is polled instead.
  const show = (run) => { const cell = rows.get(run.integration_id); if (cell) clear(cell, lastRunCell(run)); };
  const follow = (run) => {
    show(run);
    if (!ACTIVE.has(run.state)) return;
    if (state.watches.size >= MAX_WATCHES && !state.watches.has(run.id)) { poll(); return; }
    watchRun(run.id, (r) => {
      show(r);
      if (!ACTIVE.has(r.state)) {
        toast(`${integrationName(r.integration_id)}: ${RUN_STATES[r.state]} — ${countsText(r.counts)}`, r.state === 'RUN_STATE_SUCCEEDED' ? 'ok' : 'error');
        setTimeout(refreshIntegrationRows, 300);
      }
    });
  };
  const poll = () => {
    if (state.poll) return;
    state.poll = setInterval(async () => {
      const fresh = await refreshIntegrationRows();
      const active = (fresh || []).map((i) => i.status && i.status.last_run).filter((r) => r && ACTIVE.has(r.state));
      for (const r of active) if (state.watches.size < MAX_WATCHES) follow(r);
      if (!active.some((r) => !state.watches.has(r.id))) { clearInterval(state.poll); state.poll = null; }
    }, 2000);
  };
  const refreshIntegrationRows = async () => {
    try {
      const fresh = await loadIntegrations();
      for (const i of fresh) {
        const tr = document.getElementById(`row-${i.id}`);
        if (!tr) continue;
        const next = row(i);
        [...next.children].forEach((td, k) => { td.dataset.label = tr.children[k] ? tr.children[k].dataset.label : ''; });
        tr.replaceWith(next);
      }
      return fresh;
    } catch (e) { toast(explain(e), 'error'); return null; }
  };
  const row = (i) => {
    const s = i.settings;
    const st = i.status || {};
    const runCell = h('td', { class: 'run-cell' }, lastRunCell(st.last_run));
    rows.set(i.id, runCell);
    const syncBtn = button('Sync now', null, 'small', { 'aria-label': `Sync now: ${s.name}` });
    syncBtn.addEventListener('click', () => busy(syncBtn, async () => {
      try { follow(await call('SyncService', 'SyncNow', { integration: i.id })); } catch (e) { toast(explain(e), 'error'); }
    }));
    if (s.enabled === false) syncBtn.disabled = true;
    return h('tr', { id: `row-${i.id}` },
      h('td', {}, h('strong', {}, s.name), s.description ? h('div', { class: 'muted small' }, s.description) : null,
        (i.warnings || []).map((w) => h('div', { class: 'warn small' }, w))),
      h('td', {}, hostText(s), h('div', { class: 'small' }, encryptionText(s)),
        s.alternate_host ? h('div', { class: 'muted small' }, `alternate: ${s.alternate_host}`) : null),
      h('td', { class: 'dn' }, dnText(s.root_dn)),
      runCell,
      h('td', { class: 'last-success' }, timeCell(st.last_success_at)),
      h('td', {}, st.next_run_at ? timeCell(st.next_run_at) : h('span', { class: 'muted' }, '—')),
      h('td', {}, healthCell(i)),
      h('td', {}, h('div', { class: 'row-actions' },
        syncBtn,
        button('Test Connection', () => testPane({ integration: i.id }, s.name), 'small', { 'aria-label': `Test Connection: ${s.name}` }),
        h('a', { class: 'btn small', href: `#/integrations/${i.id}/runs`, 'aria-label': `Runs: ${s.name}` }, 'Runs'),
        h('a', { class: 'btn small', href: `#/integrations/${i.id}/edit`, 'aria-label': `Edit: ${s.name}` }, 'Edit'))));
  };
  clear(body, table(['Integration', 'Connection', 'Root DN', 'Last run', 'Last success', 'Next run', 'Status', ''],
    list.map(row), 'Directory integrations'));
  for (const i of list) {
    const last = i.status && i.status.last_run;
    if (last && ACTIVE.has(last.state)) follow(last);
  }
}

// ---------------------------------------------------------------- Test Connection

// The sliding pane: the five checks, streamed as they run, per host.
function testPane(request, title) {
  document.querySelectorAll('.pane-wrap').forEach((p) => p.remove());
  const ctl = new AbortController();
  const checks = h('div', { class: 'checks', 'aria-live': 'polite' });
  const status = h('p', { class: 'muted' }, 'Testing…');
  const closeBtn = button('Close', () => close(), '', { 'aria-label': 'Close Test Connection' });
  const pane = h('aside', { class: 'pane', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'pane-title' },
    h('div', { class: 'pane-head' }, h('h2', { id: 'pane-title' }, `Test Connection — ${title}`), closeBtn),
    status, checks);
  const wrap = h('div', { class: 'pane-wrap', onclick: (e) => { if (e.target === wrap) close(); } }, pane);
  const opener = document.activeElement;
  // Escape closes; Tab stays within the pane while it is open.
  const onKey = (e) => {
    if (e.key === 'Escape') { close(); return; }
    if (e.key !== 'Tab') return;
    const focusable = [...pane.querySelectorAll('button, a[href], input, select, [tabindex]:not([tabindex="-1"])')];
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
    else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
    else if (!pane.contains(document.activeElement)) { e.preventDefault(); first.focus(); }
  };
  function close() {
    ctl.abort();
    wrap.remove();
    document.removeEventListener('keydown', onKey);
    if (opener && opener.isConnected) opener.focus();
  }
  document.addEventListener('keydown', onKey);
  document.body.append(wrap);
  requestAnimationFrame(() => wrap.classList.add('open'));
  closeBtn.focus();
  runChecks(request, checks, status, ctl.signal);
}

// Runs Test Connection into `container`; resolves with the steps.
async function runChecks(request, container, status, signal) {
  const steps = [];
  const hosts = new Map();
  const section = (host) => {
    if (!hosts.has(host)) {
      const first = hosts.size === 0;
      const list = h('ol', { class: 'check-list' }, CHECK_ORDER.map((c) => h('li', { class: 'check pending', dataset: { check: c } },
        h('span', { class: 'icon', 'aria-hidden': 'true' }), h('span', { class: 'check-name' }, CHECKS[c]), h('span', { class: 'outcome' }, 'Waiting'))));
      container.append(h('section', { class: 'host' }, h('h3', {}, first ? `Primary host: ${host}` : `Alternate host: ${host}`), list));
      hosts.set(host, list);
    }
    return hosts.get(host);
  };
  try {
    await stream('IntegrationService', 'TestConnection', request, (step) => {
      steps.push(step);
      const list = section(step.host || 'host');
      const li = list.querySelector(`[data-check="${step.check}"]`);
      const outcome = OUTCOMES[step.outcome] || 'Unknown';
      const node = h('li', { class: `check ${outcome.toLowerCase()}`, dataset: { check: step.check } },
        h('span', { class: 'icon', 'aria-hidden': 'true' }),
        h('span', { class: 'check-name' }, CHECKS[step.check] || step.check),
        h('span', { class: 'outcome' }, outcome, step.elapsed_ms ? h('span', { class: 'muted small' }, ` ${step.elapsed_ms} ms`) : null),
        step.detail ? h('div', { class: 'detail' }, step.detail) : null,
        (step.samples || []).length ? h('div', { class: 'samples' }, 'Found: ', step.samples.join(', ')) : null,
        step.hint ? h('div', { class: 'hint', role: 'note' }, h('strong', {}, 'Likely cause and fix: '), step.hint) : null);
      if (step.hint) node.title = step.hint;
      if (li) li.replaceWith(node); else list.append(node);
    }, signal);
    const failedOn = (host) => steps.some((st) => st.host === host && st.outcome === 'TEST_OUTCOME_FAILED');
    const tested = [...hosts.keys()];
    const last = tested[tested.length - 1];
    if (!steps.some((st) => st.outcome === 'TEST_OUTCOME_FAILED')) {
      const warned = steps.filter((st) => st.outcome === 'TEST_OUTCOME_WARNING').length;
      status.textContent = warned ? `All checks passed. ${warned === 1 ? 'One warning' : `${warned} warnings`}: see the hints below.` : 'All checks passed.';
      status.className = warned ? 'alert alert-warn' : 'alert alert-ok';
    } else if (tested.length > 1 && !failedOn(last)) {
      status.textContent = `The primary host failed; all checks passed on the alternate host ${last}, which syncs will use while the primary cannot be reached.`;
      status.className = 'alert alert-warn';
    } else {
      status.textContent = 'Some checks failed: see the hints below.';
      status.className = 'alert alert-error';
    }
  } catch (e) {
    if (e.name === 'AbortError') return steps;
    status.textContent = explain(e);
    status.className = 'alert alert-error';
    if (e.fields && e.fields.length) status.append(h('ul', {}, e.fields.map((f) => h('li', {}, `${fieldLabel(f.field)}: ${f.description}`))));
  }
  // Checks that never ran: the test stopped before them.
  container.querySelectorAll('.check.pending .outcome').forEach((o) => { o.textContent = 'Not run'; });
  return steps;
}

// ---------------------------------------------------------------- wizard

const FIELDS = {
  'settings.name': 'Name', 'settings.description': 'Description', 'settings.type': 'Type',
  'settings.host': 'Hostname / IP address', 'settings.alternate_host': 'Alternate host',
  'settings.encrypt': 'Encrypt integration', 'settings.encryption_mode': 'Encryption mode', 'settings.port': 'Port',
  'settings.allow_insecure_bind': 'Allow binds without encryption',
  'settings.user_dn': 'User distinguished name', password: 'User password', 'settings.root_dn': 'Root distinguished name',
  'settings.acknowledge_disabled_accounts': 'Acknowledge disabled accounts', 'settings.filter_email_domains': 'Filter email domains',
  'settings.include_contacts': 'Include contacts', 'settings.maximum_sync_deletions': 'Maximum sync deletions',
  'settings.delete_users': 'Delete users', 'settings.enabled': 'Enabled', 'settings.schedule': 'Schedule',
  'settings.delta_interval_minutes': 'Delta sync interval', 'settings.delta_method': 'Delta method', 'settings.partition': 'Partition',
};
function fieldLabel(f) { return FIELDS[f] || f; }

const STEPS = [
  { title: 'General', fields: ['settings.name', 'settings.description', 'settings.type'] },
  { title: 'Settings', fields: ['settings.host', 'settings.alternate_host', 'settings.encrypt', 'settings.encryption_mode', 'settings.allow_insecure_bind', 'settings.port', 'settings.user_dn', 'password', 'settings.root_dn'] },
  { title: 'Options', fields: ['settings.acknowledge_disabled_accounts', 'settings.filter_email_domains', 'settings.include_contacts', 'settings.maximum_sync_deletions', 'settings.delete_users', 'settings.enabled', 'settings.schedule', 'settings.delta_interval_minutes', 'settings.delta_method', 'settings.partition'] },
  { title: 'Summary', fields: [] },
];

async function wizardPage(id) {
  const editing = Boolean(id);
  const main = layout(editing ? 'Edit integration' : 'Create New Integration', [h('a', { class: 'btn', href: '#/integrations' }, 'Cancel')]);
  let existing = null;
  if (editing) {
    try { existing = await call('IntegrationService', 'GetIntegration', { integration: id }); } catch (e) { main.append(errorBox(e)); return; }
  }
  const s = existing ? existing.settings : {};
  const v = {
    name: s.name || '', description: s.description || '', type: s.type || 'DIRECTORY_TYPE_ACTIVE_DIRECTORY',
    host: s.host || '', alternate_host: s.alternate_host || '', encrypt: s.encrypt !== false,
    encryption_mode: s.encryption_mode && s.encryption_mode !== 'ENCRYPTION_MODE_UNSPECIFIED' ? s.encryption_mode : 'ENCRYPTION_MODE_STRICT',
    allow_insecure_bind: Boolean(s.allow_insecure_bind),
    port: s.port ? String(s.port) : '636', user_dn: s.user_dn || '', password: '', root_dn: s.root_dn || '',
    acknowledge_disabled_accounts: existing ? Boolean(s.acknowledge_disabled_accounts) : true,
    filter_email_domains: s.filter_email_domains || '', include_contacts: Boolean(s.include_contacts),
    maximum_sync_deletions: existing ? String(s.maximum_sync_deletions) : '100', delete_users: Boolean(s.delete_users),
    enabled: s.enabled !== false, schedule: s.schedule || '', partition: s.partition || '',
    delta_interval_minutes: s.delta_interval_minutes === undefined || s.delta_interval_minutes === null ? '5' : String(s.delta_interval_minutes),
    delta_method: s.delta_method === 'DELTA_METHOD_USN_CHANGED' ? s.delta_method : 'DELTA_METHOD_DIRSYNC',
  };
  const ldapSchema = s.ldap_schema || null;
  let step = 0;
  const touched = new Set();
  const inputs = {};
  const errors = {};
  const warnings = h('div', { class: 'warnings', 'aria-live': 'polite' });

  const settings = () => ({
    name: v.name, description: v.description, type: v.type, host: v.host, alternate_host: v.alternate_host,
    encrypt: v.encrypt, encryption_mode: v.encrypt ? v.encryption_mode : 'ENCRYPTION_MODE_UNSPECIFIED',
    allow_insecure_bind: !v.encrypt && v.allow_insecure_bind,
    port: v.port === '' ? 0 : Number(v.port), user_dn: v.user_dn, root_dn: v.root_dn,
    acknowledge_disabled_accounts: v.acknowledge_disabled_accounts, filter_email_domains: v.filter_email_domains,
    include_contacts: v.include_contacts, maximum_sync_deletions: v.maximum_sync_deletions === '' ? 0 : Number(v.maximum_sync_deletions),
    delete_users: v.delete_users, enabled: v.enabled, schedule: v.schedule, partition: v.partition,
    delta_interval_minutes: v.delta_interval_minutes === '' ? 5 : Number(v.delta_interval_minutes),
    delta_method: v.type === 'DIRECTORY_TYPE_LDAP' ? 'DELTA_METHOD_UNSPECIFIED' : v.delta_method,
    ldap_schema: v.type === 'DIRECTORY_TYPE_LDAP' ? ldapSchema || {} : null,
  });
  // Creates or updates the integration (only checks it, validateOnly);
  // on edit an empty password keeps the stored one.
  const save = (validateOnly) => {
    const body = { settings: settings(), validate_only: validateOnly };
    if (!editing) return call('IntegrationService', 'CreateIntegration', { ...body, password: v.password });
    if (v.password) body.password = v.password;
    return call('IntegrationService', 'UpdateIntegration', { integration: existing.id, ...body });
  };
  // Test Connection of the settings as they stand, not saved; on edit
  // without a new password, with the stored one.
  const testRequest = () => {
    const req = { settings: settings() };
    if (v.password) req.password = v.password;
    if (editing) req.integration = existing.id;
    return req;
  };
  const numbersOk = () => {
    const bad = {};
    if (!/^\d*$/.test(v.port)) bad['settings.port'] = 'must be a number, e.g. 636 (LDAPS) or 389 (LDAP)';
    if (!/^\d*$/.test(v.maximum_sync_deletions)) bad['settings.maximum_sync_deletions'] = 'must be a whole number, 0 or more';
    return bad;
  };
  // The API's own validation, nothing stored (validate_only).
  const validate = async () => {
    const bad = numbersOk();
    if (Object.keys(bad).length) return { fields: bad, warnings: [] };
    try {
      const r = await save(true);
      return { fields: {}, warnings: r.warnings || [] };
    } catch (e) {
      if (!(e instanceof ApiError) || !e.fields.length) throw e;
      const fields = {};
      for (const f of e.fields) fields[f.field] = fields[f.field] ? `${fields[f.field]}; ${f.description}` : f.description;
      return { fields, warnings: [] };
    }
  };
  const show = (result, only) => {
    for (const [f, el] of Object.entries(errors)) {
      const msg = result.fields[f];
      const visible = msg && (!only || only.has(f));
      el.textContent = visible ? `${fieldLabel(f)} ${msg}` : '';
      const input = inputs[f];
      if (input) { if (visible) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid'); }
    }
    clear(warnings, result.warnings.map((w) => h('p', { class: 'alert alert-warn' }, w)));
  };
  let timer = null;
  const onInput = (field) => {
    touched.add(field);
    clearTimeout(timer);
    timer = setTimeout(async () => {
      try { show(await validate(), touched); } catch (_) { /* shown on Next */ }
    }, 350);
  };

  const field = (name, key, label, control, help) => {
    const id = fieldId(key);
    control.id = id;
    const err = h('p', { class: 'field-error', id: `${id}-err`, 'aria-live': 'polite' });
    const helpEl = help ? h('p', { class: 'help', id: `${id}-help` }, help) : null;
    control.setAttribute('aria-describedby', [helpEl ? `${id}-help` : '', `${id}-err`].filter(Boolean).join(' '));
    inputs[name] = control;
    errors[name] = err;
    if (control.type === 'checkbox') {
      return h('div', { class: 'field check-field' }, h('div', { class: 'inline' }, control, h('label', { for: id }, label)), helpEl, err);
    }
    return h('div', { class: 'field' }, h('label', { for: id }, label), control, helpEl, err);
  };
  const text = (key, label, help, attrs = {}) => {
    const el = h('input', { type: 'text', value: v[key], spellcheck: 'false', ...attrs });
    el.addEventListener('input', () => { v[key] = el.value; onInput(`settings.${key}`); });
    return field(`settings.${key}`, key, label, el, help);
  };
  const check = (key, label, help) => {
    const el = h('input', { type: 'checkbox', checked: v[key] });
    el.addEventListener('change', () => { v[key] = el.checked; onInput(`settings.${key}`); render(); });
    return field(`settings.${key}`, key, label, el, help);
  };
  const select = (key, label, options, help) => {
    const el = h('select', {}, options.map(([val, txt]) => h('option', { value: val, selected: v[key] === val }, txt)));
    el.addEventListener('change', () => { v[key] = el.value; onInput(`settings.${key}`); });
    return field(`settings.${key}`, key, label, el, help);
  };

  const stepViews = [
    () => [
      text('name', 'Name', 'A name to tell this integration apart, e.g. Head office AD.', { required: true }),
      text('description', 'Description', 'Optional: what this integration covers.'),
      select('type', 'Type', [['DIRECTORY_TYPE_ACTIVE_DIRECTORY', 'On-premises Active Directory (LDAP)'], ['DIRECTORY_TYPE_LDAP', 'Other LDAP directory (OpenLDAP, …)']],
        'Other LDAP directories use the inetOrgPerson / groupOfNames mapping; change it with the CLI ([ldap_schema]).'),
    ],
    () => {
      const pw = h('input', { type: 'password', autocomplete: 'new-password', value: '', placeholder: editing ? 'Leave empty to keep the stored password' : '' });
      pw.addEventListener('input', () => { v.password = pw.value; onInput('password'); });
      const testBtn = button('Test these settings', () => {
        testPane(testRequest(), v.name || 'unsaved settings');
      });
      return [
        text('host', 'Hostname / IP address', 'The domain controller, e.g. dc1.corp.example.com. It must accept LDAP(S) from dirsync.', { required: true }),
        text('alternate_host', 'Alternate host', 'Optional: used when the primary host cannot be reached.'),
        check('encrypt', 'Encrypt integration (LDAPS or StartTLS)', 'Strongly recommended: without it the bind password crosses the network in clear.'),
        v.encrypt ? select('encryption_mode', 'Encryption mode', [['ENCRYPTION_MODE_STRICT', 'Strict — trust enforced'], ['ENCRYPTION_MODE_RELAXED', 'Relaxed']],
          'Strict: the certificate chains to a trusted CA, names the host and has a key over 1024 bits. Relaxed: self-signed, short keys and incomplete chains are accepted; the connection is still encrypted.')
          : check('allow_insecure_bind', 'Allow binds without encryption', 'Insecure: the bind password, and each user\'s at sign-in, would cross the network in clear. Off, dirsync refuses such binds.'),
        text('port', 'Port', '636 LDAPS · 389 LDAP (StartTLS) · 3269 / 3268 Global Catalog (groups without members).', { inputmode: 'numeric' }),
        text('user_dn', 'User distinguished name', 'The bind account with read rights, e.g. CN=dirsync,OU=Service Accounts,DC=corp,DC=example,DC=com (dsquery user -name …).'),
        field('password', 'password', editing ? 'User password (leave empty to keep)' : 'User password', pw,
          editing ? (existing.password_set ? 'A password is stored. It is never shown; type a new one only to change it.' : 'No password is stored yet.') : 'The bind account\'s password. It is stored encrypted and never shown again.'),
        text('root_dn', 'Root distinguished name', 'The subtree to sync, e.g. DC=corp,DC=example,DC=com or OU=New York,DC=corp,DC=example,DC=com.'),
        warnings,
        h('div', { class: 'inline-actions' }, testBtn),
      ];
    },
    () => [
      check('acknowledge_disabled_accounts', 'Acknowledge disabled accounts', 'Users disabled in the directory are disabled here too. Leave off for an Exchange resource domain, where users are disabled by design.'),
      text('filter_email_domains', 'Filter email domains', 'Optional: only these domains are synced. Comma separated, no spaces, e.g. example.com,example.org.'),
      check('include_contacts', 'Include contacts', 'Sync the directory\'s contact objects.'),
      text('maximum_sync_deletions', 'Maximum sync deletions', 'A run that would take more accounts out of directory management stops for your approval.', { inputmode: 'numeric' }),
      check('delete_users', 'Delete users', 'Delete accounts no longer in the sync result. Off: they are kept as unmanaged accounts ("created by message in transit").'),
      check('enabled', 'Enabled', 'Scheduled syncs and Sync All include this integration.'),
      text('schedule', 'Schedule', 'Optional: times of day (HH:MM, comma separated) in the account\'s time zone. Empty: the account\'s schedule.'),
      text('delta_interval_minutes', 'Delta sync interval', 'Minutes between delta syncs, which read only what changed since the last run. 0: only the scheduled full syncs.', { inputmode: 'numeric' }),
      v.type === 'DIRECTORY_TYPE_LDAP' ? null : select('delta_method', 'Delta method', [['DELTA_METHOD_DIRSYNC', 'DirSync (recommended)'], ['DELTA_METHOD_USN_CHANGED', 'uSNChanged polling']],
        'DirSync sees every change, deletions and single member edits included; the domain controller\'s refusal falls back to uSNChanged polling. uSNChanged polling needs no right beyond reading and sees deletions only where the bind account may read CN=Deleted Objects.'),
      text('partition', 'Partition', 'Optional: the collectors that take this integration\'s jobs. Empty: the Root DN\'s domain.'),
    ],
    () => {
      const st = settings();
      const rows = [
        ['Name', st.name], ['Description', st.description || '—'],
        ['Type', st.type === 'DIRECTORY_TYPE_LDAP' ? 'Other LDAP directory' : 'On-premises Active Directory (LDAP)'],
        ['Hostname / IP address', st.host], ['Alternate host', st.alternate_host || '—'],
        ['Encryption', encryptionText({ ...st, port: st.port })], ['Port', st.port || (st.encrypt ? 636 : 389)],
        ['User distinguished name', st.user_dn], ['User password', v.password ? 'set (not shown)' : editing ? 'unchanged' : 'missing'],
        ['Root distinguished name', st.root_dn], ['Acknowledge disabled accounts', st.acknowledge_disabled_accounts ? 'Yes' : 'No'],
        ['Filter email domains', st.filter_email_domains || 'All domains'], ['Include contacts', st.include_contacts ? 'Yes' : 'No'],
        ['Maximum sync deletions', st.maximum_sync_deletions], ['Delete users', st.delete_users ? 'Yes' : 'No (kept unmanaged)'],
        ['Enabled', st.enabled ? 'Yes' : 'No'], ['Schedule', st.schedule || 'The account\'s schedule'],
        ['Delta syncs', st.delta_interval_minutes ? `Every ${st.delta_interval_minutes} minutes${st.delta_method === 'DELTA_METHOD_USN_CHANGED' ? ', uSNChanged polling' : ''}` : 'Off'],
      ];
      const checks = h('div', { class: 'checks' });
      const status = h('p', { class: 'muted' }, 'Running the automatic test…');
      testRun = runChecks(testRequest(), checks, status);
      return [
        h('div', { class: 'table-wrap' }, h('table', { class: 'summary' }, h('caption', {}, 'Review the integration'),
          h('tbody', {}, rows.map(([k, val]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, String(val))))))),
        warnings,
        h('h2', {}, 'Automatic test'),
        status, checks,
      ];
    },
  ];
  let testRun = null;

  const stepper = h('ol', { class: 'stepper', 'aria-label': 'Steps' });
  const panel = h('div', { class: 'step-panel' });
  const back = button('Back', () => { step -= 1; render(); });
  const next = button('Next', null, 'primary');
  const formError = h('div', { 'aria-live': 'assertive' });
  const form = h('form', { class: 'card wizard', novalidate: true }, stepper, formError, panel, h('div', { class: 'wizard-actions' }, back, next));
  form.addEventListener('submit', (e) => { e.preventDefault(); next.click(); });
  main.append(form);

  function render() {
    clear(stepper, STEPS.map((st, i) => h('li', { class: i === step ? 'current' : i < step ? 'done' : '', 'aria-current': i === step ? 'step' : false }, `${i + 1}. ${st.title}`)));
    clear(panel, h('h2', {}, STEPS[step].title), stepViews[step]());
    back.disabled = step === 0;
    next.textContent = step === STEPS.length - 1 ? (editing ? 'Save changes' : 'Create Integration') : 'Next';
    const first = panel.querySelector('input, select');
    if (first && document.activeElement === document.body) first.focus();
  }

  next.addEventListener('click', () => busy(next, async () => {
    clear(formError);
    if (step < STEPS.length - 1) {
      let result;
      try { result = await validate(); } catch (e) { clear(formError, errorBox(e)); return; }
      const mine = new Set(STEPS.slice(0, step + 1).flatMap((st) => st.fields));
      STEPS[step].fields.forEach((f) => touched.add(f));
      show(result, mine);
      const blocking = Object.keys(result.fields).filter((f) => mine.has(f));
      if (blocking.length) {
        const target = STEPS.findIndex((st) => st.fields.includes(blocking[0]));
        if (target !== step) { step = target; render(); show(result, mine); }
        const el = inputs[blocking[0]];
        if (el) el.focus();
        return;
      }
      step += 1;
      render();
      return;
    }
    // Create or save, once the automatic test has run.
    if (testRun) await testRun;
    try {
      const saved = await save(false);
      v.password = '';
      toast(editing ? `Saved ${saved.settings.name}.` : `Created ${saved.settings.name}.`, 'ok');
      location.hash = '#/integrations';
    } catch (e) {
      clear(formError, errorBox(e));
    }
  }));
  render();
}

// ---------------------------------------------------------------- runs

async function runsPage(id) {
  const preview = button('Preview a sync', null, '', { title: 'Collect and plan like Sync now; log what would change, apply nothing' });
  const main = layout('Runs', [preview, h('a', { class: 'btn', href: '#/integrations' }, 'Back to integrations')]);
  preview.addEventListener('click', () => busy(preview, async () => {
    try {
      const run = await call('SyncService', 'PreviewSync', { integration: id });
      location.hash = `#/runs/${run.id}`;
    } catch (e) { toast(explain(e), 'error'); }
  }));
  try {
    const i = await call('IntegrationService', 'GetIntegration', { integration: id });
    state.integrations.set(i.id, i);
    main.querySelector('h1').textContent = `Runs — ${i.settings.name}`;
    const r = await call('SyncService', 'ListRuns', { integration: id, limit: 50 });
    if (!r.runs.length) { main.append(empty('This integration has not run yet. Use Sync now on the Directory Synchronization page.')); return; }
    main.append(table(['Started', 'Kind', 'State', 'Read', 'Added', 'Updated', 'Removed', 'Unchanged', 'Held', 'Host', 'Notes'],
      r.runs.map((run) => {
        const c = run.counts || {};
        return h('tr', {},
          h('td', {}, h('a', { href: `#/runs/${run.id}` }, when(run.started_at || run.created_at))),
          h('td', {}, runKind(run), n(run.attempt) > 1 ? h('span', { class: 'muted small' }, ` attempt ${run.attempt}`) : null),
          h('td', {}, stateBadge(run.state)),
          [c.collected, c.added, c.updated, c.removed, c.unchanged, c.pending].map((x) => h('td', { class: 'num' }, n(x))),
          h('td', {}, run.host || '—'),
          h('td', { class: 'notes' }, run.error ? h('div', { class: 'reason' }, run.error) : null,
            run.full_reason ? h('div', { class: 'muted small' }, `Read in full: ${run.full_reason}`) : null,
            notes(run).length ? h('div', { class: 'warn small' }, `${notes(run).length} warning${notes(run).length === 1 ? '' : 's'}`) : null,
            run.hold_reason ? h('div', { class: 'reason' }, run.hold_reason) : null));
      }), 'Runs'));
  } catch (e) { main.append(errorBox(e)); }
}

function changeRows(changes) {
  return changes.map((c) => h('tr', {},
    h('td', {}, when(c.at)),
    h('td', {}, OPERATIONS[c.operation] || c.operation),
    h('td', {}, KINDS[c.kind] || ''),
    h('td', { class: 'dn' }, dnText(c.dn)),
    h('td', {}, c.fields.length ? h('ul', { class: 'fields' }, c.fields.map((f) => h('li', {}, h('code', {}, f.field), `: ${f.old || '—'} → ${f.new || '—'}`))) : '—'),
    h('td', {}, c.reason || '—')));
}

// A run's warnings, less the hold reason shown on its own.
function notes(r) { return r.warnings.filter((w) => w !== r.hold_reason); }

async function runPage(id) {
  const main = layout('Run', []);
  let run;
  try {
    run = await call('SyncService', 'GetRun', { run_id: id });
    if (!state.integrations.has(run.integration_id)) await loadIntegrations();
  } catch (e) { main.append(errorBox(e)); return; }
  main.querySelector('h1').textContent = `Run of ${integrationName(run.integration_id)}`;
  main.querySelector('.actions').append(h('a', { class: 'btn', href: `#/integrations/${run.integration_id}/runs` }, 'All runs'));
  const summary = h('div', { class: 'card run-summary' });
  const drawSummary = (r) => clear(summary,
    h('dl', { class: 'facts' },
      h('dt', {}, 'State'), h('dd', {}, stateBadge(r.state), ACTIVE.has(r.state) ? ` ${progressText(r)}` : ''),
      h('dt', {}, 'Kind'), h('dd', {}, `${runKind(r)}${n(r.attempt) > 1 ? `, attempt ${r.attempt}` : ''}`),
      ...(r.full_reason ? [h('dt', {}, 'Read in full'), h('dd', {}, r.full_reason)] : []),
      h('dt', {}, 'Started'), h('dd', {}, when(r.started_at || r.created_at)),
      h('dt', {}, 'Finished'), h('dd', {}, when(r.finished_at)),
      h('dt', {}, 'Host'), h('dd', {}, r.host || '—'),
      h('dt', {}, 'Counts'), h('dd', {}, countsText(r.counts))),
    r.error ? h('div', { class: 'alert alert-error' }, r.error) : null,
    r.hold_reason && r.state === 'RUN_STATE_BLOCKED' ? h('div', { class: 'alert alert-warn' }, r.hold_reason) : null,
    r.hold_reason && r.state !== 'RUN_STATE_BLOCKED' ? h('div', { class: 'alert alert-info' }, `Removals were held: ${r.hold_reason}. The change log says what became of them.`) : null,
    notes(r).length ? h('div', {}, h('h2', {}, 'Warnings'), h('ul', { class: 'warnings-list' }, notes(r).map((w) => h('li', {}, w)))) : null);
  drawSummary(run);
  main.append(summary);
  if (ACTIVE.has(run.state)) watchRun(run.id, (r) => { drawSummary(r); if (!ACTIVE.has(r.state)) route(); });

  if (run.state === 'RUN_STATE_BLOCKED') {
    const box = h('section', { class: 'card' }, h('h2', {}, 'Removals waiting for approval'));
    main.append(box);
    try {
      const p = await call('SyncService', 'ListPendingRemovals', { run_id: run.id });
      const count = p.removals.length;
      const approve = button(`Approve ${count} removal${count === 1 ? '' : 's'}`, null, 'primary danger');
      approve.addEventListener('click', () => busy(approve, async () => {
        const ok = await confirmDialog('Approve removals',
          `Apply exactly these ${count} removals? Accounts are deleted or kept unmanaged as listed; if the run now holds a different set, nothing is applied.`,
          `Approve ${count}`);
        if (!ok) return;
        try {
          await call('SyncService', 'ApproveRemovals', { run_id: run.id, expected_count: count });
          toast(`Approved ${count} removals.`, 'ok');
          route();
        } catch (e) { box.append(errorBox(e)); }
      }));
      append(box,
        h('p', {}, `The deletion guard held this run's removals: it would take more accounts out of directory management than the integration's maximum sync deletions. Adds and updates were applied.`),
        table(['Action', 'Name', 'Address', 'DN'], p.removals.map((rm) => h('tr', {},
          h('td', {}, rm.action === 'REMOVAL_ACTION_DELETE' ? 'Delete' : 'Keep as unmanaged'),
          h('td', {}, rm.object ? rm.object.display_name : '—'),
          h('td', {}, rm.object ? rm.object.primary_address || '—' : '—'),
          h('td', { class: 'dn' }, rm.object ? dnText(rm.object.dn) : '—'))), 'Pending removals'),
        h('div', { class: 'inline-actions' }, approve));
    } catch (e) { box.append(errorBox(e)); }
  }

  const preview = run.trigger === 'RUN_TRIGGER_PREVIEW';
  const log = h('section', {}, h('h2', {}, preview ? 'What a sync would change (nothing was applied)' : 'Change log'));
  main.append(log);
  if (ACTIVE.has(run.state)) return;
  try {
    const ch = await call('SyncService', 'ListChanges', { run_id: run.id, limit: 500 });
    const none = preview ? 'A sync now would change nothing.' : 'This run changed nothing.';
    log.append(ch.changes.length ? table(['When', 'Change', 'Kind', 'DN', 'Fields', 'Why'], changeRows(ch.changes), 'Change log') : empty(none));
  } catch (e) { log.append(errorBox(e)); }
}

// ---------------------------------------------------------------- directory

const LISTS = {
  users: { title: 'Users', method: 'ListUsers', noun: 'users' },
  groups: { title: 'Groups', method: 'ListGroups', noun: 'groups' },
  contacts: { title: 'Contacts', method: 'ListContacts', noun: 'contacts' },
};
const PAGE = 50;

function objectStatus(o) {
  return [o.disabled ? h('span', { class: 'badge state-failed' }, 'Disabled') : h('span', { class: 'badge state-succeeded' }, 'Enabled'),
    o.managed ? null : h('span', { class: 'badge state-paused', title: 'No longer in the directory: kept as an unmanaged account' }, 'Unmanaged')];
}

async function directoryPage(kind, params) {
  const spec = LISTS[kind];
  const main = layout(spec.title, []);
  const q = params.get('q') || '';
  const search = h('input', { id: 'dir-search', type: 'search', value: q, placeholder: 'Name or address; part of a DN with =, e.g. ou=london', autocomplete: 'off' });
  const form = h('form', { class: 'search', role: 'search' }, h('label', { for: 'dir-search' }, `Search ${spec.noun}`), search, h('button', { type: 'submit', class: 'btn' }, 'Search'));
  const body = h('div', {});
  main.append(form, body);
  const tokens = [''];
  let page = 0;
  const load = async () => {
    clear(body, h('p', { class: 'loading' }, 'Loading…'));
    try {
      if (!state.integrations.size) await loadIntegrations();
      const r = await call('DirectoryService', spec.method, { query: search.value.trim(), page_size: PAGE, page_token: tokens[page] });
      if (!r.objects.length) {
        clear(body, empty(search.value.trim() ? `No ${spec.noun} match “${search.value.trim()}”.` : `No ${spec.noun} synced yet. They appear after an integration's first sync.`));
        return;
      }
      if (r.next_page_token) tokens[page + 1] = r.next_page_token;
      const headers = kind === 'groups' ? ['Name', 'Address', 'Members', 'Type', 'Integration'] : ['Name', 'Primary address', 'Aliases', 'Status', 'Integration'];
      const rows = r.objects.map((o) => h('tr', {},
        h('td', {}, h('a', { href: `#/directory/${kind}/${encodeURIComponent(o.id)}` }, o.display_name || '(no name)'), h('div', { class: 'muted small dn' }, dnText(o.dn))),
        h('td', {}, o.primary_address || '—'),
        kind === 'groups' ? h('td', { class: 'num' }, o.member_ids.length) : h('td', {}, o.aliases.join(', ') || '—'),
        kind === 'groups' ? h('td', {}, o.security_group ? 'Security' : 'Distribution') : h('td', {}, objectStatus(o)),
        h('td', {}, integrationName(o.integration_id))));
      const prev = button('Previous page', () => { page -= 1; load(); });
      prev.disabled = page === 0;
      const nextBtn = button('Next page', () => { page += 1; load(); });
      nextBtn.disabled = !r.next_page_token;
      clear(body, table(headers, rows, spec.title),
        h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, h('span', { class: 'muted' }, `Page ${page + 1}`), nextBtn));
    } catch (e) { clear(body, errorBox(e)); }
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    tokens.length = 1; page = 0;
    history.replaceState(null, '', `#/directory/${kind}${search.value.trim() ? `?q=${encodeURIComponent(search.value.trim())}` : ''}`);
    load();
  });
  load();
}

async function objectPage(kind, id) {
  const spec = LISTS[kind];
  const main = layout(spec.title.slice(0, -1), [h('a', { class: 'btn', href: `#/directory/${kind}` }, `All ${spec.noun}`)]);
  try {
    if (!state.integrations.size) await loadIntegrations();
    const r = await call('DirectoryService', spec.method, { ids: [id] });
    const o = r.objects[0];
    if (!o) { main.append(errorBox(new ApiError({ code: 'NOT_FOUND', message: `no ${spec.noun.slice(0, -1)} with id ${id} in this account` }, 404))); return; }
    main.querySelector('h1').textContent = o.display_name || '(no name)';
    const facts = [
      ['Kind', KINDS[o.kind]], ['DN', o.dn], ['Primary address', o.primary_address], ['Aliases', o.aliases.join(', ')],
      ['Status', o.kind === 'OBJECT_KIND_USER' ? objectStatus(o) : objectStatus(o)[1]], ['Integration', integrationName(o.integration_id)], ['Given name', o.given_name], ['Surname', o.surname],
      ['Department', o.department], ['Title', o.title], ['Company', o.company], ['Telephone', o.telephone_number],
      ['sAMAccountName', o.sam_account_name], ['User principal name', o.user_principal_name], ['Object SID', o.object_sid],
      ['Manager', o.manager_id ? h('a', { href: `#/directory/users/${encodeURIComponent(o.manager_id)}` }, o.manager_dn) : o.manager_dn],
      ['Object id (objectGUID)', o.id],
    ].filter(([, val]) => val && (!Array.isArray(val) || val.some(Boolean)));
    main.append(h('div', { class: 'card' }, h('dl', { class: 'facts' }, facts.map(([k, val]) => [h('dt', {}, k), h('dd', {}, val)]))));
    if (o.kind === 'OBJECT_KIND_GROUP') {
      const sec = h('section', {}, h('h2', {}, `Members (${o.member_ids.length})`));
      main.append(sec);
      if (!o.member_ids.length) sec.append(empty('This group has no members that are synced.'));
      else {
        const ids = o.member_ids.slice(0, 1000);
        const [u, g, c] = await Promise.all(['ListUsers', 'ListGroups', 'ListContacts'].map((m) => call('DirectoryService', m, { ids })));
        const members = [...g.objects.map((x) => ['groups', x]), ...u.objects.map((x) => ['users', x]), ...c.objects.map((x) => ['contacts', x])];
        sec.append(table(['Name', 'Kind', 'Address'], members.map(([k, m]) => h('tr', {},
          h('td', {}, h('a', { href: `#/directory/${k}/${encodeURIComponent(m.id)}` }, m.display_name || m.dn)),
          h('td', {}, k === 'groups' ? 'Nested group' : KINDS[m.kind]),
          h('td', {}, m.primary_address || '—'))), 'Members'));
      }
    }
    const hist = h('section', {}, h('h2', {}, 'History'));
    main.append(hist);
    const ch = await call('SyncService', 'ListChanges', { object_id: o.id, limit: 100 });
    hist.append(ch.changes.length ? table(['When', 'Change', 'Kind', 'DN', 'Fields', 'Why'], changeRows(ch.changes), 'History') : empty('No changes recorded.'));
  } catch (e) { main.append(errorBox(e)); }
}

async function lookupPage(params) {
  const main = layout('Address lookup', []);
  const input = h('input', { id: 'lookup', type: 'email', value: params.get('address') || '', placeholder: 'someone@example.com', autocomplete: 'off' });
  const form = h('form', { class: 'search', role: 'search' }, h('label', { for: 'lookup' }, 'Email address'), input, h('button', { type: 'submit', class: 'btn primary' }, 'Look up'));
  const out = h('div', { 'aria-live': 'polite' });
  main.append(h('p', { class: 'help' }, 'Which object owns an address, whether it is managed by an integration, and why — from the change log.'), form, out);
  const look = async () => {
    const address = input.value.trim();
    if (!address) return;
    clear(out, h('p', { class: 'loading' }, 'Looking up…'));
    try {
      if (!state.integrations.size) await loadIntegrations();
      let owner = null;
      try { owner = await call('DirectoryService', 'LookupAddress', { address }); } catch (e) { if (e.code !== 'NOT_FOUND') throw e; }
      if (!owner) { clear(out, empty(`No object of this account has the address ${address}.`)); return; }
      const kind = { OBJECT_KIND_USER: 'users', OBJECT_KIND_GROUP: 'groups', OBJECT_KIND_CONTACT: 'contacts' }[owner.kind];
      const why = owner.managed
        ? `Owned by ${KINDS[owner.kind].toLowerCase()} ${owner.display_name}, managed by the integration ${integrationName(owner.integration_id)}.`
        : `Owned by ${owner.display_name}, which is no longer in its directory: it is kept as an unmanaged account and the address as “created by message in transit”. The history below says when and why.`;
      const ch = await call('SyncService', 'ListChanges', { address, limit: 100 });
      clear(out,
        h('div', { class: `alert ${owner.managed ? 'alert-ok' : 'alert-warn'}` }, why),
        h('p', {}, h('a', { href: `#/directory/${kind}/${encodeURIComponent(owner.id)}` }, `Open ${owner.display_name}`)),
        h('h2', {}, 'History'),
        ch.changes.length ? table(['When', 'Change', 'Kind', 'DN', 'Fields', 'Why'], changeRows(ch.changes), 'History') : empty('No changes recorded.'));
    } catch (e) { clear(out, errorBox(e)); }
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); history.replaceState(null, '', `#/lookup?address=${encodeURIComponent(input.value.trim())}`); look(); });
  look();
}

// ---------------------------------------------------------------- account

async function accountPage() {
  const main = layout('Account settings', []);
  let acct;
  try { acct = await call('AccountService', 'GetAccount', {}); } catch (e) { main.append(errorBox(e)); return; }
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  const tz = h('input', { id: 'tz', type: 'text', value: acct.time_zone, list: 'tz-list', autocomplete: 'off', 'aria-describedby': 'tz-help tz-err' });
  const sched = h('input', { id: 'schedule', type: 'text', value: acct.schedule, 'aria-describedby': 'schedule-help schedule-err' });
  const signIn = h('input', { id: 'ldap-sign-in', type: 'checkbox', checked: acct.ldap_sign_in, 'aria-describedby': 'ldap-help' });
  const errs = { time_zone: h('p', { class: 'field-error', id: 'tz-err' }), schedule: h('p', { class: 'field-error', id: 'schedule-err' }) };
  const result = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card narrow' },
    h('div', { class: 'field' }, h('label', { for: 'tz' }, 'Time zone'), tz, h('datalist', { id: 'tz-list' }, zones.map((z) => h('option', { value: z }))),
      h('p', { class: 'help', id: 'tz-help' }, 'IANA name, e.g. Europe/London. Scheduled syncs follow its daylight saving time.'), errs.time_zone),
    h('div', { class: 'field' }, h('label', { for: 'schedule' }, 'Sync schedule'), sched,
      h('p', { class: 'help', id: 'schedule-help' }, 'Times of day, HH:MM, comma separated (default 08:00,13:00,23:00). An integration may have its own.'), errs.schedule),
    h('div', { class: 'field check-field' }, h('div', { class: 'inline' }, signIn, h('label', { for: 'ldap-sign-in' }, 'LDAP sign-in (authentication profile)')),
      h('p', { class: 'help', id: 'ldap-help' }, 'End users sign in with their primary address and their directory password, checked against their domain controller.')),
    result,
    h('button', { type: 'submit', class: 'btn primary' }, 'Save'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(form.querySelector('button[type=submit]'), async () => {
      Object.values(errs).forEach((x) => { x.textContent = ''; });
      [tz, sched].forEach((x) => x.removeAttribute('aria-invalid'));
      clear(result);
      try {
        acct = await call('AccountService', 'UpdateAccount', { time_zone: tz.value.trim(), schedule: sched.value.trim(), ldap_sign_in: signIn.checked });
        clear(result, h('p', { class: 'alert alert-ok' }, 'Saved.'));
      } catch (ex) {
        let shown = false;
        for (const f of ex.fields || []) {
          const key = f.field.replace(/^.*\./, '');
          if (errs[key]) { errs[key].textContent = f.description; (key === 'schedule' ? sched : tz).setAttribute('aria-invalid', 'true'); shown = true; }
        }
        if (!shown) clear(result, errorBox(ex));
      }
    });
  });
  main.append(form);
}

// ---------------------------------------------------------------- routing

function route() {
  stopWatches();
  document.querySelectorAll('.pane-wrap, dialog').forEach((x) => x.remove());
  if (!state.session) return;
  const [path, query] = (location.hash.slice(1) || '/integrations').split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const [a, b, c] = parts;
  if (a === 'integrations' && b === 'new') return wizardPage(null);
  if (a === 'integrations' && b && c === 'edit') return wizardPage(b);
  if (a === 'integrations' && b && c === 'runs') return runsPage(b);
  if (a === 'runs' && b) return runPage(b);
  if (a === 'directory' && LISTS[b] && c) return objectPage(b, c);
  if (a === 'directory' && LISTS[b]) return directoryPage(b, params);
  if (a === 'lookup') return lookupPage(params);
  if (a === 'account') return accountPage();
  return integrationsPage();
}

async function start() {
  const r = await fetch('/api/session', { credentials: 'same-origin' });
  if (r.ok) {
    state.session = await r.json();
    if (location.pathname !== '/') { history.replaceState(null, '', '/#/integrations'); }
    window.addEventListener('hashchange', route);
    route();
  } else {
    if (location.pathname !== '/sign-in') { location.assign('/sign-in'); return; }
    window.addEventListener('hashchange', () => { if (state.session) route(); });
    signInPage();
  }
}

start().catch((e) => clear(app, errorBox(e)));

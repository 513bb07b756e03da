// The admin guide's flow in the console, in Debian's headless Chromium:
// sign in, create an integration through the wizard (a field error shown
// and fixed), Test Connection on unsaved settings (Strict fails on the
// certificate with a hint, Relaxed passes), Sync now watched to the end,
// users and a group's members browsed, a blocked run's removals approved,
// sign out and the session refused afterwards.
//
// Run by tests/integration/console.rs, which starts dirsync and the fixtures
// and passes them in the environment. Exits non-zero on the first failure.

import { chromium } from 'playwright-core';
import { strict as assert } from 'node:assert';
import { env, shot, launch, step } from './common.mjs';

const url = env('CONSOLE_URL');
const token = env('CONSOLE_TOKEN');
const ad = {
  host: env('AD_HOST'), bindDn: env('AD_BIND_DN'), password: env('AD_PASSWORD'), rootDn: env('AD_ROOT_DN'),
};
const blockedRun = env('BLOCKED_RUN_ID');
const blockedCount = Number(env('BLOCKED_COUNT'));

const browser = await launch(chromium);
const context = await browser.newContext({ viewport: { width: 1360, height: 860 } });
const page = await context.newPage();
page.setDefaultTimeout(30_000);
const consoleErrors = [];
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(e.message));

try {
  await step('no session: redirected to sign-in', async () => {
    await page.goto(url);
    assert.equal(new URL(page.url()).pathname, '/sign-in');
    await page.getByRole('heading', { name: 'Sign in to the admin console' }).waitFor();
  });

  await step('a wrong token is refused in words', async () => {
    await page.getByLabel('API token').fill('dst_0123456789abcdef_' + '0'.repeat(64));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('This API token is unknown or revoked').waitFor();
  });

  await step('sign in', async () => {
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Directory Synchronization' }).waitFor();
    const stored = await page.evaluate(() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie);
    assert.ok(!stored.includes(token), 'the token is kept in the browser');
    assert.ok(!stored.includes('dss_'), 'the session is readable by scripts');
  });

  await step('wizard: a field error shown and fixed', async () => {
    await page.getByRole('link', { name: 'Create New Integration' }).first().click();
    await page.getByRole('heading', { name: 'Create New Integration' }).waitFor();
    await page.getByRole('button', { name: 'Next' }).click();
    const nameError = page.getByText('Name is required');
    await nameError.waitFor();
    assert.equal(await page.getByLabel('Name', { exact: true }).getAttribute('aria-invalid'), 'true');
    await page.getByLabel('Name', { exact: true }).fill('HQ AD');
    await page.getByLabel('Description').fill('Head office domain');
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('heading', { name: 'Settings', exact: true }).waitFor();
    assert.equal(await nameError.count(), 0);
    await page.getByLabel('Hostname / IP address').fill(ad.host);
    await page.getByLabel('User distinguished name').fill(ad.bindDn);
    await page.getByLabel('User password').fill(ad.password);
    await page.getByLabel('Root distinguished name').fill(ad.rootDn);
    await page.getByLabel('Port').fill('3269');
    await page.getByText('Global Catalog port').first().waitFor();
    await page.getByLabel('Port').fill('636');
    await page.getByLabel('Root distinguished name').fill('not a dn');
    await page.getByRole('button', { name: 'Next' }).click();
    await page.locator('.field-error', { hasText: 'Root distinguished name' }).waitFor();
    await page.getByLabel('Root distinguished name').fill(ad.rootDn);
    await page.getByLabel('Encryption mode').selectOption('ENCRYPTION_MODE_STRICT');
  });

  await step('Test Connection on unsaved settings: Strict fails on the certificate, with a hint', async () => {
    await page.getByRole('button', { name: 'Test these settings' }).click();
    const pane = page.getByRole('dialog', { name: /Test Connection/ });
    await pane.getByText('Some checks failed').waitFor();
    const cert = pane.locator('.check[data-check="TEST_CHECK_CERTIFICATE"]').first();
    assert.ok((await cert.getAttribute('class')).includes('failed'), 'the certificate check did not fail');
    const hint = await cert.locator('.hint').innerText();
    assert.match(hint, /Relaxed|certificate/i);
    await shot(page, 'test-connection-strict');
    await pane.getByRole('button', { name: 'Close Test Connection' }).click();
  });

  await step('Test Connection on unsaved settings: Relaxed passes every check', async () => {
    await page.getByLabel('Encryption mode').selectOption('ENCRYPTION_MODE_RELAXED');
    await page.getByRole('button', { name: 'Test these settings' }).click();
    const pane = page.getByRole('dialog', { name: /Test Connection/ });
    await pane.getByText('All checks passed.').waitFor();
    assert.equal(await pane.locator('.check.passed').count(), 5);
    await shot(page, 'test-connection');
    await page.keyboard.press('Escape');
  });

  await step('Test Connection: the primary host unreachable, the alternate host tested', async () => {
    await page.getByLabel('Hostname / IP address').fill('127.0.0.9');
    await page.getByLabel('Alternate host').fill(ad.host);
    await page.getByRole('button', { name: 'Test these settings' }).click();
    const pane = page.getByRole('dialog', { name: /Test Connection/ });
    const alternate = pane.locator('section.host', { hasText: `Alternate host: ${ad.host}` });
    await pane.getByText('all checks passed on the alternate host').waitFor();
    assert.equal(await alternate.locator('.check.passed').count(), 5);
    const primary = pane.locator('section.host', { hasText: 'Primary host: 127.0.0.9' });
    const connectivity = primary.locator('.check[data-check="TEST_CHECK_CONNECTIVITY"]');
    assert.ok((await connectivity.getAttribute('class')).includes('failed'), 'the primary host did not fail');
    assert.ok((await connectivity.locator('.hint').innerText()).length > 0, 'no hint for the unreachable host');
    await shot(page, 'test-connection-alternate');
    await page.keyboard.press('Escape');
    await page.getByLabel('Hostname / IP address').fill(ad.host);
    await page.getByLabel('Alternate host').fill('');
  });

  await step('wizard: options, summary with the automatic test, create', async () => {
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('heading', { name: 'Options' }).waitFor();
    await page.getByLabel('Include contacts').check();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('heading', { name: 'Summary' }).waitFor();
    await page.getByText('All checks passed.').waitFor();
    const summary = await page.locator('table.summary').innerText();
    assert.ok(summary.includes(ad.rootDn) && summary.includes('set (not shown)'));
    assert.ok(!(await page.content()).includes(ad.password), 'the password is on the page');
    await page.getByRole('button', { name: 'Create Integration' }).click();
    await page.getByRole('heading', { name: 'Directory Synchronization' }).waitFor();
    await page.getByRole('row', { name: /HQ AD/ }).waitFor();
  });

  await step('edit: the password is never shown, left empty it is kept', async () => {
    await page.getByRole('link', { name: 'Edit: HQ AD' }).click();
    await page.getByRole('heading', { name: 'Edit integration' }).waitFor();
    await page.getByLabel('Description').fill('Head office domain (London)');
    await page.getByRole('button', { name: 'Next' }).click();
    const pw = page.getByLabel('User password (leave empty to keep)');
    await pw.waitFor();
    assert.equal(await pw.inputValue(), '', 'the password field is pre-filled');
    assert.ok(!(await page.content()).includes(ad.password), 'the password is on the page');
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('heading', { name: 'Options' }).waitFor();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByText('All checks passed.').waitFor();
    assert.match(await page.locator('table.summary').innerText(), /User password\s+unchanged/);
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('row', { name: /Head office domain \(London\)/ }).waitFor();
  });

  await step('Sync now, watched live to the end', async () => {
    const row = page.getByRole('row', { name: /HQ AD/ });
    await row.getByRole('button', { name: 'Sync now: HQ AD' }).click();
    await row.locator('.run-cell .state-succeeded').waitFor({ timeout: 60_000 });
    assert.match(await row.locator('.run-cell').innerText(), /\d+ read/);
    await row.locator('.last-success time').waitFor();
    await shot(page, 'integrations');
  });

  await step('preview a sync: nothing would change, nothing is applied', async () => {
    await page.getByRole('link', { name: 'Runs: HQ AD' }).click();
    await page.getByRole('heading', { name: 'Runs — HQ AD' }).waitFor();
    await page.getByRole('button', { name: 'Preview a sync' }).click();
    await page.getByText('A sync now would change nothing.').waitFor({ timeout: 60_000 });
    await page.getByRole('heading', { name: /nothing was applied/ }).waitFor();
  });

  await step('browse users, search, and a group with a nested group', async () => {
    await page.getByRole('link', { name: 'Users' }).click();
    await page.getByRole('link', { name: 'Alice Anders' }).first().waitFor();
    await page.getByLabel('Search users').fill('erin');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('link', { name: 'Smith, Erin' }).first().waitFor();
    assert.equal(await page.locator('tbody tr').count(), 2, 'erin of each fixture');
    await page.getByRole('link', { name: 'Groups' }).click();
    await page.getByRole('row').filter({ hasText: 'All Staff' }).filter({ hasText: 'HQ AD' })
      .getByRole('link', { name: 'All Staff' }).click();
    await page.getByRole('heading', { name: /Members \(\d+\)/ }).waitFor();
    const nested = page.getByRole('row', { name: /Nested group/ }).getByRole('link', { name: 'Engineering' });
    await nested.click();
    await page.getByRole('heading', { name: 'Engineering', exact: true }).waitFor();
    await page.getByRole('link', { name: 'Alice Anders' }).first().waitFor();
    await shot(page, 'group');
  });

  await step('a blocked run: its removals listed and approved', async () => {
    await page.goto(`${url}#/runs/${blockedRun}`);
    await page.getByRole('heading', { name: 'Removals waiting for approval' }).waitFor();
    const approve = page.getByRole('button', { name: `Approve ${blockedCount} removal` });
    await approve.waitFor();
    assert.equal(await page.locator('section.card tbody tr').count(), blockedCount);
    await shot(page, 'run-blocked');
    await approve.click();
    const dialog = page.getByRole('dialog', { name: 'Approve removals' });
    await dialog.getByRole('button', { name: `Approve ${blockedCount}` }).click();
    await page.locator('.run-summary .state-succeeded').waitFor();
    await shot(page, 'run-approved');
  });

  await step('account settings: a bad time zone named, then saved', async () => {
    await page.getByRole('link', { name: 'Account settings' }).click();
    await page.getByLabel('Time zone').fill('Mars/Olympus');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('#tz-err', { hasText: 'Mars/Olympus' }).waitFor();
    assert.equal(await page.getByLabel('Time zone').getAttribute('aria-invalid'), 'true');
    await page.getByLabel('Time zone').fill('Europe/London');
    await page.getByLabel('Sync schedule').fill('07:30,19:00');
    await page.getByLabel('LDAP sign-in (authentication profile)').check();
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved.').waitFor();
    await page.reload();
    await page.getByLabel('Sync schedule').waitFor();
    assert.equal(await page.getByLabel('Sync schedule').inputValue(), '07:30,19:00');
    assert.ok(await page.getByLabel('LDAP sign-in (authentication profile)').isChecked());
  });

  await step('narrow screen: the list stays usable', async () => {
    await page.setViewportSize({ width: 420, height: 860 });
    await page.getByRole('link', { name: 'Directory Synchronization' }).click();
    await page.getByRole('row', { name: /HQ AD/ }).waitFor();
    await shot(page, 'integrations-narrow');
    await page.setViewportSize({ width: 1360, height: 860 });
  });

  await step('sign out: the session no longer works', async () => {
    const before = (await context.cookies()).find((c) => c.name === 'dirsync_session');
    assert.ok(before && before.httpOnly && before.sameSite === 'Strict', 'the session cookie is not HttpOnly and SameSite=Strict');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to the admin console' }).waitFor();
    const r = await fetch(`${url}api/session`, { headers: { cookie: `dirsync_session=${before.value}` } });
    assert.equal(r.status, 401, 'the signed-out session still answers');
    await page.goto(url);
    assert.equal(new URL(page.url()).pathname, '/sign-in');
  });

  // Answers of 400 (validation) and 401 (signed out) are the API's; script errors are not.
  assert.deepEqual(consoleErrors.filter((e) => !/^Failed to load resource: the server responded with a status of (400|401)/.test(e)), [], 'the page logged errors');
  console.log('console flow: every step passed');
} catch (e) {
  await shot(page, 'failure').catch(() => {});
  throw e;
} finally {
  await browser.close();
}

// What the console's test scripts share.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the console tests through tests/run.sh (cargo nextest)`);
  return v;
}

// Debian's Chromium, headless; never a downloaded browser.
export async function launch(chromium) {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  return chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

export async function shot(page, name) {
  const dir = process.env.SCREENSHOT_DIR;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: false });
}

export async function step(name, body) {
  const started = Date.now();
  try {
    await body();
  } catch (e) {
    console.error(`FAILED: ${name}\n${e.stack || e}`);
    throw e;
  }
  console.log(`ok: ${name} (${Date.now() - started} ms)`);
}

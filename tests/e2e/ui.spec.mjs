// The browser scenario of tests/integration/ui_e2e.sh; prints TAP lines.
import { chromium } from 'playwright-core';
import { join } from 'node:path';

const base = process.env.KILN_URL, token = process.env.KILN_TOKEN, shots = process.env.SHOTS;
let n = 0, fails = 0;
const ok = (c, what) => { n++; if (!c) fails++; console.log(`${c ? 'ok' : 'not ok'} ${n} - ${what}`); };
const step = async (what, fn) => {
  try { await fn(); ok(true, what); } catch (e) { ok(false, what); console.log('# ' + String(e.message).split('\n')[0]); }
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
  // launch() starts chromium with a fresh, empty --user-data-dir of its own.
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  page.setDefaultTimeout(15000);
  await step('the DAG list shows both DAGs', async () => {
    await page.goto(base + '/');
    await page.locator('#dags a', { hasText: 'flaky' }).waitFor();
    await page.locator('#dags a', { hasText: 'etl' }).waitFor();
    await page.locator('#live.on').waitFor();
    await page.screenshot({ path: join(shots, '1-dags.png'), fullPage: true });
  });
  await step('the grid shows the failed task', async () => {
    await page.locator('#dags a', { hasText: 'flaky' }).click();
    await page.locator('#grid a.cell[data-state="failed"]').waitFor();
    await page.screenshot({ path: join(shots, '2-grid.png'), fullPage: true });
  });
  await step('clicking the failed task shows its log', async () => {
    await page.locator('#grid a.cell[data-state="failed"]').click();
    await page.locator('#task-state .s-failed').waitFor();
    await page.locator('#log', { hasText: 'parse error: bad row 42' }).waitFor();
    await page.screenshot({ path: join(shots, '3-task-log.png'), fullPage: true });
  });
  await step('the graph is drawn', async () => {
    await page.goto(base + '/#/dag/flaky/graph');
    await page.locator('svg rect[data-task="parse"]').waitFor();
    await page.screenshot({ path: join(shots, '4-graph.png'), fullPage: true });
  });
  let runUrl = '';
  await step('a run is triggered with a param from the form', async () => {
    await page.fill('#token', token);
    await page.click('#tokenform button');
    await page.goto(base + '/#/dag/etl/trigger');
    await page.locator('#p-who').waitFor();
    await page.fill('#p-who', 'browser');
    await page.screenshot({ path: join(shots, '5-trigger.png'), fullPage: true });
    await page.click('#trigger button[type=submit]');
    await page.waitForURL(/#\/run\/etl\//);
    runUrl = page.url();
  });
  await step('the run turns green without a reload', async () => {
    await page.evaluate(() => { window.__noReload = true; });
    await page.locator('#run-state .s-success').waitFor({ timeout: 30000 });
    if (!(await page.evaluate(() => window.__noReload === true))) throw new Error('the page was reloaded');
    if (page.url() !== runUrl) throw new Error('the page moved');
    await page.screenshot({ path: join(shots, '6-run-green.png'), fullPage: true });
  });
  await step('the task page shows the param in the log and the outputs', async () => {
    await page.locator('#gantt a', { hasText: 'transform' }).click();
    await page.locator('#log', { hasText: 'hello browser' }).waitFor();
    await page.locator('#outputs', { hasText: '"rows": 3' }).waitFor();
  });
  page.on('dialog', (d) => d.accept());
  await step('an action the run refuses shows its error inline', async () => {
    await page.goto(runUrl);
    await page.locator('#run-state .s-success').waitFor();
    await page.click('#cancel-run');
    await page.locator('#run-actions-msg.err', { hasText: 'already success' }).waitFor();
  });
  await step('clearing the failed task (and downstream) re-runs it', async () => {
    await page.goto(base + '/#/task/flaky/first/parse');
    await page.locator('#task-state .s-failed').waitFor();
    await page.check('#clear-downstream');
    await page.click('#clear-task');
    // The page follows the new try when it starts: a tab per try, the new log.
    await page.locator('.tabs a[aria-current="page"]', { hasText: 'try 2' }).waitFor({ timeout: 30000 });
    await page.locator('#task-state .s-failed').waitFor({ timeout: 30000 });
    await page.locator('#log', { hasText: 'parse error: bad row 42' }).waitFor();
    await page.screenshot({ path: join(shots, '7-cleared.png'), fullPage: true });
  });
  await step('marking the task success turns it green', async () => {
    await page.click('#mark-success');
    await page.locator('#task-state .s-success').waitFor();
    await page.locator('#task-actions-msg', { hasText: 'done' }).waitFor();
  });
  await step('a running run is cancelled from its page', async () => {
    const r = await page.request.post(base + '/api/v1/dags/slow/runs', {
      headers: { Authorization: 'Bearer ' + token }, data: { run_id: 'tocancel' } });
    if (r.status() !== 201) throw new Error('trigger: ' + r.status());
    await page.goto(base + '/#/run/slow/tocancel');
    await page.locator('#run-state .s-running').waitFor();
    await page.click('#cancel-run');
    await page.locator('#run-state .s-failed').waitFor();
    await page.screenshot({ path: join(shots, '8-cancelled.png'), fullPage: true });
  });
  await step('a narrow screen in dark mode still shows the grid', async () => {
    const p2 = await browser.newPage({ viewport: { width: 380, height: 760 }, colorScheme: 'dark' });
    await p2.goto(base + '/#/dag/etl/grid');
    await p2.locator('#grid a.cell[data-state="success"]').first().waitFor();
    await p2.screenshot({ path: join(shots, '9-narrow-dark.png'), fullPage: true });
    await p2.close();
  });
} finally {
  await browser.close();
}
console.log(`1..${n}`);
process.exit(fails ? 1 : 0);

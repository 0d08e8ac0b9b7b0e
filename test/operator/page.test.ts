import { expect } from 'chai';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startHub, fakeWorker, me, type TestHub } from '../helpers/hub.js';
import { launch, LAPTOP, PHONE } from './browser.js';

const EVERY_KIND = [
  { argument_name: 'picture', argument_description: 'A picture', type: 'image', mime: ['image/png', 'image/jpeg'] },
  { argument_name: 'angle', argument_description: 'Degrees', type: 'int', min: 0, max: 359, default: 90 },
  { argument_name: 'scale', type: 'float', min: 0.1, max: 4, required: false },
  { argument_name: 'mode', type: 'str', choices: ['fast', 'good'], default: 'good' },
  { argument_name: 'flip', type: 'bool', default: true },
  { argument_name: 'options', type: 'json', required: false },
  { argument_name: 'caption', type: 'str', default: 'hello' },
];

describe('Operator', () => {
  describe('the page (with a fake worker)', function () {
    this.timeout(60_000);
    let browser: Browser;
    let hub: TestHub;
    let context: BrowserContext;
    let page: Page;
    let pageErrors: string[];

    before(async () => {
      browser = await launch();
    });
    after(() => browser?.close());

    async function open(h: TestHub, viewport = LAPTOP): Promise<void> {
      context = await browser.newContext({ viewport });
      page = await context.newPage();
      pageErrors = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(`${h.url}/`);
    }
    afterEach(async () => {
      await context?.close();
      await hub?.close();
      expect(pageErrors, 'errors in the page').to.deep.equal([]);
    });

    async function pick(name: string): Promise<void> {
      await page.locator(`#services [data-service="${name}"] .badge.live`).waitFor();
      const value = await page.locator('#pg-service option', { hasText: name }).getAttribute('value');
      await page.selectOption('#pg-service', value!);
      await page.locator('#pg-run:not([disabled])').waitFor();
    }

    it('builds the form from the arguments: bounds, choices, checkbox, file picker, defaults', async () => {
      hub = await startHub();
      const w = await fakeWorker(hub, me('page_form', EVERY_KIND));
      await open(hub);
      await pick('page_form');
      expect(await page.locator('#pg-progress').isVisible(), 'no progress bar before a run').to.equal(false);
      const angle = page.locator('input[name=angle]');
      expect(await angle.getAttribute('type')).to.equal('number');
      expect(await angle.getAttribute('min')).to.equal('0');
      expect(await angle.getAttribute('max')).to.equal('359');
      expect(await angle.inputValue()).to.equal('90');
      expect(await page.locator('input[name=scale]').getAttribute('step')).to.equal('any');
      expect(await page.locator('select[name=mode] option').allTextContents()).to.deep.equal(['fast', 'good']);
      expect(await page.locator('select[name=mode] option:checked').textContent()).to.equal('good');
      expect(await page.locator('input[name=flip]').isChecked()).to.equal(true);
      expect(await page.locator('input[name=picture]').getAttribute('accept')).to.equal('image/png,image/jpeg');
      expect(await page.locator('input[name=caption]').inputValue()).to.equal('hello');

      // A required picture is asked for before anything is sent; bounds are checked too.
      await angle.fill('400');
      await page.click('#pg-run');
      expect(await page.locator('.field.type-image .error').textContent()).to.equal('required');
      expect(await page.locator('.field.type-int .error').textContent()).to.equal('at most 359');
      await w.close();
    });

    it('asks for the client key once, keeps it, and runs a task with it over the WebSocket', async () => {
      hub = await startHub({ apiKeys: ['page-key'] });
      const w = await fakeWorker(hub, me('page_keyed'));
      await open(hub);
      await page.locator('#key-dialog[open]').waitFor();
      await page.fill('#key-input', 'page-key');
      await page.click('#key-dialog button[value=save]');
      await page.locator('#hub-state.live').waitFor();
      await page.reload();
      await page.locator('#hub-state.live').waitFor();
      expect(await page.locator('#key-dialog[open]').count()).to.equal(0);

      await pick('page_keyed');
      await page.fill('input[name=x]', '7');
      await page.click('#pg-run');
      const task = await w.nextOf('task');
      expect(task.args).to.deep.equal({ x: 7 });
      w.send({ type: 'progress', task_id: task.task_id, progress: 0.5, message: 'halfway' });
      await page.locator('#pg-progress .bar[data-progress="50"]').waitFor();
      expect(await page.locator('#pg-status').textContent()).to.equal('halfway · 50%');
      // The live view shows the task running, with its bar.
      await page.locator(`#tasks [data-task="${task.task_id}"][data-status="running"] .bar[data-progress="50"]`).waitFor();
      w.send({ type: 'result', task_id: task.task_id, result: { y: 42, words: ['a', 'b'] } });
      await page.locator('#pg-result pre.json').waitFor();
      expect(JSON.parse((await page.locator('#pg-result pre.json').textContent())!)).to.deep.equal({ y: 42, words: ['a', 'b'] });
      await page.locator(`#tasks [data-task="${task.task_id}"][data-status="succeeded"]`).waitFor();
      await w.close();
    });

    it('cancels a running task, and shows a failure with its code', async () => {
      hub = await startHub();
      const w = await fakeWorker(hub, me('page_cancel'));
      await open(hub, PHONE);
      await pick('page_cancel');
      await page.fill('input[name=x]', '1');
      await page.click('#pg-run');
      const task = await w.nextOf('task');
      await page.locator('#pg-cancel:not([disabled])').click();
      const cancel = await w.nextOf('cancel', task.task_id);
      expect(cancel.reason).to.equal('client');
      // The worker answers the cancel, which frees its one slot for the next task.
      w.send({ type: 'failed', task_id: task.task_id, error: { code: 'canceled', message: 'stopped' } });
      await page.locator('#pg-progress[data-state="canceled"]').waitFor();
      await page.locator(`#tasks [data-task="${task.task_id}"][data-status="canceled"]`).waitFor();

      await page.click('#pg-run');
      const second = await w.nextOf('task');
      w.send({ type: 'failed', task_id: second.task_id, error: { code: 'too_dark', message: 'the picture is too dark' } });
      await page.locator('#pg-progress[data-state="failed"]').waitFor();
      const status = await page.locator('#pg-status').textContent();
      expect(status).to.include('task_failed').and.include('too_dark').and.include('the picture is too dark');
      await page.locator(`#tasks [data-task="${second.task_id}"] .badge.failed`, { hasText: 'task_failed' }).waitFor();
      await w.close();
    });
  });
});

import { expect } from 'chai';
import sharp from 'sharp';
import type { Browser } from 'playwright-core';
import { startHub, type TestHub } from '../helpers/hub.js';
import { ROOT, startExample, type Proc } from '../helpers/processes.js';
import { launch, LAPTOP, OUTPUT, PHONE } from './browser.js';

const SAMPLE = `${ROOT}examples/assets/sample.png`;

describe('Operator', () => {
  describe('the page with the example image worker', function () {
    this.timeout(90_000);
    let browser: Browser;
    let hub: TestHub;
    let worker: Proc;

    before(async () => {
      browser = await launch();
      hub = await startHub();
      worker = await startExample('image', ['--hub', `${hub.wsUrl}/worker`]);
    });
    after(async () => {
      worker?.kill();
      await worker?.exited;
      await hub?.close();
      await browser?.close();
    });

    for (const [device, viewport] of [
      ['laptop', LAPTOP],
      ['phone', PHONE],
    ] as const) {
      it(`lists the service, runs it on a PNG, moves the bar and shows the rotated image (${device})`, async () => {
        const { width, height } = await sharp(SAMPLE).metadata();
        const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
        const page = await context.newPage();
        const errors: string[] = [];
        page.on('pageerror', (e) => errors.push(e.message));
        try {
          await page.goto(`${hub.url}/`);
          const card = page.locator('#services article.service:not(.offline)', { hasText: 'image' }).first();
          await card.waitFor();
          const name = (await card.getAttribute('data-service'))!;
          expect(await card.locator('.conn .kind').first().textContent(), 'a worker that dialed the hub').to.equal('dialed in');

          const value = await page.locator('#pg-service option', { hasText: name }).getAttribute('value');
          await page.selectOption('#pg-service', value!);
          const file = page.locator('#pg-fields input[type=file]').first();
          await file.waitFor();
          await file.setInputFiles(SAMPLE);
          await page.locator('#pg-fields .preview img').waitFor();
          const angle = page.locator('#pg-fields input[name=angle]');
          if ((await angle.count()) > 0) await angle.fill('90');

          // Every value the playground's bar takes, as the page sets it.
          await page.evaluate(() => {
            const seen: string[] = [];
            (window as unknown as { progressSeen: string[] }).progressSeen = seen;
            const track = document.querySelector('#pg-progress .bar')!;
            new MutationObserver(() => seen.push((track as HTMLElement).dataset.progress ?? '')).observe(track, {
              attributes: true,
              attributeFilter: ['data-progress'],
            });
          });
          await page.click('#pg-run');
          const result = page.locator('#pg-result img');
          await result.waitFor({ timeout: 60_000 });
          await page.waitForFunction(() => (document.querySelector('#pg-result img') as HTMLImageElement | null)?.complete);
          await page.locator('#tasks li[data-status="succeeded"]').first().waitFor();
          await page.waitForTimeout(500); // the bars' width transition (0.35 s) ends before the picture is taken
          await page.screenshot({ path: `${OUTPUT}page-${device}.png`, fullPage: true });

          const seen = await page.evaluate(() => (window as unknown as { progressSeen: string[] }).progressSeen);
          const between = seen.filter((p) => p !== '' && Number(p) > 0 && Number(p) < 100);
          expect(between, `the bar went ${JSON.stringify(seen)}`).to.not.be.empty;
          expect(seen.at(-1)).to.equal('100');
          expect(await page.locator('#pg-progress').getAttribute('data-state')).to.equal('succeeded');

          const size = await result.evaluate((img: HTMLImageElement) => ({ w: img.naturalWidth, h: img.naturalHeight }));
          expect(size, 'rotated by 90 degrees').to.deep.equal({ w: height, h: width });
          expect(await page.locator('#pg-result a[download]').count()).to.be.greaterThan(0);
          expect(errors).to.deep.equal([]);
        } finally {
          await context.close();
        }
      });
    }
  });
});

// Open a page in headless Chromium (Debian's), let it play for a while, print window.result as JSON.
// It waits until window.result.done is true when the page sets "done", else until 1.5 s have played.
// Usage: node browser_play.js PAGE_URL SECONDS
const { chromium } = require('playwright-core');

(async () => {
  const [url, seconds] = [process.argv[2], Number(process.argv[3] || 8)];
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
  });
  try {
    const page = await browser.newPage();
    await page.goto(url);
    await page.waitForFunction(
      () => window.result && ('done' in window.result ? window.result.done : window.result.t >= 1.5),
      null, { timeout: seconds * 1000 })
      .catch(() => {});
    console.log(JSON.stringify(await page.evaluate(() => window.result)));
  } finally {
    await browser.close();
  }
})().catch((err) => { console.error(err); process.exit(1); });

// Screenshot of an HTML report in headless Chromium, for the README.
// Usage: node --import tsx scripts/screenshot-report.ts REPORT.html OUT.png [WIDTH] [HEIGHT]
import { chromium } from "playwright-core";
import { resolve } from "node:path";

const [report, out, width = "1280", height = "1500"] = process.argv.slice(2);
if (!report || !out) {
  process.stderr.write("usage: screenshot-report REPORT.html OUT.png [WIDTH] [HEIGHT]\n");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: Number(width), height: Number(height) } });
  await page.goto(`file://${resolve(report)}`);
  await page.waitForTimeout(1500); // chart animations
  await page.screenshot({ path: out });
  process.stdout.write(`wrote ${out}\n`);
} finally {
  await browser.close();
}

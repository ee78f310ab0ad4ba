// The HTML report in a real browser (Debian's chromium through playwright-core):
// every chart drawn with as many points as the analyzer has samples, no console
// errors, and no network request (Chart.js is inlined). The PNG renderer writes a
// real, non-blank image.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type AnalysisResult,
  analyzeCapture,
  renderHtmlReport,
  reportCharts,
  timeSeriesChart,
} from "../../analyzer/index.ts";
import { renderChartPng } from "../../cli/report-png.ts";

const CHROMIUM = "/usr/bin/chromium";
const dir = join(import.meta.dirname, "..", "..", "fixtures", "captures");
let tmp: string;
let result: AnalysisResult;
before(async () => {
  tmp = mkdtempSync(join(tmpdir(), "pdm-report-"));
  result = await analyzeCapture({ input: join(dir, "v2-protected.pcapng"), keysPath: join(dir, "v2-protected.keys") });
});
after(() => rmSync(tmp, { recursive: true, force: true }));

describe(
  "HTML report in headless chromium",
  { skip: existsSync(CHROMIUM) ? false : "chromium is not installed (scripts/setup.sh installs it as root)" },
  () => {
    it("draws every chart with the analyzer's sample counts, without errors or network", async () => {
      const { chromium } = await import("playwright-core");
      const path = join(tmp, "report.html");
      writeFileSync(path, renderHtmlReport(result));
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
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
        const page = await browser.newPage();
        const problems: string[] = [];
        const requests: string[] = [];
        page.on("console", (m) => {
          if (m.type() === "error" || m.type() === "warning") problems.push(`${m.type()}: ${m.text()}`);
        });
        page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
        page.on("request", (r) => {
          if (!r.url().startsWith("file://")) requests.push(r.url());
        });
        await page.goto(`file://${path}`);
        await page.waitForFunction(
          () => (globalThis as unknown as { pdmReportReady?: boolean }).pdmReportReady === true,
          undefined,
          { timeout: 10_000 },
        );
        const drawn = await page.evaluate(() =>
          (
            globalThis as unknown as {
              pdmCharts: Array<{
                canvas: { id: string };
                data: { datasets: Array<{ data: unknown[] }> };
                getDatasetMeta: (i: number) => { data: unknown[] };
              }>;
            }
          ).pdmCharts.map((c) => ({
            id: c.canvas.id,
            points: c.data.datasets.map((_, i) => c.getDatasetMeta(i).data.length),
          })),
        );
        const expected = reportCharts(result).map((c) => ({ id: c.id, points: c.points }));
        assert.deepEqual(drawn, expected);
        const samples = result.flows.map((f) => f.responseTimeNs!.count);
        assert.deepEqual(
          drawn.find((d) => d.id === "series-responseTimeNs")!.points,
          samples,
          "one point per sample per flow",
        );
        assert.deepEqual(problems, []);
        assert.deepEqual(requests, []);
        const rows = await page.locator("tbody tr").count();
        assert.equal(rows, result.flows.length);
        await page.setViewportSize({ width: 1440, height: 1100 });
        await page.screenshot({ path: join(tmp, "report.png"), fullPage: false });
        assert.ok(readFileSync(join(tmp, "report.png")).length > 10_000);
      } finally {
        await browser.close();
      }
    });
  },
);

describe("PNG chart without a browser", () => {
  it("writes a 1200x640 PNG with the flows' colours on it", async () => {
    const path = join(tmp, "chart.png");
    await renderChartPng(timeSeriesChart(result, "responseTimeNs"), path);
    const bytes = readFileSync(path);
    assert.equal(bytes.subarray(0, 8).toString("hex"), "89504e470d0a1a0a");
    assert.equal(bytes.readUInt32BE(16), 1200);
    assert.equal(bytes.readUInt32BE(20), 640);
    const { loadImage, createCanvas } = await import("@napi-rs/canvas");
    const img = await loadImage(bytes);
    const canvas = createCanvas(img.width, img.height);
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const pixels = ctx.getImageData(0, 0, img.width, img.height).data;
    let red = 0;
    for (let i = 0; i < pixels.length; i += 4)
      if (pixels[i]! > 180 && pixels[i + 1]! < 80 && pixels[i + 2]! < 80) red += 1;
    assert.ok(red > 200, `expected the red TCP series to be drawn, found ${red} red pixels`);
  });
});

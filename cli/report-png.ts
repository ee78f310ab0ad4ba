// Render one report chart to PNG without a browser: Chart.js drawing on
// @napi-rs/canvas (prebuilt, no system libraries). Kept out of analyzer/, which
// has no native dependency.

import { writeFileSync } from "node:fs";
import type { ChartConfiguration } from "chart.js";
import { type ChartSpec } from "../analyzer/index.ts";

export async function renderChartPng(spec: ChartSpec, path: string, width = 1200, height = 640): Promise<void> {
  const { createCanvas } = await import("@napi-rs/canvas");
  const { Chart, registerables } = await import("chart.js");
  Chart.register(...registerables);
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, width, height);
  const config = structuredClone(spec.config) as ChartConfiguration<"line", Array<{ x: number; y: number }>>;
  config.options = { ...config.options, devicePixelRatio: 1 };
  config.plugins = [
    {
      id: "white-background",
      beforeDraw: (chart) => {
        chart.ctx.save();
        chart.ctx.fillStyle = "#ffffff";
        chart.ctx.fillRect(0, 0, chart.width, chart.height);
        chart.ctx.restore();
      },
    },
  ];
  const chart = new Chart(ctx as unknown as ConstructorParameters<typeof Chart>[0], config);
  writeFileSync(path, await canvas.encode("png"));
  chart.destroy();
}

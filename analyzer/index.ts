// The analyzer: captures in, PDM delays out. Pure TypeScript (no native code), so
// it runs wherever Node does. Only this file is imported from outside analyzer/.

export {
  analyzeCapture,
  AnalysisSession,
  type AnalysisResult,
  type AnalyzeOptions,
  type FlowReport,
} from "./analyze.ts";
export {
  FlowTable,
  emptyCounters,
  type Conversation,
  type Counters,
  type FlowObserver,
  type SampleSink,
} from "./flow-table.ts";
export { summarize, type Summary } from "./stats.ts";
export { DelayHistogram, DelayHistograms, RELATIVE_ACCURACY } from "./delay-histogram.ts";
export { DEFAULT_LIVE_LIMITS, type LiveLimits, type LiveState } from "./live-flows.ts";
export { renderTable, renderAnomalies } from "./format/table.ts";
export { renderJson, renderCsv, renderSamplesCsv } from "./format/machine.ts";
export { formatDuration, formatCount } from "./format/units.ts";
export {
  readCapture,
  MAX_INTERFACES,
  WARNING_EXAMPLES,
  type CaptureSummary,
  type CaptureWarning,
} from "./capture/reader.ts";
export { fileSource, streamSource, bufferSource, type ByteSource } from "./capture/byte-source.ts";
export { openPcapWriter, openPcapngWriter, type CaptureWriter } from "./capture/writer.ts";
export { renderHtmlReport, reportCharts } from "./report/html.ts";
export { timeSeriesChart, cdfChart, METRICS, METRIC_TITLES, type ChartSpec, type Metric } from "./report/charts.ts";
export { compareWithTruth, readTruth, type TruthFile, type FlowComparison } from "./truth.ts";
export { aeadBackend, nativeAeadContext, NATIVE_AEAD_PATH, type NativeAeadContext } from "./aead-native/index.ts";
export { StampHistory } from "./stamp-history.ts";

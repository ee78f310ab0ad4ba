// The agent's log: one line per event, `time level event key=value ...`, on stderr
// (or JSON lines with --log-format json). Field values are strings, numbers or
// booleans only, so a key or secret (a Uint8Array) cannot be passed by mistake.

export type LogValue = string | number | boolean | undefined;
export type LogFields = Record<string, LogValue>;
export type LogLevel = "info" | "warn" | "error";

export interface Logger {
  log(level: LogLevel, event: string, fields?: LogFields): void;
}

export function streamLogger(write: (line: string) => void, format: "text" | "json" = "text", name?: string): Logger {
  return {
    log(level, event, fields = {}) {
      const time = new Date().toISOString();
      const all: LogFields = name ? { agent: name, ...fields } : fields;
      if (format === "json") {
        write(`${JSON.stringify({ time, level, event, ...all })}\n`);
        return;
      }
      const kv = Object.entries(all)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${typeof v === "string" && /[\s"=]/.test(v) ? JSON.stringify(v) : String(v)}`)
        .join(" ");
      write(`${time} ${level.padEnd(5)} ${event}${kv ? ` ${kv}` : ""}\n`);
    },
  };
}

/** A logger that keeps lines in memory: tests read them back. */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const inner = streamLogger((l) => lines.push(l.trimEnd()));
  return { lines, log: inner.log };
}

export const silentLogger: Logger = { log() {} };

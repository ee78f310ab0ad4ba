// BpfError: an eBPF operation failed. Its message is one sentence saying what is
// missing and how to fix it; the raw errno and libbpf log stay in `cause`/`detail`.

import { PdmError } from "../../pdm/index.ts";

export class BpfError extends PdmError {
  constructor(
    message: string,
    options?: { cause?: unknown; hint?: string; readonly detail?: string; readonly errno?: number },
  ) {
    super(message, options);
    this.detail = options?.detail;
    this.errno = options?.errno;
  }
  readonly detail: string | undefined;
  readonly errno: number | undefined;
}

interface NativeError {
  message: string;
  errno?: number;
  syscall?: string;
}

const EPERM = 1;
const ENOENT = 2;
const E2BIG = 7;
const EACCES = 13;
const EEXIST = 17;
const ENODEV = 19;
const EINVAL = 22;
const ENOTSUP = 95; // also EOPNOTSUPP on Linux

/** Turns an error thrown by the native binding into a BpfError with a one-sentence fix. */
export function explainNativeError(what: string, err: unknown): BpfError {
  const e = err as NativeError;
  const errno = typeof e?.errno === "number" ? e.errno : undefined;
  const [firstLine = String(err), ...rest] = String(e?.message ?? err).split("\n");
  const detail = rest.join("\n").trim() || undefined;
  let sentence: string;
  switch (errno) {
    case EPERM:
    case EACCES:
      sentence = `${what} needs root (CAP_BPF and CAP_NET_ADMIN): run it with sudo or as root.`;
      break;
    case ENODEV:
      sentence = `${what}: no such network interface.`;
      break;
    case E2BIG:
      sentence = `${what}: the kernel verifier refused the program as too complex for this kernel (${firstLine}).`;
      break;
    case EINVAL:
      sentence = /load/.test(firstLine)
        ? `${what}: this kernel lacks a BPF feature the programs use (bpf_loop, bpf_check_mtu, ring buffers: Linux 5.17 or later) (${firstLine}).`
        : `${what} was refused by the kernel: ${firstLine}.`;
      break;
    case ENOTSUP:
      sentence = `${what}: this kernel does not support it (${firstLine}).`;
      break;
    case EEXIST:
      sentence = `${what}: it already exists (${firstLine}).`;
      break;
    case ENOENT:
      sentence = `${what}: not found (${firstLine}).`;
      break;
    default:
      sentence = `${what} failed: ${firstLine}.`;
  }
  return new BpfError(sentence, { cause: err, detail, errno });
}

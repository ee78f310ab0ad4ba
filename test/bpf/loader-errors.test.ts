// The native loader's errors say what the kernel refused: a program the verifier
// rejects after a long log must report the log's end (the line naming the fault),
// not only its first kilobytes.

import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nativeBpf } from "../../probes/datapath/index.ts";
import { datapathSkipReason } from "../../lab/index.ts";

const skip = datapathSkipReason();

/** 200 scalar steps (a verifier log well past 4 KiB), then a stack write the verifier refuses. */
const REJECTED = `#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
SEC("tc")
int rejected(struct __sk_buff *skb)
{
	__u32 x = skb->len;
#pragma unroll
	for (int i = 0; i < 200; i++)
		x = x * 3 + skb->mark;
	char buf[8];
	bpf_skb_load_bytes(skb, 0, buf, x); /* unbounded size into 8 bytes */
	return buf[0];
}
`;

describe("native loader errors", { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), "pdm-loader-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("a verifier rejection reports the end of the log, where the fault is named", () => {
    writeFileSync(join(dir, "rejected.bpf.c"), REJECTED);
    const arch = execFileSync("uname", ["-m"], { encoding: "utf8" }).trim();
    execFileSync("clang", [
      "-O2",
      "-target",
      "bpf",
      "-I",
      `/usr/include/${arch}-linux-gnu`,
      "-c",
      join(dir, "rejected.bpf.c"),
      "-o",
      join(dir, "rejected.bpf.o"),
    ]);
    const native = nativeBpf();
    const object = native.openObject(join(dir, "rejected.bpf.o"));
    try {
      assert.throws(
        () => native.loadObject(object),
        (e: Error) => {
          assert.ok(e.message.length > 4096, `the message carries the whole log (${e.message.length} bytes)`);
          assert.match(
            e.message,
            /R4 .*(unbounded|min value is negative)|invalid .*stack|size/i,
            "the verifier's reason is in it",
          );
          assert.match(e.message, /processed \d+ insns/, "the log's last lines are in it");
          return true;
        },
      );
    } finally {
      native.closeObject(object);
    }
  });
});

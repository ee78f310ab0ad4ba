// pdm/ defines the HPKE registry identifiers itself (so analysis loads without the
// HPKE library); they must be the values @hpke/core, which registration uses, carries.

import { it } from "node:test";
import assert from "node:assert/strict";
import * as hpke from "@hpke/core";
import { AeadId, KdfId, KemId } from "../../pdm/index.ts";

it("KEM, KDF and AEAD identifiers equal @hpke/core's", () => {
  for (const [ours, theirs] of [
    [KemId, hpke.KemId],
    [KdfId, hpke.KdfId],
    [AeadId, hpke.AeadId],
  ] as const) {
    for (const [name, value] of Object.entries(ours))
      assert.equal(value, (theirs as Record<string, number>)[name], name);
  }
});

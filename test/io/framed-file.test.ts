/**
 * Framed files: the bytes on disk are the documented layout (built here by hand), they read back
 * to the same header and body, and every kind of damage is the caller's `corrupt` error.
 */
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TdbError } from "../../src/base/errors.js";
import { readFramedFile, writeFramedFile } from "../../src/io/framed-file.js";
import { rejected } from "../helpers/errors.js";

const FORMAT = { magic: "TESTFRM1", align: 8 };
let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tdb-framed-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const corrupt = (why: string) => new TdbError("E_CHECKPOINT", `bad: ${why}`, { value: why });
const read = (path: string, missingOk = false) =>
  readFramedFile(path, FORMAT, {
    what: "read the test file",
    corrupt,
    missingOk,
    header: (parsed) => {
      const h = parsed as { n?: unknown };
      if (typeof h?.n !== "number") throw corrupt("the header lacks fields");
      return { header: h as { n: number }, bodyBytes: h.n };
    },
  });

describe("framed files", () => {
  const body = [new Uint8Array([1, 2, 3]), new Uint8Array([4, 5, 6, 7, 8])];

  it("writes magic, length, JSON header with the body's SHA-256, padding, body", async () => {
    const path = join(dir, "a.bin");
    await writeFramedFile(path, FORMAT, { n: 8 }, body, "write the test file");
    const bytes = new Uint8Array(await readFile(path));
    const sha = createHash("sha256").update(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])).digest("hex");
    const json = Buffer.from(JSON.stringify({ n: 8, sha256: sha }));
    const lead = 12 + json.length;
    const pad = (8 - (lead % 8)) % 8;
    const expected = Buffer.concat([Buffer.from("TESTFRM1"), Buffer.from(new Uint32Array([json.length]).buffer), json, Buffer.alloc(pad), Buffer.from([1, 2, 3, 4, 5, 6, 7, 8])]);
    expect(Buffer.from(bytes).equals(expected)).toBe(true);
    const back = await read(path);
    expect(back?.header.n).toBe(8);
    expect([...back!.body]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("a missing file is undefined with missingOk, E_FILE_SYSTEM without", async () => {
    expect(await read(join(dir, "none.bin"), true)).toBeUndefined();
    expect((await rejected(read(join(dir, "none.bin")))).code).toBe("E_FILE_SYSTEM");
  });

  it("wrong magic, truncation, bad JSON, a header past the end and a flipped body byte are corrupt", async () => {
    const path = join(dir, "b.bin");
    await writeFramedFile(path, FORMAT, { n: 8 }, body, "write the test file");
    const good = new Uint8Array(await readFile(path));
    const flipped = good.slice();
    flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 1;
    const badJson = good.slice();
    badJson[12] = 0x7b + 1; // "|" instead of "{"
    const longHeader = good.slice();
    new DataView(longHeader.buffer).setUint32(8, 1e6, true);
    const cases: [string, Uint8Array, RegExp][] = [
      ["magic", new Uint8Array([...Buffer.from("NOTMAGIC"), ...good.subarray(8)]), /magic/],
      ["truncated", good.subarray(0, good.length - 3), /truncated/],
      ["json", badJson, /not JSON/],
      ["header length", longHeader, /past the end/],
      ["checksum", flipped, /checksum/],
    ];
    for (const [what, bytes, msg] of cases) {
      await writeFile(path, bytes);
      const e = await rejected(read(path));
      expect(e.code, what).toBe("E_CHECKPOINT");
      expect(e.message, what).toMatch(msg);
    }
  });
});

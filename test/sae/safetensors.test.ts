/**
 * safetensors: files built byte by byte here (header text written by hand, values as bit
 * patterns) read as they say; write then read is value- and byte-identical and laid out as the
 * reference writer does; corrupt files are E_SAFETENSORS.
 */
import { describe, expect, it } from "vitest";
import { readSafetensors, tensorToFloat32, writeSafetensors } from "../../src/sae/safetensors.js";
import { thrown } from "../helpers/errors.js";

/** A file: 8-byte little-endian length written byte by byte, the header text, then `data`. */
function file(header: string, data: readonly number[] | Uint8Array, headerLength?: number): Uint8Array {
  const h = new TextEncoder().encode(header);
  const n = headerLength ?? h.length;
  const out = new Uint8Array(8 + h.length + data.length);
  let v = n;
  for (let i = 0; i < 8; i++) {
    out[i] = v % 256;
    v = Math.floor(v / 256);
  }
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

/** Little-endian bytes of 16-bit patterns. */
const u16 = (...xs: number[]) => xs.flatMap((x) => [x & 0xff, x >> 8]);
/** Little-endian bytes of float32 values (the platform's encoding, not the code under test). */
const f32 = (...xs: number[]) => [...new Uint8Array(new Float32Array(xs).buffer)];
const f64 = (...xs: number[]) => [...new Uint8Array(new Float64Array(xs).buffer)];

describe("reading a hand-built file", () => {
  const header =
    '{"__metadata__":{"format":"pt","note":"hand"},' +
    '"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},' +
    '"h":{"dtype":"F16","shape":[5],"data_offsets":[24,34]},' +
    '"b":{"dtype":"BF16","shape":[3],"data_offsets":[34,40]},' +
    '"d":{"dtype":"F64","shape":[2],"data_offsets":[40,56]},' +
    '"s":{"dtype":"F32","shape":[],"data_offsets":[56,60]}}   ';
  const data = [
    ...f32(1, -2, 0.5, 3.25, -0.125, 100),
    // F16: 1, -2, 2^-24 (smallest subnormal), 65504 (largest), +inf
    ...u16(0x3c00, 0xc000, 0x0001, 0x7bff, 0x7c00),
    // BF16: 1, -5, 3.140625
    ...u16(0x3f80, 0xc0a0, 0x4049),
    ...f64(1 / 3, -1e300),
    ...f32(7),
  ];
  const st = readSafetensors(file(header, data));

  it("gives each tensor's dtype, shape and values", () => {
    expect([...st.tensors.keys()]).toEqual(["w", "h", "b", "d", "s"]);
    expect(st.tensors.get("w")!.shape).toEqual([2, 3]);
    expect([...tensorToFloat32(st.tensors.get("w")!)]).toEqual([1, -2, 0.5, 3.25, -0.125, 100]);
    expect([...tensorToFloat32(st.tensors.get("h")!)]).toEqual([1, -2, 2 ** -24, 65504, Infinity]);
    expect([...tensorToFloat32(st.tensors.get("b")!)]).toEqual([1, -5, 3.140625]);
    expect([...tensorToFloat32(st.tensors.get("d")!)]).toEqual([Math.fround(1 / 3), -Infinity]);
    expect(st.tensors.get("s")!.shape).toEqual([]);
    expect([...tensorToFloat32(st.tensors.get("s")!)]).toEqual([7]);
  });

  it("gives the metadata", () => {
    expect(st.metadata).toEqual({ format: "pt", note: "hand" });
  });

  it("refuses to convert an integer tensor to floats", () => {
    const s = readSafetensors(file('{"i":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}', [1, 0, 0, 0]));
    expect(thrown(() => tensorToFloat32(s.tensors.get("i")!)).code).toBe("E_SAFETENSORS");
  });
});

describe("writing", () => {
  it("lays the file out as the reference writer: compact header, dtype order then name, space padding to 8", () => {
    const bytes = writeSafetensors(
      {
        b: { shape: [2], data: new Float32Array([1, 2]) },
        a: { shape: [1, 2], data: new Float32Array([3, 4]) },
        z: { dtype: "F64", shape: [1], data: new Float64Array([0.5]) },
      },
      { format: "pt" },
    );
    const header =
      '{"__metadata__":{"format":"pt"},' +
      '"z":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},' +
      '"a":{"dtype":"F32","shape":[1,2],"data_offsets":[8,16]},' +
      '"b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}}';
    const padded = header + " ".repeat((8 - (header.length % 8)) % 8);
    expect(padded.length % 8).toBe(0);
    expect([...bytes]).toEqual([...file(padded, [...f64(0.5), ...f32(3, 4), ...f32(1, 2)])]);
  });

  it("round-trips values exactly and bytes identically", () => {
    const w = Float32Array.from({ length: 35 }, (_, i) => Math.fround(Math.sin(i) * 1e3) / 7);
    const first = writeSafetensors({ W_enc: { shape: [5, 7], data: w }, b_dec: { shape: [5], data: w.subarray(0, 5) } });
    const read = readSafetensors(first);
    expect([...tensorToFloat32(read.tensors.get("W_enc")!)]).toEqual([...w]);
    expect([...tensorToFloat32(read.tensors.get("b_dec")!)]).toEqual([...w.subarray(0, 5)]);
    expect(read.metadata).toBeUndefined();
    const again = writeSafetensors(Object.fromEntries([...read.tensors].reverse()));
    expect(Buffer.from(again).equals(Buffer.from(first))).toBe(true);
  });

  it("keeps integer-like names in sorted order", () => {
    const bytes = writeSafetensors({ "10": { shape: [1], data: new Float32Array([1]) }, "2": { shape: [1], data: new Float32Array([2]) } });
    const n = bytes[0]!;
    expect(new TextDecoder().decode(bytes.subarray(8, 8 + n)).trimEnd()).toBe(
      '{"10":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"2":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
    );
  });

  it("rejects data that does not fit its shape", () => {
    expect(thrown(() => writeSafetensors({ a: { shape: [3], data: new Float32Array(2) } })).code).toBe("E_BAD_INPUT");
  });
});

describe("corrupt files are E_SAFETENSORS", () => {
  const good = () => file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', f32(1, 2));
  const cases: [string, () => Uint8Array, RegExp][] = [
    ["shorter than 8 bytes", () => new Uint8Array([1, 0, 0]), /shorter than the 8-byte/],
    ["truncated data", () => good().subarray(0, good().length - 3), /ends at byte 8 of a data section of 5/],
    ["truncated header", () => good().subarray(0, 20), /runs past the end/],
    ["header length huge", () => file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', f32(1, 2), 2 ** 40), /runs past the end/],
    ["bad JSON", () => file('{"a":{"dtype":"F32",', f32(1, 2)), /not UTF-8 JSON/],
    ["not an object", () => file("[1,2]", []), /not a JSON object/],
    ["offsets out of range", () => file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', f32(1, 2)), /ends at byte 12/],
    ["offsets reversed", () => file('{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}', f32(1, 2)), /data_offsets/],
    [
      "overlapping offsets",
      () => file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', f32(1, 2)),
      /overlaps/,
    ],
    ["a gap", () => file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', f32(1, 2)), /gap/],
    ["trailing bytes", () => file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f32(1, 2)), /cover 4 bytes of a data section of 8/],
    ["unknown dtype", () => file('{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}', f32(1, 2)), /unknown dtype "F33"/],
    ["shape/size mismatch", () => file('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', f32(1, 2)), /12 bytes, data_offsets span 8/],
    ["negative shape", () => file('{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', f32(1, 2)), /shape/],
    ["non-string metadata", () => file('{"__metadata__":{"x":1}}', []), /__metadata__.x/],
  ];
  for (const [what, bytes, message] of cases) {
    it(what, () => {
      const e = thrown(() => readSafetensors(bytes(), "f.safetensors"));
      expect(e.code).toBe("E_SAFETENSORS");
      expect(e.message).toMatch(message);
      expect(e.message).toMatch(/^f\.safetensors: /);
    });
  }
});

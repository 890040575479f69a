/**
 * Generated model directories for tests: each call writes a fresh fixture into a temp dir and
 * also returns the weights, so tests can run the float64 reference on exactly those weights.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { afterAll, beforeAll } from "vitest";
import { Model } from "../../src/model/model.js";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gpt2Config, TINY_GPT2, type Gpt2Config } from "../../src/synthetic/config.js";
import { randomGpt2Weights, type Gpt2Weights, type RandomWeightOptions } from "../../src/synthetic/weights.js";
import { writeGpt2Model, type Gpt2ModelPaths, type WriteGpt2Options } from "../../src/synthetic/write.js";

export interface TestModel extends Gpt2ModelPaths {
  arch: Gpt2Config;
  weights: Gpt2Weights;
  cleanup(): Promise<void>;
}

/** Larger init than GPT-2's 0.02 so attention patterns are far from uniform and bugs show. */
export const TEST_WEIGHTS: RandomWeightOptions = { std: 0.1, lnNoise: 0.2, biasStd: 0.05 };

/** A 4-layer model with other head/width choices than {@link TINY_GPT2}, to catch hard-coded shapes. */
export const FOUR_LAYER: Gpt2Config = gpt2Config({ n_layer: 4, n_head: 3, n_embd: 48, n_positions: 32, vocab_size: 300 });

export async function makeTestModel(opts: WriteGpt2Options = {}): Promise<TestModel> {
  const dir = await mkdtemp(join(tmpdir(), "tdb-test-"));
  const config = opts.config ?? TINY_GPT2;
  const seed = opts.seed ?? 7;
  const weightOpts = opts.weights ?? TEST_WEIGHTS;
  const paths = await writeGpt2Model(dir, { ...opts, config, seed, weights: weightOpts });
  return {
    ...paths,
    arch: config,
    weights: randomGpt2Weights(config, seed, weightOpts),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Max |a - b| over real positions, where `valid(index)` says which flat indices count. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>, valid: (i: number) => boolean = () => true): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (!valid(i)) continue;
    const x = a[i]!;
    const y = b[i]!;
    // Masked attention scores are float32's most negative number on both sides.
    if (x < -1e30 && y < -1e30) continue;
    const d = Math.abs(x - y);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/**
 * Registers vitest hooks that generate a test model, load it, hand both to `use`, and clean up
 * after the file's tests.
 *
 * @example
 * ```ts
 * let tm: TestModel;
 * let model: Model;
 * useTestModel({ config: FOUR_LAYER }, (t, m) => ((tm = t), (model = m)));
 * ```
 */
export function useTestModel(opts: WriteGpt2Options, use: (tm: TestModel, model: Model) => void): void {
  let tm: TestModel | undefined;
  let model: Model | undefined;
  beforeAll(async () => {
    tm = await makeTestModel(opts);
    model = await Model.load(tm.dir);
    use(tm, model);
  });
  afterAll(async () => {
    await model?.dispose();
    await tm?.cleanup();
  });
}

/**
 * Token rows of the given lengths from a seeded LCG (ids in [0, vocab)): the test prompts that the
 * hook-vs-reference tests share.
 */
export function lcgRows(lengths: readonly number[], seed: number, vocab: number): number[][] {
  let s = seed;
  const next = (): number => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s % vocab;
  };
  return lengths.map((n) => Array.from({ length: n }, next));
}

/**
 * For a `[batch, ...]` activation of rows padded to a common length: true for flat indices whose
 * `pos` / `query_pos` / `key_pos` coordinates are real tokens of their row (`lengths[row]`).
 */
export function realPositions(act: { dims: readonly number[]; labels: readonly string[] }, lengths: readonly number[]): (flat: number) => boolean {
  const posAxes = act.labels.flatMap((l, i) => (l === "pos" || l === "query_pos" || l === "key_pos" ? [i] : []));
  return (flat) => {
    const idx = new Array<number>(act.dims.length);
    let r = flat;
    for (let a = act.dims.length - 1; a >= 0; a--) {
      idx[a] = r % act.dims[a]!;
      r = Math.floor(r / act.dims[a]!);
    }
    const len = lengths[idx[0]!]!;
    return posAxes.every((a) => idx[a]! < len);
  };
}

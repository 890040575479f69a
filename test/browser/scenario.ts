/**
 * The calls the browser test makes on both platforms: load, trace, intervene and attribute on one
 * model, reduced to plain numbers so that the browser's results can cross `page.evaluate` and be
 * compared with the Node run of the same function.
 */
import type { Device, Edit, Model as ModelClass, ModelFiles } from "../../src/api.js";

/** What the scenario needs of a tdb-js entry (the Node one or the browser one). */
export interface ScenarioApi {
  Model: typeof ModelClass;
  zeroHead(layer: number, head: number): Edit;
}

/** The scenario's numbers. */
export interface ScenarioResult {
  origin: string;
  nLayer: number;
  hookCount: number;
  tokens: number[];
  /** Logits at the last position. */
  logits: number[];
  /** blocks.0.attn.hook_pattern, flattened. */
  pattern0: number[];
  /** The last block's hook_resid_post, flattened. */
  residLast: number[];
  /** Logits at the last position with head 0.1 zeroed. */
  ablatedLogits: number[];
  logitDiffChange: number;
  /** Attribution table rows. */
  attribution: { id: string; activation: number; writeMagnitude: number; directEffect: number; totalEffect: number }[];
  loss: number;
}

export const PROMPT = "The quick brown fox jumps over the lazy dog";
export const TARGET = " the";
export const DISTRACTOR = " a";

/**
 * Runs the scenario on the model at `source` (a directory, a URL) or in `files`, on `device`;
 * with `traceOnly`, the intervention and attribution fields are left empty.
 */
export async function runScenario(api: ScenarioApi, source: string, files?: ModelFiles, device: Device = "cpu", traceOnly = false): Promise<ScenarioResult> {
  const model = await api.Model.load(source, files ? { files, device } : { device });
  try {
    const t = await model.trace(PROMPT);
    if (traceOnly) {
      const nLayer = model.config.nLayers;
      const [, pos, vocab] = t.logits.dims as [number, number, number];
      return {
        origin: source,
        nLayer,
        hookCount: model.hookNames.length,
        tokens: t.tokens[0]!,
        logits: Array.from(t.logits.data.subarray((pos - 1) * vocab, pos * vocab)),
        pattern0: Array.from(t.cache.get("blocks.0.attn.hook_pattern").data),
        residLast: Array.from(t.cache.get(`blocks.${nLayer - 1}.hook_resid_post`).data),
        ablatedLogits: [],
        logitDiffChange: NaN,
        attribution: [],
        loss: NaN,
      };
    }
    const last = t.logits.dims[1]! - 1;
    const vocab = t.logits.dims[2]!;
    const logits = Array.from(t.logits.data.subarray(last * vocab, (last + 1) * vocab));
    const r = await model.intervene(PROMPT, [api.zeroHead(0, 1)]);
    const el = r.edited.logits;
    const elast = el.dims[1]! - 1;
    const ablatedLogits = Array.from(el.data.subarray(elast * vocab, (elast + 1) * vocab));
    const table = await model.attribute(PROMPT, { target: TARGET, distractor: DISTRACTOR, topK: 6 });
    const nLayer = model.config.nLayers;
    return {
      origin: source,
      nLayer,
      hookCount: model.hookNames.length,
      tokens: t.tokens[0]!,
      logits,
      pattern0: Array.from(t.cache.get("blocks.0.attn.hook_pattern").data),
      residLast: Array.from(t.cache.get(`blocks.${nLayer - 1}.hook_resid_post`).data),
      ablatedLogits,
      logitDiffChange: r.logitDiffChange(TARGET, DISTRACTOR)[0]!,
      attribution: table.nodes.map((n) => ({
        id: n.id,
        activation: n.activation,
        writeMagnitude: n.writeMagnitude,
        directEffect: n.directEffect,
        totalEffect: n.totalEffect,
      })),
      loss: table.loss,
    };
  } finally {
    await model.dispose();
  }
}

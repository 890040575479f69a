/**
 * The activation cache of a trace, keyed by TransformerLens hook name.
 *
 * @module
 */
import type { Activation } from "./activation.js";
import { TdbError, formatAllowed } from "../base/errors.js";
import { parseHookName, resolveHookAlias, type HookName } from "../hooks/names.js";

/**
 * Activations by hook name, in forward order.
 *
 * @example
 * ```ts
 * const t = await model.trace("Hello world");
 * t.cache.get("blocks.0.attn.hook_pattern").dims; // [1, 4, 3, 3]
 * t.cache.get("pattern", -1);                      // same hook kind, last layer
 * [...t.cache.keys()];                             // every cached hook name
 * ```
 */
export class ActivationCache {
  /** Built by {@link Model.trace}; `nLayers` resolves `(alias, layer)` lookups. */
  constructor(
    private readonly entries: ReadonlyMap<HookName, Activation>,
    /** Layers of the model (resolves negative layers in `get(alias, layer)`). */
    readonly nLayers: number,
  ) {}

  /**
   * The activation of a hook, by full name or by `(alias, layer)` shorthand (negative layers
   * count from the end). Throws `E_UNKNOWN_HOOK` for names that do not exist and `E_NOT_CACHED`
   * for real hooks that this trace did not cache.
   */
  get(name: HookName | string, layer?: number): Activation {
    if (typeof name !== "string") {
      throw new TdbError("E_BAD_INPUT", `a hook name must be a string, got ${name === null ? "null" : typeof name}`, { value: name === null ? null : typeof name, allowed: "a hook name, or an alias with a layer" });
    }
    // Names outside the hook table (an attached SAE's `<hook>.hook_sae_*`) are looked up as given.
    const exact = layer === undefined ? this.entries.get(name as HookName) : undefined;
    if (exact) return exact;
    if (layer === undefined && /\.hook_sae_\w+$/.test(name)) {
      throw new TdbError("E_NOT_CACHED", `${name} was not cached in this trace (trace with { saes } to cache SAE hooks)`, { value: name, allowed: [...this.entries.keys()] });
    }
    const full = layer === undefined && name.includes("hook_") ? parseHookName(name, this.nLayers).name : resolveHookAlias(name, layer, this.nLayers);
    const a = this.entries.get(full);
    if (!a) {
      throw new TdbError("E_NOT_CACHED", `${full} was not cached in this trace; cached: ${formatAllowed([...this.entries.keys()])}`, {
        value: full,
        allowed: [...this.entries.keys()],
      });
    }
    return a;
  }

  /** Whether the hook is in this cache. */
  has(name: string): boolean {
    return this.entries.has(name as HookName);
  }

  /** Cached hook names, in forward order. */
  keys(): IterableIterator<HookName> {
    return this.entries.keys();
  }

  /** Number of cached hooks. */
  get size(): number {
    return this.entries.size;
  }

  /** `[name, activation]` pairs in forward order. */
  [Symbol.iterator](): IterableIterator<[HookName, Activation]> {
    return this.entries.entries();
  }
}

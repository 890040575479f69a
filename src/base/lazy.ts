/**
 * Records whose fields are computed on first read and kept: a model's weights in
 * TransformerLens layout are ~0.5 GB for GPT-2 small, and most analyses read a few of them.
 *
 * @module
 */

/**
 * An object with one enumerable getter per factory; each runs once, on the field's first read.
 *
 * @example
 * ```ts
 * const w = lazyRecord({ big: () => new Float32Array(1e8), small: () => 1 });
 * w.small; // 1; `big` was never allocated
 * ```
 */
export function lazyRecord<T extends object>(factories: { [K in keyof T]: () => T[K] }): T {
  const out = {} as T;
  for (const key of Object.keys(factories) as (keyof T)[]) {
    let done = false;
    let value: T[typeof key];
    Object.defineProperty(out, key, {
      enumerable: true,
      get: () => {
        if (!done) {
          value = factories[key]();
          done = true;
        }
        return value;
      },
    });
  }
  return out;
}

/** A function that computes `f()` once, on its first call. */
export function once<T>(f: () => T): () => T {
  let done = false;
  let value: T;
  return () => {
    if (!done) {
      value = f();
      done = true;
    }
    return value;
  };
}

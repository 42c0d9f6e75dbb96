/** Fills the fields of `partial` that are undefined from `defaults` (one level deep). */
export function withDefaults<T extends object>(defaults: Readonly<T>, partial: Partial<T> | undefined): T {
  const out = { ...defaults } as T;
  if (partial) {
    for (const [k, v] of Object.entries(partial)) {
      if (v !== undefined) (out as Record<string, unknown>)[k] = v;
    }
  }
  return out;
}

/** The fields of `o` that are defined, for spreading over values an undefined must not erase. */
export function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

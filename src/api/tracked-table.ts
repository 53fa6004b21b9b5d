// `:table` of the history routes: any spelling of a tracked table's name (`app.orders`, `app."LineItems"`, their
// URL-encoded forms, and `app.LineItems` where that names no other table), resolved against the live tracked set.
import { canonicalName, TableNameError } from '../tables.ts'
import type { TrackedSet, TrackedTable } from '../tracked-set.ts'

/** The tracked (or formerly tracked: history stays readable) table `raw` names, or undefined. */
export async function resolveTable(tracked: TrackedSet, raw: string): Promise<TrackedTable | undefined> {
  const find = () => {
    let canonical: string | undefined
    try {
      canonical = canonicalName(raw)
    } catch (error) {
      if (!(error instanceof TableNameError)) throw error
    }
    const exact = canonical === undefined ? undefined : tracked.get(canonical)
    if (exact) return exact
    // Unquoted mixed case (`app.LineItems`) folds to lower case in SQL; accept the literal spelling when it is unique.
    const literal = tracked.list().filter((t) => (t.schema === 'public' ? t.name : `${t.schema}.${t.name}`) === raw)
    return literal.length === 1 ? literal[0] : undefined
  }
  // A table tracked a moment ago may not be in this process's copy yet: read the set once more before saying no.
  return find() ?? (await tracked.refresh(), find())
}

// What cdc.track() compiles into a table's trigger function: built from cdc.toml, one place for every caller.
import type { Config } from '../config.ts'
import { aggregateName, qualifiedName, type TableName } from '../tables.ts'

export interface CaptureSpec {
  aggregate: string
  mode: Config['capture']['mode']
  /** Logical mode: the relay's publication, which tracking adds the table to. */
  publication?: string
  exclude: string[]
  mask: string[]
  incidental: string[]
  bookkeeping: string[]
  rules: { op: 'c' | 'u' | 'd'; columns?: string[]; value?: string | number | boolean; type: string; reason?: string }[]
  /** An aggregate root whose events carry its document: they are published at commit, once the document is known. */
  document: boolean
}

export function captureSpec(config: Config, t: TableName): CaptureSpec {
  const table = qualifiedName(t)
  const options = config.capture.tables[table]
  return {
    aggregate: aggregateName(t),
    mode: config.capture.mode,
    ...(config.capture.mode === 'logical' && { publication: config.relay.publication }),
    exclude: options?.exclude ?? [],
    mask: options?.mask ?? [],
    incidental: options?.incidental ?? [],
    bookkeeping: options?.bookkeeping ?? [],
    rules: config.capture.rules
      .filter((rule) => rule.table === table)
      .map(({ op, columns, value, type, reason }) => ({
        op,
        type,
        ...(columns && { columns }),
        ...(value !== undefined && { value }),
        ...(reason !== undefined && { reason }),
      })),
    document: t.schema === 'public' && config.capture.roots[t.name]?.documentEvent === false,
  }
}

export interface RootSpec {
  aggregate: string
  mode: Config['capture']['mode']
  exclude: string[]
  mask: string[]
  /** true: a separate <Aggregate>DocumentChanged event; false: the root's own events carry the document. */
  documentEvent: boolean
  children: Config['capture']['roots'][string]['children']
}

/** What cdc.track_root() compiles: the root's document shape (children with lookups), masked like its row events. */
export function rootSpec(config: Config, root: string): RootSpec {
  const options = config.capture.tables[root]
  return {
    aggregate: aggregateName({ schema: 'public', name: root }),
    mode: config.capture.mode,
    exclude: options?.exclude ?? [],
    mask: options?.mask ?? [],
    documentEvent: config.capture.roots[root]?.documentEvent ?? false,
    children: config.capture.roots[root]?.children ?? [],
  }
}

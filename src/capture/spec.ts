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
  rules: { op: 'c' | 'u' | 'd'; columns?: string[]; value?: string | number | boolean; type: string }[]
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
    rules: config.capture.rules
      .filter((rule) => rule.table === table)
      .map(({ op, columns, value, type }) => ({ op, type, ...(columns && { columns }), ...(value !== undefined && { value }) })),
  }
}

export interface RootSpec {
  aggregate: string
  mode: Config['capture']['mode']
  exclude: string[]
  mask: string[]
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
    children: config.capture.roots[root]?.children ?? [],
  }
}

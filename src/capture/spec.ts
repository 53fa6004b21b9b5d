// What cdc.track() compiles into a table's trigger function: built from cdc.toml, one place for every caller.
import type { Config } from '../config.ts'

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

/** Singular PascalCase of a table name: customers → Customer, order_lines → OrderLine, categories → Category. */
export function aggregateName(table: string): string {
  const words = table.split('_').filter(Boolean)
  const last = words.pop() ?? table
  words.push(singular(last))
  return words.map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('')
}

function singular(word: string): string {
  if (/[^aeiou]ies$/.test(word)) return `${word.slice(0, -3)}y`
  if (/(ss|x|z|ch|sh|us)es$/.test(word)) return word.slice(0, -2)
  if (/[^s]s$/.test(word)) return word.slice(0, -1)
  return word
}

export function captureSpec(config: Config, table: string): CaptureSpec {
  const options = config.capture.tables[table]
  return {
    aggregate: aggregateName(table),
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
    aggregate: aggregateName(root),
    mode: config.capture.mode,
    exclude: options?.exclude ?? [],
    mask: options?.mask ?? [],
    children: config.capture.roots[root]?.children ?? [],
  }
}

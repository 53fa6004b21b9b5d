// Table names as users write them and as cdc stores them. One parser with SQL's rules (unquoted parts fold to lower
// case, "quoted" parts keep their case, "" inside quotes is a quote), one canonical spelling (the aggregate type of
// the envelope: `schema.table`, the schema left out for public, a part quoted only where SQL needs it), and one
// spelling safe for Kafka topics and MongoDB collections. Names travel to SQL only as parameters, never spliced.

/** A table by its two catalog names, exactly as pg_namespace.nspname and pg_class.relname spell them. */
export interface TableName {
  schema: string
  name: string
}

/** A name that cannot be a table name; `cdc track` reports it with exit code 2. */
export class TableNameError extends Error {
  constructor(
    readonly input: string,
    why: string,
  ) {
    super(`${JSON.stringify(input)} is not a table name: ${why}`)
    this.name = 'TableNameError'
  }
}

/** PostgreSQL truncates identifiers at 63 bytes; a longer name would silently name another table. */
const MAX_IDENTIFIER_BYTES = 63
const UNQUOTED = /^[A-Za-z_][A-Za-z0-9_$]*/
const PLAIN = /^[a-z_][a-z0-9_]*$/

/** `orders`, `app.orders`, `app."LineItems"`, `"My Schema"."a.b"`. Anything else (`;`, spaces, three parts) throws. */
export function parseTableName(input: string): TableName {
  const parts: string[] = []
  let rest = input
  for (;;) {
    if (rest.startsWith('"')) {
      let part = ''
      let i = 1
      for (;;) {
        const q = rest.indexOf('"', i)
        if (q < 0) throw new TableNameError(input, 'a quoted part is not closed')
        part += rest.slice(i, q)
        if (rest[q + 1] === '"') {
          part += '"'
          i = q + 2
          continue
        }
        rest = rest.slice(q + 1)
        break
      }
      if (part === '') throw new TableNameError(input, 'a quoted part is empty')
      parts.push(part)
    } else {
      const m = UNQUOTED.exec(rest)
      if (!m) {
        throw new TableNameError(input, rest === '' ? 'a part is empty' : `unexpected ${JSON.stringify(rest[0])}; quote names with other characters ("My Table")`)
      }
      parts.push(m[0].toLowerCase())
      rest = rest.slice(m[0].length)
    }
    if (parts.at(-1)!.includes('\u0000')) throw new TableNameError(input, 'NUL is not allowed')
    if (new TextEncoder().encode(parts.at(-1)!).length > MAX_IDENTIFIER_BYTES) {
      throw new TableNameError(input, `a part is longer than ${MAX_IDENTIFIER_BYTES} bytes`)
    }
    if (rest === '') break
    if (!rest.startsWith('.')) throw new TableNameError(input, `unexpected ${JSON.stringify(rest[0])} after ${JSON.stringify(parts.at(-1))}`)
    rest = rest.slice(1)
    if (parts.length === 2) throw new TableNameError(input, 'expected [schema.]table (a database name is not allowed)')
  }
  return parts.length === 1 ? { schema: 'public', name: parts[0]! } : { schema: parts[0]!, name: parts[1]! }
}

function quotePart(part: string): string {
  return PLAIN.test(part) ? part : `"${part.replaceAll('"', '""')}"`
}

/** The canonical name: the envelope's aggregate type, the history route's `:table`, the key of cdc.tracked. */
export function qualifiedName(t: TableName): string {
  return t.schema === 'public' ? quotePart(t.name) : `${quotePart(t.schema)}.${quotePart(t.name)}`
}

/** Parses any spelling and returns the canonical one. */
export function canonicalName(input: string): string {
  return qualifiedName(parseTableName(input))
}

/**
 * The name inside Kafka topics and MongoDB collection names (`{table}` of kafka.topicTemplate, `<table>_history`):
 * letters, digits and `_` stay, the schema is joined by `.`, every other byte becomes `-XX` (hex). Injective, so two
 * tables never share a topic or a collection; a public lower-case table keeps its plain name (`customers`).
 */
export function storageName(t: TableName): string {
  const encode = (part: string) =>
    [...new TextEncoder().encode(part)]
      .map((b) => (/[A-Za-z0-9_]/.test(String.fromCharCode(b)) && b < 128 ? String.fromCharCode(b) : `-${b.toString(16).toUpperCase().padStart(2, '0')}`))
      .join('')
  return t.schema === 'public' ? encode(t.name) : `${encode(t.schema)}.${encode(t.name)}`
}

// The relay and the consumer ask for every event; the tables are few (bounded anyway: types come from messages too).
const storageNames = new Map<string, string>()

/** storageName of a canonical aggregate type (events carry the canonical name). */
export function storageNameOf(aggregateType: string): string {
  let name = storageNames.get(aggregateType)
  if (name === undefined) {
    name = storageName(parseTableName(aggregateType))
    if (storageNames.size >= 1000) storageNames.clear()
    storageNames.set(aggregateType, name)
  }
  return name
}

/** Singular PascalCase of a table name, the stem of its default event types: order_lines → OrderLine. */
export function aggregateName(t: TableName): string {
  const words = t.name.split(/[^A-Za-z0-9]+/).filter(Boolean)
  const last = words.pop()
  if (last === undefined) return 'Row'
  words.push(singular(last))
  const name = words.map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('')
  // Event types are PascalCase ASCII starting with a letter.
  return /^[A-Z]/.test(name) ? name.slice(0, 80) : `Row${name}`.slice(0, 80)
}

function singular(word: string): string {
  if (/[^aeiou]ies$/i.test(word)) return `${word.slice(0, -3)}y`
  if (/(ss|x|z|ch|sh|us)es$/i.test(word)) return word.slice(0, -2)
  if (/[^s]s$/i.test(word)) return word.slice(0, -1)
  return word
}

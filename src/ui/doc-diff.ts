// The structured difference of two nested values (a row's JSON columns, an aggregate's document with its lines):
// objects compared field by field (leaf paths like `product.price`), arrays of objects matched item by item by their
// key (`id`, `key`, … when every item has a distinct one, else by position), so a reader sees which line was added,
// removed or changed and which of its fields, instead of two JSON texts.

export type Status = 'same' | 'changed' | 'added' | 'removed'
export interface Leaf {
  kind: 'leaf'
  path: string
  status: Status
  before: unknown
  after: unknown
}
export interface List {
  kind: 'list'
  path: string
  status: Status
  /** The field the items were matched by, or null (by position). */
  key: string | null
  items: Item[]
}
export interface Item {
  /** The item's key value (or its 1-based position). */
  label: string
  status: Status
  entries: Entry[]
}
export type Entry = Leaf | List

/** Fields that identify an item of a list, in order of preference. */
const KEYS = ['id', 'key', 'code', 'sku', 'uuid', 'name']
const MAX_DEPTH = 6

type Obj = Record<string, unknown>
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const isObjectList = (v: unknown): v is Obj[] => Array.isArray(v) && v.length > 0 && v.every(isObject)

/** Whether a value is shown as a structure rather than as one value (an object, or a list of objects). */
export function isNested(v: unknown): boolean {
  return isObject(v) || isObjectList(v)
}

function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((x, i) => equal(x, (b as unknown[])[i]))
  const ka = Object.keys(a as Obj)
  const kb = Object.keys(b as Obj)
  return ka.length === kb.length && ka.every((k) => k in (b as Obj) && equal((a as Obj)[k], (b as Obj)[k]))
}

function statusOf(before: unknown, after: unknown): Status {
  if (before === undefined && after !== undefined) return 'added'
  if (after === undefined && before !== undefined) return 'removed'
  return equal(before, after) ? 'same' : 'changed'
}

/** The entries of `before` → `after` under `path` (undefined: absent on that side). */
export function diffValue(path: string, before: unknown, after: unknown, depth = 0): Entry[] {
  const nestedSide = (v: unknown) => v === undefined || v === null || isObject(v)
  if (depth < MAX_DEPTH && (isObject(before) || isObject(after)) && nestedSide(before) && nestedSide(after)) {
    const b = isObject(before) ? before : undefined
    const a = isObject(after) ? after : undefined
    const keys = [...new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})])]
    return keys.flatMap((k) => diffValue(path ? `${path}.${k}` : k, b?.[k], a?.[k], depth + 1))
  }
  const listSide = (v: unknown) => v === undefined || v === null || (Array.isArray(v) && v.every(isObject))
  if (depth < MAX_DEPTH && (isObjectList(before) || isObjectList(after)) && listSide(before) && listSide(after)) {
    return [diffList(path, (before ?? []) as Obj[], (after ?? []) as Obj[], depth)]
  }
  return [{ kind: 'leaf', path, status: statusOf(before, after), before, after }]
}

function keyOf(before: Obj[], after: Obj[]): string | null {
  for (const k of KEYS) {
    const unique = (items: Obj[]) => {
      const values = items.map((i) => i[k])
      return values.every((v) => typeof v === 'string' || typeof v === 'number') && new Set(values.map(String)).size === values.length
    }
    if (unique(before) && unique(after)) return k
  }
  return null
}

function diffList(path: string, before: Obj[], after: Obj[], depth: number): List {
  const key = keyOf(before, after)
  const id = (item: Obj, i: number) => (key ? String(item[key]) : `#${i + 1}`)
  const old = new Map(before.map((item, i) => [id(item, i), item]))
  const items: Item[] = after.map((item, i) => {
    const label = id(item, i)
    const prev = old.get(label)
    old.delete(label)
    const entries = diffValue('', prev, item, depth + 1)
    return { label, status: prev === undefined ? 'added' : entries.every((e) => e.status === 'same') ? 'same' : 'changed', entries }
  })
  for (const [label, item] of old) items.push({ label, status: 'removed', entries: diffValue('', item, undefined, depth + 1) })
  const status: Status = items.every((i) => i.status === 'same') && before.length === after.length ? 'same' : 'changed'
  return { kind: 'list', path, status, key, items }
}

// The structured diff behind the console's nested values: lists matched by key (or position), items added, removed
// or changed with the paths that changed, nested objects flattened to leaf paths.
import { expect, test } from 'bun:test'
import { diffValue, type List } from '../../src/ui/doc-diff.ts'

const line = (id: number, quantity: number, name = 'Hammer') => ({ id, quantity, product: { name, price: 9.5 } })

test('lines matched by id: which line was added, removed, changed, and which field', () => {
  const [list] = diffValue('', [line(1, 2), line(2, 1)], [line(2, 3, 'Big hammer'), line(3, 1)]) as List[]
  expect(list!.key).toBe('id')
  expect(list!.items.map((i) => [i.label, i.status])).toEqual([['2', 'changed'], ['3', 'added'], ['1', 'removed']])
  const changed = list!.items[0]!.entries.filter((e) => e.status !== 'same')
  expect(changed).toEqual([
    { kind: 'leaf', path: 'quantity', status: 'changed', before: 1, after: 3 },
    { kind: 'leaf', path: 'product.name', status: 'changed', before: 'Hammer', after: 'Big hammer' },
  ])
  expect(list!.items[1]!.entries.every((e) => e.status === 'added')).toBe(true)
})

test('without a distinct key, items are matched by position; an unchanged list is "same"', () => {
  const [byPosition] = diffValue('', [{ a: 1 }, { a: 1 }], [{ a: 1 }, { a: 2 }]) as List[]
  expect(byPosition!.key).toBeNull()
  expect(byPosition!.items.map((i) => [i.label, i.status])).toEqual([['#1', 'same'], ['#2', 'changed']])
  const [same] = diffValue('', [line(1, 1)], [line(1, 1)]) as List[]
  expect(same!.status).toBe('same')
})

test('an object column flattens to leaf paths; scalars and scalar arrays stay one leaf', () => {
  expect(diffValue('', { street: 'Old', geo: { lat: 1 } }, { street: 'New', geo: { lat: 1 } }).map((e) => [e.path, e.status])).toEqual([
    ['street', 'changed'],
    ['geo.lat', 'same'],
  ])
  expect(diffValue('tags', ['a'], ['a', 'b'])).toEqual([{ kind: 'leaf', path: 'tags', status: 'changed', before: ['a'], after: ['a', 'b'] }])
})

// tx.size as the publisher sets it: counted per tx.id over a batch of whole transactions, spliced into both envelope
// spellings (jsonb text and cdc.envelope's compact text) without touching anything else, parsed for any other one.
import { expect, test } from 'bun:test'
import type { Outgoing } from '../../src/relay/publish.ts'
import { withTxSizes } from '../../src/relay/tx-size.ts'

const out = (value: string): Outgoing => ({ eventId: 'e', aggregateType: 'a', aggregateId: '1', version: 1, type: 'T', value })

test('sizes per transaction, in both spellings, other fields byte for byte', () => {
  const jsonb = '{"id": "x", "op": "c", "tx": {"id": "740", "index": 0}, "after": {"note": "\\"tx\\": {\\"id\\": \\"9\\""}}'
  const compact = '{"id":"y","type":"A","op":"c","tx":{"id":"740","index":1},"schema":1}'
  const other = '{"id":"z","tx":{"id":"741","index":0},"schema":1}'
  const [a, b, c] = withTxSizes([out(jsonb), out(compact), out(other)]).map((e) => e.value)
  expect(a).toBe(jsonb.replace('"index": 0}', '"index": 0, "size": 2}'))
  expect(b).toBe(compact.replace('"index":1}', '"index":1,"size":2}'))
  expect(JSON.parse(c!).tx).toEqual({ id: '741', index: 0, size: 1 })
})

test('an envelope in another key order, or already sized, is parsed and gets the count', () => {
  const [a, b] = withTxSizes([out('{"tx":{"index":0,"id":"5"},"x":1}'), out('{"tx":{"id":"5","index":1,"size":9}}')]).map((e) => JSON.parse(e.value))
  expect(a).toEqual({ tx: { index: 0, id: '5', size: 2 }, x: 1 })
  expect(b.tx).toEqual({ id: '5', index: 1, size: 2 })
})

test('a value that is no envelope with a transaction is published as it is (the relay never stops on it)', () => {
  const values = ['{"id":"x","type":"CustomerVipGranted"}', 'not json', '{"tx":null}', '{"tx":{"id":7}}']
  expect(withTxSizes(values.map(out)).map((e) => e.value)).toEqual(values)
})

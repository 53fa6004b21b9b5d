// Each real server, reached through the project's own client modules.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createTestEnv, eventually, type TestEnv } from '../support/env.ts'
import { StoreError } from '../../src/clients/mongo.ts'
import { DEFAULT_MAX_SEND_BYTES, partitionOf, sendChunks, type InMessage } from '../../src/clients/kafka.ts'

let env: TestEnv
beforeAll(async () => {
  env = await createTestEnv()
})
afterAll(async () => {
  await env.cleanup()
})

describe('postgres', () => {
  test('a parameterised query', async () => {
    const rows = await env.rt.db().query<{ sum: number; text: string }>('select $1::int + $2::int as sum, $3::text as text', [2, 3, "it's; drop table x"])
    expect(rows).toEqual([{ sum: 5, text: "it's; drop table x" }])
  })

  test('a transaction rolls back on throw', async () => {
    const db = env.rt.db()
    await db.query('create table t (id int primary key)')
    await expect(
      db.begin(async (tx) => {
        await tx.query('insert into t values (1)')
        throw new Error('boom')
      }),
    ).rejects.toThrow('boom')
    expect(await db.query('select * from t')).toEqual([])
  })

  test('a transaction whose connection dies rejects, and the connection serves the next query', async () => {
    // postgres.js 3.4.9 without patches/: begin()'s own ROLLBACK on the dead connection threw from a timer (process
    // crash), and the connection then never connected again (CONNECT_TIMEOUT on every later use).
    const { connect } = await import('../../src/clients/postgres.ts')
    const db = connect({ url: env.config.postgres.url, max: 1 })
    let pid: number | undefined
    const tx = db.begin(async (t) => {
      pid = (await t.query<{ pid: number }>('select pg_backend_pid() as pid'))[0]!.pid
      await t.query('select pg_sleep(5)')
    })
    await eventually(async () => pid !== undefined, 5000)
    await env.rt.db().query('select pg_terminate_backend($1)', [pid])
    await expect(tx).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' })
    expect(await db.query('select 1 as one')).toEqual([{ one: 1 }])
    await db.end()
  })

  test('a connection the network drops mid-query rejects its queries: none waits for good', async () => {
    // Bun's net.Socket can end without ever emitting 'close'; postgres.js without patches/ then left the queries of
    // that connection (and, once every connection was caught, the whole pool) waiting for good: a logical relay cut
    // off from PostgreSQL stopped publishing. Six writers share four connections through a proxy cut again and again.
    const { connect } = await import('../../src/clients/postgres.ts')
    const { startProxy } = await import('../../bench/tcp-proxy.ts')
    const url = new URL(env.config.postgres.url)
    const proxy = startProxy({ host: url.hostname, port: Number(url.port) })
    url.port = String(proxy.port)
    const db = connect({ url: url.toString(), max: 4 })
    const pending = new Map<number, number>()
    let settled = 0
    let running = true
    let next = 0
    const worker = async () => {
      while (running) {
        const id = next++
        pending.set(id, Date.now())
        await db.query('select $1::int + 1 as x', [id]).catch(() => Bun.sleep(20))
        pending.delete(id)
        settled++
      }
    }
    const workers = Array.from({ length: 6 }, worker)
    try {
      for (let cut = 0; cut < 12; cut++) {
        await Bun.sleep(300 + ((cut * 137) % 500))
        await proxy.cut(200 + ((cut * 89) % 400))
      }
      running = false
      // every query settles well within the server's answer time once the cuts end
      const settledAll = await Promise.race([Promise.all(workers).then(() => true), Bun.sleep(15_000).then(() => false)])
      expect({ settledAll, waiting: [...pending.values()].map((at) => Date.now() - at) }).toEqual({ settledAll: true, waiting: [] })
      expect(settled).toBeGreaterThan(100)
    } finally {
      running = false
      await db.end(1)
      proxy.close()
    }
  }, 60_000)

  test('LISTEN/NOTIFY round trip', async () => {
    const db = env.rt.db()
    const got: string[] = []
    const { unlisten } = await db.listen('cdc_test', (payload) => got.push(payload))
    await db.query("select pg_notify('cdc_test', $1)", ['hello'])
    await eventually(async () => got.length === 1, 5000)
    expect(got).toEqual(['hello'])
    await unlisten()
  })

  test('the server runs with wal_level=logical', async () => {
    const [row] = await env.rt.db().query<{ wal_level: string }>('show wal_level')
    expect(row!.wal_level).toBe('logical')
  })
})

describe('kafka', () => {
  test('idempotent send, committed and aborted transactions, read_committed group with manual commits', async () => {
    const kafka = env.rt.kafka()
    const topic = `${env.tag}.foundation`
    await kafka.ensureTopics([{ topic, partitions: 1, replicationFactor: 1 }])
    await kafka.ensureTopics([{ topic, partitions: 1, replicationFactor: 1 }]) // idempotent
    expect(await kafka.listTopics()).toContain(topic)

    const producer = await kafka.producer()
    await producer.send([{ topic, key: 'a', value: 'plain', headers: { 'cdc-event-id': '1' } }])

    const tx = await kafka.transactionalProducer(`${env.tag}-tx`)
    await tx.sendInTransaction([
      { topic, key: 'a', value: 'committed-1' },
      { topic, key: 'b', value: 'committed-2' },
    ])
    // Written to the log, then aborted: read_committed consumers never see it.
    await expect(
      tx.sendInTransaction([{ topic, key: 'a', value: 'aborted' }], async () => {
        throw new Error('lost leadership')
      }),
    ).rejects.toThrow('lost leadership')
    await tx.sendInTransaction([{ topic, key: 'c', value: 'committed-3' }])

    const seen: InMessage[] = []
    const consumer = await kafka.consumer({ groupId: `${env.tag}-g`, topics: [topic] })
    await consumer.run(async (batch) => {
      seen.push(...batch.messages)
      const last = batch.messages.at(-1)
      if (last) await consumer.commit([{ topic, partition: batch.partition, offset: String(Number(last.offset) + 1) }])
    })
    await eventually(async () => seen.length >= 4, 20_000)
    await Bun.sleep(500)
    await consumer.stop()
    expect(seen.map((m) => m.value?.toString())).toEqual(['plain', 'committed-1', 'committed-2', 'committed-3'])
    expect(seen[0]!.headers['cdc-event-id']).toBe('1')
    // The commit moves past the last message and past the transaction marker after it: a caught-up group has lag 0.
    const [lag] = await kafka.lag(`${env.tag}-g`, topic)
    expect(lag!.committed).toBeGreaterThan(Number(seen.at(-1)!.offset))
    expect(lag!.end - lag!.committed).toBe(0)
    await producer.disconnect()
    await tx.disconnect()
  })

  test("a keyed message's partition is the Java client's: murmur2 as in Kafka's own test vectors (kafkajs patched to 32-bit arithmetic)", () => {
    // org.apache.kafka.common.utils.UtilsTest#testMurmur2: the hash of each key; the partition is its positive part
    // modulo the count (997 here, so that most of the hash shows)
    const javaHashes: Record<string, number> = {
      '21': -973932308,
      foobar: -790332482,
      'a-little-bit-long-string': -985981536,
      'a-little-bit-longer-string': -1486304829,
      lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8: -58897971,
      abc: 479470107,
    }
    for (const [key, hash] of Object.entries(javaHashes)) {
      expect(partitionOf('any', key, 997)).toBe((hash & 0x7fffffff) % 997)
      expect(partitionOf('any', key, 3)).toBe((hash & 0x7fffffff) % 3)
    }
  })

  test("kafkajs' patched encoder writes the bytes the original wrote: a produce request of every record shape, and CRC-32C's check value", async () => {
    type Encode = (spec: unknown) => { encode(): Promise<{ buffer: Buffer }> }
    const Request = require('kafkajs/src/protocol/requests/produce/v3/request.js') as Encode
    const Long = require('kafkajs/src/utils/long') as { fromInt(n: number): unknown }
    const crc32C = require('kafkajs/src/protocol/recordBatch/crc32C/index.js') as (b: Buffer) => number
    expect(crc32C(Buffer.from('123456789'))).toBe(0xe3069283)
    // A lone surrogate is U+FFFD's 3 bytes, its length counted so: Bun's Buffer.byteLength counts 2 on some CPUs (and
    // Buffer#write writes nothing of '\uD800' alone), which cut the string short or left old buffer bytes in it.
    const Encoder = require('kafkajs/src/protocol/encoder.js') as new () => { writeVarIntString(s: string): { buffer: Buffer } }
    expect(new Encoder().writeVarIntString('\uD800').buffer.toString('hex')).toBe('06efbfbd')
    for (const text of ['a\uD800b', '\uDC00', '\uD800\uD800', 'é\uD800', `${'x'.repeat(40)}\uDFFF`]) {
      const utf8 = Buffer.from(text.toWellFormed())
      expect([text, new Encoder().writeVarIntString(text).buffer.subarray(1).toString('hex')]).toEqual([text, utf8.toString('hex')])
    }
    const request = Request({
      acks: -1,
      timeout: 30000,
      transactionalId: 'tx',
      producerId: Long.fromInt(7),
      producerEpoch: 1,
      topicData: [
        {
          topic: 't',
          partitions: [
            {
              partition: 0,
              firstSequence: 3,
              messages: [
                { key: 'k', value: 'é'.repeat(300), headers: { 'cdc-event-id': 'e1', multi: ['a', 'b'] }, timestamp: '1764000000000' },
                { key: null, value: null, headers: {}, timestamp: '1764000000001' },
                { key: 'k2', value: Buffer.from('bytes'), timestamp: '1764000000002' },
              ],
            },
            { partition: 2, firstSequence: 0, messages: [{ key: '🙂', value: 'x'.repeat(70000), timestamp: '1764000000003' }] },
          ],
        },
      ],
    })
    // (the unpatched kafkajs 2.2.4 encoded this request to these 70,837 bytes)
    const bytes = (await request.encode()).buffer
    expect(bytes.length).toBe(70837)
    expect(new Bun.CryptoHasher('sha256').update(bytes).digest('hex')).toBe('8a00d2856ec2c9d5c407ca8feef1d6fd392ecebf82f62572caef479fbbaccd28')
  })

  test('a lone surrogate in a key, value or header reaches the broker as U+FFFD, the rest of the string whole', async () => {
    const kafka = env.rt.kafka()
    const topic = `${env.tag}.surrogates`
    await kafka.ensureTopics([{ topic, partitions: 1, replicationFactor: 1 }])
    const producer = await kafka.producer()
    await producer.send([{ topic, key: 'k\uD800ey', value: 'va\uDC00lue', headers: { 'x-h': 'he\uD800ader' } }])
    await producer.disconnect()
    const seen: InMessage[] = []
    const consumer = await kafka.consumer({ groupId: `${env.tag}-surrogates`, topics: [topic], fromBeginning: true })
    void consumer.run(async (batch) => {
      seen.push(...batch.messages)
    })
    await eventually(async () => seen.length >= 1, 30_000)
    await consumer.stop()
    expect([seen[0]!.key, seen[0]!.value!.toString(), seen[0]!.headers['x-h']]).toEqual(['k\uFFFDey', 'va\uFFFDlue', 'he\uFFFDader'])
  })

  test('a transaction is packed into requests per partition: 3 MB over 3 partitions in few requests, each partition under the limit', async () => {
    const kafka = env.rt.kafka()
    const topic = `${env.tag}.packed`
    await kafka.ensureTopics([{ topic, partitions: 3, replicationFactor: 1 }])
    const messages = Array.from({ length: 3000 }, (_, i) => ({ topic, key: `k${i}`, value: 'x'.repeat(1000) }))
    // One 1 MB request per partition's worth, not one per megabyte overall; one key: all in one partition.
    const counts = new Map([[topic, 3]])
    expect(sendChunks(messages, DEFAULT_MAX_SEND_BYTES, counts).length).toBeLessThanOrEqual(2)
    expect(sendChunks(messages, DEFAULT_MAX_SEND_BYTES).length).toBeGreaterThanOrEqual(3)
    expect(sendChunks(messages.map((m) => ({ ...m, key: 'same' })), DEFAULT_MAX_SEND_BYTES, counts).length).toBeGreaterThanOrEqual(3)
    const tx = await kafka.transactionalProducer(`${env.tag}-packed`)
    await tx.sendInTransaction(messages)
    await tx.disconnect()
    // The broker took it, and put every message where partitionOf says (the packing's premise).
    const seen: (InMessage & { partition: number })[] = []
    const consumer = await kafka.consumer({ groupId: `${env.tag}-packed`, topics: [topic], fromBeginning: true })
    void consumer.run(async (batch) => {
      seen.push(...batch.messages.map((m) => ({ ...m, partition: batch.partition })))
    })
    await eventually(async () => seen.length >= 3000, 30_000)
    await consumer.stop()
    expect(seen.filter((m) => m.partition !== partitionOf(topic, m.key!, 3)).length).toBe(0)
  })
})

describe('mongo', () => {
  test('a unique index makes a duplicate insert fail with code 11000, reported per document', async () => {
    const store = await env.rt.mongo()
    const c = store.collection('things')
    await c.createIndexes([{ key: { k: 1 }, name: 'k_unique', unique: true }])
    expect(await c.insertMany([{ _id: 'a', k: 1 }, { _id: 'b', k: 2 }])).toEqual({ inserted: 2, duplicates: [] })
    const again = await c.insertMany([{ _id: 'c', k: 3 }, { _id: 'd', k: 1 }, { _id: 'a', k: 9 }])
    expect(again).toEqual({ inserted: 1, duplicates: [1, 2] })
    expect(await c.count()).toBe(3)
  })

  test('upsert only by a newer version', async () => {
    const store = await env.rt.mongo()
    const c = store.collection('state')
    const up = (version: number) => ({
      updateOne: { filter: { _id: 'x', version: { $lt: version } }, update: { $set: { version } }, upsert: true },
    })
    await c.bulkWrite([up(2)])
    const r = await c.bulkWrite([up(1)]) // older: the upsert collides with the existing _id
    expect(r.duplicates).toEqual([0])
    expect((await c.findOne({ _id: 'x' }))?.version).toBe(2)
  })

  test('a bulk write with more matched updates than FerretDB has pooled connections completes', async () => {
    // In one `update` command they would wedge FerretDB 1.24 for good (see UPDATES_PER_COMMAND).
    const store = await env.rt.mongo()
    const c = store.collection('many')
    const n = 120
    await c.insertMany(Array.from({ length: n }, (_, i) => ({ _id: `m${i}`, version: 1 })))
    const ops = Array.from({ length: n }, (_, i) => ({ updateOne: { filter: { _id: `m${i}`, version: 1 }, update: { $set: { version: 2 } } } }))
    expect(await c.bulkWrite([{ insertOne: { document: { _id: 'm0', version: 9 } } }, ...ops])).toEqual({ duplicates: [0], matched: n })
    expect(await c.count({ version: 2 })).toBe(n)
  })

  test('an unreachable server is a transient StoreError', async () => {
    const { connectMongo } = await import('../../src/clients/mongo.ts')
    const error = await connectMongo({ url: 'mongodb://127.0.0.1:1', database: 'x', serverSelectionTimeoutMs: 300 }).catch((e) => e)
    expect(error).toBeInstanceOf(StoreError)
    expect((error as StoreError).transient).toBe(true)
  })
})

// MongoDB over TLS against a real TLS server: the stack's FerretDB binary started here with only a TLS listener, on a
// CA and server certificate this test makes (like tls.test.ts does for PostgreSQL). The pipeline's MongoDB client
// (src/clients/mongo.ts with mongo.tls from the config) verifies the server against the CA; a wrong CA and a plain
// connection fail with a clear error; the consumer writes the history through it.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { mkdirSync } from 'node:fs'
import { connectMongo } from '../../src/clients/mongo.ts'
import { securityOf } from '../../src/clients/security.ts'
import { loadConfig, type Config } from '../../src/config.ts'
import { startConsumer } from '../../src/consume/index.ts'
import { startRelay } from '../../src/relay/index.ts'
import type { Role } from '../../src/runtime.ts'
import { ROOT, createTestEnv, eventually, type TestEnv } from '../support/env.ts'
import { freePort } from '../support/ops.ts'
import { stackConfigEnv } from '../support/stack-env.ts'
import { cleanupEnv, newWritten, prepareDb, writeTx } from '../relay/support.ts'

const dir = `/tmp/cdc-mongotls-${process.pid}`
const port = freePort()
const url = `mongodb://127.0.0.1:${port}`
const base = await loadConfig({ path: `${ROOT}cdc.toml`, env: stackConfigEnv() })
let server: ReturnType<typeof Bun.spawn> | undefined

function openssl(...args: string[]) {
  const r = Bun.spawnSync(['openssl', ...args], { cwd: dir, stderr: 'pipe' })
  if (r.exitCode !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr.toString()}`)
}

/** The path of the stack's FerretDB binary (built by `stack.sh up`, which the test preload ran). */
function ferretdbBinary(): string {
  const env = Bun.spawnSync(['bash', `${ROOT}test/stack/stack.sh`, 'env'], { stdout: 'pipe' }).stdout.toString()
  const bin = /CDC_STACK_FERRETDB_BIN='([^']+)'/.exec(env)?.[1]
  if (!bin) throw new Error('stack.sh env names no FerretDB binary')
  return bin
}

beforeAll(async () => {
  mkdirSync(`${dir}/data`, { recursive: true })
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=cdc-test-mongo-ca', '-keyout', 'ca.key', '-out', 'ca.crt')
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=other-ca', '-keyout', 'other.key', '-out', 'other.crt')
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'server.key', '-out', 'server.csr')
  await Bun.write(`${dir}/server.ext`, 'subjectAltName=IP:127.0.0.1\n')
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'server.ext', '-out', 'server.crt')
  server = Bun.spawn(
    [ferretdbBinary(), '-listen=', `-listen-tls=127.0.0.1:${port}`, `-listen-tls-cert-file=${dir}/server.crt`, `-listen-tls-key-file=${dir}/server.key`, '-handler=sqlite', `-dir=${dir}/data`],
    { stdout: 'ignore', stderr: Bun.file(`${dir}/ferretdb.log`) },
  )
  await eventually(async () => {
    const socket = await Bun.connect({ hostname: '127.0.0.1', port, socket: { data() {} } }).catch(() => undefined)
    socket?.end()
    return socket !== undefined
  }, 20_000, 100)
})

afterAll(() => {
  server?.kill()
  Bun.spawnSync(['rm', '-rf', dir])
})

const tlsConfig = (ca: string, verifyHostname = true): Config => {
  const c = structuredClone(base)
  c.mongo.url = url
  c.mongo.tls = { enabled: true, ca: `${dir}/${ca}`, verifyHostname }
  return c
}

async function reach(config: Config) {
  const store = await connectMongo({ url: config.mongo.url, database: `tls${process.pid}`, security: securityOf(config).mongo, serverSelectionTimeoutMs: 4000 })
  try {
    const c = store.collection('probe')
    await c.insertMany([{ _id: `p${Date.now()}`, at: new Date().toISOString() }])
    return (await c.find({})).length
  } finally {
    await store.close()
  }
}

test('the CA that signed the server verifies it (host name checked): reads and writes work', async () => {
  expect(await reach(tlsConfig('ca.crt'))).toBeGreaterThan(0)
}, 30_000)

test('another CA is refused with a certificate error; a plain connection to the TLS port gets nowhere', async () => {
  const wrong = await reach(tlsConfig('other.crt')).then(
    () => 'connected',
    (error: Error) => error.message,
  )
  expect(wrong).toMatch(/certificate|self.signed|verify/i)
  const plain = structuredClone(base)
  plain.mongo.url = url
  expect(await reach(plain).then(() => 'connected', () => 'refused')).toBe('refused')
}, 60_000)

test('the consumer writes the history through TLS', async () => {
  let env: TestEnv | undefined
  const roles: Role[] = []
  try {
    env = await createTestEnv((c) => {
      c.mongo.url = url
      c.mongo.tls = { enabled: true, ca: `${dir}/ca.crt`, verifyHostname: true }
    })
    await prepareDb(env)
    roles.push(await startRelay(env.rt, { mode: 'poll' }))
    roles.push(await startConsumer(env.rt))
    const written = newWritten()
    for (let i = 0; i < 4; i++) await writeTx(env.rt.db(), written, [`mtls${i % 2}`])
    const store = await env.rt.mongo()
    await eventually(async () => (await store.collection('customers_history').find({})).length === 4, 60_000, 250)
  } finally {
    for (const r of roles.reverse()) await r.stop()
    if (env) await cleanupEnv(env)
  }
}, 120_000)

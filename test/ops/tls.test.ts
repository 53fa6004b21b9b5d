// TLS and authentication against real servers: the stack's Kafka has a SASL_SSL listener (PLAIN, SCRAM-SHA-256/512)
// and a TLS listener that requires a client certificate (certificates made by stack.sh with openssl); this test makes
// its own CA for PostgreSQL and turns `ssl = on`. The relay and the consumer then run through both.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { chmodSync, chownSync, mkdirSync } from 'node:fs'
import { createKafka } from '../../src/clients/kafka.ts'
import { connect } from '../../src/clients/postgres.ts'
import { securityOf } from '../../src/clients/security.ts'
import { ConfigError, loadConfig, type Config } from '../../src/config.ts'
import { startConsumer } from '../../src/consume/index.ts'
import { startRelay } from '../../src/relay/index.ts'
import type { Role } from '../../src/runtime.ts'
import { ROOT, createTestEnv, eventually, type TestEnv } from '../support/env.ts'
import { stackConfigEnv } from '../support/stack-env.ts'
import { cleanupEnv, newWritten, prepareDb, writeTx } from '../relay/support.ts'

const stackDir = process.env.CDC_STACK_DIR ?? `${ROOT}.stack`
const kafkaTls = `${stackDir}/kafka/tls`
const kafkaPort = Number(process.env.CDC_STACK_KAFKA_PORT ?? 19092)
const saslSsl = `127.0.0.1:${process.env.CDC_STACK_KAFKA_SASL_SSL_PORT ?? kafkaPort + 2}`
const mtls = `127.0.0.1:${process.env.CDC_STACK_KAFKA_MTLS_PORT ?? kafkaPort + 3}`
const pgTls = `/tmp/cdc-pgtls-${process.pid}`
const base = await loadConfig({ path: `${ROOT}cdc.toml`, env: stackConfigEnv() })
const admin = connect({ url: base.postgres.url, max: 1 })

function openssl(...args: string[]) {
  const r = Bun.spawnSync(['openssl', ...args], { cwd: pgTls, stderr: 'pipe' })
  if (r.exitCode !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr.toString()}`)
}

/** A CA and a server certificate for 127.0.0.1, owned by the server's user (PostgreSQL refuses a readable key). */
function makePgCertificates() {
  mkdirSync(pgTls, { recursive: true })
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=cdc-test-pg-ca', '-keyout', 'ca.key', '-out', 'ca.crt')
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=other-ca', '-keyout', 'other.key', '-out', 'other.crt')
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'server.key', '-out', 'server.csr')
  Bun.spawnSync(['bash', '-c', "printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext"], { cwd: pgTls })
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'server.ext', '-out', 'server.crt')
  chmodSync(pgTls, 0o755)
  chmodSync(`${pgTls}/server.key`, 0o600)
  if (process.getuid?.() === 0) {
    const pg = Bun.spawnSync(['id', '-u', 'postgres']).stdout.toString().trim()
    if (pg) for (const f of ['server.key', 'server.crt']) chownSync(`${pgTls}/${f}`, Number(pg), Number(pg))
  }
}

function withSecurity(edit: (c: Config) => void): Config {
  const c = structuredClone(base)
  edit(c)
  return c
}

const sasl = (mechanism: Config['kafka']['sasl']['mechanism'], password = 'cdc-secret') =>
  withSecurity((c) => {
    c.kafka.brokers = [saslSsl]
    c.kafka.tls = { enabled: true, ca: `${kafkaTls}/ca.crt`, verifyHostname: true }
    c.kafka.sasl = { mechanism, username: 'cdc', password }
  })

async function reach(config: Config) {
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'tls-test', connectionTimeoutMs: 3000, ...securityOf(config).kafka })
  try {
    await kafka.ping()
  } finally {
    await kafka.close()
  }
}

beforeAll(async () => {
  makePgCertificates()
  await admin.query(`alter system set ssl_cert_file = '${pgTls}/server.crt'`)
  await admin.query(`alter system set ssl_key_file = '${pgTls}/server.key'`)
  await admin.query(`alter system set ssl = on`)
  await admin.query('select pg_reload_conf()')
  // The reload is asynchronous: wait until a TLS connection works.
  await eventually(async () => {
    const db = connect({ url: base.postgres.url, max: 1, ssl: { rejectUnauthorized: false } })
    try {
      return (await db.query('select 1 as one')).length === 1
    } finally {
      await db.end()
    }
  }, 15_000, 250)
})

afterAll(async () => {
  // Back to the stack's plain configuration (plain connections kept working throughout: pg_hba allows both).
  for (const setting of ['ssl', 'ssl_cert_file', 'ssl_key_file']) await admin.query(`alter system reset ${setting}`)
  await admin.query('select pg_reload_conf()')
  await admin.end()
  Bun.spawnSync(['rm', '-rf', pgTls])
})

describe('Kafka over TLS', () => {
  for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512'] as const) {
    test(`SASL_SSL with ${mechanism}: connects; a wrong password is refused`, async () => {
      await reach(sasl(mechanism))
      await expect(reach(sasl(mechanism, 'wrong'))).rejects.toThrow(/SASL|auth/i)
    }, 60_000)
  }

  test('the broker certificate is checked: an unknown CA and a wrong host name are refused', async () => {
    const unknownCa = sasl('scram-sha-256')
    unknownCa.kafka.tls.ca = `${pgTls}/other.crt`
    await expect(reach(unknownCa)).rejects.toThrow()
    const wrongName = sasl('scram-sha-256')
    wrongName.kafka.tls.servername = 'not-the-broker.example'
    await expect(reach(wrongName)).rejects.toThrow()
    // The same name is accepted only when the hostname check is switched off (testing only).
    wrongName.kafka.tls.verifyHostname = false
    await reach(wrongName)
  }, 60_000)

  test('a listener that requires a client certificate: refused without one, served with one', async () => {
    const tls = (withCert: boolean) =>
      withSecurity((c) => {
        c.kafka.brokers = [mtls]
        c.kafka.tls = { enabled: true, ca: `${kafkaTls}/ca.crt`, verifyHostname: true, ...(withCert ? { cert: `${kafkaTls}/client.crt`, key: `${kafkaTls}/client.key` } : {}) }
      })
    await expect(reach(tls(false))).rejects.toThrow()
    await reach(tls(true))
  }, 60_000)
})

describe('PostgreSQL over TLS', () => {
  test('verify-full with the CA connects encrypted; another CA is refused', async () => {
    const ok = withSecurity((c) => Object.assign(c.postgres, { sslMode: 'verify-full', sslRootCert: `${pgTls}/ca.crt` }))
    const db = connect({ url: ok.postgres.url, max: 1, ssl: securityOf(ok).postgres })
    try {
      const [row] = await db.query<{ ssl: boolean }>('select ssl from pg_stat_ssl where pid = pg_backend_pid()')
      expect(row?.ssl).toBe(true)
    } finally {
      void db.end(1).catch(() => {})
    }
    const bad = withSecurity((c) => Object.assign(c.postgres, { sslMode: 'verify-ca', sslRootCert: `${pgTls}/other.crt` }))
    const refused = connect({ url: bad.postgres.url, max: 1, ssl: securityOf(bad).postgres })
    const outcome = await Promise.race([
      refused.query('select 1').then(
        () => 'connected',
        (error: Error) => `refused: ${error.message}`,
      ),
      Bun.sleep(20_000).then(() => 'no answer'),
    ])
    expect(outcome).toStartWith('refused')
    void refused.end(1).catch(() => {})
  })
})

describe('the pipeline through TLS', () => {
  let env: TestEnv
  const roles: Role[] = []
  afterAll(async () => {
    for (const r of roles.reverse()) await r.stop()
    if (env) await cleanupEnv(env)
  }, 30_000)

  test('relay and consumer over PostgreSQL verify-full and Kafka SASL_SSL (SCRAM-SHA-512): events reach the history', async () => {
    env = await createTestEnv((c) => {
      Object.assign(c.postgres, { sslMode: 'verify-full', sslRootCert: `${pgTls}/ca.crt` })
      c.kafka.brokers = [saslSsl]
      c.kafka.tls = { enabled: true, ca: `${kafkaTls}/ca.crt`, verifyHostname: true }
      c.kafka.sasl = { mechanism: 'scram-sha-512', username: 'cdc', password: 'cdc-secret' }
    })
    await prepareDb(env)
    const [row] = await env.rt.db().query<{ ssl: boolean }>('select ssl from pg_stat_ssl where pid = pg_backend_pid()')
    expect(row?.ssl).toBe(true)
    roles.push(await startRelay(env.rt, { mode: 'poll' }))
    roles.push(await startConsumer(env.rt))
    const written = newWritten()
    for (let i = 0; i < 5; i++) await writeTx(env.rt.db(), written, [`tls${i % 2}`])
    const store = await env.rt.mongo()
    await eventually(async () => (await store.collection('customers_history').find({})).length === 5, 60_000, 250)
  }, 120_000)
})

describe('security settings', () => {
  test('bad combinations and unreadable files are config errors naming the key', () => {
    const problems = (edit: (c: Config) => void) => {
      try {
        securityOf(withSecurity(edit))
        return []
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError)
        return (error as ConfigError).problems
      }
    }
    expect(problems((c) => (c.kafka.sasl = { mechanism: 'plain', username: 'u', password: 'p' }))).toEqual([
      'kafka.sasl.mechanism: "plain" sends the password in clear; set kafka.tls.enabled = true',
    ])
    expect(problems((c) => (c.kafka.tls = { enabled: true, ca: '/nonexistent/ca.pem', verifyHostname: true }))[0]).toStartWith(
      'kafka.tls.ca: cannot read "/nonexistent/ca.pem" (ENOENT)',
    )
    expect(problems((c) => (c.postgres.sslMode = 'verify-full'))[0]).toStartWith('postgres.sslRootCert: required with sslMode verify-full')
    expect(problems((c) => (c.mongo.tls = { enabled: false, ca: `${kafkaTls}/ca.crt`, verifyHostname: true }))[0]).toStartWith('mongo.tls.enabled')
  })

  test('MongoDB TLS and credentials become driver options (TLS against a real server: mongo-tls.test.ts)', () => {
    const s = securityOf(
      withSecurity((c) => {
        c.mongo.tls = { enabled: true, ca: `${kafkaTls}/ca.crt`, certificateKey: `${kafkaTls}/broker.pem`, verifyHostname: false }
        Object.assign(c.mongo, { username: 'cdc', password: 'pw', authSource: 'admin', authMechanism: 'SCRAM-SHA-256' })
      }),
    )
    expect(s.mongo).toEqual({
      tls: true,
      tlsCAFile: `${kafkaTls}/ca.crt`,
      tlsCertificateKeyFile: `${kafkaTls}/broker.pem`,
      tlsAllowInvalidHostnames: true,
      auth: { username: 'cdc', password: 'pw' },
      authSource: 'admin',
      authMechanism: 'SCRAM-SHA-256',
    })
  })
})

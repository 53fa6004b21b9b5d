// TLS and authentication settings of cdc.toml turned into what each driver takes. PEM files are read once, at start:
// a missing or unreadable file is a config error naming its key (exit 2), not a connection failure later.
import { readFileSync } from 'node:fs'
import { checkServerIdentity, type ConnectionOptions } from 'node:tls'
import { ConfigError, type Config } from '../config.ts'

export interface KafkaSecurity {
  ssl?: ConnectionOptions | boolean
  sasl?:
    | { mechanism: 'plain'; username: string; password: string }
    | { mechanism: 'scram-sha-256'; username: string; password: string }
    | { mechanism: 'scram-sha-512'; username: string; password: string }
}

/** postgres.js's `ssl` option (false: plain; an object: tls.connect options). Undefined: the URL decides. */
export type PgSsl = false | 'prefer' | ConnectionOptions | undefined

export interface MongoSecurity {
  tls?: boolean
  tlsCAFile?: string
  tlsCertificateKeyFile?: string
  tlsAllowInvalidHostnames?: boolean
  auth?: { username: string; password?: string }
  authSource?: string
  authMechanism?: 'SCRAM-SHA-1' | 'SCRAM-SHA-256' | 'MONGODB-X509' | 'PLAIN'
}

export interface Security {
  kafka: KafkaSecurity
  postgres: PgSsl
  mongo: MongoSecurity
}

const skipHostname = () => undefined

export function securityOf(config: Config): Security {
  const problems: string[] = []
  const pem = (key: string, path: string | undefined) => {
    if (path === undefined) return undefined
    try {
      return readFileSync(path, 'utf8')
    } catch (error) {
      problems.push(`${key}: cannot read ${JSON.stringify(path)} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
      return undefined
    }
  }
  const exists = (key: string, path: string | undefined) => (pem(key, path) === undefined ? undefined : path)

  const { kafka, postgres: pg, mongo } = config
  const k: KafkaSecurity = {}
  const kafkaTlsSet = kafka.tls.ca ?? kafka.tls.cert ?? kafka.tls.key ?? kafka.tls.servername
  if (kafkaTlsSet && !kafka.tls.enabled) problems.push('kafka.tls.enabled: must be true when kafka.tls.ca, cert, key or servername is set')
  if (Boolean(kafka.tls.cert) !== Boolean(kafka.tls.key)) problems.push('kafka.tls.cert: a client certificate needs kafka.tls.key, and the key its certificate')
  if (kafka.tls.enabled) {
    k.ssl = {
      ca: pem('kafka.tls.ca', kafka.tls.ca),
      cert: pem('kafka.tls.cert', kafka.tls.cert),
      key: pem('kafka.tls.key', kafka.tls.key),
      servername: kafka.tls.servername,
      rejectUnauthorized: true,
      ...(kafka.tls.verifyHostname ? {} : { checkServerIdentity: skipHostname }),
    }
  }
  if (kafka.sasl.mechanism !== 'none') {
    if (!kafka.sasl.username) problems.push(`kafka.sasl.username: required with mechanism ${kafka.sasl.mechanism}`)
    if (!kafka.sasl.password) problems.push(`kafka.sasl.password: required with mechanism ${kafka.sasl.mechanism}`)
    // SASL PLAIN sends the password as is: only over TLS.
    if (kafka.sasl.mechanism === 'plain' && !kafka.tls.enabled) problems.push('kafka.sasl.mechanism: "plain" sends the password in clear; set kafka.tls.enabled = true')
    const { mechanism, username, password } = kafka.sasl
    k.sasl = { mechanism, username, password } as NonNullable<KafkaSecurity['sasl']>
  }

  let p: PgSsl
  const pgFiles = pg.sslRootCert ?? pg.sslCert ?? pg.sslKey
  if (pgFiles && (pg.sslMode === undefined || pg.sslMode === 'disable')) {
    problems.push('postgres.sslMode: set it (require, verify-ca or verify-full) to use postgres.sslRootCert, sslCert or sslKey')
  }
  if (Boolean(pg.sslCert) !== Boolean(pg.sslKey)) problems.push('postgres.sslCert: a client certificate needs postgres.sslKey, and the key its certificate')
  if ((pg.sslMode === 'verify-ca' || pg.sslMode === 'verify-full') && !pg.sslRootCert) {
    problems.push(`postgres.sslRootCert: required with sslMode ${pg.sslMode} (the CA that signed the server's certificate)`)
  }
  const client = { cert: pem('postgres.sslCert', pg.sslCert), key: pem('postgres.sslKey', pg.sslKey) }
  if (pg.sslMode === 'disable') p = false
  else if (pg.sslMode === 'prefer') p = 'prefer'
  else if (pg.sslMode === 'require') p = { rejectUnauthorized: false, ...client }
  else if (pg.sslMode === 'verify-ca') p = { ca: pem('postgres.sslRootCert', pg.sslRootCert), rejectUnauthorized: true, checkServerIdentity: skipHostname, ...client }
  else if (pg.sslMode === 'verify-full') {
    // Checked against the URL's host ourselves: under Bun, a socket upgraded to TLS (PostgreSQL's SSLRequest) is
    // checked against "localhost" whatever host it connected to.
    const host = new URL(pg.url).hostname.replace(/^\[(.*)\]$/, '$1')
    p = {
      ca: pem('postgres.sslRootCert', pg.sslRootCert),
      rejectUnauthorized: true,
      checkServerIdentity: (_ignored: string, cert) => checkServerIdentity(host, cert),
      ...client,
    }
  }

  const m: MongoSecurity = {}
  if ((mongo.tls.ca ?? mongo.tls.certificateKey) && !mongo.tls.enabled) problems.push('mongo.tls.enabled: must be true when mongo.tls.ca or certificateKey is set')
  if (mongo.tls.enabled) {
    m.tls = true
    m.tlsCAFile = exists('mongo.tls.ca', mongo.tls.ca)
    m.tlsCertificateKeyFile = exists('mongo.tls.certificateKey', mongo.tls.certificateKey)
    if (!mongo.tls.verifyHostname) m.tlsAllowInvalidHostnames = true
  }
  if (mongo.username !== undefined) m.auth = { username: mongo.username, password: mongo.password }
  else if (mongo.password !== undefined) problems.push('mongo.password: needs mongo.username')
  if (mongo.authSource !== undefined) m.authSource = mongo.authSource
  if (mongo.authMechanism !== undefined) m.authMechanism = mongo.authMechanism

  if (problems.length > 0) throw new ConfigError('security settings', problems)
  return { kafka: k, postgres: p, mongo: m }
}

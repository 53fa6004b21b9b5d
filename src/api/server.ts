// `cdc serve`: the Hono app on Bun.serve. Refuses an open API (no tokens) on a non-loopback host unless allowed.
import type { Role, Runtime } from '../runtime.ts'
import { ConfigError } from '../config.ts'
import { listDlq, redrive } from '../redrive/index.ts'
import { createApp } from './app.ts'
import type { DlqAdmin } from './env.ts'

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/

export function isLoopback(host: string) {
  return LOOPBACK.test(host)
}

export function dlqAdmin(rt: Runtime): DlqAdmin {
  return { list: (filter) => listDlq(rt, filter), redrive: (filter) => redrive(rt, filter) }
}

/** Resolves once listening; `url` is where (useful with port 0 in tests). */
export async function startApi(rt: Runtime): Promise<Role & { url: URL }> {
  const { http } = rt.config
  if (http.tokens.length === 0 && !http.allowOpenBind && !isLoopback(http.host)) {
    throw new ConfigError('http', [
      `http.host: ${JSON.stringify(http.host)} is not loopback and no http.tokens are configured; add tokens or set http.allowOpenBind = true`,
    ])
  }
  const app = createApp({ config: rt.config, log: rt.log, db: rt.db, kafka: rt.kafka, mongo: rt.mongo, tracked: rt.tracked, dlq: dlqAdmin(rt) })
  const server = Bun.serve({
    hostname: http.host,
    port: http.port,
    fetch: app.fetch,
    // Bun's own ceiling stays above http.bodyLimit so that the app answers 413 with a problem document.
    maxRequestBodySize: Math.max(http.bodyLimit * 2, 1024 * 1024),
  })
  rt.log.info('serving', { url: server.url.toString(), auth: http.tokens.length ? 'tokens' : 'open' })
  return {
    name: 'serve',
    url: server.url,
    async stop() {
      await server.stop()
    },
  }
}

// `cdc serve`: the Hono app on Bun.serve. Refuses an open API (no tokens) on a non-loopback host unless allowed.
import type { Role, Runtime } from '../runtime.ts'
import { ConfigError } from '../config.ts'
import { listDlq, redrive } from '../redrive/index.ts'
import { createApp } from './app.ts'
import type { AppDeps, DlqAdmin } from './env.ts'

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/

export function isLoopback(host: string) {
  return LOOPBACK.test(host)
}

export function dlqAdmin(rt: Runtime): DlqAdmin {
  return { list: (filter) => listDlq(rt, filter), redrive: (filter) => redrive(rt, filter) }
}

/**
 * An HTTP/1.0 request may come without Host (RFC 9112 §3.2 requires it only of HTTP/1.1, which Bun enforces); Bun
 * then hands over a URL that is only the path, which routes wrongly. Such a request is meant for the server's default
 * name: the bound address, or localhost when bound to every interface.
 */
export function withDefaultHost(req: Request, host: string, port: number): Request {
  if (!req.url.startsWith('/')) return req
  const name = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
  return new Request(`http://${name}:${port}${req.url}`, req)
}

/** Bun's idle timeout (seconds, at most 255) stays above the request deadline, so a slow request gets its 503. */
export const idleTimeoutFor = (requestTimeoutMs: number) => Math.min(255, Math.ceil(requestTimeoutMs / 1000) + 10)

/** Resolves once listening; `url` is where (useful with port 0 in tests). `deps` replaces parts of the app's deps. */
export async function startApi(rt: Runtime, deps: Partial<AppDeps> = {}): Promise<Role & { url: URL }> {
  const { http } = rt.config
  if (http.tokens.length === 0 && !http.allowOpenBind && !isLoopback(http.host)) {
    throw new ConfigError('http', [
      `http.host: ${JSON.stringify(http.host)} is not loopback and no http.tokens are configured; add tokens or set http.allowOpenBind = true`,
    ])
  }
  const app = createApp({ config: rt.config, log: rt.log, db: rt.db, kafka: rt.kafka, mongo: rt.mongo, tracked: rt.tracked, dlq: dlqAdmin(rt), ...deps })
  const server: Bun.Server<undefined> = Bun.serve({
    hostname: http.host,
    port: http.port,
    idleTimeout: idleTimeoutFor(http.requestTimeoutMs),
    fetch: (req) => app.fetch(withDefaultHost(req, http.host, server.port ?? http.port)),
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

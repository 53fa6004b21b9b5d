// healthcheck: exit 0 when a role answers ready, 1 when not. For container healthchecks: the image has no curl.
import { DEFAULT_OPS_PORT } from '../config.ts'
import { UsageError } from '../errors.ts'
import { stringFlag, type Command } from './command.ts'

export const healthcheck: Command = {
  name: 'healthcheck',
  summary: 'probe /readyz of a running role (exit 0 ready, 1 not); for container healthchecks',
  usage: '[--url URL]',
  description: `GET URL (default: http://127.0.0.1:<ops.port, or ${DEFAULT_OPS_PORT}>/readyz) and exit 0 on 200, 1 otherwise.`,
  options: { url: { type: 'string', placeholder: 'URL', description: 'what to probe (e.g. http://127.0.0.1:8080/readyz for serve)' } },
  async run(ctx) {
    const given = stringFlag(ctx, 'url')
    let url: URL
    try {
      url = new URL(given ?? `http://127.0.0.1:${ctx.rt.config.ops.port || DEFAULT_OPS_PORT}/readyz`)
    } catch {
      throw new UsageError(`--url: expected a URL, got ${JSON.stringify(given)}`, healthcheck.name)
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(5000) })
      console.log(JSON.stringify({ url: url.toString(), status: res.status }))
      return res.status === 200 ? 0 : 1
    } catch (error) {
      console.log(JSON.stringify({ url: url.toString(), error: (error as Error).message }))
      return 1
    }
  },
}

// Request validation with valibot, as tiny middleware: `c.req.valid('json' | 'query' | 'param')` is then typed from
// the schema. Bodies must be JSON (415), strict UTF-8 and well-formed (400); the size limit is checked before (413).
import type { MiddlewareHandler } from 'hono'
import * as v from 'valibot'
import { ApiError, validationError } from '../problem.ts'
import type { AppEnv } from '../env.ts'

type Target = 'json' | 'query' | 'param'
type Validated<T extends Target, S extends v.GenericSchema> = MiddlewareHandler<
  AppEnv,
  string,
  { in: { [K in T]: v.InferInput<S> }; out: { [K in T]: v.InferOutput<S> } }
>

const utf8 = new TextDecoder('utf-8', { fatal: true })

function check<S extends v.GenericSchema>(schema: S, value: unknown, prefix?: string): v.InferOutput<S> {
  const result = v.safeParse(schema, value)
  if (!result.success) throw validationError(result.issues, prefix)
  return result.output
}

export function jsonBody<S extends v.GenericSchema>(schema: S): Validated<'json', S> {
  return async function jsonBody(c, next) {
    const type = c.req.header('content-type')?.split(';')[0]?.trim().toLowerCase()
    if (type !== 'application/json') {
      throw new ApiError(415, 'unsupported-media-type', 'the request body must be application/json')
    }
    const bytes = await c.req.arrayBuffer()
    let parsed: unknown
    try {
      parsed = JSON.parse(utf8.decode(bytes))
    } catch (error) {
      const reason = error instanceof SyntaxError ? 'malformed JSON' : 'not valid UTF-8'
      throw new ApiError(400, 'malformed-body', `the request body is ${reason}`)
    }
    c.req.addValidatedData('json', check(schema, parsed) as never)
    await next()
  }
}

export function query<S extends v.GenericSchema>(schema: S): Validated<'query', S> {
  return async function query(c, next) {
    const raw = c.req.queries()
    const repeated = Object.keys(raw).filter((k) => (raw[k]?.length ?? 0) > 1)
    if (repeated.length) {
      throw new ApiError(400, 'validation', 'repeated query parameter', repeated.map((p) => ({ path: `query.${p}`, message: 'given more than once' })))
    }
    const single = Object.fromEntries(Object.entries(raw).map(([k, vals]) => [k, vals[0]]))
    c.req.addValidatedData('query', check(schema, single, 'query') as never)
    await next()
  }
}

export function params<S extends v.GenericSchema>(schema: S): Validated<'param', S> {
  return async function params(c, next) {
    c.req.addValidatedData('param', check(schema, c.req.param(), 'path') as never)
    await next()
  }
}

// RFC 9457 problem details: the one error type the API throws, and the one place that turns any error into a response.
import type { Context } from 'hono'
import * as v from 'valibot'
import { isDbError } from '../clients/postgres.ts'
import type { AppEnv } from './env.ts'

export interface FieldError {
  path: string
  message: string
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  421: 'Misdirected Request',
  422: 'Unprocessable Content',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
}

/** Thrown anywhere in a request; `onError` renders it. `type` is a stable slug clients can switch on. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly slug: string,
    detail: string,
    readonly errors?: FieldError[],
    readonly headers?: Record<string, string>,
  ) {
    super(detail)
    this.name = 'ApiError'
  }
}

export const notFound = (what: string) => new ApiError(404, 'not-found', `${what} not found`)

/** Every invalid field with its path (`lines.0.quantity`) and reason. */
export function validationError(issues: readonly v.BaseIssue<unknown>[], prefix?: string): ApiError {
  const errors = issues.map((issue) => {
    const path = v.getDotPath(issue)
    const full = [prefix, path].filter(Boolean).join('.') || '(body)'
    return { path: full, message: describe(issue) }
  })
  return new ApiError(400, 'validation', `${errors.length} invalid field${errors.length === 1 ? '' : 's'}`, errors)
}

function describe(issue: v.BaseIssue<unknown>): string {
  if (issue.type === 'strict_object' && issue.input !== undefined) return 'unknown field'
  if (issue.input === undefined && issue.kind === 'schema') return `required: expected ${issue.expected}`
  return issue.message
}

/** PostgreSQL constraint errors that bad input can still cause (races the checks cannot exclude). */
export function fromDbError(error: unknown, onForeignKey: 'missing-reference' | 'still-referenced'): ApiError | undefined {
  if (!isDbError(error)) return undefined
  if (error.code === '23505') return new ApiError(409, 'duplicate', uniqueDetail(error.constraint_name))
  if (error.code === '23503') {
    return onForeignKey === 'missing-reference'
      ? new ApiError(422, 'missing-reference', 'a referenced resource does not exist')
      : new ApiError(409, 'still-referenced', 'the resource is still referenced by others')
  }
  if (error.code === '23514' || error.code === '22003' || error.code === '23502') {
    return new ApiError(400, 'constraint', 'a value is outside what the database accepts')
  }
  return undefined
}

/** For `.catch()`: constraint errors become problems, anything else stays unexpected. */
export const rethrowDb = (onForeignKey: 'missing-reference' | 'still-referenced') => (error: unknown): never => {
  throw fromDbError(error, onForeignKey) ?? error
}

function uniqueDetail(constraint: string | undefined) {
  if (constraint?.includes('email')) return 'a customer with this email already exists'
  return 'a resource with these values already exists'
}

export function problemResponse(c: Context<AppEnv>, error: ApiError): Response {
  const body = {
    type: `https://cdc.dev/problems/${error.slug}`,
    title: TITLES[error.status] ?? 'Error',
    status: error.status,
    detail: error.message,
    instance: c.req.path,
    requestId: c.get('requestId'),
    ...(error.errors ? { errors: error.errors } : {}),
  }
  // newResponse keeps headers set earlier on the context (request id, CORS).
  return c.newResponse(JSON.stringify(body), error.status as never, {
    'content-type': 'application/problem+json',
    ...error.headers,
  })
}

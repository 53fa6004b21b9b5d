// What the console gets from the API (its deps, plus a way to call the API in-process) and what its middleware puts
// on each request's context.
import type { AccessRole, AppDeps, AppEnv } from '../api/env.ts'

/** Calls the API app in-process (`app.request`): the console reads through the API, so it has the same rules. */
export type ApiFetch = (path: string, init: RequestInit) => Response | Promise<Response>

export interface ConsoleDeps extends AppDeps {
  api: ApiFetch
}

export type ConsoleEnv = {
  Variables: AppEnv['Variables'] & {
    /** The session's CSRF token, put into every form as a hidden field. */
    csrf: string
    /** The signed-in token (sent on to the API as a bearer token); null when the console is open. */
    token: string | null
    /** What the viewer may do: a role, or 'open' when no tokens are configured (like the API). */
    access: AccessRole | 'open'
  }
}

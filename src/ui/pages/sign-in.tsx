/** @jsxImportSource hono/jsx */
// Sign-in with an API bearer token: the token goes into an HttpOnly cookie, never back into a page.
import { CSRF_FIELD } from '../security.ts'

export function SignInPage({ next, csrf, failed }: { next: string; csrf: string; failed: boolean }) {
  return (
    <>
      <h1>Sign in</h1>
      {failed ? (
        <div class="problem" role="alert">
          <strong>Not signed in</strong>
          <p>That token is not valid.</p>
        </div>
      ) : null}
      <form class="card" method="post" action="/ui/sign-in">
        <input type="hidden" name={CSRF_FIELD} value={csrf} />
        <input type="hidden" name="next" value={next} />
        <label>
          API token
          <input type="password" name="token" autocomplete="current-password" required />
        </label>
        <p>
          <button type="submit">Sign in</button>
        </p>
      </form>
    </>
  )
}

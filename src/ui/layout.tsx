/** @jsxImportSource hono/jsx */
// The page frame every console page renders into (Hono's JSX renderer): navigation, who is signed in, the sign-out
// form. Styles and script come from /ui/assets (CSP: 'self' only).
import type { Context } from 'hono'
import type { PropsWithChildren } from 'hono/jsx'
import { ASSET_VERSION } from './assets.ts'
import { CSRF_FIELD } from './security.ts'
import type { ConsoleEnv } from './env.ts'

declare module 'hono' {
  interface ContextRenderer {
    (content: string | Promise<string>, props: { title: string }): Response | Promise<Response>
  }
}

const NAV = [
  ['/ui', 'Find'],
  ['/ui/audit', 'Audit'],
  ['/ui/dlq', 'Dead letters'],
  ['/ui/status', 'Pipeline'],
] as const

export function Layout({ children, title, c }: PropsWithChildren<{ title: string; c: Context<ConsoleEnv> }>) {
  const path = c.req.path
  const principal = c.get('principal')
  const current = (href: string) => (href === '/ui' ? path === '/ui' || path === '/ui/' : path.startsWith(href))
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${title} · cdc console`}</title>
        <link rel="icon" href="data:," />
        <link rel="stylesheet" href={`/ui/assets/console.css?v=${ASSET_VERSION}`} />
        <script src={`/ui/assets/console.js?v=${ASSET_VERSION}`} defer></script>
      </head>
      <body>
        <header class="top">
          <a class="brand" href="/ui">cdc</a>
          <nav>
            {NAV.map(([href, label]) => (
              <a href={href} aria-current={current(href) ? 'page' : undefined}>
                {label}
              </a>
            ))}
          </nav>
          {principal ? (
            <form class="who" method="post" action="/ui/sign-out">
              <span>
                {principal.name} <small>({principal.role})</small>
              </span>
              <input type="hidden" name={CSRF_FIELD} value={c.get('csrf')} />
              <button type="submit" class="link">
                Sign out
              </button>
            </form>
          ) : null}
        </header>
        <main id="main">{children}</main>
      </body>
    </html>
  )
}

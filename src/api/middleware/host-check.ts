// The Host allow-list, checked before anything else (auth, the console): a DNS-rebinding page reaches us under its
// own name (Host: rebind.attacker.example), so a name we do not answer for is refused whatever the route or token.
// Always allowed: IP literals (a rebinding attack needs a DNS name), localhost and *.localhost (browsers resolve them
// to loopback themselves), and http.host. Other names only when listed in http.allowedHosts (".example.com" allows
// example.com and its subdomains).
import type { MiddlewareHandler } from 'hono'
import type { Config } from '../../config.ts'
import { ApiError } from '../problem.ts'
import type { AppEnv } from '../env.ts'

/** host[:port] as RFC 9110 §7.2 allows it: a reg-name, an IPv4 address or a bracketed IPv6 address. */
const AUTHORITY = /^(?:\[([0-9A-Fa-f:.]{2,45})\]|([A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*\.?))(?::(\d{1,5}))?$/
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/
const WILDCARD_BIND = new Set(['0.0.0.0', '::', '[::]', ''])

/** The hostname of an authority (lower case, no trailing dot, IPv6 in brackets), or null when it is not one. */
export function hostnameOf(authority: string): string | null {
  const m = AUTHORITY.exec(authority)
  if (!m) return null
  return m[1] !== undefined ? `[${m[1].toLowerCase()}]` : m[2]!.toLowerCase().replace(/\.$/, '')
}

/** A predicate for the names this server answers for. */
export function allowedHosts(http: Pick<Config['http'], 'host' | 'allowedHosts'>): (hostname: string) => boolean {
  const listed = http.allowedHosts.map((h) => h.toLowerCase().replace(/\.$/, ''))
  const bind = hostnameOf(http.host.includes(':') && !http.host.startsWith('[') ? `[${http.host}]` : http.host)
  if (bind && !WILDCARD_BIND.has(bind)) listed.push(bind)
  return (hostname) =>
    hostname.startsWith('[') ||
    IPV4.test(hostname) ||
    hostname === 'localhost' ||
    hostname.endsWith('.localhost') ||
    listed.some((entry) => entry === hostname || (entry.startsWith('.') && (hostname === entry.slice(1) || hostname.endsWith(entry))))
}

/** The URL's host:port; '' when Bun built no valid URL from the request (e.g. `Host: a, b`). */
function urlHost(url: string): string {
  try {
    return new URL(url).host
  } catch {
    return ''
  }
}

export function hostCheck(http: Config['http']): MiddlewareHandler<AppEnv> {
  const allowed = allowedHosts(http)
  return async function hostCheck(c, next) {
    // The Host header, and the URL's authority (Bun takes it from an absolute-form request target when there is one).
    const header = c.req.header('host')
    const names = [header === undefined ? null : hostnameOf(header), hostnameOf(urlHost(c.req.url))]
    if ((header !== undefined && names[0] === null) || names[1] === null) {
      throw new ApiError(400, 'bad-host', 'the Host header is not a valid host[:port]')
    }
    const refused = names.find((name) => name !== null && !allowed(name))
    if (refused) {
      c.get('log').warn('request for a host not in http.allowedHosts refused', { host: refused.slice(0, 100) })
      // RFC 9110 §15.5.20: this server is not willing to answer for that name.
      throw new ApiError(421, 'misdirected', 'this server does not answer for that host name; add it to http.allowedHosts')
    }
    await next()
  }
}

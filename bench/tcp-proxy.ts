// A TCP proxy on loopback that a fault run controls: it forwards every connection to its target until `cut(ms)`, which
// drops every open connection and refuses new ones for that long — a network partition between one role and one server
// while everything else keeps its connections.
import type { Socket, TCPSocketListener } from 'bun'

export interface Proxy {
  port: number
  cut(ms: number): Promise<void>
  close(): void
}

interface Link {
  peer?: Socket<Link>
  /** Bytes for this socket not yet accepted by it (backpressure), or, on the client side, bytes that arrived before
   *  the upstream connection was open. */
  pending: Uint8Array[]
}

/** Writes what the socket takes now and queues the rest for its drain event, in order. */
function send(to: Socket<Link>, data: Uint8Array) {
  if (to.data.pending.length > 0) return void to.data.pending.push(new Uint8Array(data))
  const n = to.write(data)
  if (n < data.length) to.data.pending.push(new Uint8Array(data.subarray(Math.max(0, n))))
}

function drain(s: Socket<Link>) {
  while (s.data.pending.length > 0) {
    const chunk = s.data.pending[0]!
    const n = s.write(chunk)
    if (n < chunk.length) {
      s.data.pending[0] = chunk.subarray(Math.max(0, n))
      return
    }
    s.data.pending.shift()
  }
}

export function startProxy(target: { host: string; port: number }): Proxy {
  const open = new Set<Socket<Link>>()
  let refusing = false
  const pipe = (from: Socket<Link>, data: Uint8Array) => {
    const to = from.data.peer
    if (to) send(to, data)
    else from.data.pending.push(new Uint8Array(data))
  }
  // Both ends of a link: forward what arrives, and a closed end closes its peer.
  const forwarding = {
    data: (s: Socket<Link>, data: Uint8Array) => pipe(s, data),
    drain,
    close(s: Socket<Link>) {
      open.delete(s)
      s.data.peer?.end()
    },
    error(s: Socket<Link>) {
      s.data.peer?.end()
    },
  }
  const listener: TCPSocketListener<Link> = Bun.listen<Link>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      async open(client) {
        client.data = { pending: [] }
        if (refusing) return void client.end()
        open.add(client)
        try {
          const upstream = await Bun.connect<Link>({
            hostname: target.host,
            port: target.port,
            socket: {
              open(s) {
                s.data = { peer: client, pending: [] }
              },
              ...forwarding,
            },
          })
          open.add(upstream)
          client.data.peer = upstream
          for (const chunk of client.data.pending.splice(0)) send(upstream, chunk)
        } catch {
          client.end()
        }
      },
      ...forwarding,
    },
  })
  return {
    port: listener.port,
    async cut(ms) {
      refusing = true
      for (const s of open) s.terminate()
      open.clear()
      await Bun.sleep(ms)
      refusing = false
    },
    close() {
      for (const s of open) s.terminate()
      listener.stop(true)
    },
  }
}

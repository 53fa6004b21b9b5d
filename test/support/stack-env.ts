// The config overrides that point at the local stack when it runs on non-default ports (CDC_STACK_*_PORT, as read by
// test/stack/stack.sh), so a second stack can serve a second checkout or a helper without touching the first.
export function stackConfigEnv(env: Record<string, string | undefined> = process.env): Record<string, string> {
  const out: Record<string, string> = {}
  if (env.CDC_STACK_PG_PORT) out.CDC_POSTGRES_URL = `postgres://cdc:cdc@127.0.0.1:${env.CDC_STACK_PG_PORT}/cdc`
  if (env.CDC_STACK_KAFKA_PORT) out.CDC_KAFKA_BROKERS = `127.0.0.1:${env.CDC_STACK_KAFKA_PORT}`
  if (env.CDC_STACK_MONGO_PORT) out.CDC_MONGO_URL = `mongodb://127.0.0.1:${env.CDC_STACK_MONGO_PORT}`
  return out
}

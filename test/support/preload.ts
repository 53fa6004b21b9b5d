// Runs once before the tests: starts (or checks) the local PostgreSQL, Kafka and MongoDB-wire servers.
const root = new URL('../..', import.meta.url).pathname
if (!process.env.CDC_TEST_NO_STACK) {
  const up = Bun.spawnSync(['bash', `${root}test/stack/stack.sh`, 'up'], { stdout: 'inherit', stderr: 'inherit' })
  if (up.exitCode !== 0) {
    console.error('test preload: the local stack did not start (see above)')
    process.exit(1)
  }
}

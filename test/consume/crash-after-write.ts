// Test-only entry (test/consume/crash.test.ts): `cdc consume` wired with a hook that kill -9s this process right after
// the first batch's MongoDB writes, before its offset commit. Config from cdc.toml and CDC_* like the real command.
import { loadConfig } from '../../src/config.ts'
import { startConsumer } from '../../src/consume/index.ts'
import { log, setLogLevel } from '../../src/log.ts'
import { createRuntime } from '../../src/runtime.ts'

const config = await loadConfig()
setLogLevel(config.log.level)
await startConsumer(createRuntime(config, log), { afterWrite: () => void process.kill(process.pid, 'SIGKILL') })

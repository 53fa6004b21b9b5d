#!/usr/bin/env bun
// The one entry point: `cdc <command> [flags]`. Owns start-up, exit codes and shutdown; each command lives in
// src/commands/<name>.ts and either finishes (migrate, track, …) or returns long-running roles (serve, relay, …).
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig, unknownEnv } from './config.ts'
import { log, setLogLevel } from './log.ts'
import { createRuntime, type Role } from './runtime.ts'
import { commands, type Command } from './commands/index.ts'
import { UsageError } from './errors.ts'
import { buildInfo } from './build-info.ts'
import { didYouMean } from './did-you-mean.ts'

const SHUTDOWN_MS = 15_000

function usage(): string {
  const width = Math.max(...commands.map((c) => c.name.length))
  return [
    'Usage: cdc [--config PATH] <command> [flags]',
    '',
    'Keeps a complete history of PostgreSQL changes and streams them as business events (Kafka → MongoDB).',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Global flags:',
    '  --config PATH  config file (default: $CDC_CONFIG or ./cdc.toml); every key is overridable as CDC_<SECTION>_<KEY>',
    '  --help, -h     show help (also `cdc <command> --help`)',
    '  --version      print the version',
  ].join('\n')
}

function commandUsage(c: Command): string {
  const flags = Object.entries(c.options ?? {}).map(([name, o]) => {
    const left = `--${name}${o.type === 'string' ? ` ${o.placeholder ?? 'VALUE'}` : ''}`
    return `  ${left.padEnd(24)} ${o.description}`
  })
  return [
    `Usage: cdc ${c.name} ${c.usage ?? ''}`.trimEnd(),
    '',
    c.description ?? c.summary,
    '',
    'Flags:',
    ...flags,
    `  ${'--config PATH'.padEnd(24)} config file`,
    `  ${'--help'.padEnd(24)} show this help`,
  ].join('\n')
}

async function main(argv: string[]): Promise<number> {
  // Global flags may come before the command; the rest is the command's.
  let configPath: string | undefined
  let i = 0
  for (; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--version') {
      const info = buildInfo()
      console.log(`cdc ${info.version} (commit ${info.commit}, built ${info.date})`)
      return 0
    }
    if (a === '--help' || a === '-h') {
      console.log(usage())
      return 0
    }
    if (a === '--config') {
      configPath = argv[++i]
      if (configPath === undefined || configPath.startsWith('-')) throw new UsageError('--config: needs a path')
    } else if (a.startsWith('--config=')) configPath = a.slice('--config='.length)
    else if (a.startsWith('-')) throw new UsageError(`${a.split('=')[0]}: unknown flag${didYouMean(a, ['--config', '--help', '--version'])}`)
    else break
  }
  const name = argv[i]
  if (name === undefined) {
    console.log(usage())
    return 2
  }
  const command = commands.find((c) => c.name === name)
  if (!command) throw new UsageError(`${name}: unknown command${didYouMean(name, commands.map((c) => c.name))}`)

  const parsed = parseFlags(command, argv.slice(i + 1))
  if (parsed.values.help) {
    console.log(commandUsage(command))
    return 0
  }
  const args = Object.entries(command.options ?? {}).flatMap(([flag, o]) => {
    const text = parsed.values[flag]
    return o.config && typeof text === 'string' ? [{ flag: `--${flag}`, key: o.config, text }] : []
  })
  const config = await loadConfig({ path: (parsed.values.config as string | undefined) ?? configPath, args })
  setLogLevel(config.log.level)
  // Runtime warnings (a listener leak, a deprecation) would otherwise go to stderr as plain text: a listener replaces
  // Bun's printing, so they are JSON log lines like the rest, at warn (none is emitted in normal running: kafkajs's
  // negative timer is patched away).
  process.on('warning', (warning) => log.warn('runtime warning', { name: warning.name, warning: warning.message }))
  for (const unknown of unknownEnv()) log.warn('unknown CDC_ environment variable; ignored', unknown)
  const rt = createRuntime(config, log)
  let roles: Role[] = []
  try {
    const result = await command.run({ rt, values: parsed.values, positionals: parsed.positionals })
    if (typeof result === 'number') return result
    roles = result
  } catch (error) {
    await rt.close()
    throw error
  }
  await waitForSignal()
  log.info('stopping', { roles: roles.map((r) => r.name) })
  const timer = setTimeout(() => {
    log.error('shutdown timed out; exiting', { timeoutMs: SHUTDOWN_MS })
    process.exit(1)
  }, SHUTDOWN_MS)
  for (const role of [...roles].reverse()) {
    await role.stop().catch((error) => log.error('role failed to stop cleanly', { role: role.name, error }))
  }
  await rt.close()
  clearTimeout(timer)
  log.info('stopped')
  return 0
}

/**
 * The command's flags, strictly: every problem becomes a UsageError naming the flag (node's parseArgs messages are
 * written for developers and name no flag consistently, so its tokens are checked here instead).
 */
function parseFlags(command: Command, args: string[]) {
  const options = { config: { type: 'string' as const }, help: { type: 'boolean' as const, short: 'h' }, ...command.options }
  const { tokens } = parseArgs({
    args,
    options: Object.fromEntries(Object.entries(options).map(([k, o]) => [k, { type: o.type, ...('short' in o ? { short: o.short } : {}) }])),
    allowPositionals: true,
    strict: false,
    tokens: true,
  })
  const values: Record<string, string | boolean | (string | boolean)[] | undefined> = {}
  const positionals: string[] = []
  for (const token of tokens) {
    if (token.kind === 'positional') {
      positionals.push(token.value)
      continue
    }
    if (token.kind !== 'option') continue
    const option = options[token.name as keyof typeof options] as { type: 'string' | 'boolean'; multiple?: boolean } | undefined
    if (!option) throw new UsageError(`${token.rawName}: unknown flag${didYouMean(`--${token.name}`, Object.keys(options).map((k) => `--${k}`))}`, command.name)
    if (option.type === 'boolean' && token.inlineValue) throw new UsageError(`${token.rawName}: takes no value`, command.name)
    if (option.type === 'string' && (token.value === undefined || (!token.inlineValue && token.value.startsWith('-')))) {
      throw new UsageError(`${token.rawName}: needs a value`, command.name)
    }
    if (values[token.name] !== undefined && !option.multiple) throw new UsageError(`${token.rawName}: given more than once`, command.name)
    const value = option.type === 'boolean' ? true : token.value!
    values[token.name] = option.multiple ? [...((values[token.name] as (string | boolean)[] | undefined) ?? []), value] : value
  }
  if (positionals.length > 0 && command.usage === undefined) {
    throw new UsageError(`${positionals[0]}: unexpected argument (cdc ${command.name} takes none)`, command.name)
  }
  return { values, positionals }
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = (signal: string) => {
      log.info('signal received', { signal })
      resolve()
    }
    process.once('SIGTERM', () => done('SIGTERM'))
    process.once('SIGINT', () => done('SIGINT'))
    // Without a handler SIGHUP would kill the process (a closed terminal, a `kill -HUP` meant as "reload"). The config
    // is read once at start, so the honest answer is a log line saying how to apply a change, and to keep running.
    process.on('SIGHUP', () =>
      log.info('signal received; ignored: the configuration is read at start only, restart the process to apply changes', { signal: 'SIGHUP' }),
    )
  })
}

// postgres.js can fail a query a second time while it destroys a connection the network already dropped, after the
// query's owner has handled the first failure: nobody waits for that rejection, and it must not kill a role that
// recovers on its own (a relay cut off from PostgreSQL died of it in the long chaos run). Anything else ends the
// process, as before, but logged as JSON.
const onStray = (error: unknown) => {
  const code = (error as { code?: unknown } | undefined)?.code
  if (typeof code === 'string' && /^CONNECTION_(DESTROYED|CLOSED|ENDED)$/.test(code)) {
    log.warn('a dropped PostgreSQL connection failed a query nobody waits for any more', { error })
    return
  }
  log.error('unexpected error; exiting', { error })
  process.exit(1)
}
process.on('unhandledRejection', onStray)
process.on('uncaughtException', onStray)

main(Bun.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    if (error instanceof UsageError) {
      // The shape of a ConfigError: what was wrong, then one indented line naming the argument.
      const command = commands.find((c) => c.name === error.command)
      console.error(`cdc: invalid arguments (cdc${command ? ` ${command.name}` : ''}):\n  ${error.message}\n`)
      console.error(command ? commandUsage(command) : usage())
      process.exit(2)
    }
    if (error instanceof ConfigError) {
      console.error(`cdc: ${error.message}`)
      process.exit(2)
    }
    log.error('failed', { error })
    process.exit(1)
  },
)

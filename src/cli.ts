#!/usr/bin/env bun
// The one entry point: `cdc <command> [flags]`. Owns start-up, exit codes and shutdown; each command lives in
// src/commands/<name>.ts and either finishes (migrate, track, …) or returns long-running roles (serve, relay, …).
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig } from './config.ts'
import { log, setLogLevel } from './log.ts'
import { createRuntime, type Role } from './runtime.ts'
import { commands, type Command } from './commands/index.ts'
import { UsageError } from './errors.ts'
import pkg from '../package.json' with { type: 'json' }

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
      console.log(pkg.version)
      return 0
    }
    if (a === '--help' || a === '-h') {
      console.log(usage())
      return 0
    }
    if (a === '--config') {
      configPath = argv[++i]
      if (configPath === undefined) throw new UsageError('--config needs a path')
    } else if (a.startsWith('--config=')) configPath = a.slice('--config='.length)
    else if (a.startsWith('-')) throw new UsageError(`unknown flag ${a}`)
    else break
  }
  const name = argv[i]
  if (name === undefined) {
    console.log(usage())
    return 2
  }
  const command = commands.find((c) => c.name === name)
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}`)

  let parsed
  try {
    parsed = parseArgs({
      args: argv.slice(i + 1),
      options: {
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        ...Object.fromEntries(Object.entries(command.options ?? {}).map(([k, o]) => [k, { type: o.type, multiple: o.multiple }])),
      },
      allowPositionals: true,
      strict: true,
    })
  } catch (error) {
    throw new UsageError((error as Error).message.split('\n')[0]!, command.name)
  }
  if (parsed.values.help) {
    console.log(commandUsage(command))
    return 0
  }
  const config = await loadConfig({ path: (parsed.values.config as string | undefined) ?? configPath })
  setLogLevel(config.log.level)
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

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = (signal: string) => {
      log.info('signal received', { signal })
      resolve()
    }
    process.once('SIGTERM', () => done('SIGTERM'))
    process.once('SIGINT', () => done('SIGINT'))
  })
}

main(Bun.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    if (error instanceof UsageError) {
      console.error(`cdc: ${error.message}`)
      const command = commands.find((c) => c.name === error.command)
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

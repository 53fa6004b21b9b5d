// `bun run build` produces one self-contained executable whose CLI behaves like the sources.
import { expect, test } from 'bun:test'
import { ROOT } from '../support/env.ts'

test('the compiled ./cdc (scripts/build.sh) runs --help, --version with commit and build date and rejects a bad config with exit 2', async () => {
  const out = `/tmp/cdc-bin-${process.pid}`
  const pkg = await Bun.file(`${ROOT}package.json`).json()
  const build = Bun.spawnSync(['bash', `${ROOT}scripts/build.sh`, out], { cwd: ROOT, stderr: 'pipe', env: { ...process.env, SOURCE_DATE_EPOCH: '1790000000' } })
  expect(build.exitCode).toBe(0)
  const run = (args: string[]) => Bun.spawnSync([out, ...args], { cwd: '/tmp', env: { PATH: process.env.PATH ?? '' }, stderr: 'pipe', stdout: 'pipe' })
  const help = run(['--help'])
  expect(help.exitCode).toBe(0)
  expect(help.stdout.toString()).toContain('snapshot')
  // Commit and build date are baked in at build time (scripts/build.sh).
  const commit = Bun.spawnSync(['git', 'rev-parse', '--short=12', 'HEAD'], { cwd: ROOT }).stdout.toString().trim()
  expect(run(['--version']).stdout.toString().trim()).toBe(`cdc ${pkg.version} (commit ${commit}, built 2026-09-21T14:13:20Z)`)
  await Bun.write(`${out}.toml`, '[http]\nport = -1\n')
  const bad = run(['--config', `${out}.toml`, 'all'])
  expect(bad.exitCode).toBe(2)
  expect(bad.stderr.toString()).toContain('http.port')
  // The strict TOML parser is bundled too: the shipped file prints, a file with a BOM is refused.
  const printed = run(['--config', `${ROOT}cdc.toml`, 'config', 'print'])
  expect(printed.exitCode).toBe(0)
  expect(JSON.parse(printed.stdout.toString()).kafka.brokers.length).toBeGreaterThan(0)
  await Bun.write(`${out}.toml`, `\ufeff${await Bun.file(`${ROOT}cdc.toml`).text()}`)
  expect(run(['--config', `${out}.toml`, 'config', 'print']).exitCode).toBe(2)
}, 120_000)

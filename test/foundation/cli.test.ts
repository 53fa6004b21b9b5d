// The CLI's contract: help, version, exit code 2 for bad arguments and bad config, nothing started.
import { describe, expect, test } from 'bun:test'
import { ROOT } from '../support/env.ts'

const run = (args: string[], env: Record<string, string> = {}) => {
  const p = Bun.spawnSync(['bun', 'run', `${ROOT}src/cli.ts`, ...args], {
    cwd: '/tmp',
    env: { ...process.env, CDC_CONFIG: '', ...env },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() }
}

const SUBCOMMANDS = ['serve', 'relay', 'consume', 'redrive', 'all', 'migrate', 'track', 'untrack', 'snapshot', 'status', 'config', 'backfill', 'replay']

describe('cdc CLI', () => {
  test('--help lists every subcommand', () => {
    const r = run(['--help'])
    expect(r.code).toBe(0)
    for (const c of SUBCOMMANDS) expect(r.out).toMatch(new RegExp(`^  ${c} `, 'm'))
  })

  test('each subcommand documents itself', () => {
    for (const c of SUBCOMMANDS) {
      const r = run([c, '--help'])
      expect(r.code).toBe(0)
      expect(r.out).toContain(`Usage: cdc ${c}`)
    }
  })

  test('--version prints the package version and the commit (from git when run from source)', async () => {
    const pkg = await Bun.file(`${ROOT}package.json`).json()
    expect(run(['--version']).out.trim()).toMatch(new RegExp(`^cdc ${pkg.version.replace(/\./g, '\\.')} \\(commit [0-9a-f]{12}, built source\\)$`))
  })

  test('an unknown subcommand exits 2 with a one-line error and the usage', () => {
    const r = run(['frobnicate'])
    expect(r.code).toBe(2)
    expect(r.err.split('\n').slice(0, 2)).toEqual(['cdc: invalid arguments (cdc):', '  frobnicate: unknown command'])
    expect(r.err).toContain('Usage: cdc')
  })

  test('an unknown flag exits 2', () => {
    const r = run(['relay', '--frob'])
    expect(r.code).toBe(2)
    expect(r.err).toContain('--frob')
    expect(r.err).toContain('Usage: cdc relay')
  })

  test('bad flag values exit 2 naming the flag', () => {
    expect(run(['relay', '--mode', 'fast'])).toMatchObject({ code: 2 })
    expect(run(['all', '--roles', 'relay,bogus']).err).toContain('--roles')
    expect(run(['redrive', '--limit', '-3']).err).toContain('--limit')
    expect(run(['redrive', '--since', 'yesterday']).code).toBe(2)
    expect(run(['track']).code).toBe(2)
  })

  test('a bad config file exits 2 naming the key and starts nothing', async () => {
    const path = `/tmp/cdc-bad-${Date.now()}.toml`
    await Bun.write(path, '[kafka]\npartitions = "three"\n')
    const r = run(['--config', path, 'all'])
    expect(r.code).toBe(2)
    expect(r.err).toContain('kafka.partitions: expected number, got "three"')
    expect(r.out).toBe('')
  })

  test('a bad environment override exits 2 naming the variable', () => {
    const r = run(['serve'], { CDC_HTTP_PORT: 'eighty' })
    expect(r.code).toBe(2)
    expect(r.err).toContain('CDC_HTTP_PORT')
  })

  test('every argument error names the argument, in the format of config errors, and exits 2', () => {
    const cases: [string[], string][] = [
      [['serve', '--port', 'abc'], '  --port: expected a number, got "abc"'],
      [['serve', '--port', '70000'], '  --port: expected <=65535, got 70000'],
      [['serve', '--port'], '  --port: needs a value'],
      [['serve', '--prot', '9000'], '  --prot: unknown flag; did you mean --port?'],
      [['serve', 'extra'], '  extra: unexpected argument (cdc serve takes none)'],
      [['serve', '--port', '9000', '--port', '9001'], '  --port: given more than once'],
      [['redrive', '--dry-run=yes'], '  --dry-run: takes no value'],
      [['--confg', 'x', 'serve'], '  --confg: unknown flag; did you mean --config?'],
      [['serv'], '  serv: unknown command; did you mean serve?'],
      [['config', 'show'], '  show: expected print'],
      [['redrive', '--topic', 'no such/topic'], '  --topic: expected a Kafka topic name ([A-Za-z0-9._-], at most 249), got "no such/topic"'],
    ]
    for (const [args, line] of cases) {
      const r = run(args)
      expect([args, r.code, r.err.split('\n')[1]]).toEqual([args, 2, line])
      expect(r.err.split('\n')[0]).toMatch(/^cdc: invalid (arguments|config) \(/)
    }
  })

  test('config print shows the effective config with secrets redacted; unknown CDC_* variables are warned as JSON', () => {
    const digest = 'c'.repeat(64)
    const r = run(['config', 'print'], { CDC_POSTGRES_URL: 'postgres://u:hunter2@db/x', CDC_HTTP_TOKENS: `ops:${digest}:admin`, CDC_KAFKA_PARTITONS: '6' })
    expect(r.code).toBe(0)
    const printed = JSON.parse(r.out)
    expect(printed.postgres.url).toBe('postgres://u:***@db/x')
    expect(printed.http.tokens).toEqual([{ name: 'ops', sha256: '***', role: 'admin' }])
    expect(r.out + r.err).not.toContain('hunter2')
    expect(r.out).not.toContain(digest)
    const warning = JSON.parse(r.err.trim().split('\n').at(-1)!)
    expect(warning).toMatchObject({ level: 'warn', name: 'CDC_KAFKA_PARTITONS', didYouMean: 'CDC_KAFKA_PARTITIONS' })
  })
})

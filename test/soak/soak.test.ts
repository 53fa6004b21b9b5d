// The short soak on every CI run: five minutes of steady API + SQL load with who/why against `cdc all`, sampled every
// 15 s, then a drain and the completeness check (bench/soak.ts does the work and judges it; see `bun run soak`).
import { expect, test } from 'bun:test'
import { mkdirSync } from 'node:fs'
import { ROOT } from '../support/env.ts'

test('soak: steady load for minutes; progress, bounded backlog and memory, latency, nothing lost', async () => {
  const minutes = process.env.CDC_SOAK_MINUTES ?? '5'
  const out = `${ROOT}test/artifacts/soak`
  mkdirSync(out, { recursive: true })
  const run = Bun.spawn(['bun', 'run', `${ROOT}bench/soak.ts`, '--minutes', minutes, '--share', '0.25', '--out', out], {
    cwd: ROOT,
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const [report, err] = await Promise.all([new Response(run.stdout).text(), new Response(run.stderr).text()])
  const code = await run.exited
  console.log(report)
  if (code !== 0) console.error(err.slice(-4000))
  expect(report).toContain('RESULT: soak passed')
  expect(code).toBe(0)
}, 900_000)

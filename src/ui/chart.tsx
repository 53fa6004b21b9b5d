/** @jsxImportSource hono/jsx */
// A sparkline as inline SVG (no script, no style attribute: CSP-clean): one polyline scaled to the series' maximum.
const W = 300
const H = 64

export function Sparkline({ values, label }: { values: (number | null)[]; label: string }) {
  const known = values.map((v, i) => [i, v] as const).filter((p): p is readonly [number, number] => p[1] !== null)
  const max = Math.max(1, ...known.map(([, v]) => v))
  const step = values.length > 1 ? W / (values.length - 1) : W
  const points = known.map(([i, v]) => `${(i * step).toFixed(1)},${(H - 4 - (v / max) * (H - 8)).toFixed(1)}`).join(' ')
  return (
    <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label={label}>
      <title>{label}</title>
      {known.length > 0 ? <polyline points={known.length === 1 ? `0,${points.split(',')[1]} ${W},${points.split(',')[1]}` : points} vector-effect="non-scaling-stroke" /> : null}
    </svg>
  )
}

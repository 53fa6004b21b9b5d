// The demo application's capture settings (customers, products, orders, order_lines in schema public): tracked
// tables, column options, business event rules and the order document (orders is a root with its lines: a line's
// changes are part of its order's events, so order_lines is not tracked on its own). They apply only with demo.enabled, added to
// what cdc.toml says (cdc.toml's own settings come first and win). Nothing outside src/demo knows these tables.
import type { Config, Rule } from '../config.ts'

export const DEMO_TABLES = ['customers', 'products', 'orders'] as const

const statusRule = (value: string, type: string): Rule => ({ table: 'orders', op: 'u', columns: ['status'], value, type })

const DEMO_CAPTURE: Pick<Config['capture'], 'tracked' | 'tables' | 'rules' | 'roots'> = {
  tracked: [...DEMO_TABLES],
  // updated_at is bookkeeping: in before/after, never in changes, never an event alone.
  tables: {
    customers: { exclude: [], mask: [], incidental: [], bookkeeping: ['updated_at'] },
    orders: { exclude: [], mask: [], incidental: [], bookkeeping: ['updated_at'] },
  },
  // An update is split into one event per matching rule, in this order; changes no rule claims go into
  // <Aggregate>Updated. Without rules: <Aggregate>Created/Updated/Deleted.
  rules: [
    { table: 'customers', op: 'u', columns: ['name'], type: 'CustomerNameChanged' },
    { table: 'customers', op: 'u', columns: ['address'], type: 'CustomerAddressChanged' },
    { table: 'customers', op: 'u', columns: ['email'], type: 'CustomerEmailChanged' },
    { table: 'orders', op: 'c', type: 'OrderPlaced' },
    statusRule('PAYMENT_CONFIRMED', 'PaymentConfirmed'),
    statusRule('SHIPPED', 'OrderShipped'),
    statusRule('DELIVERED', 'OrderDelivered'),
    statusRule('CANCELLED', 'OrderCancelled'),
    // a hard delete cancels too; the reason tells it apart (unless the writer gave one)
    { table: 'orders', op: 'd', type: 'OrderCancelled', reason: 'HARD_DELETE' },
  ],
  // Every order event carries the order with its lines as of its commit, each line with the product's name and price
  // as they were when the line was written (no separate OrderDocumentChanged: documentEvent is off).
  roots: {
    orders: {
      documentEvent: false,
      children: [{ table: 'order_lines', foreignKey: 'order_id', lookups: [{ column: 'product_id', table: 'products', columns: ['name', 'price'] }] }],
    },
  },
}

/** The config with the demo's capture settings added when demo.enabled (unchanged otherwise). */
export function withDemo(config: Config): Config {
  if (!config.demo.enabled) return config
  const { capture } = config
  return {
    ...config,
    capture: {
      ...capture,
      tracked: [...new Set([...DEMO_CAPTURE.tracked, ...capture.tracked])],
      tables: { ...structuredClone(DEMO_CAPTURE.tables), ...capture.tables },
      rules: [...capture.rules, ...DEMO_CAPTURE.rules.filter((r) => !capture.rules.some((own) => own.table === r.table))],
      roots: { ...structuredClone(DEMO_CAPTURE.roots), ...capture.roots },
    },
  }
}

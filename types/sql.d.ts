// `import text from '../sql/x.sql' with { type: 'text' }` embeds a SQL file into the compiled binary.
declare module '*.sql' {
  const text: string
  export default text
}

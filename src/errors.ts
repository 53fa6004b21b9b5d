// Bad input, raised by any layer (a command's flags, a table name given to capture) and turned by the CLI into exit
// code 2 with a one-line message: the errors every part looks down to.

/**
 * Bad arguments: exit code 2, one `--flag: problem` line (the format of config errors) and the usage (of the named
 * command, else the general one).
 */
export class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose usage to print. */
    readonly command?: string,
  ) {
    super(message)
    this.name = 'UsageError'
  }
}

/**
 * The one error type for bad input anywhere in hero-init (config files,
 * service files, manifests, requests): it names what is wrong and where.
 */
export class InputError extends Error {
  constructor(
    /** Short machine-readable kind, e.g. "toml-syntax", "schema", "cycle". */
    readonly code: string,
    message: string,
    /** Where: file path (or "kernel cmdline", "request"), line, column, field. */
    readonly where: { file?: string; line?: number; column?: number; field?: string } = {},
  ) {
    super(message);
  }

  /** "file:line:col: field: message", omitting what is unknown. */
  override toString(): string {
    const { file, line, column, field } = this.where;
    const pos = [file, line, column].filter((x) => x !== undefined).join(":");
    return [pos, field, this.message].filter(Boolean).join(": ");
  }
}

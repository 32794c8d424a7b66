import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { stringify } from "yaml";
import { Api } from "./api.ts";
import { resolveConnection, type ConnectionFlags } from "./connection.ts";
import { CliError, ExitCode } from "./exit-codes.ts";
import { formatDocument, formatTable, type OutputFormat } from "./output.ts";
import { parse } from "yaml";

/** Where a run of `cpm` writes, and what it reads from its surroundings (tests pass their own). */
export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  /** For `--watch`: waits `ms`; resolving false ends the watch (default: waits, never ends it). */
  sleep?: (ms: number) => Promise<boolean>;
}

/** What a command needs: the output format, the API (connected on first use), and output helpers. */
export class Ctx {
  private apiInstance?: Api;

  constructor(
    readonly io: Io,
    private readonly cmd: Command,
  ) {}

  private get globals(): ConnectionFlags & { output: OutputFormat } {
    return this.cmd.optsWithGlobals();
  }

  get format(): OutputFormat {
    return this.globals.output;
  }

  get api(): Api {
    const g = this.globals;
    this.apiInstance ??= new Api(
      resolveConnection({ api: g.api, dispatcher: g.dispatcher, token: g.token, tls: g.tls, ca: g.ca }, this.io.env),
    );
    return this.apiInstance;
  }

  /** A document in the chosen format; in table mode, `table()` decides (default: YAML). */
  print(doc: unknown, table?: () => string): void {
    if (this.format === "json" || this.format === "yaml") this.io.stdout(formatDocument(doc, this.format));
    else this.io.stdout(table ? table() : stringify(doc, { lineWidth: 0 }));
  }

  table(header: string[], rows: string[][]): string {
    return formatTable(header, rows);
  }

  close(): void {
    this.apiInstance?.close();
  }
}

/** A YAML or JSON file (JSON is YAML), parsed; errors name the file. */
export function readDocumentFile(file: string): unknown {
  let text: string;
  try {
    text = file === "-" ? readFileSync(0, "utf8") : readFileSync(file, "utf8");
  } catch (err) {
    throw new CliError(ExitCode.USAGE, `${file}: ${(err as Error).message}`);
  }
  try {
    return parse(text);
  } catch (err) {
    throw new CliError(
      ExitCode.INVALID,
      `${file}: does not parse as YAML or JSON: ${(err as Error).message.split("\n")[0]}`,
    );
  }
}

export function readTextFile(file: string, field: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new CliError(ExitCode.USAGE, `${field}: ${file}: ${(err as Error).message}`);
  }
}

export { runCli, buildProgram, parseExpiry, syncStatusTable } from "./program.ts";
export { ExitCode, CliError, describeFailure } from "./exit-codes.ts";
export { resolveConnection, configFilePath, type Connection } from "./connection.ts";
export { exportDocument, importDocument } from "./document.ts";
export type { Io } from "./context.ts";

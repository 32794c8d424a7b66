import { pino, type Logger, type LoggerOptions } from "pino";
import { logFormat, type LogFormat } from "./env.ts";

export type { Logger };

const REDACT: LoggerOptions["redact"] = {
  paths: [
    "token",
    "*.token",
    "secret",
    "*.secret",
    "authorization",
    "*.authorization",
    "privateKeyPem",
    "*.privateKeyPem",
    "*.*.privateKeyPem",
    "password",
    "*.password",
  ],
  censor: "[redacted]",
};

/**
 * The one root logger of a process. Paths that could hold secrets are redacted as a
 * second line of defence; code must still never pass tokens or keys to a logger.
 *
 * JSON lines, or on a terminal (LOG_FORMAT, see `logFormat`) pino's pretty transport:
 * one line per event, the time, the level and the service's name first. `service` undefined:
 * the root of a process that runs several services, each logging through a child that names it.
 */
export function createLogger(service: string | undefined, level = "info", format: LogFormat = logFormat()): Logger {
  const options: LoggerOptions = { name: service, level, redact: REDACT };
  if (format === "json") return pino(options);
  return pino({
    ...options,
    transport: {
      target: "pino-pretty",
      options: {
        // Decided here: the transport's worker thread has no terminal of its own to look at.
        colorize: process.stdout.isTTY === true && !process.env.NO_COLOR,
        translateTime: "SYS:HH:MM:ss.l",
        ignore: "pid,hostname",
        singleLine: true,
      },
    },
  });
}

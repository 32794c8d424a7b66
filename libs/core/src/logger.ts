import { pino, type Logger } from "pino";

export type { Logger };

/**
 * The one root logger of a process. Paths that could hold secrets are redacted as a
 * second line of defence; code must still never pass tokens or keys to a logger.
 */
export function createLogger(service: string, level = "info"): Logger {
  return pino({
    name: service,
    level,
    redact: {
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
    },
  });
}

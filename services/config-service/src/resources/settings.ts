import type { Settings } from "@cpm/proto";
import { normalizeSettings, ValidationError } from "@cpm/core";
import { settingsFromRows, writeSettings, type ConfigStore } from "../store.ts";
import type { ConfigHandlers, ResourceDeps, Singleton } from "./kind.ts";

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
 * The settings: one value. Replacing them replaces the whole settings: sections left unset
 * take their defaults. Every accepted replacement is one committed version.
 */
export class SettingsResource implements Singleton<Settings> {
  constructor(private readonly store: ConfigStore) {}

  async get(): Promise<Settings> {
    const rows = await this.store.db.setting.findMany();
    return withDefaults(settingsFromRows(rows));
  }

  replace(input: Settings | undefined) {
    if (!input) throw new ValidationError("settings", "is required (UpdateSettings replaces the whole settings)");
    const settings = normalizeSettings(input, "settings");
    return this.store.write(async (tx, _now, changes) => {
      await writeSettings(tx, settings);
      changes.settings(settings);
      return settings;
    });
  }
}

/** GetSettings (any valid token) and UpdateSettings (admin; refused on a slave by the server's authorization). */
export function settingsHandlers(deps: ResourceDeps): ConfigHandlers<"getSettings" | "updateSettings"> {
  const settings = new SettingsResource(deps.store);
  return {
    getSettings: async () => ({ settings: await settings.get() }),
    updateSettings: async (req) => {
      const { result, version } = await settings.replace(req.settings);
      return { settings: result, configVersion: version };
    },
  };
}

import { accessSync, constants, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository this library lives in (libs/core/src -> the root). */
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** The command that builds the project's Caddy (with caddy-l4) into the cache. */
export const CADDY_BUILD_COMMAND = "npm run caddy:build";

/** The versions pinned in `scripts/caddy-versions.env`. */
export interface CaddyPins {
  caddy: string;
  caddyL4: string;
  xcaddy: string;
}

/** Parses `KEY=VALUE` lines (comments and blank lines ignored); throws naming a missing pin. */
export function parseCaddyPins(text: string): CaddyPins {
  const vars = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([A-Z0-9_]+)=(\S*)\s*$/.exec(line);
    if (m) vars.set(m[1]!, m[2]!);
  }
  const pin = (name: string) => {
    const v = vars.get(name);
    if (!v) throw new Error(`scripts/caddy-versions.env: ${name} is not set`);
    return v;
  };
  return { caddy: pin("CADDY_VERSION"), caddyL4: pin("CADDY_L4_VERSION"), xcaddy: pin("XCADDY_VERSION") };
}

/** Where `npm run caddy:build` puts the binary for these pins, relative to the repository. */
export function builtCaddyRelPath(pins: CaddyPins): string {
  return path.join(".cache", "caddy", `${pins.caddy}-${pins.caddyL4}-${pins.xcaddy}`, "caddy");
}

/**
 * The path of the project's built Caddy (present or not), or undefined when this checkout has
 * no pins file (e.g. a container image holding only the services).
 */
export function builtCaddyPath(root = REPO_ROOT): string | undefined {
  let text: string;
  try {
    text = readFileSync(path.join(root, "scripts", "caddy-versions.env"), "utf8");
  } catch {
    return undefined;
  }
  return path.join(root, builtCaddyRelPath(parseCaddyPins(text)));
}

/** The project's built Caddy (with caddy-l4) when it has been built, else undefined. */
export function findBuiltCaddy(root = REPO_ROOT): string | undefined {
  const bin = builtCaddyPath(root);
  if (!bin) return undefined;
  try {
    accessSync(bin, constants.X_OK);
    return bin;
  } catch {
    return undefined;
  }
}

import { readFileSync } from "node:fs";

/**
 * This build's release: the one semantic version of the repository (the root package.json's
 * `version`), shown by `cpm --version`, logged by every service at start and returned by
 * GetInstanceInfo. CHANGELOG.md has a section per release.
 */
export const RELEASE: string = readRelease();

function readRelease(): string {
  // libs/core/src/release.ts and libs/core/dist/release.js are both three levels below the root.
  const manifest = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    version?: unknown;
  };
  if (typeof manifest.version !== "string" || !/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(manifest.version))
    throw new Error(`the root package.json has no semantic version (found ${JSON.stringify(manifest.version)})`);
  return manifest.version;
}

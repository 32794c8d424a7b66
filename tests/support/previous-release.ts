import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { ROOT } from "./instance.ts";

/** The previous release as scripts/previous-release.env records it (CHANGELOG.md). */
export interface PreviousRelease {
  version: string;
  commit: string;
  /** Its tree, built by scripts/build-previous-release.sh: `Instance.start({ root })` runs it. */
  root: string;
}

export const BUILD_PREVIOUS_RELEASE_COMMAND = "sh scripts/build-previous-release.sh";

/** The recorded previous release, without checking that it is built. */
export function recordedPreviousRelease(): PreviousRelease {
  const text = readFileSync(path.join(ROOT, "scripts", "previous-release.env"), "utf8");
  const value = (name: string) => {
    const m = new RegExp(`^${name}=(\\S+)$`, "m").exec(text);
    if (!m?.[1]) throw new Error(`scripts/previous-release.env has no ${name}`);
    return m[1];
  };
  const commit = value("PREVIOUS_RELEASE_COMMIT");
  return {
    version: value("PREVIOUS_RELEASE_VERSION"),
    commit,
    root: path.join(ROOT, ".cache", "previous-release", commit),
  };
}

/**
 * The previous release, built. Throws naming the build command when it is not (`npm run
 * test:upgrade` runs it first).
 */
export function previousRelease(): PreviousRelease {
  const rel = recordedPreviousRelease();
  if (!existsSync(path.join(rel.root, ".cpm-previous-release-built")))
    throw new Error(
      `the previous release ${rel.version} (${rel.commit}) is not built in ${rel.root}: run \`${BUILD_PREVIOUS_RELEASE_COMMAND}\``,
    );
  return rel;
}

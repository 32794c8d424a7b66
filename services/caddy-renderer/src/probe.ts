import { execFile } from "node:child_process";
import { accessSync, constants } from "node:fs";
import path from "node:path";

/** The caddy binary this instance runs: CPM_CADDY_BIN, else the first `caddy` on PATH. */
export function findCaddyBinary(caddyBin: string | undefined, pathEnv = process.env.PATH ?? ""): string | undefined {
  const candidates = caddyBin
    ? [caddyBin]
    : pathEnv
        .split(path.delimiter)
        .filter(Boolean)
        .map((dir) => path.join(dir, "caddy"));
  for (const p of candidates) {
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** Whether `caddy list-modules` output names the layer4 app (module ID exactly "layer4"). */
export function listsLayer4(output: string): boolean {
  return output.split(/\r?\n/).some((line) => line.trim() === "layer4");
}

export interface Layer4Probe {
  layer4: boolean;
  /** Why: the variable, the binary's answer, or the absence of a binary. */
  reason: string;
}

/**
 * Does this instance's Caddy have the layer4 app (caddy-l4)?
 * - CPM_CADDY_LAYER4 set: that answer, nothing run;
 * - otherwise `<caddy> list-modules` (binary from CPM_CADDY_BIN or PATH) is asked;
 * - no binary, or it fails: assume not (the renderer then leaves L4 hosts out, with a
 *   warning, rather than have Caddy refuse the whole config).
 */
export async function probeLayer4(opts: {
  configured: boolean | undefined;
  caddyBin: string | undefined;
  pathEnv?: string;
  timeoutMs?: number;
}): Promise<Layer4Probe> {
  if (opts.configured !== undefined) return { layer4: opts.configured, reason: `CPM_CADDY_LAYER4=${opts.configured}` };
  const bin = findCaddyBinary(opts.caddyBin, opts.pathEnv);
  if (!bin)
    return { layer4: false, reason: "no caddy binary found (CPM_CADDY_BIN or PATH); assuming no layer4 module" };
  return new Promise((resolve) => {
    // Like the launcher's Caddy, the probe gets no variable of the instance (no secret).
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/" };
    execFile(
      bin,
      ["list-modules"],
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 4 * 1024 * 1024, env },
      (err, stdout) => {
        if (err) {
          resolve({
            layer4: false,
            reason: `"${bin} list-modules" failed (${err.message.split("\n")[0]}); assuming no layer4 module`,
          });
          return;
        }
        const layer4 = listsLayer4(String(stdout));
        resolve({ layer4, reason: `"${bin} list-modules" ${layer4 ? "lists" : "does not list"} layer4` });
      },
    );
  });
}

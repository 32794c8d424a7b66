/**
 * The front door holds: every relative link in README.md and docs/*.md resolves to a file (and
 * its #anchor to a heading of that file), every `npm run NAME` they show names a script that
 * exists, docs/configuration.md is what `npm run docs:env` writes, and every environment
 * variable the code reads is described there.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { ENV_VARIABLES } from "@cpm/core";
import { CONFIGURATION_DOC, withEnvTables } from "./env-doc.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DOCS = [
  "README.md",
  ...readdirSync(path.join(ROOT, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];
const read = (rel: string) => readFileSync(path.join(ROOT, rel), "utf8");

/** The text outside fenced code blocks, line by line (code blocks become empty lines). */
function prose(md: string): string[] {
  let fenced = false;
  return md.split("\n").map((line) => {
    if (/^\s*(```|~~~)/.test(line)) {
      fenced = !fenced;
      return "";
    }
    return fenced ? "" : line;
  });
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/`/g, "")
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/ /g, "-");
}

/** The anchors of a markdown file's headings, with GitHub's -1, -2 suffixes for repeats. */
function anchors(md: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of prose(md)) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = slug(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** The link targets of a markdown file, outside code blocks and inline code. */
function links(md: string): string[] {
  const out: string[] = [];
  for (const line of prose(md)) {
    const text = line.replace(/`[^`]*`/g, "");
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) out.push(m[1]!);
  }
  return out;
}

interface Manifest {
  name?: string;
  scripts?: Record<string, string>;
  workspaces?: string[];
}
const manifest = (dir: string) => JSON.parse(readFileSync(path.join(ROOT, dir, "package.json"), "utf8")) as Manifest;

/** Every workspace's scripts, by package name and by folder. */
function workspaceScripts(): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const pattern of manifest(".").workspaces ?? []) {
    const dirs = pattern.endsWith("/*")
      ? readdirSync(path.join(ROOT, pattern.slice(0, -2))).map((d) => `${pattern.slice(0, -2)}/${d}`)
      : [pattern];
    for (const dir of dirs.filter((d) => existsSync(path.join(ROOT, d, "package.json")))) {
      const m = manifest(dir);
      const scripts = new Set(Object.keys(m.scripts ?? {}));
      out.set(dir, scripts);
      if (m.name) out.set(m.name, scripts);
    }
  }
  return out;
}

describe("README.md and docs/", () => {
  test("every relative link resolves to a file, and every #anchor to a heading of it", () => {
    const broken: string[] = [];
    for (const doc of DOCS) {
      for (const target of links(read(doc))) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
        const [file = "", anchor] = target.split("#", 2);
        const rel = file === "" ? doc : path.posix.normalize(path.posix.join(path.posix.dirname(doc), file));
        if (!existsSync(path.join(ROOT, rel))) {
          broken.push(`${doc}: ${target} (no file ${rel})`);
          continue;
        }
        if (anchor === undefined) continue;
        if (!rel.endsWith(".md") || statSync(path.join(ROOT, rel)).isDirectory()) {
          broken.push(`${doc}: ${target} (an anchor into a file that is not markdown)`);
        } else if (!anchors(read(rel)).has(anchor)) {
          broken.push(`${doc}: ${target} (no heading #${anchor} in ${rel})`);
        }
      }
    }
    assert.deepEqual(broken, []);
  });

  test("every `npm run NAME` and `npm run -w PKG NAME` names a script that exists", () => {
    const root = new Set(Object.keys(manifest(".").scripts ?? {}));
    const workspaces = workspaceScripts();
    const missing: string[] = [];
    let mentions = 0;
    for (const doc of DOCS) {
      for (const m of read(doc).matchAll(/npm run((?:\s+--?[a-z][\w-]*)*?)(?:\s+-w\s+(\S+))?\s+([\w:.-]+)/g)) {
        const [, , pkg, name] = m;
        mentions++;
        const scripts = pkg === undefined ? root : workspaces.get(pkg.replace(/\/$/, ""));
        if (!scripts?.has(name!)) missing.push(`${doc}: npm run ${pkg ? `-w ${pkg} ` : ""}${name}`);
      }
    }
    assert.ok(mentions > 10, `only ${mentions} npm run mentions found: the pattern no longer matches the docs`);
    assert.deepEqual(missing, []);
  });

  test("the GitHub heading slug rules hold for the headings the docs link to", () => {
    assert.equal(slug("The `cpm` CLI"), "the-cpm-cli");
    assert.equal(slug("Back up and restore (export and import)"), "back-up-and-restore-export-and-import");
    assert.equal(slug("Sync: latency, throughput, memory"), "sync-latency-throughput-memory");
    assert.equal(slug("The project's Caddy"), "the-projects-caddy");
  });
});

describe("docs/configuration.md", () => {
  test("is what `npm run docs:env` writes from ENV_VARIABLES", () => {
    const doc = readFileSync(CONFIGURATION_DOC, "utf8");
    assert.equal(doc, withEnvTables(doc), "docs/configuration.md is out of date: run `npm run docs:env`");
  });

  /** Variables of the system, not of the project. */
  const SYSTEM = new Set(["PATH", "HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "NO_COLOR"]);
  const isTestFile = (f: string) => /\.test\.ts$|test-support\.ts$/.test(f);

  /** name -> files that read it, in libs/, services/, docker/ and the compose files. */
  function variablesRead(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    const add = (name: string, file: string) => out.set(name, [...(out.get(name) ?? []), file]);
    const walk = (dir: string): string[] =>
      readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
        const rel = `${dir}/${e.name}`;
        if (e.isDirectory())
          return ["node_modules", "dist", "gen", "generated", "golden"].includes(e.name) ? [] : walk(rel);
        return [rel];
      });
    for (const file of [
      ...walk("libs"),
      ...walk("services"),
      ...walk("docker"),
      "docker-compose.yml",
      "docker-compose.one.yml",
    ]) {
      const text = read(file);
      if (/\.(ts|mjs|js)$/.test(file)) {
        const code = /(?:process\.env|\benv)(?:\.([A-Z][A-Z0-9_]+)\b|\[["']([A-Z][A-Z0-9_]+)["']\])/g;
        for (const m of text.matchAll(code)) {
          // Prose, not code: a Caddy placeholder `{env.NAME}`, or ` (env.NAME)` as a sanitized one reads.
          const before = text.slice(Math.max(0, m.index - 2), m.index);
          if (before.endsWith("{") || (before === " (" && text[m.index + m[0].length] === ")")) continue;
          add(m[1] ?? m[2]!, file);
        }
      } else if (/\.(sh|ya?ml)$/.test(file)) {
        for (const m of text.matchAll(/\$\{?([A-Z][A-Z0-9_]+)/g)) add(m[1]!, file);
        // Variables the compose file sets for the services: they must be ones the services read.
        for (const m of text.matchAll(/^\s+((?:CPM|INSTANCE|OTEL)_[A-Z0-9_]+|DATABASE_URL|LOG_LEVEL|CADDY_API_URL):/gm))
          add(m[1]!, file);
      }
    }
    return out;
  }

  test("describes every variable the code reads (test-only ones in docs/testing.md)", () => {
    const declared = new Set(Object.keys(ENV_VARIABLES));
    const testing = read("docs/testing.md");
    const read_ = variablesRead();
    assert.ok(
      read_.has("INSTANCE_MODE") && read_.has("OTEL_SDK_DISABLED"),
      "the scan no longer finds the code's reads",
    );
    const missing: string[] = [];
    for (const [name, files] of read_) {
      if (declared.has(name) || SYSTEM.has(name)) continue;
      if (files.every(isTestFile)) {
        if (!testing.includes(`\`${name}\``))
          missing.push(`${name} (read by tests in ${files[0]}; not in docs/testing.md)`);
      } else {
        missing.push(`${name} (read in ${[...new Set(files)].join(", ")}; not in ENV_VARIABLES)`);
      }
    }
    assert.deepEqual(missing, []);
  });
});

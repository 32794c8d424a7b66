/**
 * Nothing built is tracked: no file in git over 1 MiB (but the lock file and the generated
 * descriptor set, named here) and no executable binary. A clean clone builds what it runs
 * (npm run caddy:build for Caddy, npm run build for the services).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { openSync, readSync, closeSync, statSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";

const ROOT = path.resolve(import.meta.dirname, "../..");
const MAX_BYTES = 1024 * 1024;
/** Large on purpose: the lock file, and the descriptor set buf builds from proto/. */
const LARGE_ALLOWED = new Set(["package-lock.json", "libs/proto/descriptors.binpb"]);

/** The first bytes of the executable formats a build leaves behind: ELF, Mach-O (both widths, both orders), PE. */
const BINARY_MAGIC = [
  Buffer.from([0x7f, 0x45, 0x4c, 0x46]),
  Buffer.from([0xfe, 0xed, 0xfa, 0xce]),
  Buffer.from([0xfe, 0xed, 0xfa, 0xcf]),
  Buffer.from([0xce, 0xfa, 0xed, 0xfe]),
  Buffer.from([0xcf, 0xfa, 0xed, 0xfe]),
  Buffer.from([0x4d, 0x5a]),
];

/** Why a tracked file may not be tracked, or undefined when it may. */
export function trackedFileProblem(file: string, size: number, head: Buffer): string | undefined {
  if (BINARY_MAGIC.some((m) => head.subarray(0, m.length).equals(m))) return `${file}: an executable binary`;
  if (size > MAX_BYTES && !LARGE_ALLOWED.has(file)) return `${file}: ${(size / MAX_BYTES).toFixed(1)} MiB (over 1 MiB)`;
  return undefined;
}

function head(file: string): Buffer {
  const buf = Buffer.alloc(8);
  const fd = openSync(file, "r");
  try {
    return buf.subarray(0, readSync(fd, buf, 0, buf.length, 0));
  } finally {
    closeSync(fd);
  }
}

describe("tracked files", () => {
  it("decides by size and by content", () => {
    const elf = Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]);
    const cases: [string, number, Buffer, boolean][] = [
      ["README.md", 10_000, Buffer.from("# CPM\n"), true],
      ["package-lock.json", 2 * MAX_BYTES, Buffer.from("{\n"), true],
      ["libs/proto/descriptors.binpb", 2 * MAX_BYTES, Buffer.from([0x0a, 0x10]), true],
      ["big.json", MAX_BYTES + 1, Buffer.from("{\n"), false],
      [".cache/caddy/v2/caddy", 100, elf, false],
      ["tool.exe", 100, Buffer.from("MZ\x90\x00"), false],
    ];
    for (const [file, size, bytes, ok] of cases) {
      assert.equal(trackedFileProblem(file, size, bytes) === undefined, ok, file);
    }
  });

  it("no tracked file is over 1 MiB or an executable binary", () => {
    const files = execFileSync("git", ["ls-files", "-z"], { cwd: ROOT, encoding: "utf8" }).split("\0").filter(Boolean);
    assert.ok(files.length > 100, "git lists the repository's files");
    const problems = files.flatMap((f) => {
      const full = path.join(ROOT, f);
      let size: number;
      try {
        size = statSync(full).size;
      } catch {
        return []; // deleted in the work tree, not yet committed
      }
      const p = trackedFileProblem(f, size, head(full));
      return p ? [p] : [];
    });
    assert.deepEqual(problems, []);
  });
});

// The snapshot's byte layout as the descriptor set that `npm run generate` builds from proto/
// (libs/proto/descriptors.binpb) describes it, by field name and type: what layout.test.ts holds
// the layout's numbers (taken from the generated encoder) against. Loaded by tests only: reading
// the set costs a process about 100 ms and 11 MB.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createFileRegistry, fromBinary, ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

/** Where the descriptor set is: resolved through @cpm/proto's exports, so from src/, dist/ and the image alike. */
const DESCRIPTOR_SET_PATH = createRequire(import.meta.url).resolve("@cpm/proto/descriptors.binpb");

const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(DESCRIPTOR_SET_PATH)));

class LayoutError extends Error {
  constructor(what: string) {
    super(`snapshot wire layout (${DESCRIPTOR_SET_PATH}): ${what}`);
  }
}

export function message(typeName: string): DescMessage {
  const m = registry.getMessage(typeName);
  if (!m) throw new LayoutError(`message ${typeName} not found`);
  return m;
}

/** A field's type as the .proto spells it: `int64`, `cpm.config.v1.Settings`, `repeated cpm.config.v1.ProxyHost`. */
export function protoType(f: DescField): string {
  switch (f.fieldKind) {
    case "scalar":
      return ScalarType[f.scalar].toLowerCase();
    case "enum":
      return f.enum.typeName;
    case "message":
      return f.message.typeName;
    case "list":
      return `repeated ${f.listKind === "scalar" ? ScalarType[f.scalar].toLowerCase() : f.listKind === "enum" ? f.enum.typeName : f.message.typeName}`;
    case "map":
      return "map";
  }
}

/** The number of `typeName`'s field `name` (the .proto's name), which must have the type `type`. */
export function descriptorField(typeName: string, name: string, type: string): number {
  const f = message(typeName).fields.find((x) => x.name === name);
  if (!f) throw new LayoutError(`${typeName}.${name} not found`);
  if (protoType(f) !== type) throw new LayoutError(`${typeName}.${name} is ${protoType(f)}, the framing reads ${type}`);
  return f.number;
}

/** Refuses a message with fields other than `names`: the framing reads those only and would drop the others. */
export function onlyFields(typeName: string, names: string[]): void {
  const other = message(typeName).fields.filter((f) => !names.includes(f.name));
  if (other.length > 0)
    throw new LayoutError(
      `${typeName} has ${other.map((f) => `${f.name} = ${f.number}`).join(", ")}, which the framing does not carry`,
    );
}

/** cpm.config.v1.Snapshot as the descriptor set describes it. */
export const SNAPSHOT_DESCRIPTOR = message("cpm.config.v1.Snapshot");

import { stringify } from "yaml";

export type OutputFormat = "table" | "json" | "yaml";
export const OUTPUT_FORMATS: readonly OutputFormat[] = ["table", "json", "yaml"];

/** A document as JSON (2-space indent) or YAML, keys in the order they were built. */
export function formatDocument(doc: unknown, format: "json" | "yaml"): string {
  if (format === "json") return `${JSON.stringify(doc, null, 2)}\n`;
  return stringify(doc, { lineWidth: 0 });
}

/** A plain-text table: a header row, columns padded to their widest cell. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n") + "\n";
}

/** An instant for a table: ISO 8601 to the second, UTC; "-" when unset. */
export function formatTime(d: Date | undefined): string {
  return d ? d.toISOString().replace(/\.\d{3}Z$/, "Z") : "-";
}

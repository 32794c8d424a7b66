import { ValidationError } from "./errors.ts";

/*
 * The one rule for text that reaches Caddy, used by every normalize* function (API writes and
 * received snapshots alike):
 * - Caddy expands placeholders ({env.NAME}, {file.PATH}, {http.request.header.X}) in most
 *   string fields of its config, so a value it is given must hold no "{" or "}": such values
 *   are refused, never escaped (an escaped value would differ from what the operator sees).
 * - Control characters (C0, DEL, C1, U+2028/U+2029) are refused in every name, label and
 *   value: they break logs, headers and terminals, and never belong in a host name or a label.
 * Fields of a fixed format (host names, IP addresses, PEM, bcrypt hashes) are covered by their
 * format checks too; these checks come first so the message says why.
 */

// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const PLACEHOLDER = /[{}]/;

const codePoint = (c: string) => `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;

/** Refuses control characters (C0, DEL, C1, U+2028, U+2029) anywhere in `raw`. */
export function checkNoControl(raw: string, field: string): void {
  const m = CONTROL.exec(raw);
  if (m) throw new ValidationError(field, `contains a control character (${codePoint(m[0])})`);
}

/** Refuses "{" and "}", which Caddy would read as a placeholder. */
export function checkNoPlaceholder(raw: string, field: string): void {
  if (PLACEHOLDER.test(raw))
    throw new ValidationError(field, `contains "{" or "}", which Caddy would read as a placeholder`);
}

/** A value written into Caddy's config: no placeholder braces, no control characters. */
export function checkCaddyText(raw: string, field: string): void {
  checkNoPlaceholder(raw, field);
  checkNoControl(raw, field);
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/**
 * A resource id or a reference to one (ids are UUIDs made by config-service; a snapshot
 * may carry others): letters, digits, ".", "_", ":" and "-", at most 128 characters.
 * Ids end up in Caddy's config (certificate tags), so nothing else is allowed.
 */
export function checkId(raw: string, field: string): string {
  checkCaddyText(raw, field);
  if (!ID.test(raw))
    throw new ValidationError(field, `"${raw}" is not an id (letters, digits, ".", "_", ":" and "-", at most 128)`);
  return raw;
}

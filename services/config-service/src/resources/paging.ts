import { checkNoControl, ValidationError } from "@cpm/core";

/** The largest page a List call returns when it asks for one (page_size > 0). */
export const MAX_PAGE_SIZE = 1000;
/** The longest search text a List call takes. */
export const MAX_QUERY_LENGTH = 200;

/** A List request's paging and search, checked: `after` is the sort key the page starts after. */
export interface PageRequest {
  /** 0: every match in one response. */
  pageSize: number;
  query: string;
  after: string | undefined;
}

/**
 * What a page token carries: the sort key of the last resource of the page before, and the
 * query it was read with (a token is valid only with the same query, as AIP-158 asks).
 * Opaque to callers: base64url of a small JSON object.
 */
interface TokenBody {
  after: string;
  query: string;
}

export function encodePageToken(after: string, query: string): string {
  const body: TokenBody = { after, query };
  return Buffer.from(JSON.stringify(body), "utf8").toString("base64url");
}

/** The token's body; a token this server did not write is INVALID_ARGUMENT naming page_token. */
export function decodePageToken(token: string): TokenBody {
  const bad = () => new ValidationError("page_token", "is not a token this server returned");
  if (!/^[A-Za-z0-9_-]+$/.test(token)) throw bad();
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw bad();
  }
  if (typeof body !== "object" || body === null) throw bad();
  const { after, query } = body as Record<string, unknown>;
  if (typeof after !== "string" || after === "" || typeof query !== "string") throw bad();
  return { after, query };
}

/** Checks a List request's page_size, page_token and query; errors name the field. */
export function pageRequest(req: { pageSize: number; pageToken: string; query: string }): PageRequest {
  if (!Number.isInteger(req.pageSize) || req.pageSize < 0)
    throw new ValidationError("page_size", "must be 0 (everything) or positive");
  const query = req.query;
  if (query.length > MAX_QUERY_LENGTH)
    throw new ValidationError("query", `is longer than ${MAX_QUERY_LENGTH} characters`);
  checkNoControl(query, "query");
  const pageSize = Math.min(req.pageSize, MAX_PAGE_SIZE);
  if (!req.pageToken) return { pageSize, query, after: undefined };
  const token = decodePageToken(req.pageToken);
  if (token.query !== query)
    throw new ValidationError("page_token", "was returned for another query; start again without it");
  return { pageSize, query, after: token.after };
}

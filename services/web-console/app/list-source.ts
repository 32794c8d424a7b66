// Where a list page's rows come from: a whole list read once and filtered in the browser, or
// the server's pages (search and paging done by the API, so a page costs the same at 10,000).

/** What the list page keeps across reloads: the search, the page, and the server's page tokens. */
export interface ListState {
  query: string;
  page: number;
  /** tokens[i]: the page token that reads page i ("" for the first). */
  tokens: string[];
  /** How many there are with no search (known after a page without one). */
  total?: number;
}

export interface Rows<T> {
  rows: T[];
  /** How many match the search, on every page. */
  matching: number;
  /** How many there are in all. */
  total: number;
  hasNext: boolean;
}

/** One page read from the server: its items, the next page's token ("" after the last) and the matches. */
export interface ServerPage<T> {
  items: T[];
  nextPageToken: string;
  totalSize: number;
}

export type ServerPages<T> = (req: { query: string; pageToken: string; pageSize: number }) => Promise<ServerPage<T>>;

export type Source<T> = (state: ListState) => Promise<Rows<T>>;

/** A list read whole at first use and searched here over `texts`. */
export function wholeList<T>(items: T[], texts: (x: T) => string[], pageSize: number): Source<T> {
  return (state) => {
    const q = state.query.trim().toLowerCase();
    const matching = q ? items.filter((x) => texts(x).some((v) => v.toLowerCase().includes(q))) : items;
    const pages = Math.max(1, Math.ceil(matching.length / pageSize));
    state.page = Math.min(state.page, pages - 1);
    return Promise.resolve({
      rows: matching.slice(state.page * pageSize, (state.page + 1) * pageSize),
      matching: matching.length,
      total: items.length,
      hasNext: state.page < pages - 1,
    });
  };
}

/** The server's pages: the page's token is the one the page before returned. */
export function serverPages<T>(read: ServerPages<T>, pageSize: number): Source<T> {
  const source: Source<T> = async (state) => {
    const query = state.query.trim();
    if (state.page >= state.tokens.length) state.page = state.tokens.length - 1;
    const [r, all] = await Promise.all([
      read({ query, pageToken: state.tokens[state.page] ?? "", pageSize }),
      // The count with no search, once, when the page opens on a search.
      query && state.total === undefined ? read({ query: "", pageToken: "", pageSize: 1 }) : undefined,
    ]);
    // The page's hosts were deleted since (the last page, after a delete): show the one before.
    if (r.items.length === 0 && state.page > 0) {
      state.page--;
      return source(state);
    }
    state.tokens[state.page + 1] = r.nextPageToken;
    state.tokens.length = r.nextPageToken ? state.page + 2 : state.page + 1;
    if (!query) state.total = r.totalSize;
    else if (all) state.total = all.totalSize;
    return { rows: r.items, matching: r.totalSize, total: state.total ?? r.totalSize, hasNext: !!r.nextPageToken };
  };
  return source;
}

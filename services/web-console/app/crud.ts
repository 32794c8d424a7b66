// The shared parts of every resource page: a list with search and paging, a form whose API
// field errors appear beside the field they name, and the dialog that creates or edits.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { isSignedOut, message } from "./api.ts";
import { field, h, show, type Child } from "./dom.ts";
import { serverPages, wholeList, type ListState, type ServerPages, type Source } from "./list-source.ts";
import { failed, layout, signInPage, type Session } from "./shell.ts";

const PAGE_SIZE = 25;

export const when = (t: Timestamp | undefined, none = "never") => (t ? timestampDate(t).toLocaleString() : none);

/** Lines (or commas) of a text area as a list. */
export const lines = (v: string) =>
  v
    .split(/[\n,]/)
    .map((x) => x.trim())
    .filter(Boolean);

/** A form's controls, each known by the API's field path ("domains", "general.acme_email"). */
export class Form {
  readonly body: Node[] = [];
  private readonly errors = new Map<string, { control: HTMLElement; error: HTMLElement }>();
  private readonly wraps = new Map<string, HTMLElement>();
  private checkRow: HTMLElement | undefined;

  private add(
    key: string,
    label: string,
    control: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement,
    hint?: string,
  ) {
    const f = field(label, control, hint);
    this.errors.set(key, { control, error: f.error });
    this.wraps.set(key, f.wrap);
    this.body.push(f.wrap);
    this.checkRow = undefined;
  }

  text(key: string, label: string, value: string, opts: { hint?: string; type?: string; autocomplete?: string } = {}) {
    const input = h("input", { type: opts.type ?? "text", value, autocomplete: opts.autocomplete });
    this.add(key, label, input, opts.hint);
    return input;
  }

  area(key: string, label: string, value: string, hint?: string, rows = 4) {
    const area = h("textarea", { rows, spellcheck: "false" }, value);
    this.add(key, label, area, hint);
    return area;
  }

  /** A list edited as one entry per line. */
  list(key: string, label: string, values: string[], hint?: string): () => string[] {
    const area = this.area(key, label, values.join("\n"), hint);
    return () => lines(area.value);
  }

  select<E extends number>(
    key: string,
    label: string,
    options: [E, string][],
    value: E,
    onchange?: (value: E) => void,
  ): () => E {
    const sel = h(
      "select",
      { onchange: onchange && (() => onchange(Number(sel.value) as E)) },
      ...options.map(([v, text]) => h("option", { value: String(v), selected: v === value }, text)),
    );
    this.add(key, label, sel);
    return () => Number(sel.value) as E;
  }

  /** A choice among strings, with "" for none (a certificate, an access list). */
  choice(key: string, label: string, options: [string, string][], value: string): () => string {
    const sel = h("select", {}, ...options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
    this.add(key, label, sel);
    return () => sel.value;
  }

  /** A checkbox; consecutive ones share a row. */
  check(key: string, label: string, checked: boolean): () => boolean {
    const input = h("input", { type: "checkbox", checked });
    if (!this.checkRow) {
      this.checkRow = h("div", { class: "field checks" });
      this.body.push(this.checkRow);
    }
    this.checkRow.append(h("label", {}, input, label));
    this.wraps.set(key, this.checkRow);
    this.errors.set(key, { control: input, error: h("span") });
    return () => input.checked;
  }

  /** Shows or hides the fields of `keys` (fields that apply to one kind of resource only). */
  showFields(keys: string[], visible: boolean) {
    for (const k of keys) this.wraps.get(k)?.toggleAttribute("hidden", !visible);
  }

  note(...children: Child[]) {
    this.body.push(h("div", { class: "field" }, ...children));
    this.checkRow = undefined;
  }

  clear() {
    for (const x of this.errors.values()) x.error.textContent = "";
  }

  /**
   * Shows the API's error beside the field it names ("l4_proxy_host.upstreams[0]: ..." or
   * "settings.general.acme_email: ..."), most specific field first; false when it names none here.
   */
  showError(err: unknown, prefix: string): boolean {
    const text = message(err);
    const m = /^([a-z0-9_]+(?:\[\d+\])?(?:\.[a-z0-9_]+(?:\[\d+\])?)*): /.exec(text);
    if (!m) return false;
    let parts = m[1]!.replace(/\[\d+\]/g, "").split(".");
    if (parts[0] === prefix) parts = parts.slice(1);
    for (let n = parts.length; n > 0; n--) {
      const target = this.errors.get(parts.slice(0, n).join("."));
      if (target) {
        target.error.textContent = text;
        target.control.focus();
        return true;
      }
    }
    return false;
  }
}

/** What a submit gives back: the version it committed, and what to show before closing (a token's secret). */
export interface Saved {
  configVersion?: bigint;
  show?: Node;
}

/**
 * A `<form>` of `f` that calls `submit`; the API's field errors go beside their fields, any other
 * error below the form. `done` runs after a successful write.
 */
export function formElement(
  s: Session,
  f: Form,
  opts: {
    titleId: string;
    title: string;
    submitLabel: string;
    prefix: string;
    submit: () => Promise<Saved>;
    done: (saved: Saved) => void;
    cancel?: () => void;
  },
): HTMLFormElement {
  const general = h("p", { class: "error", role: "alert" });
  const save = h("button", { type: "submit", class: "primary" }, opts.submitLabel);
  return h(
    "form",
    {
      // The API validates: its field errors are shown beside the fields, not the browser's.
      novalidate: true,
      "aria-labelledby": opts.titleId,
      onsubmit: (e: Event) => {
        e.preventDefault();
        f.clear();
        general.textContent = "";
        save.disabled = true;
        opts
          .submit()
          .then((saved) => {
            if (saved.configVersion !== undefined) s.info.version = saved.configVersion;
            opts.done(saved);
          })
          .catch((err: unknown) => {
            if (isSignedOut(err)) return signInPage("Your session ended: sign in again.");
            if (!f.showError(err, opts.prefix)) general.textContent = message(err);
          })
          .finally(() => (save.disabled = false));
      },
    },
    h("h2", { id: opts.titleId }, opts.title),
    ...f.body,
    general,
    h(
      "div",
      { class: "toolbar" },
      save,
      opts.cancel ? h("button", { type: "button", onclick: opts.cancel }, "Cancel") : null,
    ),
  );
}

/** Opens `f` in a modal dialog; after a save it closes (or first shows `saved.show`) and runs `after`. */
export function formDialog(
  s: Session,
  f: Form,
  opts: { title: string; submitLabel: string; prefix: string; submit: () => Promise<Saved>; after: () => void },
): void {
  const dialog = h("dialog", { "aria-labelledby": "form-title" });
  const close = () => {
    dialog.close();
    dialog.remove();
  };
  const form = formElement(s, f, {
    ...opts,
    titleId: "form-title",
    cancel: close,
    done: (saved) => {
      if (!saved.show) {
        close();
        return opts.after();
      }
      const ok = h("button", { type: "button", class: "primary", onclick: close }, "Close");
      dialog.addEventListener("close", opts.after);
      show(dialog, h("h2", { id: "form-title" }, opts.title), saved.show, h("div", { class: "toolbar" }, ok));
      ok.focus();
    },
  });
  dialog.append(form);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  dialog.querySelector<HTMLElement>("input, textarea, select")?.focus();
}

export interface Column<T> {
  label: string;
  cell: (x: T) => Child | Child[];
}

/** A kind of resource as a page: how to list it, show it, and (where the role allows) write it. */
export interface ResourceKind<T> {
  route: string;
  /** Plural, as the heading and menu say ("L4 hosts"). */
  title: string;
  /** Singular, lower case after "New" ("L4 host"). */
  singular: string;
  /** The API's prefix on this kind's field errors ("l4_proxy_host"). */
  prefix: string;
  /** The whole list, searched and paged in the browser; or `pages`. */
  load?: () => Promise<T[]>;
  /** The server's search and pages (the list is not read whole). */
  pages?: ServerPages<T>;
  name: (x: T) => string;
  columns: Column<T>[];
  /** The texts the search matches with `load` (default: the name). */
  searchable?: (x: T) => string[];
  searchHint?: string;
  writable: (s: Session) => boolean;
  /** Fills the form for a new resource (x undefined) or an edit, and returns the call that saves it. */
  form?: (f: Form, x: T | undefined) => Promise<() => Promise<Saved>> | (() => Promise<Saved>);
  /** Whether a resource can be edited (default: when there is a form). */
  editable?: (x: T) => boolean;
  remove?: { verb: string; run: (x: T) => Promise<unknown>; when?: (x: T) => boolean };
  intro?: (s: Session) => Child;
}

/** The list page of a kind: search, pages of 25, and create / edit / delete for writers. */
export async function resourcePage<T>(
  kind: ResourceKind<T>,
  s: Session,
  state: ListState = { query: "", page: 0, tokens: [""] },
): Promise<void> {
  let source: Source<T>;
  let first: Awaited<ReturnType<Source<T>>>;
  try {
    const texts = kind.searchable ?? ((x: T) => [kind.name(x)]);
    source = kind.pages ? serverPages(kind.pages, PAGE_SIZE) : wholeList(await kind.load!(), texts, PAGE_SIZE);
    first = await source(state);
  } catch (err) {
    return failed(s, err);
  }
  const writable = kind.writable(s);
  const reload = () => void resourcePage(kind, s, state);
  const open = async (x: T | undefined) => {
    const f = new Form();
    const submit = await kind.form!(f, x);
    formDialog(s, f, {
      title: x ? `Edit ${kind.name(x)}` : `New ${kind.singular}`,
      submitLabel: x ? "Save" : "Create",
      prefix: kind.prefix,
      submit,
      after: reload,
    });
  };
  const remove = async (x: T) => {
    if (!confirm(`${kind.remove!.verb} the ${kind.singular} "${kind.name(x)}"?`)) return;
    try {
      const r = (await kind.remove!.run(x)) as Saved | undefined;
      if (typeof r?.configVersion === "bigint") s.info.version = r.configVersion;
      reload();
    } catch (err) {
      failed(s, err);
    }
  };
  const search = h("input", {
    type: "search",
    value: state.query,
    placeholder: kind.searchHint ?? "name",
    maxlength: 200,
  });
  const searchField = field("Search", search);
  const tbody = h("tbody");
  const pageInfo = h("span", { "aria-live": "polite" });
  const prev = h("button", { type: "button" }, "Previous");
  const next = h("button", { type: "button" }, "Next");
  const labels = [...kind.columns.map((c) => c.label), "Actions"];
  const actions = (x: T): Child[] => {
    if (!writable) return [h("span", { class: "muted" }, "read-only")];
    const name = kind.name(x);
    return [
      kind.form && (kind.editable?.(x) ?? true)
        ? h(
            "button",
            {
              type: "button",
              "aria-label": `Edit ${name}`,
              onclick: () => void open(x).catch((err: unknown) => failed(s, err)),
            },
            "Edit",
          )
        : null,
      " ",
      kind.remove && (kind.remove.when?.(x) ?? true)
        ? h(
            "button",
            {
              type: "button",
              class: "danger",
              "aria-label": `${kind.remove.verb} ${name}`,
              onclick: () => void remove(x),
            },
            kind.remove.verb,
          )
        : null,
    ];
  };
  const render = ({ rows, matching, total, hasNext }: Awaited<ReturnType<Source<T>>>) => {
    show(
      tbody,
      rows.length
        ? rows.map((x) =>
            h(
              "tr",
              { "data-name": kind.name(x) },
              ...kind.columns.map((c) => h("td", { "data-label": c.label }, c.cell(x))),
              h("td", { class: "actions", "data-label": "Actions" }, actions(x)),
            ),
          )
        : h(
            "tr",
            {},
            h(
              "td",
              { colspan: labels.length, class: "muted" },
              state.query.trim() ? `No ${kind.singular} matches.` : `No ${kind.title.toLowerCase()} yet.`,
            ),
          ),
    );
    const pages = Math.max(1, Math.ceil(matching / PAGE_SIZE));
    pageInfo.textContent = `Page ${state.page + 1} of ${pages} · ${matching} of ${total} ${kind.title.toLowerCase()}`;
    prev.disabled = state.page === 0;
    next.disabled = !hasNext;
  };
  // The latest read wins: an answer to an earlier search or page that arrives late is dropped.
  let reads = 0;
  /** Reads and shows the rows of `state`; false when the read failed (its error is shown). */
  const update = async (): Promise<boolean> => {
    const n = ++reads;
    try {
      const r = await source(state);
      if (n === reads) {
        searchField.error.textContent = "";
        render(r);
      }
      return true;
    } catch (err) {
      if (n !== reads) return false;
      if (isSignedOut(err)) signInPage("Your session ended: sign in again.");
      else searchField.error.textContent = message(err);
      return false;
    }
  };
  // One page turn at a time; the buttons keep the focus (a disabled one would lose it).
  let turning = false;
  const turn = (by: number) => {
    if (turning) return;
    turning = true;
    state.page += by;
    void update().then((ok) => {
      if (!ok) state.page -= by;
      turning = false;
    });
  };
  let typing: ReturnType<typeof setTimeout> | undefined;
  search.addEventListener("input", () => {
    state.query = search.value;
    state.page = 0;
    state.tokens = [""];
    // The server is asked once typing pauses; a list held here is searched at once.
    clearTimeout(typing);
    if (kind.pages) typing = setTimeout(() => void update(), 250);
    else void update();
  });
  prev.addEventListener("click", () => turn(-1));
  next.addEventListener("click", () => turn(1));
  render(first);
  layout(
    s,
    kind.route,
    h("h2", {}, kind.title),
    kind.intro ? h("p", { class: "muted" }, kind.intro(s)) : null,
    h(
      "div",
      { class: "toolbar" },
      h("div", { class: "grow" }, searchField.wrap),
      writable && kind.form
        ? h(
            "button",
            {
              type: "button",
              class: "primary",
              onclick: () => void open(undefined).catch((err: unknown) => failed(s, err)),
            },
            `New ${kind.singular}`,
          )
        : null,
    ),
    h(
      "table",
      { "aria-label": kind.title },
      h("thead", {}, h("tr", {}, ...labels.map((t) => h("th", { scope: "col" }, t)))),
      tbody,
    ),
    h("div", { class: "pager" }, prev, next, pageInfo),
  );
}

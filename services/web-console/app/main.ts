import { create } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { InstanceMode, type GetInstanceInfoResponse } from "../src/gen/cpm/config/v1/config_service_pb.ts";
import { ProxyHostSchema, type ProxyHost } from "../src/gen/cpm/config/v1/resources_pb.ts";
import type { GetSyncStatusResponse } from "../src/gen/cpm/sync/v1/sync_pb.ts";
import { config, dispatcher, fieldError, isSignedOut, message, signIn, signOut, whoAmI, type Me } from "./api.ts";
import { field, h, show } from "./dom.ts";

const root = document.getElementById("app")!;
const PAGE_SIZE = 25;
/** The fleet page asks for the dispatcher's status this often (at most 2 s apart). */
const FLEET_POLL_MS = 1500;

interface Session {
  me: Me;
  info: GetInstanceInfoResponse;
  /** Writes allowed: an admin, and not a slave (a slave's synced resources come from its master). */
  canWrite: boolean;
}

let stopPage: (() => void) | undefined;

async function start(): Promise<void> {
  const me = await whoAmI();
  if (!me) return signInPage();
  let info: GetInstanceInfoResponse;
  try {
    info = await config.getInstanceInfo({});
  } catch (err) {
    if (isSignedOut(err)) return signInPage();
    throw err;
  }
  const s: Session = { me, info, canWrite: me.role === "admin" && info.mode !== InstanceMode.SLAVE };
  window.onhashchange = () => route(s);
  route(s);
}

function signInPage(message?: string): void {
  stopPage?.();
  document.title = "Sign in · Caddy Proxy Manager";
  const user = h("input", { type: "text", name: "username", autocomplete: "username", required: true });
  const pass = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "error", role: "alert" }, message ?? "");
  const submit = h("button", { class: "primary", type: "submit" }, "Sign in");
  const form = h(
    "form",
    {
      "aria-labelledby": "signin-title",
      onsubmit: (e: Event) => {
        e.preventDefault();
        submit.disabled = true;
        signIn(user.value, pass.value)
          .then((r) => {
            if (r.ok) return start();
            error.textContent = r.error;
            pass.value = "";
            pass.focus();
          })
          .catch((err: unknown) => (error.textContent = String(err)))
          .finally(() => (submit.disabled = false));
      },
    },
    h("h1", { id: "signin-title" }, "Caddy Proxy Manager"),
    field("Username", user).wrap,
    field("Password", pass).wrap,
    error,
    submit,
  );
  show(root, h("main", {}, h("div", { class: "card" }, form)));
  user.focus();
}

function layout(s: Session, current: string, ...content: Node[]): void {
  const isMaster = s.info.mode === InstanceMode.MASTER;
  const link = (href: string, text: string) =>
    h("a", { href, "aria-current": current === href ? "page" : undefined }, text);
  const modeName = InstanceMode[s.info.mode].toLowerCase();
  show(
    root,
    h(
      "header",
      {},
      h("h1", {}, "Caddy Proxy Manager"),
      h("nav", { "aria-label": "Pages" }, link("#/hosts", "Proxy hosts"), isMaster ? link("#/fleet", "Fleet") : null),
      h(
        "div",
        { class: "who" },
        h("span", {}, `${s.me.username} (${s.me.role}) · ${modeName} · version ${s.info.version}`),
        h(
          "button",
          {
            type: "button",
            onclick: () => {
              void signOut().then(() => signInPage("Signed out."));
            },
          },
          "Sign out",
        ),
      ),
    ),
    s.info.mode === InstanceMode.SLAVE
      ? h(
          "div",
          { class: "banner", role: "status" },
          `Read-only: this instance is a slave of master ${s.info.masterInstanceId || "(not synced yet)"}. Its proxy hosts, L4 hosts, certificates, access lists and settings are managed on the master.`,
        )
      : null,
    h("main", {}, ...content),
  );
}

function route(s: Session): void {
  stopPage?.();
  stopPage = undefined;
  const hash = location.hash || "#/hosts";
  if (hash === "#/fleet" && s.info.mode === InstanceMode.MASTER) return fleetPage(s);
  void hostsPage(s);
}

function failed(s: Session, err: unknown): void {
  if (isSignedOut(err)) return signInPage("Your session ended: sign in again.");
  layout(s, "", h("p", { class: "error", role: "alert" }, message(err)));
}

// ---- Proxy hosts --------------------------------------------------------------------------

async function hostsPage(s: Session, state = { query: "", page: 0 }): Promise<void> {
  document.title = "Proxy hosts · Caddy Proxy Manager";
  let hosts: ProxyHost[];
  try {
    hosts = (await config.listProxyHosts({})).proxyHosts;
  } catch (err) {
    return failed(s, err);
  }
  const search = h("input", { type: "search", value: state.query, placeholder: "name, domain or upstream" });
  const tbody = h("tbody");
  const pageInfo = h("span", { "aria-live": "polite" });
  const prev = h("button", { type: "button" }, "Previous");
  const next = h("button", { type: "button" }, "Next");
  const render = () => {
    const q = state.query.trim().toLowerCase();
    const matching = q
      ? hosts.filter((x) => [x.name, ...x.domains, ...x.upstreams].some((v) => v.toLowerCase().includes(q)))
      : hosts;
    const pages = Math.max(1, Math.ceil(matching.length / PAGE_SIZE));
    state.page = Math.min(state.page, pages - 1);
    const rows = matching.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE);
    show(
      tbody,
      rows.length
        ? rows.map((x) =>
            h(
              "tr",
              {},
              h("td", { "data-label": "Name" }, x.name),
              h("td", { "data-label": "Domains" }, x.domains.join(", ")),
              h("td", { "data-label": "Upstreams" }, x.upstreams.join(", ")),
              h("td", { "data-label": "Enabled" }, x.enabled === false ? "no" : "yes"),
              h(
                "td",
                { class: "actions", "data-label": "Actions" },
                s.canWrite
                  ? [
                      h(
                        "button",
                        { type: "button", "aria-label": `Edit ${x.name}`, onclick: () => hostForm(s, x, state) },
                        "Edit",
                      ),
                      " ",
                      h(
                        "button",
                        {
                          type: "button",
                          class: "danger",
                          "aria-label": `Delete ${x.name}`,
                          onclick: () => void deleteHost(s, x, state),
                        },
                        "Delete",
                      ),
                    ]
                  : h("span", { class: "muted" }, "read-only"),
              ),
            ),
          )
        : h("tr", {}, h("td", { colspan: 5, class: "muted" }, q ? "No proxy host matches." : "No proxy hosts yet.")),
    );
    pageInfo.textContent = `Page ${state.page + 1} of ${pages} · ${matching.length} of ${hosts.length} proxy hosts`;
    prev.disabled = state.page === 0;
    next.disabled = state.page >= pages - 1;
  };
  search.addEventListener("input", () => {
    state.query = search.value;
    state.page = 0;
    render();
  });
  prev.addEventListener("click", () => {
    state.page--;
    render();
  });
  next.addEventListener("click", () => {
    state.page++;
    render();
  });
  render();
  layout(
    s,
    "#/hosts",
    h("h2", {}, "Proxy hosts"),
    h(
      "div",
      { class: "toolbar" },
      h("div", { class: "grow" }, field("Search", search).wrap),
      s.canWrite
        ? h(
            "button",
            { type: "button", class: "primary", onclick: () => hostForm(s, undefined, state) },
            "New proxy host",
          )
        : null,
    ),
    h(
      "table",
      { "aria-label": "Proxy hosts" },
      h(
        "thead",
        {},
        h("tr", {}, ...["Name", "Domains", "Upstreams", "Enabled", "Actions"].map((t) => h("th", { scope: "col" }, t))),
      ),
      tbody,
    ),
    h("div", { class: "pager" }, prev, next, pageInfo),
  );
}

const lines = (v: string) =>
  v
    .split(/[\n,]/)
    .map((x) => x.trim())
    .filter(Boolean);

function hostForm(s: Session, host: ProxyHost | undefined, state: { query: string; page: number }): void {
  const name = h("input", { type: "text", value: host?.name ?? "", required: true });
  const domains = h("textarea", {}, host?.domains.join("\n") ?? "");
  const upstreams = h("textarea", {}, host?.upstreams.join("\n") ?? "");
  const check = (label: string, checked: boolean | undefined) => {
    const input = h("input", { type: "checkbox", checked: checked === true });
    return { input, label: h("label", {}, input, label) };
  };
  const enabled = check("Enabled", host?.enabled !== false);
  const websocket = check("WebSocket", host?.allowWebsocket);
  const preserve = check("Keep the Host header", host?.preserveHostHeader);
  const f = {
    name: field("Name", name),
    domains: field("Domains", domains, "One per line; a leading *. is a wildcard."),
    upstreams: field("Upstreams", upstreams, "host:port, one per line; http:// or https:// optional."),
  };
  const general = h("p", { class: "error", role: "alert" });
  const save = h("button", { type: "submit", class: "primary" }, host ? "Save" : "Create");
  const dialog = h("dialog", { "aria-labelledby": "host-form-title" });
  const close = () => {
    dialog.close();
    dialog.remove();
  };
  const form = h(
    "form",
    {
      onsubmit: (e: Event) => {
        e.preventDefault();
        for (const x of Object.values(f)) x.error.textContent = "";
        general.textContent = "";
        const msg: ProxyHost = host ? { ...host } : create(ProxyHostSchema);
        msg.name = name.value;
        msg.domains = lines(domains.value);
        msg.upstreams = lines(upstreams.value);
        msg.enabled = enabled.input.checked;
        msg.allowWebsocket = websocket.input.checked;
        msg.preserveHostHeader = preserve.input.checked;
        save.disabled = true;
        (host ? config.updateProxyHost({ proxyHost: msg }) : config.createProxyHost({ proxyHost: msg }))
          .then((r) => {
            close();
            s.info.version = r.configVersion;
            void hostsPage(s, state);
          })
          .catch((err: unknown) => {
            if (isSignedOut(err)) return signInPage("Your session ended: sign in again.");
            const fe = fieldError(err, "proxy_host");
            const target = fe && (f as Record<string, { error: HTMLElement } | undefined>)[fe.field];
            if (target) {
              target.error.textContent = fe.text;
              dialog.querySelector<HTMLElement>(`#${target.error.id.replace(/-error$/, "")}`)?.focus();
            } else general.textContent = message(err);
          })
          .finally(() => (save.disabled = false));
      },
    },
    h("h2", { id: "host-form-title" }, host ? `Edit ${host.name}` : "New proxy host"),
    f.name.wrap,
    f.domains.wrap,
    f.upstreams.wrap,
    h("div", { class: "field checks" }, enabled.label, websocket.label, preserve.label),
    general,
    h("div", { class: "toolbar" }, save, h("button", { type: "button", onclick: close }, "Cancel")),
  );
  dialog.append(form);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  name.focus();
}

async function deleteHost(s: Session, host: ProxyHost, state: { query: string; page: number }): Promise<void> {
  if (!confirm(`Delete the proxy host "${host.name}"?`)) return;
  try {
    const r = await config.deleteProxyHost({ id: host.id });
    s.info.version = r.configVersion;
    await hostsPage(s, state);
  } catch (err) {
    failed(s, err);
  }
}

// ---- Fleet --------------------------------------------------------------------------------

const when = (t: Timestamp | undefined) => (t ? timestampDate(t).toLocaleString() : "never");

function fleetPage(s: Session): void {
  document.title = "Fleet · Caddy Proxy Manager";
  const status = h("p", { class: "muted", "aria-live": "polite" });
  const tbody = h("tbody");
  const summary = h("p");
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  stopPage = () => {
    stopped = true;
    clearTimeout(timer);
  };
  const draw = (r: GetSyncStatusResponse) => {
    summary.textContent = `Master ${r.masterInstanceId} at version ${r.masterVersion}; ${r.slaves.filter((x) => x.connected).length} of ${r.slaves.length} slaves connected.`;
    show(
      tbody,
      r.slaves.length
        ? r.slaves.map((x) =>
            h(
              "tr",
              { "data-slave": x.name },
              h("td", { "data-label": "Slave" }, x.name, h("div", { class: "muted" }, x.url)),
              h(
                "td",
                { "data-label": "Connected" },
                h("span", { class: x.connected ? "ok" : "bad" }, x.connected ? "connected" : "disconnected"),
              ),
              h("td", { "data-label": "Acked / master" }, `${x.ackedVersion} / ${x.masterVersion}`),
              h("td", { "data-label": "Lag" }, String(x.lag)),
              h("td", { "data-label": "Last seen" }, when(x.lastSyncTime)),
              h(
                "td",
                { "data-label": "Last error" },
                x.lastError ? `${x.lastError} (${when(x.lastErrorTime)})` : "none",
              ),
            ),
          )
        : h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No slaves are configured (INSTANCE_SLAVES).")),
    );
  };
  const poll = () => {
    dispatcher
      .getSyncStatus({})
      .then((r) => {
        if (stopped) return;
        draw(r);
        status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
      })
      .catch((err: unknown) => {
        if (stopped) return;
        if (isSignedOut(err)) {
          stopped = true;
          return signInPage("Your session ended: sign in again.");
        }
        status.textContent = `Cannot read the fleet's status: ${message(err)}`;
      })
      .finally(() => {
        if (!stopped) timer = setTimeout(poll, FLEET_POLL_MS);
      });
  };
  layout(
    s,
    "#/fleet",
    h("h2", {}, "Fleet"),
    summary,
    h(
      "table",
      { "aria-label": "Slaves" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ...["Slave", "Connected", "Acked / master", "Lag", "Last seen", "Last error"].map((t) =>
            h("th", { scope: "col" }, t),
          ),
        ),
      ),
      tbody,
    ),
    status,
  );
  poll();
}

start().catch((err: unknown) =>
  show(root, h("p", { class: "error", role: "alert" }, `The console could not start: ${String(err)}`)),
);

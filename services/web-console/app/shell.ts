import { InstanceMode, type GetInstanceInfoResponse } from "../src/gen/cpm/config/v1/config_service_pb.ts";
import { isSignedOut, message, signIn, signOut, type Me } from "./api.ts";
import { field, h, show, type Child } from "./dom.ts";

export const root = document.getElementById("app")!;

export interface Session {
  me: Me;
  info: GetInstanceInfoResponse;
  admin: boolean;
  slave: boolean;
  master: boolean;
}

/** Writes to synced kinds: an admin, and not on a slave (its master manages them). */
export const writesSynced = (s: Session) => s.admin && !s.slave;
/** Writes to this instance's own users and tokens: an admin, on any instance. */
export const writesLocal = (s: Session) => s.admin;

/** A page: the hash it answers, its name in the menu, who sees it, and how it draws. */
export interface Page {
  route: string;
  title: string;
  visible?: (s: Session) => boolean;
  open: (s: Session) => void | Promise<void>;
}

let pages: Page[] = [];
let restart: () => Promise<void> = () => Promise.resolve();
let stop: (() => void) | undefined;

/** The pages in menu order, and what signing in runs. */
export function configure(all: Page[], onSignedIn: () => Promise<void>): void {
  pages = all;
  restart = onSignedIn;
}

/** What to do when the user leaves the current page (stop polling). */
export function onLeave(fn: () => void): void {
  stop = fn;
}

export function route(s: Session): void {
  stop?.();
  stop = undefined;
  const visible = pages.filter((p) => p.visible?.(s) ?? true);
  const page = visible.find((p) => p.route === location.hash) ?? visible[0]!;
  document.title = `${page.title} · Caddy Proxy Manager`;
  void page.open(s);
}

export function signInPage(note?: string): void {
  stop?.();
  stop = undefined;
  document.title = "Sign in · Caddy Proxy Manager";
  const user = h("input", { type: "text", name: "username", autocomplete: "username", required: true });
  const pass = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "error", role: "alert" }, note ?? "");
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
            if (r.ok) return restart();
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

/** The page frame: the menu, who is signed in, the slave's banner, then `content`. */
export function layout(s: Session, current: string, ...content: Child[]): void {
  const link = (p: Page) =>
    h("a", { href: p.route, "aria-current": current === p.route ? "page" : undefined }, p.title);
  const modeName = InstanceMode[s.info.mode].toLowerCase();
  show(
    root,
    h(
      "header",
      {},
      h("h1", {}, "Caddy Proxy Manager"),
      h("nav", { "aria-label": "Pages" }, ...pages.filter((p) => p.visible?.(s) ?? true).map(link)),
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
    s.slave
      ? h(
          "div",
          { class: "banner", role: "status" },
          `Read-only: this instance is a slave of master ${s.info.masterInstanceId || "(not synced yet)"}. Its proxy hosts, L4 hosts, certificates, access lists and settings are managed on the master.`,
        )
      : null,
    h("main", {}, ...content),
  );
}

/** A call that failed: back to sign-in when the session is over, else the API's message. */
export function failed(s: Session, err: unknown): void {
  if (isSignedOut(err)) return signInPage("Your session ended: sign in again.");
  layout(s, location.hash, h("p", { class: "error", role: "alert" }, message(err)));
}

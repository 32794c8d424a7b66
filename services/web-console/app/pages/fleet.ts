import { Compatibility, type GetSyncStatusResponse, type SlaveStatus } from "../../src/gen/cpm/sync/v1/sync_pb.ts";
import { dispatcher, isSignedOut, message } from "../api.ts";
import { h, show } from "../dom.ts";
import { when } from "../crud.ts";
import { layout, onLeave, signInPage, type Page, type Session } from "../shell.ts";

/** The fleet page asks for the dispatcher's status this often (at most 2 s apart). */
const FLEET_POLL_MS = 1500;

/** ok, or INCOMPATIBLE with each issue's message; "unknown" before the slave's stream first opened. */
function compatibility(x: SlaveStatus): Node {
  if (x.compatibility === Compatibility.INCOMPATIBLE)
    return h(
      "div",
      {},
      h("span", { class: "bad" }, "INCOMPATIBLE"),
      h("ul", { class: "issues" }, ...x.compatibilityIssues.map((i) => h("li", {}, i.message))),
    );
  return x.compatibility === Compatibility.OK
    ? h("span", { class: "ok" }, "ok")
    : h("span", { class: "muted" }, "unknown");
}

/** How many of the master's issued certificates the slave serves (acknowledged at or after their issuance). */
function certificatesServed(r: GetSyncStatusResponse, slave: string): string {
  const served = r.certificates.filter((c) => c.slaves.some((x) => x.slaveName === slave && x.servesCurrent)).length;
  return `${served} of ${r.certificates.length}`;
}

function open(s: Session): void {
  const status = h("p", { class: "muted", "aria-live": "polite" });
  const tbody = h("tbody");
  const summary = h("p");
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  onLeave(() => {
    stopped = true;
    clearTimeout(timer);
  });
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
              h("td", { "data-label": "Release" }, x.release || "unknown"),
              h("td", { "data-label": "Compatibility" }, compatibility(x)),
              h("td", { "data-label": "Acked / master" }, `${x.ackedVersion} / ${x.masterVersion}`),
              h("td", { "data-label": "Lag" }, String(x.lag)),
              h("td", { "data-label": "Last seen" }, when(x.lastSyncTime)),
              h(
                "td",
                { "data-label": "Last error" },
                x.lastError ? `${x.lastError} (${when(x.lastErrorTime)})` : "none",
              ),
              h("td", { "data-label": "Certificates served" }, certificatesServed(r, x.name)),
            ),
          )
        : h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No slaves are configured (INSTANCE_SLAVES).")),
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
          ...[
            "Slave",
            "Connected",
            "Release",
            "Compatibility",
            "Acked / master",
            "Lag",
            "Last seen",
            "Last error",
            "Certificates served",
          ].map((t) => h("th", { scope: "col" }, t)),
        ),
      ),
      tbody,
    ),
    status,
  );
  poll();
}

export const fleetPage: Page = { route: "#/fleet", title: "Fleet", visible: (s) => s.master, open };

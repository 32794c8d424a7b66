import { InstanceMode, type GetInstanceInfoResponse } from "../src/gen/cpm/config/v1/config_service_pb.ts";
import { config, isSignedOut, whoAmI } from "./api.ts";
import { h, show } from "./dom.ts";
import { accessListsPage } from "./pages/access-lists.ts";
import { certificatesPage } from "./pages/certificates.ts";
import { fleetPage } from "./pages/fleet.ts";
import { l4HostsPage } from "./pages/l4-hosts.ts";
import { proxyHostsPage } from "./pages/proxy-hosts.ts";
import { settingsPage } from "./pages/settings.ts";
import { tokensPage } from "./pages/tokens.ts";
import { usersPage } from "./pages/users.ts";
import { configure, root, route, signInPage, type Session } from "./shell.ts";

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
  const s: Session = {
    me,
    info,
    admin: me.role === "admin",
    slave: info.mode === InstanceMode.SLAVE,
    master: info.mode === InstanceMode.MASTER,
  };
  window.onhashchange = () => route(s);
  route(s);
}

configure(
  [proxyHostsPage, l4HostsPage, certificatesPage, accessListsPage, settingsPage, usersPage, tokensPage, fleetPage],
  start,
);

start().catch((err: unknown) =>
  show(root, h("p", { class: "error", role: "alert" }, `The console could not start: ${String(err)}`)),
);

import { create } from "@bufbuild/protobuf";
import {
  AcmeSettingsSchema,
  GeneralSettingsSchema,
  HttpSettingsSchema,
  SettingsSchema,
} from "../../src/gen/cpm/config/v1/resources_pb.ts";
import { config } from "../api.ts";
import { h } from "../dom.ts";
import { Form, formElement } from "../crud.ts";
import { failed, layout, writesSynced, type Page, type Session } from "../shell.ts";

const seconds = (v: string) => (v.trim() === "" ? 0 : Number(v));

async function open(s: Session, note = ""): Promise<void> {
  let current;
  try {
    current = (await config.getSettings({})).settings ?? create(SettingsSchema);
  } catch (err) {
    return failed(s, err);
  }
  const f = new Form();
  const g = current.general;
  const a = current.acme;
  const http = current.http;
  const primary = f.text("general.primary_domain", "Primary domain", g?.primaryDomain ?? "");
  const email = f.text("general.acme_email", "ACME account email", g?.acmeEmail ?? "", { type: "email" });
  const caUrl = f.text("acme.ca_url", "ACME directory URL", a?.caUrl ?? "", { hint: "Empty: Let's Encrypt." });
  const caRoot = f.area("acme.ca_root_pem", "ACME CA root PEM", a?.caRootPem ?? "", "For a private CA.", 4);
  const hsts = f.text("http.hsts_max_age_seconds", "HSTS max-age (seconds)", String(http?.hstsMaxAgeSeconds ?? ""), {
    type: "number",
    hint: "Empty: the default.",
  });
  const dial = f.text(
    "http.upstream_dial_timeout_seconds",
    "Upstream dial timeout (seconds)",
    http?.upstreamDialTimeoutSeconds ? String(http.upstreamDialTimeoutSeconds) : "",
    { type: "number", hint: "Empty: the default." },
  );
  const header = f.text(
    "http.upstream_response_header_timeout_seconds",
    "Upstream response header timeout (seconds)",
    http?.upstreamResponseHeaderTimeoutSeconds ? String(http.upstreamResponseHeaderTimeoutSeconds) : "",
    { type: "number", hint: "Empty: none." },
  );
  const saved = h("p", { class: "muted", role: "status" }, note);
  const form = formElement(s, f, {
    titleId: "settings-title",
    title: "Settings",
    submitLabel: "Save settings",
    prefix: "settings",
    submit: async () => {
      const settings = create(SettingsSchema, {
        general: create(GeneralSettingsSchema, { primaryDomain: primary.value, acmeEmail: email.value }),
        acme: create(AcmeSettingsSchema, { caUrl: caUrl.value, caRootPem: caRoot.value }),
        http: create(HttpSettingsSchema, {
          hstsMaxAgeSeconds: hsts.value.trim() === "" ? undefined : seconds(hsts.value),
          upstreamDialTimeoutSeconds: seconds(dial.value),
          upstreamResponseHeaderTimeoutSeconds: seconds(header.value),
        }),
      });
      return config.updateSettings({ settings });
    },
    // Drawn again, so the header shows the new version.
    done: (r) => void open(s, `Saved: version ${r.configVersion}.`),
  });
  if (!writesSynced(s)) {
    // Read-only: every control disabled, no save button.
    form.querySelectorAll("input, textarea, select").forEach((c) => c.setAttribute("disabled", ""));
    form.querySelector('button[type="submit"]')?.remove();
  }
  layout(s, "#/settings", form, saved);
}

export const settingsPage: Page = { route: "#/settings", title: "Settings", open: (s) => open(s) };

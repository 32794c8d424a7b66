import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { describe, test } from "node:test";
import { Settings, Snapshot, type DeepPartial } from "@cpm/proto";
import { render } from "./index.ts";
import { hstsValue, transportTimeouts } from "./settings.ts";
import {
  assertCaddyAccepts,
  assertGolden,
  CADDY,
  cert,
  handlersFor,
  host,
  OPTS,
  pretty,
  proxyFor,
  withTempDir,
  parseConfig,
  type CaddyConfig,
} from "./test-support.ts";
import { SNAPSHOT_SCHEMA_VERSION } from "@cpm/core";

const withSettings = (http: DeepPartial<Settings["http"]> | undefined) =>
  Snapshot.fromPartial({
    schemaVersion: SNAPSHOT_SCHEMA_VERSION,
    masterInstanceId: "m",
    version: 1,
    proxyHosts: [
      host("hsts", ["hsts.example.com"], {
        certificateId: "c",
        sslForced: true,
        hstsEnabled: true,
        hstsSubdomains: true,
      }),
      host("plain", ["plain.example.com"]),
      host("tls-up", ["tls-up.example.com"], {
        upstreams: ["https://secure.internal:8443"],
        skipHttpsHostnameValidation: true,
      }),
    ],
    certificates: [cert("c", ["hsts.example.com"])],
    settings: http === undefined ? undefined : { http },
  });

const rp = (cfg: CaddyConfig, server: "http" | "https", domain: string) => proxyFor(cfg, domain, server === "https");
const sts = (cfg: CaddyConfig, domain: string) =>
  handlersFor(cfg, { host: domain, https: true }).find((h) => h.handler === "headers")?.response.set[
    "Strict-Transport-Security"
  ];

describe("settings -> HTTP config", () => {
  test("hstsValue: the settings' max-age, one year when unset, 0 kept", () => {
    assert.equal(hstsValue({ hstsSubdomains: false }, undefined), "max-age=31536000");
    assert.equal(hstsValue({ hstsSubdomains: true }, Settings.fromPartial({})), "max-age=31536000; includeSubDomains");
    assert.equal(
      hstsValue({ hstsSubdomains: false }, Settings.fromPartial({ http: { hstsMaxAgeSeconds: 600 } })),
      "max-age=600",
    );
    assert.equal(
      hstsValue({ hstsSubdomains: true }, Settings.fromPartial({ http: { hstsMaxAgeSeconds: 0 } })),
      "max-age=0; includeSubDomains",
    );
  });

  test("transportTimeouts: Caddy durations, nothing when both are 0", () => {
    assert.equal(transportTimeouts(undefined), undefined);
    assert.equal(transportTimeouts(Settings.fromPartial({ http: {} })), undefined);
    assert.deepEqual(transportTimeouts(Settings.fromPartial({ http: { upstreamDialTimeoutSeconds: 5 } })), {
      dial_timeout: "5s",
    });
    assert.deepEqual(transportTimeouts(Settings.fromPartial({ http: { upstreamResponseHeaderTimeoutSeconds: 30 } })), {
      response_header_timeout: "30s",
    });
    assert.deepEqual(
      transportTimeouts(
        Settings.fromPartial({ http: { upstreamDialTimeoutSeconds: 2, upstreamResponseHeaderTimeoutSeconds: 60 } }),
      ),
      {
        dial_timeout: "2s",
        response_header_timeout: "60s",
      },
    );
  });

  test("no settings or default settings render the same config as before settings existed", () => {
    const none = render(withSettings(undefined), OPTS).json;
    assert.equal(render(withSettings({}), OPTS).json, none);
    assert.equal(render(withSettings({ hstsMaxAgeSeconds: 31536000 }), OPTS).json, none);
    const cfg = parseConfig(none);
    assert.deepEqual(sts(cfg, "hsts.example.com"), ["max-age=31536000; includeSubDomains"]);
    assert.equal(rp(cfg, "http", "plain.example.com").transport, undefined);
  });

  test("HSTS max-age and upstream timeouts reach every host's reverse_proxy", () => {
    const cfg = parseConfig(
      render(
        withSettings({
          hstsMaxAgeSeconds: 86400,
          upstreamDialTimeoutSeconds: 4,
          upstreamResponseHeaderTimeoutSeconds: 45,
        }),
        OPTS,
      ).json,
    );
    assert.deepEqual(sts(cfg, "hsts.example.com"), ["max-age=86400; includeSubDomains"]);
    assert.deepEqual(rp(cfg, "http", "plain.example.com").transport, {
      protocol: "http",
      dial_timeout: "4s",
      response_header_timeout: "45s",
    });
    assert.deepEqual(rp(cfg, "https", "hsts.example.com").transport, {
      protocol: "http",
      dial_timeout: "4s",
      response_header_timeout: "45s",
    });
    assert.deepEqual(rp(cfg, "http", "tls-up.example.com").transport, {
      protocol: "http",
      dial_timeout: "4s",
      response_header_timeout: "45s",
      tls: { insecure_skip_verify: true },
    });
  });

  const GOLDEN = "settings-http";
  const goldenSnap = withSettings({
    hstsMaxAgeSeconds: 600,
    upstreamDialTimeoutSeconds: 3,
    upstreamResponseHeaderTimeoutSeconds: 30,
  });
  test(`golden: ${GOLDEN}`, () => assertGolden(GOLDEN, pretty(render(goldenSnap, OPTS).json)));

  test("caddy validate accepts the timeouts", async (t) => {
    if (!existsSync(CADDY)) return t.skip(`${CADDY} not found: cannot run caddy validate`);
    await withTempDir("cpm-caddy-validate-settings-", (dir) =>
      assertCaddyAccepts(dir, "settings", render(goldenSnap, OPTS).json, "the config"),
    );
  });
});

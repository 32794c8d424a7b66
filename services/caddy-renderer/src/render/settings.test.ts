import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, test } from "node:test";
import { Certificate, CertificateType, ProxyHost, Settings, Snapshot, type DeepPartial } from "@cpm/proto";
import { render, type RenderOptions } from "./index.ts";
import { hstsValue, transportTimeouts } from "./settings.ts";

const OPTS: RenderOptions = { httpPort: 8080, httpsPort: 8443, adminListen: "127.0.0.1:2019", layer4: false };
const GOLDEN_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "golden");
const UPDATE = process.env.UPDATE_GOLDEN === "1";
const CADDY = "/usr/bin/caddy";

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any -- walking rendered Caddy JSON

const host = (id: string, domains: string[], over: DeepPartial<ProxyHost> = {}) =>
  ProxyHost.fromPartial({ id, name: `host ${id}`, domains, upstreams: [`${id}.internal:8080`], ...over });
const cert = (id: string, domainNames: string[]) =>
  Certificate.fromPartial({ id, name: `cert ${id}`, type: CertificateType.CERTIFICATE_TYPE_MANAGED, domainNames, autoRenew: true });
const withSettings = (http: DeepPartial<Settings["http"]> | undefined) =>
  Snapshot.fromPartial({
    schemaVersion: 1,
    masterInstanceId: "m",
    version: 1,
    proxyHosts: [
      host("hsts", ["hsts.example.com"], { certificateId: "c", sslForced: true, hstsEnabled: true, hstsSubdomains: true }),
      host("plain", ["plain.example.com"]),
      host("tls-up", ["tls-up.example.com"], { upstreams: ["https://secure.internal:8443"], skipHttpsHostnameValidation: true }),
    ],
    certificates: [cert("c", ["hsts.example.com"])],
    settings: http === undefined ? undefined : { http },
  });

const rp = (cfg: Json, server: "http" | "https", domain: string) =>
  cfg.apps.http.servers[server].routes.find((r: Json) => r.match?.[0]?.host?.includes(domain)).handle.find((h: Json) => h.handler === "reverse_proxy");
const sts = (cfg: Json, domain: string) =>
  cfg.apps.http.servers.https.routes.find((r: Json) => r.match?.[0]?.host?.includes(domain)).handle.find((h: Json) => h.handler === "headers")?.response.set["Strict-Transport-Security"];

describe("settings -> HTTP config", () => {
  test("hstsValue: the settings' max-age, one year when unset, 0 kept", () => {
    assert.equal(hstsValue({ hstsSubdomains: false }, undefined), "max-age=31536000");
    assert.equal(hstsValue({ hstsSubdomains: true }, Settings.fromPartial({})), "max-age=31536000; includeSubDomains");
    assert.equal(hstsValue({ hstsSubdomains: false }, Settings.fromPartial({ http: { hstsMaxAgeSeconds: 600 } })), "max-age=600");
    assert.equal(hstsValue({ hstsSubdomains: true }, Settings.fromPartial({ http: { hstsMaxAgeSeconds: 0 } })), "max-age=0; includeSubDomains");
  });

  test("transportTimeouts: Caddy durations, nothing when both are 0", () => {
    assert.equal(transportTimeouts(undefined), undefined);
    assert.equal(transportTimeouts(Settings.fromPartial({ http: {} })), undefined);
    assert.deepEqual(transportTimeouts(Settings.fromPartial({ http: { upstreamDialTimeoutSeconds: 5 } })), { dial_timeout: "5s" });
    assert.deepEqual(transportTimeouts(Settings.fromPartial({ http: { upstreamResponseHeaderTimeoutSeconds: 30 } })), { response_header_timeout: "30s" });
    assert.deepEqual(transportTimeouts(Settings.fromPartial({ http: { upstreamDialTimeoutSeconds: 2, upstreamResponseHeaderTimeoutSeconds: 60 } })), {
      dial_timeout: "2s",
      response_header_timeout: "60s",
    });
  });

  test("no settings or default settings render the same config as before settings existed", () => {
    const none = render(withSettings(undefined), OPTS).json;
    assert.equal(render(withSettings({}), OPTS).json, none);
    assert.equal(render(withSettings({ hstsMaxAgeSeconds: 31536000 }), OPTS).json, none);
    const cfg = JSON.parse(none);
    assert.deepEqual(sts(cfg, "hsts.example.com"), ["max-age=31536000; includeSubDomains"]);
    assert.equal(rp(cfg, "http", "plain.example.com").transport, undefined);
  });

  test("HSTS max-age and upstream timeouts reach every host's reverse_proxy", () => {
    const cfg = JSON.parse(render(withSettings({ hstsMaxAgeSeconds: 86400, upstreamDialTimeoutSeconds: 4, upstreamResponseHeaderTimeoutSeconds: 45 }), OPTS).json);
    assert.deepEqual(sts(cfg, "hsts.example.com"), ["max-age=86400; includeSubDomains"]);
    assert.deepEqual(rp(cfg, "http", "plain.example.com").transport, { protocol: "http", dial_timeout: "4s", response_header_timeout: "45s" });
    assert.deepEqual(rp(cfg, "https", "hsts.example.com").transport, { protocol: "http", dial_timeout: "4s", response_header_timeout: "45s" });
    assert.deepEqual(rp(cfg, "http", "tls-up.example.com").transport, {
      protocol: "http",
      dial_timeout: "4s",
      response_header_timeout: "45s",
      tls: { insecure_skip_verify: true },
    });
  });

  const GOLDEN = "settings-http";
  const goldenSnap = withSettings({ hstsMaxAgeSeconds: 600, upstreamDialTimeoutSeconds: 3, upstreamResponseHeaderTimeoutSeconds: 30 });
  test(`golden: ${GOLDEN}`, () => {
    const file = path.join(GOLDEN_DIR, `${GOLDEN}.json`);
    const got = `${JSON.stringify(JSON.parse(render(goldenSnap, OPTS).json), null, 2)}\n`;
    if (UPDATE) {
      mkdirSync(GOLDEN_DIR, { recursive: true });
      writeFileSync(file, got);
      return;
    }
    assert.ok(existsSync(file), `missing ${file}; run with UPDATE_GOLDEN=1`);
    assert.equal(got, readFileSync(file, "utf8"));
  });

  test("caddy validate accepts the timeouts", async (t) => {
    if (!existsSync(CADDY)) return t.skip(`${CADDY} not found: cannot run caddy validate`);
    const dir = mkdtempSync(path.join(tmpdir(), "cpm-caddy-validate-settings-"));
    try {
      const file = path.join(dir, "settings.json");
      writeFileSync(file, render(goldenSnap, OPTS).json);
      await promisify(execFile)(CADDY, ["validate", "--config", file], {
        timeout: 60_000,
        env: { ...process.env, HOME: dir, XDG_DATA_HOME: path.join(dir, "data"), XDG_CONFIG_HOME: path.join(dir, "config") },
      });
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      assert.fail(`caddy validate rejected the config: ${err.stderr || err.message}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

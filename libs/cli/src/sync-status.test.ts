// `cpm sync status` against a stand-in SyncDispatcher (a real gRPC server on 127.0.0.1:0 that
// answers fixed per-slave statuses) and `cpm completion`.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  CertificateStatus,
  Compatibility,
  CompatibilityIssueCode,
  GetSyncStatusResponse,
  SyncDispatcherService,
  type SyncDispatcherServer,
} from "@cpm/proto";
import { createLogger } from "@cpm/core";
import { definePolicy, GrpcServer, sharedTokenAuthenticator, type AsyncService } from "@cpm/grpc-kit";
import { ExitCode, runCli } from "./index.ts";

const TOKEN = "sync-status-test-token-0123456789";

describe("cpm sync status", () => {
  let server: GrpcServer;
  let address = "";
  let calls = 0;
  before(async () => {
    const impl: AsyncService<SyncDispatcherServer> = {
      getSyncStatus: () => {
        calls++;
        return Promise.resolve(
          GetSyncStatusResponse.fromPartial({
            masterInstanceId: "m-1",
            masterVersion: 42,
            slaves: [
              {
                name: "edge-1",
                url: "https://edge-1:50443",
                connected: true,
                masterVersion: 42,
                ackedVersion: 42,
                configSha256: "ab",
                lastSyncTime: new Date("2026-01-02T03:04:05.678Z"),
                lastError: "",
                lastErrorTime: undefined,
                consecutiveFailures: 0,
                lag: 0,
                inFlightVersion: 0,
                lastNackedVersion: 0,
                snapshotsSent: 9,
                release: "0.2.0",
                snapshotSchemas: [2, 3],
                capabilities: ["proxy_host.compression"],
                schemaVersion: 3,
                compatibility: Compatibility.COMPATIBILITY_OK,
              },
              {
                name: "edge-2",
                url: "https://edge-2:50443",
                connected: false,
                masterVersion: 42,
                ackedVersion: 40,
                configSha256: "",
                lastSyncTime: undefined,
                lastError: "connect ECONNREFUSED",
                lastErrorTime: undefined,
                consecutiveFailures: 3,
                lag: 2,
                inFlightVersion: 0,
                lastNackedVersion: 0,
                snapshotsSent: 4,
                release: "0.1.0",
                snapshotSchemas: [2],
                schemaVersion: 2,
                compatibility: Compatibility.COMPATIBILITY_INCOMPATIBLE,
                compatibilityIssues: [
                  {
                    code: CompatibilityIssueCode.COMPATIBILITY_ISSUE_CODE_MISSING_CAPABILITY,
                    capability: "proxy_host.compression",
                    resources: ["proxy_host h1 (shop)"],
                    message:
                      "the slave (release 0.1.0) does not serve proxy_host.compression, used by proxy_host h1 (shop)",
                  },
                ],
              },
              { name: "edge-3", url: "https://edge-3:50443", masterVersion: 42, lag: 42 },
            ],
            certificates: [
              {
                certificateId: "c1",
                name: "shop",
                status: CertificateStatus.CERTIFICATE_STATUS_ISSUED,
                statusDetail: "",
                notAfter: new Date("2027-02-01T00:00:00Z"),
                fingerprintSha256: "ff",
                issuedVersion: 41,
                slaves: [
                  { slaveName: "edge-1", servesCurrent: true },
                  { slaveName: "edge-2", servesCurrent: false },
                ],
              },
              {
                certificateId: "c2",
                name: "blog",
                status: CertificateStatus.CERTIFICATE_STATUS_FAILED,
                statusDetail: "blog.example.com: HTTP 400 rejectedIdentifier",
                notAfter: undefined,
                fingerprintSha256: "",
                issuedVersion: 0,
                slaves: [],
              },
            ],
          }),
        );
      },
      triggerFullSync: () => Promise.resolve({ slaves: [] } as never),
    };
    server = new GrpcServer({
      log: createLogger("test", "silent"),
      authenticate: sharedTokenAuthenticator(TOKEN, { kind: "api_token", name: "t", role: "viewer" }, "token"),
    }).add(
      SyncDispatcherService,
      impl,
      definePolicy("cpm.sync.v1.SyncDispatcher", { GetSyncStatus: ["viewer"], TriggerFullSync: ["admin"] }),
    );
    address = `127.0.0.1:${await server.listen("127.0.0.1:0")}`;
  });
  after(async () => server.shutdown());

  const run = async (args: string[], sleeps = 0) => {
    let out = "";
    let err = "";
    let slept = 0;
    const code = await runCli(args, {
      stdout: (s) => (out += s),
      stderr: (s) => (err += s),
      env: { CPM_DISPATCHER: address, CPM_TOKEN: TOKEN, XDG_CONFIG_HOME: "/nonexistent" },
      sleep: () => Promise.resolve(++slept <= sleeps),
    });
    return { code, out, err };
  };

  it("one row per slave: connected, versions, lag, last sync, failures, last error", async () => {
    const r = await run(["sync", "status"]);
    assert.equal(r.code, ExitCode.OK, r.err);
    assert.equal(
      r.out,
      [
        "SLAVE   CONNECTED  RELEASE  SCHEMA  COMPAT        MASTER  ACKED  LAG  LAST SYNC             FAILURES  LAST ERROR",
        "edge-1  yes        0.2.0    3       ok            42      42     0    2026-01-02T03:04:05Z  0         -",
        "edge-2  no         0.1.0    2       INCOMPATIBLE  42      40     2    -                     3         connect ECONNREFUSED",
        "edge-3  no         -        -       -             42      0      42   -                     0         -",
        "",
        "CERTIFICATE  STATUS  NOT AFTER             SERVED BY  ERROR",
        "shop         ISSUED  2027-02-01T00:00:00Z  1/2        -",
        "blog         FAILED  -                     -          blog.example.com: HTTP 400 rejectedIdentifier",
        "",
      ].join("\n"),
    );
    const json = JSON.parse((await run(["sync", "status", "-o", "json"])).out) as {
      slaves: {
        name: string;
        lag: number;
        release: string;
        compatibility: string;
        compatibility_issues: { code: string; capability: string; resources: string[] }[];
      }[];
    };
    assert.deepEqual(
      json.slaves.map((s) => [s.name, s.lag, s.release, s.compatibility, s.compatibility_issues]),
      [
        ["edge-1", 0, "0.2.0", "ok", []],
        [
          "edge-2",
          2,
          "0.1.0",
          "INCOMPATIBLE",
          [
            {
              code: "MISSING_CAPABILITY",
              capability: "proxy_host.compression",
              resources: ["proxy_host h1 (shop)"],
              message: "the slave (release 0.1.0) does not serve proxy_host.compression, used by proxy_host h1 (shop)",
            },
          ],
        ],
        ["edge-3", 42, "", "-", []],
      ],
    );
    const certs = (
      JSON.parse((await run(["sync", "status", "-o", "json"])).out) as {
        certificates: { name: string; status: string; slaves_serving: string[] }[];
      }
    ).certificates;
    assert.deepEqual(
      certs.map((c) => [c.name, c.status, c.slaves_serving]),
      [
        ["shop", "ISSUED", ["edge-1"]],
        ["blog", "FAILED", []],
      ],
    );
  });

  it("--watch refreshes in place until stopped", async () => {
    const before = calls;
    const r = await run(["sync", "status", "--watch", "--interval", "0.01"], 2);
    assert.equal(r.code, ExitCode.OK, r.err);
    assert.equal(calls - before, 3);
    assert.equal(r.out.split("\x1b[H\x1b[2J").length, 4);
  });

  it("a dispatcher that is not there: exit 5", async () => {
    let err = "";
    const code = await runCli(["--dispatcher", "127.0.0.1:1", "sync", "status"], {
      stdout: () => {},
      stderr: (s) => (err += s),
      env: { CPM_TOKEN: TOKEN, XDG_CONFIG_HOME: "/nonexistent" },
    });
    assert.equal(code, ExitCode.UNAVAILABLE, err);
  });
});

describe("cpm completion", () => {
  it("bash: completes commands at every level and their options", async () => {
    let out = "";
    assert.equal(
      await runCli(["completion", "bash"], { stdout: (s) => (out += s), stderr: () => {}, env: {} }),
      ExitCode.OK,
    );
    assert.match(out, /complete -F _cpm_complete cpm/);
    assert.match(
      out,
      /^ {4}""\) words="proxy-host l4-host certificate access-list settings user token sync export import completion /m,
    );
    assert.match(out, /^ {4}"proxy-host create"\) words="[^"]*--ssl-forced --no-ssl-forced/m);
  });

  it("an unknown shell is a usage error", async () => {
    assert.equal(await runCli(["completion", "fish"], { stdout: () => {}, stderr: () => {}, env: {} }), ExitCode.USAGE);
  });
});

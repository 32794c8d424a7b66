import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import {
  AccessList,
  ApplySnapshotRequest,
  Certificate,
  CertificateStatus,
  GetSnapshotResponse,
  L4ProxyHost,
  LoadSnapshotRequest,
  ProxyHost,
  Settings,
  Snapshot,
  SyncRequest,
  WatchConfigResponse,
} from "@cpm/proto";
import { SnapshotDecoder } from "./decoder.ts";
import {
  decodeNotice,
  encodeNoticeWithFrame,
  encodeSnapshotFrame,
  frameCertificates,
  readSnapshotFrame,
  SNAPSHOT_RESOURCE_FIELDS,
  SNAPSHOT_SETTINGS_FIELD,
} from "./frame.ts";
import { descriptorField, onlyFields, protoType, SNAPSHOT_DESCRIPTOR } from "./descriptor.ts";
import { FRAME_SNAPSHOT_FIELD, NOTICE_SNAPSHOT_FIELD, SNAPSHOT_FIELDS, SYNC_TRACE_CONTEXT_FIELD } from "./layout.ts";
import { sampleHost } from "./test-support.ts";

const C = "cpm.config.v1";

describe("the layout's field numbers", () => {
  // Each row: a number the framing took from the generated encoder, and the field by name and type
  // in the descriptor set built from proto/. A .proto change the framing does not follow fails here.
  const rows: [number, string, string, string][] = [
    [SNAPSHOT_FIELDS.masterInstanceId, `${C}.Snapshot`, "master_instance_id", "string"],
    [SNAPSHOT_FIELDS.version, `${C}.Snapshot`, "version", "int64"],
    [SNAPSHOT_FIELDS.contentSha256, `${C}.Snapshot`, "content_sha256", "string"],
    [SNAPSHOT_FIELDS.proxyHosts, `${C}.Snapshot`, "proxy_hosts", `repeated ${C}.ProxyHost`],
    [SNAPSHOT_FIELDS.l4ProxyHosts, `${C}.Snapshot`, "l4_proxy_hosts", `repeated ${C}.L4ProxyHost`],
    [SNAPSHOT_FIELDS.certificates, `${C}.Snapshot`, "certificates", `repeated ${C}.Certificate`],
    [SNAPSHOT_FIELDS.accessLists, `${C}.Snapshot`, "access_lists", `repeated ${C}.AccessList`],
    [SNAPSHOT_FIELDS.settings, `${C}.Snapshot`, "settings", `${C}.Settings`],
    [FRAME_SNAPSHOT_FIELD, `${C}.GetSnapshotResponse`, "snapshot", `${C}.Snapshot`],
    [FRAME_SNAPSHOT_FIELD, "cpm.sync.v1.SyncRequest", "snapshot", `${C}.Snapshot`],
    [FRAME_SNAPSHOT_FIELD, "cpm.render.v1.LoadSnapshotRequest", "snapshot", `${C}.Snapshot`],
    [FRAME_SNAPSHOT_FIELD, `${C}.ApplySnapshotRequest`, "snapshot", `${C}.Snapshot`],
    [SYNC_TRACE_CONTEXT_FIELD, "cpm.sync.v1.SyncRequest", "trace_context", `${C}.TraceContext`],
    [NOTICE_SNAPSHOT_FIELD, `${C}.WatchConfigResponse`, "snapshot", `${C}.Snapshot`],
  ];
  for (const [number, typeName, name, type] of rows)
    it(`${typeName}.${name} (${type}) is field ${number}`, () => {
      assert.equal(descriptorField(typeName, name, type), number);
    });

  it("the messages a frame or a notice is carry no field the framing would drop", () => {
    onlyFields(`${C}.GetSnapshotResponse`, ["snapshot"]);
    onlyFields("cpm.render.v1.LoadSnapshotRequest", ["snapshot"]);
    onlyFields(`${C}.ApplySnapshotRequest`, ["snapshot"]);
    onlyFields("cpm.sync.v1.SyncRequest", ["snapshot", "trace_context"]);
    // decodeNotice hands these on (decoded by the generated code); a new field would be lost there.
    onlyFields(`${C}.WatchConfigResponse`, ["version", "committed_at", "content_sha256", "trace_context", "snapshot"]);
  });

  it("cover every field of Snapshot: the resource lists and settings by the framing, the rest by the generated code", () => {
    // A new field in snapshot.proto fails here until the framing says how it carries it: a new
    // resource list goes into SNAPSHOT_RESOURCE_FIELDS (kept by object), anything else is left
    // to the generated encoder and decoder and listed here.
    const byGeneratedCode = ["schema_version", "master_instance_id", "version", "generated_at", "content_sha256"];
    const byFraming = new Set<number>([...SNAPSHOT_RESOURCE_FIELDS.map((f) => f.field), SNAPSHOT_SETTINGS_FIELD]);
    for (const f of SNAPSHOT_DESCRIPTOR.fields)
      assert.ok(
        byFraming.has(f.number) || byGeneratedCode.includes(f.name),
        `Snapshot.${f.name} = ${f.number} (${protoType(f)}) is carried by neither the framing nor this list`,
      );
    for (const f of SNAPSHOT_DESCRIPTOR.fields.filter((x) => x.fieldKind === "list" && x.listKind === "message"))
      assert.ok(byFraming.has(f.number), `Snapshot.${f.name} is a resource list the framing does not keep by object`);
  });
});

describe("ProxyHost.compression", () => {
  const fieldsOf = (bytes: Uint8Array) => {
    const r = new BinaryReader(bytes);
    const out: number[] = [];
    while (r.pos < r.len) {
      const [field, type] = r.tag();
      out.push(field);
      r.skip(type, field);
    }
    return out;
  };
  const number = descriptorField(`${C}.ProxyHost`, "compression", "bool");

  it("is not on the wire for a host that does not compress: its bytes are those of a release without the field", () => {
    const off = sampleHost("a");
    assert.equal(off.compression, false);
    const bytes = ProxyHost.encode(off).finish();
    assert.ok(!fieldsOf(bytes).includes(number), `field ${number} written for compression: false`);
    assert.deepEqual(fieldsOf(bytes), [1, 2, 3, 4]);
  });

  it("is carried by a frame and by the decoder when on", () => {
    const on = { ...sampleHost("a"), compression: true };
    assert.ok(fieldsOf(ProxyHost.encode(on).finish()).includes(number));
    const frame = encodeSnapshotFrame(Snapshot.fromPartial({ proxyHosts: [on] }));
    const decoder = new SnapshotDecoder();
    assert.equal(decoder.decode(readSnapshotFrame(frame).message).proxyHosts[0]!.compression, true);
    // The same host turned off again is another encoding, so another object.
    const offFrame = encodeSnapshotFrame(Snapshot.fromPartial({ proxyHosts: [{ ...on, compression: false }] }));
    assert.equal(decoder.decode(readSnapshotFrame(offFrame).message).proxyHosts[0]!.compression, false);
  });
});

/** Every resource kind, two of each (the kinds' table must cover SNAPSHOT_RESOURCE_FIELDS, checked below). */
const KINDS: Record<(typeof SNAPSHOT_RESOURCE_FIELDS)[number]["list"] | "settings", Partial<Snapshot>> = {
  proxyHosts: { proxyHosts: [sampleHost("a"), { ...sampleHost("b", "127.0.0.1:9000"), compression: true }] },
  l4ProxyHosts: {
    l4ProxyHosts: [
      L4ProxyHost.fromPartial({ id: "l4a", name: "pg", listenAddress: ":5432", upstreams: ["10.0.0.1:5432"] }),
      L4ProxyHost.fromPartial({ id: "l4b", name: "redis", listenAddress: ":6379", upstreams: ["10.0.0.2:6379"] }),
    ],
  },
  certificates: {
    certificates: [
      Certificate.fromPartial({ id: "c1", name: "one", domainNames: ["a.example.com"], fingerprintSha256: "ff" }),
      Certificate.fromPartial({
        id: "c2",
        domainNames: ["b.example.com"],
        status: CertificateStatus.CERTIFICATE_STATUS_ISSUED,
      }),
    ],
  },
  accessLists: {
    accessLists: [
      AccessList.fromPartial({ id: "acl1", name: "office", allow: ["10.0.0.0/8"] }),
      AccessList.fromPartial({ id: "acl2", name: "home", deny: ["0.0.0.0/0"] }),
    ],
  },
  settings: {
    settings: Settings.fromPartial({ general: { primaryDomain: "example.com", acmeEmail: "ops@example.com" } }),
  },
};

describe("every resource kind", () => {
  it("has a row here", () => {
    assert.deepEqual(Object.keys(KINDS).sort(), [...SNAPSHOT_RESOURCE_FIELDS.map((f) => f.list), "settings"].sort());
  });

  for (const [kind, resources] of Object.entries(KINDS))
    it(`${kind}: the frame is the generated encoding, and every generated decoder reads it back`, () => {
      const s = Snapshot.fromPartial({
        schemaVersion: 2,
        masterInstanceId: "m-1",
        version: 41,
        generatedAt: new Date("2026-01-02T03:04:05Z"),
        contentSha256: "c".repeat(64),
        ...resources,
      });
      const expected = Buffer.from(GetSnapshotResponse.encode({ snapshot: s }).finish());
      assert.deepEqual(encodeSnapshotFrame(s), expected, "encoded at once");
      const parts = new WeakMap<object, Uint8Array>();
      encodeSnapshotFrame(s, parts);
      const frame = encodeSnapshotFrame(s, parts);
      assert.deepEqual(frame, expected, "from kept encodings");

      assert.deepEqual(GetSnapshotResponse.decode(frame).snapshot, s, "GetSnapshotResponse");
      assert.deepEqual(SyncRequest.decode(frame).snapshot, s, "SyncRequest");
      assert.deepEqual(LoadSnapshotRequest.decode(frame).snapshot, s, "LoadSnapshotRequest");
      assert.deepEqual(ApplySnapshotRequest.decode(frame).snapshot, s, "ApplySnapshotRequest");
      const header = readSnapshotFrame(frame);
      assert.deepEqual([header.version, header.masterInstanceId, header.contentSha256], [41, "m-1", s.contentSha256]);
      assert.deepEqual(new SnapshotDecoder().decode(header.message), s, "SnapshotDecoder");
      assert.deepEqual(frameCertificates(frame), s.certificates);

      const notice = encodeNoticeWithFrame(WatchConfigResponse.fromPartial({ version: 41 }), frame);
      assert.deepEqual(WatchConfigResponse.decode(notice).snapshot, s, "the notice, read by the generated decoder");
      assert.deepEqual(decodeNotice(notice).snapshotFrame?.frame, frame, "the notice's frame, read back");
    });
});

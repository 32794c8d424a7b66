import assert from "node:assert/strict";
import { constants as h2 } from "node:http2";
import { describe, it } from "node:test";
import { Metadata, status } from "@grpc/grpc-js";
import { Snapshot, SyncRequest, SyncResponse } from "@cpm/proto";
import {
  chunks,
  MessageReader,
  messagePrefix,
  SlaveConnection,
  statusOfHttp,
  statusOfReset,
  statusOfTrailers,
  type StreamError,
} from "./sync-stream.ts";
import { testReceiver } from "./test-support.ts";

const framed = (...messages: Buffer[]) => Buffer.concat(messages.flatMap((m) => [messagePrefix(m.length), m]));

describe("MessageReader: gRPC's length-prefixed messages out of HTTP/2 DATA", () => {
  const a = Buffer.from("first message");
  const b = Buffer.from("second");
  const both = framed(a, b);
  const cases: [string, Buffer[], string[]][] = [
    ["one chunk, two messages", [both], ["first message", "second"]],
    ["byte by byte", [...both].map((x) => Buffer.from([x])), ["first message", "second"]],
    ["split inside the prefix", [both.subarray(0, 3), both.subarray(3)], ["first message", "second"]],
    ["split inside a message", [both.subarray(0, 9), both.subarray(9)], ["first message", "second"]],
    ["an empty message", [framed(Buffer.alloc(0))], [""]],
    ["a message not yet whole", [both.subarray(0, both.length - 1)], ["first message"]],
  ];
  for (const [name, chunks, want] of cases) {
    it(name, () => {
      const r = new MessageReader(1 << 20);
      const got = chunks.flatMap((c) => r.push(c)).map((m) => m.toString());
      assert.deepEqual(got, want);
    });
  }

  it("refuses a message over the limit with RESOURCE_EXHAUSTED, before it arrives", () => {
    const r = new MessageReader(10);
    assert.throws(
      () => r.push(messagePrefix(11)),
      (e: StreamError) =>
        e.code === Number(status.RESOURCE_EXHAUSTED) && /larger than max \(11 vs\. 10\)/.test(e.details),
    );
  });

  it("refuses a compressed message (none was asked for) with INTERNAL", () => {
    const r = new MessageReader(100);
    const m = framed(Buffer.from("x"));
    m[0] = 1;
    assert.throws(
      () => r.push(m),
      (e: StreamError) => e.code === Number(status.INTERNAL),
    );
  });
});

describe("chunks: a message handed to the connection a piece at a time", () => {
  const cases: [string, number, number, number[]][] = [
    ["empty", 0, 4, []],
    ["smaller than a chunk", 3, 4, [3]],
    ["exactly one chunk", 4, 4, [4]],
    ["a chunk and a rest", 5, 4, [4, 1]],
    [
      "a 104 KiB snapshot in 16 KiB chunks",
      104 * 1024,
      16 * 1024,
      [...Array.from({ length: 6 }, () => 16 * 1024), 8 * 1024],
    ],
  ];
  for (const [name, length, size, want] of cases)
    it(name, () => {
      const buffer = Buffer.alloc(length, 7);
      const got = chunks(buffer, size);
      assert.deepEqual(
        got.map((c) => c.length),
        want,
      );
      assert.ok(
        got.every((c) => c.buffer === buffer.buffer),
        "views of the message, not copies",
      );
    });
});

describe("the status of a Sync call's end", () => {
  const trailers: [string, Record<string, string>, ReturnType<typeof statusOfTrailers>][] = [
    ["OK", { "grpc-status": "0" }, { code: status.OK, details: "" }],
    [
      "a percent-encoded message",
      { "grpc-status": "16", "grpc-message": "bad%20token%3A%20no" },
      { code: status.UNAUTHENTICATED, details: "bad token: no" },
    ],
    [
      "a malformed percent-encoding, shown as sent",
      { "grpc-status": "8", "grpc-message": "100%" },
      { code: status.RESOURCE_EXHAUSTED, details: "100%" },
    ],
    ["a code out of range", { "grpc-status": "99" }, { code: status.UNKNOWN, details: "" }],
    ["not a number", { "grpc-status": "x" }, { code: status.UNKNOWN, details: "" }],
    ["no status", {}, undefined],
  ];
  for (const [name, headers, want] of trailers)
    it(`trailers: ${name}`, () => assert.deepEqual(statusOfTrailers(headers), want));

  const http: [number, status][] = [
    [400, status.INTERNAL],
    [401, status.UNAUTHENTICATED],
    [403, status.PERMISSION_DENIED],
    [404, status.UNIMPLEMENTED],
    [429, status.UNAVAILABLE],
    [502, status.UNAVAILABLE],
    [503, status.UNAVAILABLE],
    [504, status.UNAVAILABLE],
    [500, status.UNKNOWN],
  ];
  for (const [code, want] of http) it(`HTTP ${code} -> ${status[want]}`, () => assert.equal(statusOfHttp(code), want));

  const resets: [number, status][] = [
    [h2.NGHTTP2_REFUSED_STREAM, status.UNAVAILABLE],
    [h2.NGHTTP2_CANCEL, status.CANCELLED],
    [h2.NGHTTP2_ENHANCE_YOUR_CALM, status.RESOURCE_EXHAUSTED],
    [h2.NGHTTP2_INADEQUATE_SECURITY, status.PERMISSION_DENIED],
    [h2.NGHTTP2_INTERNAL_ERROR, status.INTERNAL],
  ];
  for (const [code, want] of resets)
    it(`RST_STREAM ${code} -> ${status[want]}`, () => assert.equal(statusOfReset(code), want));
});

describe("SlaveConnection against a grpc-js receiver", () => {
  const connection = (port: number, pieceBytes = Infinity) =>
    new SlaveConnection(
      { address: `127.0.0.1:${port}`, host: "127.0.0.1", tls: undefined },
      { maxMessageBytes: 1 << 20, keepalive: { timeMs: 10_000, timeoutMs: 5_000 }, pieceBytes },
    );

  for (const pieceBytes of [Infinity, 7])
    it(`opens the call, reads the handshake and each answer, and ends with the server's status (pieces of ${pieceBytes} bytes)`, async () => {
      const slave = await testReceiver({
        answer: (version) => SyncResponse.fromPartial({ ack: { version, contentSha256: "c", configSha256: "k" } }),
        handshake: { "cpm-release": "9.9.9" },
      });
      const c = connection(slave.port, pieceBytes);
      try {
        const stream = c.open(new Metadata());
        const release = new Promise<string>((resolve) =>
          stream.on("metadata", (md) => resolve(String(md.get("cpm-release")[0]))),
        );
        const ack = new Promise<number>((resolve) => stream.on("data", (r) => resolve(r.ack!.version)));
        const frame = Buffer.from(
          SyncRequest.encode({
            snapshot: Snapshot.fromPartial({ version: 7, masterInstanceId: "m".repeat(100) }),
            traceContext: undefined,
          }).finish(),
        );
        stream.write(frame);
        assert.equal(await release, "9.9.9");
        assert.equal(await ack, 7);
        assert.deepEqual(slave.received, [7]);
        const ended = new Promise<StreamError>((resolve) => stream.on("error", resolve));
        slave.server.forceShutdown();
        const err = await ended;
        assert.equal(err.code, status.UNAVAILABLE, err.message);
      } finally {
        c.close();
        slave.server.forceShutdown();
      }
    });

  it("ends with the slave's RESOURCE_EXHAUSTED when it refuses a message before reading all of it", async () => {
    const slave = await testReceiver({ maxReceiveBytes: 1024 });
    const c = connection(slave.port);
    try {
      const stream = c.open(new Metadata());
      const ended = new Promise<StreamError>((resolve) => stream.on("error", resolve));
      // Over the slave's limit and over HTTP/2's initial window: the slave answers without
      // reading the rest, so this side must not wait for the write to finish.
      stream.write(
        Buffer.from(
          SyncRequest.encode({
            snapshot: Snapshot.fromPartial({ version: 1, masterInstanceId: "m".repeat(512 * 1024) }),
            traceContext: undefined,
          }).finish(),
        ),
      );
      const err = await ended;
      assert.equal(err.code, status.RESOURCE_EXHAUSTED, err.message);
      assert.deepEqual(slave.received, []);
    } finally {
      c.close();
      slave.server.forceShutdown();
    }
  });

  it("names a refused connection UNAVAILABLE with ECONNREFUSED, once", async () => {
    const slave = await testReceiver();
    const port = slave.port;
    slave.server.forceShutdown();
    const c = connection(port);
    try {
      const stream = c.open(new Metadata());
      const errors: StreamError[] = [];
      stream.on("error", (e) => errors.push(e));
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(errors.length, 1);
      assert.equal(errors[0]!.code, status.UNAVAILABLE);
      assert.match(errors[0]!.details, /ECONNREFUSED/);
    } finally {
      c.close();
    }
  });

  it("ends a cancelled call with CANCELLED, once", async () => {
    const slave = await testReceiver();
    const c = connection(slave.port);
    try {
      const stream = c.open(new Metadata());
      await new Promise((resolve) => stream.on("metadata", resolve));
      const errors: StreamError[] = [];
      stream.on("error", (e) => errors.push(e));
      stream.cancel();
      stream.cancel();
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(
        errors.map((e) => e.code),
        [status.CANCELLED],
      );
    } finally {
      c.close();
      slave.server.forceShutdown();
    }
  });
});

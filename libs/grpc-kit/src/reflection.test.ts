import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { credentials, makeGenericClientConstructor, type Client, type ServiceDefinition } from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { createLogger } from "@cpm/core";
import { ANONYMOUS } from "./auth.ts";
import { GrpcServer } from "./server.ts";

/** The reflection services' definitions as @grpc/reflection adds them (v1, then v1alpha). */
function reflectionDefinitions(): ServiceDefinition[] {
  const defs: ServiceDefinition[] = [];
  new ReflectionService({}).addToServer({ addService: (d: ServiceDefinition) => defs.push(d) });
  return defs;
}

interface ReflectionReply {
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number };
}

/** One request on a reflection stream of `definition`, and its one answer. */
function ask(address: string, definition: ServiceDefinition, request: object): Promise<ReflectionReply> {
  const Ctor = makeGenericClientConstructor(definition, "ServerReflection");
  const client = new Ctor(address, credentials.createInsecure()) as unknown as Client & {
    ServerReflectionInfo(): NodeJS.ReadWriteStream & { end(): void; write(m: object): boolean };
  };
  return new Promise((resolve, reject) => {
    const call = client.ServerReflectionInfo();
    call.on("data", (m: ReflectionReply) => {
      resolve(m);
      call.end();
    });
    call.on("error", reject);
    call.on("end", () => client.close());
    call.write(request);
  });
}

describe("server reflection", () => {
  const servers: GrpcServer[] = [];
  const addresses: string[] = [];
  before(async () => {
    // Two servers in one process share what reflection answers from.
    for (let i = 0; i < 2; i++) {
      const s = new GrpcServer({ log: createLogger("test", "silent"), authenticate: async () => ANONYMOUS });
      servers.push(s);
      addresses.push(`127.0.0.1:${await s.listen("127.0.0.1:0")}`);
    }
  });
  after(async () => {
    for (const s of servers) await s.shutdown(1000);
  });

  it("lists the project's services on v1 and v1alpha, from every server", async () => {
    for (const address of addresses)
      for (const def of reflectionDefinitions()) {
        const r = await ask(address, def, { listServices: "*" });
        const names = r.listServicesResponse?.service.map((s) => s.name) ?? [];
        assert.ok(names.includes("cpm.config.v1.ConfigService"), `services listed: ${names.join(", ")}`);
        assert.ok(names.includes("cpm.sync.v1.SyncDispatcher"), `services listed: ${names.join(", ")}`);
      }
  });

  it("answers the file that declares a symbol", async () => {
    const r = await ask(addresses[0]!, reflectionDefinitions()[0]!, {
      fileContainingSymbol: "cpm.sync.v1.SyncReceiver",
    });
    assert.equal(r.errorResponse, undefined);
    assert.ok((r.fileDescriptorResponse?.fileDescriptorProto.length ?? 0) > 0);
  });
});

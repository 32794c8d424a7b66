import { credentials, Client, Metadata, type ServiceError } from "@grpc/grpc-js";
import { fromBinary, toBinary, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { INTERNAL_MAX_MESSAGE_BYTES } from "@cpm/grpc-kit";
import { AccountService } from "./gen/cpm/config/v1/account_service_pb.ts";
import { ConfigService } from "./gen/cpm/config/v1/config_service_pb.ts";
import { SyncDispatcher } from "./gen/cpm/sync/v1/sync_pb.ts";
import { sessionToken } from "./session.ts";

/** How long a forwarded call may take. */
const DEADLINE_MS = 30_000;

/**
 * Methods the browser never reaches through the bridge: SignIn and SignOut go through
 * /session (they set and clear the cookie); the snapshot holds private keys and the
 * console shows none, so it is not forwarded even for an admin.
 */
const NOT_BRIDGED = new Set(["SignIn", "SignOut", "GetSnapshot"]);

/** A public gRPC API of this instance, called with the caller's own token (raw bytes in, raw bytes out). */
export class ApiForwarder {
  private readonly client: Client;

  constructor(readonly address: string) {
    this.client = new Client(address, credentials.createInsecure(), {
      "grpc.max_receive_message_length": INTERNAL_MAX_MESSAGE_BYTES,
    });
  }

  /** Calls `/service/method` with `request` and the bearer `token`; a gRPC error keeps its code as a ConnectError. */
  call<I extends DescMessage, O extends DescMessage>(
    method: DescMethod & { input: I; output: O },
    request: Uint8Array,
    token: string | undefined,
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    const md = new Metadata();
    if (token) md.set("authorization", `Bearer ${token}`);
    const path = `/${method.parent.typeName}/${method.name}`;
    return new Promise((resolve, reject) => {
      const call = this.client.makeUnaryRequest<Uint8Array, Buffer>(
        path,
        (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength),
        (b) => b,
        request,
        md,
        { deadline: Date.now() + DEADLINE_MS },
        (err: ServiceError | null, res?: Buffer) => {
          signal?.removeEventListener("abort", cancel);
          if (err) reject(new ConnectError(err.details || err.message, err.code as number));
          else resolve(res ?? new Uint8Array());
        },
      );
      const cancel = () => call.cancel();
      signal?.addEventListener("abort", cancel, { once: true });
    });
  }

  close(): void {
    this.client.close();
  }
}

/** Every unary method of `service` forwarded, with the caller's session token, to `api`. */
function bridge(router: ConnectRouter, service: DescService, api: ApiForwarder): void {
  for (const method of service.methods) {
    if (method.methodKind !== "unary" || NOT_BRIDGED.has(method.name)) continue;
    const impl = async (req: never, ctx: HandlerContext) => {
      const token = sessionToken(ctx.requestHeader.get("cookie"));
      if (!token) throw new ConnectError("not signed in", Code.Unauthenticated);
      const out = await api.call(method, toBinary(method.input, req), token, ctx.signal);
      return fromBinary(method.output, out);
    };
    router.rpc(method, impl as never);
  }
}

/**
 * The browser's API: the same methods as the public gRPC API, each forwarded to it with the
 * session's token, so the API's own authentication and roles decide every call. On a master
 * the dispatcher's status API too.
 */
export function consoleRoutes(config: ApiForwarder, dispatcher: ApiForwarder | undefined) {
  return (router: ConnectRouter) => {
    bridge(router, ConfigService, config);
    bridge(router, AccountService, config);
    if (dispatcher) bridge(router, SyncDispatcher, dispatcher);
  };
}

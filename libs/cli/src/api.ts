import { AccountServiceClient, ConfigServiceClient, SyncDispatcherClient } from "@cpm/proto";
import { channelCredentials, clientOptions, unary } from "@cpm/grpc-kit";
import type { CallOptions, Client, ClientUnaryCall, Metadata, ServiceError } from "@grpc/grpc-js";
import { CliError, ExitCode } from "./exit-codes.ts";
import type { Connection } from "./connection.ts";

/** A unary method of a generated client, in its fullest overload: (request, metadata, options, callback). */
type Unary<Req, Res> = (
  req: Req,
  md: Metadata,
  options: Partial<CallOptions>,
  cb: (err: ServiceError | null, res: Res) => void,
) => ClientUnaryCall;
/** The request and response types of a client's unary method (never for any other member). */
type RequestOf<M> = M extends Unary<infer Req, infer _Res> ? Req : never;
type ResponseOf<M> = M extends Unary<infer _Req, infer Res> ? Res : never;

/** The instance's gRPC clients, made on first use, with the connection's token on every call. */
export class Api {
  private clients: Client[] = [];
  private configClient?: ConfigServiceClient;
  private accountClient?: AccountServiceClient;
  private dispatcherClient?: SyncDispatcherClient;

  constructor(readonly conn: Connection) {}

  private make<C extends Client>(
    Ctor: new (address: string, creds: ReturnType<typeof channelCredentials>, options: object) => C,
    address: string,
  ): C {
    const c = new Ctor(address, channelCredentials({ tls: this.conn.tls, caFile: this.conn.ca }), clientOptions({}));
    this.clients.push(c);
    return c;
  }

  private token(): string {
    if (this.conn.token) return this.conn.token;
    throw new CliError(ExitCode.AUTH, "no API token: pass --token, set CPM_TOKEN, or put `token:` in the config file");
  }

  /** Calls the unary method named `method` of `client`, bound to it, with the token and a deadline. */
  private call<C extends Client, K extends keyof C>(
    client: C,
    method: K,
    req: RequestOf<C[K]>,
    deadlineMs?: number,
  ): Promise<ResponseOf<C[K]>> {
    const fn = client[method] as Unary<RequestOf<C[K]>, ResponseOf<C[K]>>;
    return unary(fn.bind(client), req, this.token(), deadlineMs);
  }

  config<K extends keyof ConfigServiceClient>(
    method: K,
    req: RequestOf<ConfigServiceClient[K]>,
    deadlineMs?: number,
  ): Promise<ResponseOf<ConfigServiceClient[K]>> {
    return this.call((this.configClient ??= this.make(ConfigServiceClient, this.conn.api)), method, req, deadlineMs);
  }

  account<K extends keyof AccountServiceClient>(
    method: K,
    req: RequestOf<AccountServiceClient[K]>,
  ): Promise<ResponseOf<AccountServiceClient[K]>> {
    return this.call((this.accountClient ??= this.make(AccountServiceClient, this.conn.api)), method, req);
  }

  dispatcher<K extends keyof SyncDispatcherClient>(
    method: K,
    req: RequestOf<SyncDispatcherClient[K]>,
  ): Promise<ResponseOf<SyncDispatcherClient[K]>> {
    return this.call((this.dispatcherClient ??= this.make(SyncDispatcherClient, this.conn.dispatcher)), method, req);
  }

  close(): void {
    for (const c of this.clients) c.close();
    this.clients = [];
  }
}

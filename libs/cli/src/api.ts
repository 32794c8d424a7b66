import { AccountServiceClient, ConfigServiceClient, SyncDispatcherClient } from "@cpm/proto";
import { channelCredentials, clientOptions, unary } from "@cpm/grpc-kit";
import type { Client, Metadata, CallOptions, ServiceError } from "@grpc/grpc-js";
import { CliError, ExitCode } from "./exit-codes.ts";
import type { Connection } from "./connection.ts";

type Unary<Req, Res> = (
  req: Req,
  md: Metadata,
  options: Partial<CallOptions>,
  cb: (err: ServiceError | null, res: Res) => void,
) => unknown;

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

  config<Req, Res>(pick: (c: ConfigServiceClient) => Unary<Req, Res>, req: Req, deadlineMs?: number): Promise<Res> {
    const c = (this.configClient ??= this.make(ConfigServiceClient, this.conn.api));
    return unary(pick(c).bind(c), req, this.token(), deadlineMs);
  }

  account<Req, Res>(pick: (c: AccountServiceClient) => Unary<Req, Res>, req: Req): Promise<Res> {
    const c = (this.accountClient ??= this.make(AccountServiceClient, this.conn.api));
    return unary(pick(c).bind(c), req, this.token());
  }

  dispatcher<Req, Res>(pick: (c: SyncDispatcherClient) => Unary<Req, Res>, req: Req): Promise<Res> {
    const c = (this.dispatcherClient ??= this.make(SyncDispatcherClient, this.conn.dispatcher));
    return unary(pick(c).bind(c), req, this.token());
  }

  close(): void {
    for (const c of this.clients) c.close();
    this.clients = [];
  }
}

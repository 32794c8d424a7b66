import { definePolicy } from "@cpm/grpc-kit";

/**
 * Who may call each ConfigService method. The internal token (the other services of this
 * instance) reaches only what they call: snapshots, the version stream, instance info and,
 * on a slave, ApplySnapshot; on a master, RecordCertificateIssuance. It never reaches resource CRUD or settings.
 */
export const CONFIG_SERVICE_POLICY = definePolicy("cpm.config.v1.ConfigService", {
  CreateProxyHost: ["admin"],
  GetProxyHost: ["viewer"],
  ListProxyHosts: ["viewer"],
  UpdateProxyHost: ["admin"],
  DeleteProxyHost: ["admin"],
  CreateL4ProxyHost: ["admin"],
  GetL4ProxyHost: ["viewer"],
  ListL4ProxyHosts: ["viewer"],
  UpdateL4ProxyHost: ["admin"],
  DeleteL4ProxyHost: ["admin"],
  CreateCertificate: ["admin"],
  GetCertificate: ["viewer"],
  ListCertificates: ["viewer"],
  UpdateCertificate: ["admin"],
  DeleteCertificate: ["admin"],
  CreateAccessList: ["admin"],
  GetAccessList: ["viewer"],
  ListAccessLists: ["viewer"],
  UpdateAccessList: ["admin"],
  DeleteAccessList: ["admin"],
  GetSettings: ["viewer"],
  UpdateSettings: ["admin"],
  // Snapshots hold private keys.
  GetSnapshot: ["admin", "internal"],
  WatchConfig: ["viewer", "internal"],
  GetInstanceInfo: ["viewer", "internal"],
  ApplySnapshot: ["internal"],
  // Replaces the whole synced configuration.
  ImportConfig: ["admin"],
  // The renderer reports what the master's Caddy obtained.
  RecordCertificateIssuance: ["internal"],
});

/** Who may call each AccountService method: accounts are an admin matter; WhoAmI is how other services check a token. */
export const ACCOUNT_SERVICE_POLICY = definePolicy("cpm.config.v1.AccountService", {
  CreateUser: ["admin"],
  GetUser: ["admin"],
  ListUsers: ["admin"],
  UpdateUser: ["admin"],
  DeleteUser: ["admin"],
  CreateApiToken: ["admin"],
  ListApiTokens: ["admin"],
  RevokeApiToken: ["admin"],
  WhoAmI: ["viewer"],
  // A name and password for a session token: no token yet (failures limited per username).
  SignIn: ["public"],
  // Revokes the calling token only.
  SignOut: ["viewer"],
});

/** Writes to synced resources: on a slave the master manages them, so they are refused there. */
export const SYNCED_WRITES: ReadonlySet<string> = new Set([
  ...["ProxyHost", "L4ProxyHost", "Certificate", "AccessList"].flatMap((kind) => [
    `Create${kind}`,
    `Update${kind}`,
    `Delete${kind}`,
  ]),
  "UpdateSettings",
  "ImportConfig",
]);

import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AccountService } from "../src/gen/cpm/config/v1/account_service_pb.ts";
import { ConfigService } from "../src/gen/cpm/config/v1/config_service_pb.ts";
import { SyncDispatcher } from "../src/gen/cpm/sync/v1/sync_pb.ts";

/** The console server forwards these to the instance's gRPC API with the session's token (its cookie). */
const transport = createConnectTransport({ baseUrl: "/api" });
export const config = createClient(ConfigService, transport);
export const account = createClient(AccountService, transport);
export const dispatcher = createClient(SyncDispatcher, transport);

export interface Me {
  username: string;
  role: "admin" | "viewer";
}

async function session(method: string, body?: unknown): Promise<Response> {
  return fetch("/session", {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
}

export async function whoAmI(): Promise<Me | undefined> {
  const r = await session("GET");
  return r.ok ? ((await r.json()) as Me) : undefined;
}

export async function signIn(username: string, password: string): Promise<{ ok: true } | { ok: false; error: string }> {
  const r = await session("POST", { username, password });
  if (r.ok) return { ok: true };
  const body = (await r.json().catch(() => ({}))) as { error?: string };
  return { ok: false, error: body.error ?? `sign-in failed (${r.status})` };
}

export async function signOut(): Promise<void> {
  await session("DELETE");
}

/** A server error as the user reads it; UNAUTHENTICATED means the session is over. */
export function message(err: unknown): string {
  const e = ConnectError.from(err);
  return e.rawMessage || Code[e.code];
}

export const isSignedOut = (err: unknown) => ConnectError.from(err).code === Code.Unauthenticated;

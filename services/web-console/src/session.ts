import type { IncomingMessage, ServerResponse } from "node:http";
import { fromBinary, toBinary, create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ADDRESS_SIGN_IN_LIMIT, SignInLimiter, USER_SIGN_IN_LIMIT, type Logger } from "@cpm/core";
import {
  AccountService,
  Role,
  SignInRequestSchema,
  SignOutRequestSchema,
  WhoAmIRequestSchema,
} from "./gen/cpm/config/v1/account_service_pb.ts";
import type { ApiForwarder } from "./bridge.ts";

export const COOKIE = "cpm_session";
/** A console session lasts 12 hours (the token's own expiry: the API refuses it after that). */
export const SESSION_SECONDS = 12 * 3600;

/** The session token in a Cookie header, or undefined. */
export function sessionToken(cookieHeader: string | null | undefined): string | undefined {
  if (!cookieHeader) return undefined;
  for (const part of cookieHeader.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === COOKIE) return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}

/** The Set-Cookie value that holds `token` for `maxAge` seconds (0: clears it). */
export function sessionCookie(token: string, maxAge: number): string {
  return `${COOKIE}=${token}; Path=/; Max-Age=${maxAge}; HttpOnly; Secure; SameSite=Strict`;
}

function send(res: ServerResponse, statusCode: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(statusCode, { "content-type": "application/json", "cache-control": "no-store", ...headers });
  res.end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage, max = 16 * 1024): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > max) throw new ConnectError("request too large", Code.InvalidArgument);
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
  } catch {
    throw new ConnectError("the body is not JSON", Code.InvalidArgument);
  }
}

const HTTP_STATUS: Partial<Record<Code, number>> = {
  [Code.Unauthenticated]: 401,
  [Code.InvalidArgument]: 400,
  [Code.ResourceExhausted]: 429,
  [Code.Unavailable]: 503,
};

/**
 * /session: POST signs in (the API's SignIn; the token goes into an HttpOnly, Secure,
 * SameSite=Strict cookie), DELETE signs out (the API's SignOut revokes the token), GET says
 * who is signed in (WhoAmI). Failed sign-ins are limited per client address and per
 * username here, before the API is asked (which limits per username too).
 */
export class Sessions {
  private readonly byAddress = new SignInLimiter(ADDRESS_SIGN_IN_LIMIT);
  private readonly byUser = new SignInLimiter(USER_SIGN_IN_LIMIT);

  constructor(
    private readonly api: ApiForwarder,
    private readonly log: Logger,
  ) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (req.method === "POST") return await this.signIn(req, res);
      if (req.method === "DELETE") return await this.signOut(req, res);
      if (req.method === "GET") return await this.whoAmI(req, res);
      send(res, 405, { error: "method not allowed" }, { allow: "GET, POST, DELETE" });
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code === Code.Internal || e.code === Code.Unknown) this.log.error({ err }, "session request failed");
      send(res, HTTP_STATUS[e.code] ?? 500, { error: e.rawMessage, code: Code[e.code] });
    }
  }

  private async signIn(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = (await readJson(req)) as { username?: unknown; password?: unknown };
    const username = typeof body.username === "string" ? body.username.trim() : "";
    const password = typeof body.password === "string" ? body.password : "";
    const address = req.socket.remoteAddress ?? "unknown";
    const userKey = username.toLowerCase();
    for (const [limiter, what] of [
      [this.byAddress, "from this address"],
      [this.byUser, "for this user"],
    ] as const) {
      const allowed = limiter.check(what === "for this user" ? userKey : address);
      if (!allowed.ok) {
        const seconds = Math.ceil(allowed.retryAfterMs / 1000);
        this.log.warn({ address, username }, "sign-in refused: too many failures");
        return send(
          res,
          429,
          { error: `too many failed sign-ins ${what}: try again in ${seconds} s`, code: "ResourceExhausted" },
          { "retry-after": String(seconds) },
        );
      }
    }
    const request = create(SignInRequestSchema, { username, password, ttlSeconds: SESSION_SECONDS, client: "console" });
    let out;
    try {
      out = fromBinary(
        AccountService.method.signIn.output,
        await this.api.call(AccountService.method.signIn, toBinary(SignInRequestSchema, request), undefined),
      );
    } catch (err) {
      if (ConnectError.from(err).code === Code.Unauthenticated) {
        this.byAddress.fail(address);
        this.byUser.fail(userKey);
        this.log.warn({ address, username }, "sign-in failed");
      }
      throw err;
    }
    this.byUser.succeed(userKey);
    this.log.info({ address, username: out.username }, "signed in");
    send(res, 200, { username: out.username }, { "set-cookie": sessionCookie(out.secret, SESSION_SECONDS) });
  }

  private async signOut(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const token = sessionToken(req.headers.cookie);
    if (token) {
      await this.api
        .call(AccountService.method.signOut, toBinary(SignOutRequestSchema, create(SignOutRequestSchema)), token)
        .catch((err: unknown) => {
          // An expired or already revoked token: signed out all the same.
          if (ConnectError.from(err).code !== Code.Unauthenticated) throw err;
        });
    }
    send(res, 200, {}, { "set-cookie": sessionCookie("", 0) });
  }

  private async whoAmI(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const token = sessionToken(req.headers.cookie);
    if (!token) throw new ConnectError("not signed in", Code.Unauthenticated);
    const me = fromBinary(
      AccountService.method.whoAmI.output,
      await this.api.call(
        AccountService.method.whoAmI,
        toBinary(WhoAmIRequestSchema, create(WhoAmIRequestSchema)),
        token,
      ),
    );
    send(res, 200, { username: me.username, role: me.role === Role.ADMIN ? "admin" : "viewer" });
  }
}

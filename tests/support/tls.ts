import type { X509Certificate } from "node:crypto";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import tls from "node:tls";

export interface TestPki {
  caCert: string;
  cert: string;
  key: string;
  /** A certificate for the same names signed by a CA the master does not trust. */
  rogueCert: string;
  rogueKey: string;
}

function openssl(args: string[], cwd: string) {
  execFileSync("openssl", args, { cwd, stdio: "pipe" });
}

/** `<name>.key` and the self-signed `<name>.crt` (P-256, two days) in `dir`, with openssl's `extra` arguments. */
function selfSignedFiles(dir: string, name: string, subject: string, extra: string[] = []): void {
  openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.crt`,
      "-days",
      "2",
      "-subj",
      subject,
      ...extra,
    ],
    dir,
  );
}

/**
 * Makes a CA and a server certificate for localhost/127.0.0.1 (and `extraIps`) with openssl (real
 * TLS, no mocks).
 */
export function makePki(dir: string, extraIps: string[] = []): TestPki {
  const ext = path.join(dir, "san.ext");
  writeFileSync(
    ext,
    `subjectAltName=${["DNS:localhost", "IP:127.0.0.1", ...extraIps.map((a) => `IP:${a}`)].join(",")}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`,
  );
  for (const ca of ["ca", "rogue-ca"]) {
    selfSignedFiles(dir, ca, `/CN=CPM test ${ca}`);
  }
  for (const [name, ca] of [
    ["server", "ca"],
    ["rogue", "rogue-ca"],
  ]) {
    openssl(
      [
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.csr`,
        "-subj",
        "/CN=localhost",
      ],
      dir,
    );
    openssl(
      [
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        `${ca}.crt`,
        "-CAkey",
        `${ca}.key`,
        "-CAcreateserial",
        "-out",
        `${name}.crt`,
        "-days",
        "2",
        "-extfile",
        ext,
      ],
      dir,
    );
  }
  const p = (f: string) => path.join(dir, f);
  return {
    caCert: p("ca.crt"),
    cert: p("server.crt"),
    key: p("server.key"),
    rogueCert: p("rogue.crt"),
    rogueKey: p("rogue.key"),
  };
}

export interface NamedCerts {
  /** The CA certificate (PEM text) that signed every certificate. */
  caPem: string;
  /** Per name: certificate and key, PEM text. */
  certs: Record<string, { cert: string; key: string }>;
}

/** Makes a CA and one server certificate per DNS name, signed by it (openssl). */
export function makeNamedCerts(dir: string, names: string[]): NamedCerts {
  selfSignedFiles(dir, "named-ca", "/CN=CPM test named CA");
  const certs: NamedCerts["certs"] = {};
  for (const name of names) {
    writeFileSync(
      path.join(dir, `${name}.ext`),
      `subjectAltName=DNS:${name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`,
    );
    openssl(
      [
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.csr`,
        "-subj",
        `/CN=${name}`,
      ],
      dir,
    );
    openssl(
      [
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        "named-ca.crt",
        "-CAkey",
        "named-ca.key",
        "-CAcreateserial",
        "-out",
        `${name}.crt`,
        "-days",
        "2",
        "-extfile",
        `${name}.ext`,
      ],
      dir,
    );
    certs[name] = {
      cert: readFileSync(path.join(dir, `${name}.crt`), "utf8"),
      key: readFileSync(path.join(dir, `${name}.key`), "utf8"),
    };
  }
  return { caPem: readFileSync(path.join(dir, "named-ca.crt"), "utf8"), certs };
}

/** A self-signed certificate for `sans` with its key (openssl, at test time). */
export function selfSigned(dir: string, name: string, sans: string[]): { cert: string; key: string } {
  selfSignedFiles(dir, name, `/CN=${name}`, ["-addext", `subjectAltName=${sans.join(",")}`]);
  return {
    cert: readFileSync(path.join(dir, `${name}.crt`), "utf8"),
    key: readFileSync(path.join(dir, `${name}.key`), "utf8"),
  };
}

/** The certificate Caddy presents on a TLS handshake for `servername` (not verified). */
export function peerCertificate(port: number, servername: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      { host: "127.0.0.1", port, servername, rejectUnauthorized: false, timeout: 5000 },
      () => {
        const cert = socket.getPeerX509Certificate();
        socket.end();
        if (cert) resolve(cert);
        else reject(new Error("no peer certificate"));
      },
    );
    socket.on("timeout", () => socket.destroy(new Error("TLS handshake timed out")));
    socket.on("error", reject);
  });
}

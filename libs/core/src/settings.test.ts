import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Settings, type DeepPartial } from "@cpm/proto";
import { assertValidationError } from "./test-support.ts";
import {
  DEFAULT_HSTS_MAX_AGE_SECONDS,
  MAX_HSTS_MAX_AGE_SECONDS,
  MAX_UPSTREAM_DIAL_TIMEOUT_SECONDS,
  MAX_UPSTREAM_RESPONSE_HEADER_TIMEOUT_SECONDS,
  normalizeSettings,
} from "./settings.ts";

/** A self-signed root (EC P-256), only ever parsed. */
const ROOT_PEM = `-----BEGIN CERTIFICATE-----
MIIBkDCCATegAwIBAgIUTB03SXNh8wvKEGJrHyj0dT3OGigwCgYIKoZIzj0EAwIw
HTEbMBkGA1UEAwwSQ1BNIFRlc3QgQUNNRSBSb290MCAXDTI2MTEyNTEzNDY0OVoY
DzIxMjYxMTAxMTM0NjQ5WjAdMRswGQYDVQQDDBJDUE0gVGVzdCBBQ01FIFJvb3Qw
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASxlcH/ihNA9QgNMlfEzgdCJbYRgwfQ
SPpEM5Z9Azqi4pjjWlCyKvGd7GiTMUDcm6GcJlqkOfY6+Ey1hfqtop2ao1MwUTAd
BgNVHQ4EFgQULKG9oCv4AQPIpCYL59P/CBHKiAUwHwYDVR0jBBgwFoAULKG9oCv4
AQPIpCYL59P/CBHKiAUwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBE
AiAixC4ze87oh75kuZvxO/DKDVN93S6W1xVYG87YPWRcmQIgEo/xsINvAZdkDb8C
BNf3RnMvqKXllJsnDReprknYJLg=
-----END CERTIFICATE-----
`;

const settings = (over: DeepPartial<Settings>) => Settings.fromPartial(over);

describe("normalizeSettings: defaults", () => {
  test("undefined and empty settings fill every section with defaults", () => {
    const want = {
      general: { primaryDomain: "", acmeEmail: "" },
      acme: { caUrl: "", caRootPem: "" },
      http: {
        hstsMaxAgeSeconds: DEFAULT_HSTS_MAX_AGE_SECONDS,
        upstreamDialTimeoutSeconds: 0,
        upstreamResponseHeaderTimeoutSeconds: 0,
      },
    };
    assert.deepEqual(normalizeSettings(undefined), want);
    assert.deepEqual(normalizeSettings(settings({})), want);
    assert.deepEqual(normalizeSettings(settings({ http: {} })), want);
    assert.equal(DEFAULT_HSTS_MAX_AGE_SECONDS, 31536000);
  });

  test("an explicit HSTS max-age of 0 is kept (it tells browsers to drop the policy)", () => {
    assert.equal(normalizeSettings(settings({ http: { hstsMaxAgeSeconds: 0 } })).http!.hstsMaxAgeSeconds, 0);
  });

  test("normalizing is idempotent", () => {
    const n = normalizeSettings(
      settings({
        general: { primaryDomain: "Example.COM", acmeEmail: " ops@Example.com " },
        acme: { caUrl: "https://acme.example.com/dir", caRootPem: ROOT_PEM },
        http: { upstreamDialTimeoutSeconds: 5 },
      }),
    );
    assert.deepEqual(normalizeSettings(n), n);
  });
});

describe("normalizeSettings: valid values", () => {
  const cases: [string, DeepPartial<Settings>, (s: Settings) => void][] = [
    [
      "primary domain lower-cased",
      { general: { primaryDomain: " Proxy.Example.COM " } },
      (s) => assert.equal(s.general!.primaryDomain, "proxy.example.com"),
    ],
    [
      "e-mail trimmed, domain lower-cased",
      { general: { acmeEmail: " Ops.Team+acme@Example.COM " } },
      (s) => assert.equal(s.general!.acmeEmail, "Ops.Team+acme@example.com"),
    ],
    [
      "e-mail with a single-label domain (private network)",
      { general: { acmeEmail: "pki@corp" } },
      (s) => assert.equal(s.general!.acmeEmail, "pki@corp"),
    ],
    [
      "https CA URL",
      { acme: { caUrl: "https://acme-staging-v02.api.letsencrypt.org/directory" } },
      (s) => assert.equal(s.acme!.caUrl, "https://acme-staging-v02.api.letsencrypt.org/directory"),
    ],
    [
      "http CA URL on localhost",
      { acme: { caUrl: "http://localhost:14000/dir" } },
      (s) => assert.equal(s.acme!.caUrl, "http://localhost:14000/dir"),
    ],
    [
      "http CA URL on 127.0.0.1",
      { acme: { caUrl: "http://127.0.0.1:14000/dir" } },
      (s) => assert.equal(s.acme!.caUrl, "http://127.0.0.1:14000/dir"),
    ],
    [
      "http CA URL on [::1]",
      { acme: { caUrl: "http://[::1]:14000/dir" } },
      (s) => assert.equal(s.acme!.caUrl, "http://[::1]:14000/dir"),
    ],
    [
      "CA root PEM (trimmed, one trailing newline)",
      { acme: { caRootPem: `\n\n${ROOT_PEM}\n\n` } },
      (s) => assert.equal(s.acme!.caRootPem, ROOT_PEM),
    ],
    [
      "CA bundle of two PEMs",
      { acme: { caRootPem: `${ROOT_PEM}${ROOT_PEM}` } },
      (s) => assert.equal(s.acme!.caRootPem, `${ROOT_PEM}${ROOT_PEM}`),
    ],
    [
      "timeouts at their maximum",
      {
        http: {
          hstsMaxAgeSeconds: MAX_HSTS_MAX_AGE_SECONDS,
          upstreamDialTimeoutSeconds: MAX_UPSTREAM_DIAL_TIMEOUT_SECONDS,
          upstreamResponseHeaderTimeoutSeconds: MAX_UPSTREAM_RESPONSE_HEADER_TIMEOUT_SECONDS,
        },
      },
      (s) =>
        assert.deepEqual(s.http, {
          hstsMaxAgeSeconds: 63072000,
          upstreamDialTimeoutSeconds: 300,
          upstreamResponseHeaderTimeoutSeconds: 3600,
        }),
    ],
  ];
  for (const [name, over, check] of cases) test(name, () => check(normalizeSettings(settings(over))));
});

describe("normalizeSettings: bad input names the field", () => {
  const corrupt = ROOT_PEM.replace("MIIBkDCCATegAwIBAgIU", "MIIBkDCCATegAwIBAgIX").replace("SPpEM5Z9", "!!!!");
  const cases: [string, DeepPartial<Settings>, string, RegExp?][] = [
    [
      "primary domain with a space",
      { general: { primaryDomain: "exa mple.com" } },
      "settings.general.primary_domain",
      /not a valid host name/,
    ],
    [
      "primary domain wildcard",
      { general: { primaryDomain: "*.example.com" } },
      "settings.general.primary_domain",
      /not a valid host name/,
    ],
    [
      "primary domain with a scheme",
      { general: { primaryDomain: "https://example.com" } },
      "settings.general.primary_domain",
    ],
    [
      "e-mail without @",
      { general: { acmeEmail: "ops.example.com" } },
      "settings.general.acme_email",
      /not an e-mail address/,
    ],
    [
      "e-mail without local part",
      { general: { acmeEmail: "@example.com" } },
      "settings.general.acme_email",
      /not an e-mail address/,
    ],
    [
      "e-mail without domain",
      { general: { acmeEmail: "ops@" } },
      "settings.general.acme_email",
      /not an e-mail address/,
    ],
    ["e-mail with a space", { general: { acmeEmail: "o ps@example.com" } }, "settings.general.acme_email"],
    ["e-mail with an IPv6 literal", { general: { acmeEmail: "ops@[::1]" } }, "settings.general.acme_email"],
    ["e-mail with an IP", { general: { acmeEmail: "ops@10.0.0.1" } }, "settings.general.acme_email", /domain name/],
    [
      "e-mail with a bad domain",
      { general: { acmeEmail: "ops@exa_mple.com" } },
      "settings.general.acme_email",
      /invalid domain/,
    ],
    ["e-mail with two dots", { general: { acmeEmail: "a..b@example.com" } }, "settings.general.acme_email"],
    ["CA URL not a URL", { acme: { caUrl: "acme.example.com/directory" } }, "settings.acme.ca_url", /not a URL/],
    [
      "CA URL plain http",
      { acme: { caUrl: "http://acme.example.com/directory" } },
      "settings.acme.ca_url",
      /must use https/,
    ],
    ["CA URL ftp", { acme: { caUrl: "ftp://acme.example.com/directory" } }, "settings.acme.ca_url", /not supported/],
    [
      "CA URL with credentials",
      { acme: { caUrl: "https://user:pw@acme.example.com/directory" } },
      "settings.acme.ca_url",
      /credentials/,
    ],
    ["CA root not PEM", { acme: { caRootPem: "hello" } }, "settings.acme.ca_root_pem", /not a PEM certificate/],
    [
      "CA root private key",
      { acme: { caRootPem: "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n" } },
      "settings.acme.ca_root_pem",
      /not a PEM certificate/,
    ],
    [
      "CA root with trailing junk",
      { acme: { caRootPem: `${ROOT_PEM}junk` } },
      "settings.acme.ca_root_pem",
      /something other than PEM/,
    ],
    [
      "CA root that does not parse",
      { acme: { caRootPem: corrupt } },
      "settings.acme.ca_root_pem",
      /certificate 1 does not parse/,
    ],
    [
      "second certificate does not parse",
      { acme: { caRootPem: `${ROOT_PEM}${corrupt}` } },
      "settings.acme.ca_root_pem",
      /certificate 2 does not parse/,
    ],
    [
      "HSTS max-age too large",
      { http: { hstsMaxAgeSeconds: MAX_HSTS_MAX_AGE_SECONDS + 1 } },
      "settings.http.hsts_max_age_seconds",
      /above the maximum/,
    ],
    ["HSTS max-age negative", { http: { hstsMaxAgeSeconds: -1 } }, "settings.http.hsts_max_age_seconds", />= 0/],
    [
      "dial timeout too large",
      { http: { upstreamDialTimeoutSeconds: 301 } },
      "settings.http.upstream_dial_timeout_seconds",
      /above the maximum of 300/,
    ],
    [
      "dial timeout negative",
      { http: { upstreamDialTimeoutSeconds: -5 } },
      "settings.http.upstream_dial_timeout_seconds",
      />= 0/,
    ],
    [
      "dial timeout fractional",
      { http: { upstreamDialTimeoutSeconds: 1.5 } },
      "settings.http.upstream_dial_timeout_seconds",
      /whole number/,
    ],
    [
      "response header timeout too large",
      { http: { upstreamResponseHeaderTimeoutSeconds: 3601 } },
      "settings.http.upstream_response_header_timeout_seconds",
      /above the maximum of 3600/,
    ],
    [
      "response header timeout negative",
      { http: { upstreamResponseHeaderTimeoutSeconds: -1 } },
      "settings.http.upstream_response_header_timeout_seconds",
    ],
  ];
  for (const [name, over, field, detail] of cases) {
    test(name, () => assertValidationError(() => normalizeSettings(settings(over)), field, detail));
  }

  test("the field prefix follows the caller (snapshot paths)", () => {
    assertValidationError(
      () => normalizeSettings(settings({ acme: { caUrl: "nope" } }), "snapshot.settings"),
      "snapshot.settings.acme.ca_url",
    );
  });
});

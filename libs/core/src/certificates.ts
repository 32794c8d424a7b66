import type { Certificate } from "@cpm/proto";

/** Checks one certificate on its own and returns its normalized form. */
export function normalizeCertificate(input: Certificate, _field = "certificate"): Certificate {
  return input;
}

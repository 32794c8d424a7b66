import type { AccessList, Certificate, L4ProxyHost, Settings } from "@cpm/proto";

/*
 * Per-resource validation hooks used by both the API (config-service) and snapshot
 * validation (receiver, renderer). Each checks one resource on its own and returns the
 * normalized form; ValidationError messages start with the field path.
 */

/** Certificates: see certificates.ts. */
export { covers as certificateCovers, isPrivateName, normalizeCertificate, type NormalizeCertificateOptions } from "./certificates.ts";
/** Access lists: see access-lists.ts. */
export { normalizeAccessList } from "./access-lists.ts";
/** L4 proxy hosts: see l4.ts. */
export { normalizeL4ProxyHost } from "./l4.ts";
/** Settings: see settings.ts. */
export { normalizeSettings } from "./settings.ts";

export type { AccessList, Certificate, L4ProxyHost, Settings };

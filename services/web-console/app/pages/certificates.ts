import { create } from "@bufbuild/protobuf";
import {
  CertificateIssuance,
  CertificateSchema,
  CertificateStatus,
  CertificateType,
  type Certificate,
} from "../../src/gen/cpm/config/v1/resources_pb.ts";
import { config } from "../api.ts";
import { h } from "../dom.ts";
import { resourcePage, when, type ResourceKind } from "../crud.ts";
import { writesSynced, type Page } from "../shell.ts";

/** A managed certificate's state (PENDING / ISSUED / RENEWING / FAILED with the CA's error). */
function status(x: Certificate): Node {
  if (x.type === CertificateType.IMPORTED) return h("span", {}, "imported");
  const name = x.status === CertificateStatus.UNSPECIFIED ? "each node" : CertificateStatus[x.status];
  const cls = x.status === CertificateStatus.FAILED ? "bad" : x.status === CertificateStatus.ISSUED ? "ok" : "";
  return h(
    "div",
    {},
    h("span", { class: cls }, name),
    x.statusDetail ? h("div", { class: "error" }, x.statusDetail) : null,
  );
}

/** Expiry: an imported certificate's, or the first of a managed one's issued entries. */
function expiry(x: Certificate): string {
  if (x.expiresAt) return when(x.expiresAt);
  const first = x.issued
    .map((e) => e.notAfter)
    .filter((t) => t !== undefined)
    .sort((a, b) => Number(a.seconds - b.seconds))[0];
  return when(first, "not issued");
}

const kind: ResourceKind<Certificate> = {
  route: "#/certificates",
  title: "Certificates",
  singular: "certificate",
  prefix: "certificate",
  load: async () => (await config.listCertificates({})).certificates,
  name: (x) => x.name,
  searchable: (x) => [x.name, ...x.domainNames, x.issuer],
  searchHint: "name, domain or issuer",
  columns: [
    { label: "Name", cell: (x) => x.name },
    { label: "Type", cell: (x) => (x.type === CertificateType.IMPORTED ? "imported" : "managed") },
    { label: "Domains", cell: (x) => x.domainNames.join(", ") },
    { label: "Status", cell: status },
    { label: "Expires", cell: expiry },
  ],
  writable: writesSynced,
  form: (f, x) => {
    const name = f.text("name", "Name", x?.name ?? "");
    const type = f.select(
      "type",
      "Type",
      [
        [CertificateType.MANAGED, "managed (issued by the ACME CA)"],
        [CertificateType.IMPORTED, "imported (PEM below)"],
      ],
      x?.type || CertificateType.MANAGED,
      (t) => showFor(t),
    );
    const domains = f.list("domain_names", "Domain names", x?.domainNames ?? [], "One per line.");
    const issuance = f.select(
      "issuance",
      "Issued by",
      [
        [CertificateIssuance.MASTER, "the master, synced to every slave"],
        [CertificateIssuance.EACH_NODE, "each node for itself"],
      ],
      x?.issuance || CertificateIssuance.MASTER,
    );
    const pem = f.area(
      "certificate_pem",
      "Certificate PEM",
      x?.certificatePem ?? "",
      "The leaf first, then its chain.",
      6,
    );
    const key = f.area(
      "private_key_pem",
      "Private key PEM",
      "",
      x ? "Leave empty to keep the stored key." : "The certificate's private key.",
      6,
    );
    const autoRenew = f.check("auto_renew", "Renew automatically", x?.autoRenew ?? true);
    // Only the fields of the chosen type are shown.
    const showFor = (t: CertificateType) => {
      const imported = t === CertificateType.IMPORTED;
      f.showFields(["domain_names", "issuance", "auto_renew"], !imported);
      f.showFields(["certificate_pem", "private_key_pem"], imported);
    };
    showFor(type());
    return () => {
      const msg: Certificate = x ? { ...x } : create(CertificateSchema);
      Object.assign(msg, {
        name: name.value,
        type: type(),
        domainNames: domains(),
        issuance: issuance(),
        certificatePem: pem.value,
        privateKeyPem: key.value,
        autoRenew: autoRenew(),
      });
      return x ? config.updateCertificate({ certificate: msg }) : config.createCertificate({ certificate: msg });
    };
  },
  remove: { verb: "Delete", run: (x) => config.deleteCertificate({ id: x.id }) },
};

export const certificatesPage: Page = { route: kind.route, title: kind.title, open: (s) => resourcePage(kind, s) };

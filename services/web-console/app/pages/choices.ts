import { config } from "../api.ts";

/** The certificates a host can use, as choices with "none" first. */
export async function certificateChoices(): Promise<[string, string][]> {
  const { certificates } = await config.listCertificates({});
  return [["", "none"], ...certificates.map((c): [string, string] => [c.id, c.name])];
}

/** The access lists a proxy host can use, as choices with "none" first. */
export async function accessListChoices(): Promise<[string, string][]> {
  const { accessLists } = await config.listAccessLists({});
  return [["", "none"], ...accessLists.map((c): [string, string] => [c.id, c.name])];
}

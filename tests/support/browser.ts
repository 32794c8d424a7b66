import { chromium, type Browser, type Page } from "playwright-core";
import type { Instance } from "./instance.ts";

/** Debian's Chromium, driven by playwright-core (Playwright's own browser download is not used). */
export const CHROMIUM = process.env.CPM_CHROMIUM ?? "/usr/bin/chromium";

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
}

/** The web console of `i`, as its published port serves it. */
export const consoleUrl = (i: Instance) => `http://127.0.0.1:${i.ports.console}/`;

/** Signs `page` in to `i`'s console through its form (the sign-in page must be showing or loadable). */
export async function signIn(page: Page, i: Instance, username: string, password: string): Promise<void> {
  await page.goto(consoleUrl(i));
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

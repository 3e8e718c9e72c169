import path from 'node:path';
import { expect } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { ROOT } from '../int/harness.ts';

/** Where the console's browser tests save their screenshots (a reviewer looks at them). */
export const SHOTS = path.join(ROOT, '.data', 'test-output', 'console');

export const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

type View = { viewport?: { width: number; height: number }; mobile?: boolean };

/** A fresh browser context on the console, collecting any Content-Security-Policy violation the page reports. */
export async function openConsole(browser: Browser, url: string, view: View = {}): Promise<{ context: BrowserContext; page: Page; violations: string[] }> {
  const mobile = view.mobile ?? false;
  const context = await browser.newContext({ baseURL: url, viewport: view.viewport ?? { width: 1100, height: 800 }, isMobile: mobile, hasTouch: mobile, acceptDownloads: true });
  const page = await context.newPage();
  const violations: string[] = [];
  page.on('console', (m) => { if (/Content[- ]Security[- ]Policy/i.test(m.text())) violations.push(m.text()); });
  return { context, page, violations };
}

/** Signs in with an API key through the sign-in page, as a person would; no CSP violation on the way. */
export async function signInWithKey(browser: Browser, url: string, key: string, view: View = {}): Promise<{ context: BrowserContext; page: Page }> {
  const { context, page, violations } = await openConsole(browser, url, view);
  await page.goto('/');
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  expect(violations).toEqual([]);
  return { context, page };
}

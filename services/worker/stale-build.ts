import { existsSync, readFileSync, statSync } from 'node:fs';

// Set by services/worker/build-entry.ts and services/build/build.ts in a prebuilt worker; absent when the sources run through tsx.
declare const __COUNTERSIGN_BUILT_INPUTS__: string | undefined;

/**
 * In a prebuilt worker: the first source edited after the build, or null when the build is current (or this
 * is not a build). A stale worker would run other activity code than the checkout holds, silently.
 */
export function staleBuildSource(): string | null {
  if (typeof __COUNTERSIGN_BUILT_INPUTS__ !== 'string') return null;
  // A deployment (the container image) ships the build without its sources or this record of them.
  if (!existsSync(__COUNTERSIGN_BUILT_INPUTS__)) return null;
  const built = statSync(__COUNTERSIGN_BUILT_INPUTS__).mtimeMs;
  const inputs = JSON.parse(readFileSync(__COUNTERSIGN_BUILT_INPUTS__, 'utf8')) as string[];
  return inputs.find((p) => !existsSync(p) || statSync(p).mtimeMs > built) ?? null;
}

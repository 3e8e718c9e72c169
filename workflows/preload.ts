// Loaded once per worker, before any run, and shared by every run (the bundle's `preloadModules`, see
// services/worker/workflows-path.ts): zod, which the workflows parse messages with, instead of evaluating its
// modules afresh for every run the worker starts (about a third of a short run's cost in the workflow thread).
// Preloading the package by name is tree-shaken away (zod declares itself free of side effects), hence this
// module. The SDK freezes what it shares, and zod fills its global config (default locale, memoizer) when the
// first schema is built: built here, before the freeze, or every parse later fails ("Cannot add property
// localeError, object is not extensible").
import { z } from 'zod';
// The message schemas, shared the same way: each is built on its first use by any run and kept for every later
// run (decision-messages.ts `lazily`), where it was built again in each run that parsed a message (about 1 ms of
// an answer's workflow task, before the append that records it). Built after the freeze, they are not frozen.
import { messageSchemas } from './decision-messages.ts';

z.strictObject({ warm: z.string().min(1) }).safeParse({ warm: '' });

export const sharedZod = z;
export const sharedMessageSchemas = messageSchemas;

// Loaded once per worker, before any run, and shared by every run (the bundle's `preloadModules`, see
// services/worker/workflows-path.ts): zod, which the workflows parse messages with, instead of evaluating its
// modules afresh for every run the worker starts (about a third of a short run's cost in the workflow thread).
// Preloading the package by name is tree-shaken away (zod declares itself free of side effects), hence this
// module. The SDK freezes what it shares, and zod fills its global config (default locale, memoizer) when the
// first schema is built: built here, before the freeze, or every parse later fails ("Cannot add property
// localeError, object is not extensible"). Schemas themselves are built per run (decision-messages.ts).
import { z } from 'zod';

z.strictObject({ warm: z.string().min(1) }).safeParse({ warm: '' });

export const sharedZod = z;

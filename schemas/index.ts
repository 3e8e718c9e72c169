export * from './decision.ts';
export * from './events.ts';
export * from './receipt.ts';
export * from './identity.ts';
export * from './api.ts';
export * from './policy.ts';
export * from './duration.ts';
export * from './tool-catalog.ts';

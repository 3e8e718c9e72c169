export * from './decision.ts';
export * from './events.ts';
export * from './receipt.ts';

export * from './decision.ts';
export * from './events.ts';

import { hasRole, type Me } from './session.ts';

/**
 * What each role may do, as the API's routes allow it: pages show a control only to a role whose request the
 * API would accept (the API refuses anyway). One table, so the pages cannot drift apart.
 */
const ABILITIES = {
  answer: ['approver', 'admin'],
  writePolicies: ['author', 'admin'],
  reviewActivation: ['admin'],
  readAgents: ['author', 'admin', 'auditor'],
  listMembers: ['admin', 'auditor'],
  bindAgents: ['author', 'admin'],
  checkManifests: ['author', 'admin'],
  manageCatalog: ['admin'],
  manageMembers: ['admin'],
  audit: ['admin', 'auditor'],
} as const;

export type Ability = keyof typeof ABILITIES;
export const can = (me: Me, ability: Ability): boolean => hasRole(me, ...ABILITIES[ability]);

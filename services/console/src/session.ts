import { createContext, useContext } from 'react';

export type Me = { id: string; tenant_id: string; name: string; roles: string[]; groups: string[] };
export const SessionContext = createContext<Me | null>(null);
export const useMe = (): Me => {
  const me = useContext(SessionContext);
  if (!me) throw new Error('no session');
  return me;
};
export const hasRole = (me: Me, ...roles: string[]) => roles.some((r) => me.roles.includes(r));

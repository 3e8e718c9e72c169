import { useEffect, useState } from 'react';

/** The page's path, kept in step with history (the console's pages are plain paths the API serves). */
export function usePath(): string {
  const [path, setPath] = useState(window.location.pathname);
  useEffect(() => {
    const on = () => setPath(window.location.pathname);
    window.addEventListener('popstate', on);
    window.addEventListener('cs:navigate', on);
    return () => { window.removeEventListener('popstate', on); window.removeEventListener('cs:navigate', on); };
  }, []);
  return path;
}

export function navigate(to: string): void {
  window.history.pushState(null, '', to);
  window.dispatchEvent(new Event('cs:navigate'));
}

/** The page's query string, kept in step with history (filters live there so a view can be linked and reloaded). */
export function useSearch(): string {
  const [search, setSearch] = useState(window.location.search);
  useEffect(() => {
    const on = () => setSearch(window.location.search);
    window.addEventListener('popstate', on);
    window.addEventListener('cs:navigate', on);
    return () => { window.removeEventListener('popstate', on); window.removeEventListener('cs:navigate', on); };
  }, []);
  return search;
}

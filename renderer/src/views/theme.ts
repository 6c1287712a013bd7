import { useCallback, useEffect, useState } from 'react';

export type ThemeChoice = 'system' | 'light' | 'dark';
export type Theme = 'light' | 'dark';

const THEME_KEY = 'hangar.theme';

function systemTheme(): Theme {
  return window.matchMedia?.('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

/** Follows the OS unless the user picked one in settings; the choice is remembered. */
export function useTheme(): {
  theme: Theme;
  choice: ThemeChoice;
  setChoice(choice: ThemeChoice): void;
  toggle(): void;
} {
  const [choice, setChoiceState] = useState<ThemeChoice>(
    () => (localStorage.getItem(THEME_KEY) as ThemeChoice | null) ?? 'system',
  );
  const [system, setSystem] = useState<Theme>(systemTheme);
  useEffect(() => {
    const query = window.matchMedia?.('(prefers-color-scheme: dark)');
    if (!query) return;
    const onChange = () => setSystem(systemTheme());
    query.addEventListener('change', onChange);
    return () => query.removeEventListener('change', onChange);
  }, []);
  const theme = choice === 'system' ? system : choice;
  useEffect(() => {
    document.documentElement.dataset['theme'] = theme;
  }, [theme]);
  const setChoice = useCallback((next: ThemeChoice) => {
    localStorage.setItem(THEME_KEY, next);
    setChoiceState(next);
  }, []);
  const toggle = useCallback(() => setChoice(theme === 'dark' ? 'light' : 'dark'), [theme, setChoice]);
  return { theme, choice, setChoice, toggle };
}

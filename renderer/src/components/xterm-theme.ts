import type { ITheme } from '@xterm/xterm';
import type { Theme } from '../views/theme.js';

const DARK: ITheme = {
  background: '#16181d',
  foreground: '#d8dee9',
  cursor: '#d8dee9',
  selectionBackground: '#3b4252',
};
const LIGHT: ITheme = {
  background: '#fbfbfa',
  foreground: '#1f2328',
  cursor: '#1f2328',
  selectionBackground: '#c8d7f0',
  // The default ANSI white and bright yellow are unreadable on a light background.
  white: '#6e7781',
  brightWhite: '#8c959f',
  yellow: '#9a6700',
  brightYellow: '#7d4e00',
};

export function xtermTheme(theme: Theme): ITheme {
  return theme === 'dark' ? DARK : LIGHT;
}

export const TERMINAL_FONT = 'ui-monospace, "SF Mono", Menlo, "DejaVu Sans Mono", Consolas, monospace';

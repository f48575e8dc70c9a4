import type { CaptureMode } from './capture-mode.ts';
import { ephemeralMode } from './ephemeral.ts';
import { privilegedMode } from './privileged.ts';
import { unprivilegedMode } from './unprivileged.ts';

// Every capture mode, by name: the CLI and the extcap get both without hooks.

export type ModeName = CaptureMode['name'];
export type ModeRegistry = Readonly<Record<ModeName, CaptureMode>>;

export const MODES: ModeRegistry = {
  unprivileged: unprivilegedMode,
  ephemeral: ephemeralMode,
  privileged: privilegedMode,
};

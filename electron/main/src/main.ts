/**
 * The Electron shell, kept thin (Wave, Tabby): a window, a menu, a tray and MessagePorts to the
 * core. Everything else (hosts, terminals, jobs) is electron/core, the same code the CLI and web
 * mode run. The page is sandboxed with no Node; it reaches the core only through its port.
 */
import {
  CoreApiServer,
  EmbeddedAgent,
  HangarCore,
  LocalDoor,
  hangarHome,
  webRtcHoldsProcess,
  type Platform,
} from '@hangar/desktop/core';
import { BrowserWindow, MessageChannelMain, app, ipcMain, session } from 'electron';
import { fileURLToPath } from 'node:url';
import { APP_ORIGIN, isAppUrl, registerAppScheme, serveRenderer } from './app-protocol.js';
import { electronPlatform } from './electron-platform.js';
import { windowOpenHandler } from './external-links.js';
import { wirePortRequests, type IpcMainLike, type PortWiringOptions } from './ipc.js';
import { installPermissionPolicy } from './permissions.js';
import { createTray, installAppMenu } from './shell.js';
import { loadWindowState, saveWindowState, windowStateFile } from './window-state.js';
import { guardNavigation, runSingleInstance, windowOptions } from './window-options.js';

const PRELOAD = fileURLToPath(new URL('../../preload/dist/preload.cjs', import.meta.url));
const RENDERER_DIST = fileURLToPath(new URL('../../../renderer/dist/', import.meta.url));
/** Set by `hangar up`, which runs the embedded agent itself and opened this window. */
const AGENT_MANAGED = process.env['HANGAR_AGENT_MANAGED'] === '1';

registerAppScheme();
// Chromium (156, measured in test/bench/ui) holds a page's incoming messages after a keydown until
// the next frame is drawn, which delays a fast typist's echo by up to a frame. A terminal wants the
// echo now. Not verified in Electron here (its binary cannot be downloaded); harmless if absent.
app.commandLine.appendSwitch('disable-features', 'DeferRendererTasksAfterInput');

// Another Hangar window may be running; it comes to the front (see 'second-instance').
runSingleInstance(app, () => void app.whenReady().then(start));

async function start(): Promise<void> {
  const home = hangarHome();
  const core = await HangarCore.open({ home });
  const platform = electronPlatform();
  const api = new CoreApiServer(core, platform);
  // hangar commands on this computer reach this core (its live host links) over a local socket.
  const door = await LocalDoor.start({ api, home, logger: core.logger });
  const agent = AGENT_MANAGED ? undefined : startEmbeddedAgent(core, platform);
  // Before any page loads: Electron's default grants a page every permission it asks for.
  installPermissionPolicy(session.defaultSession, {
    isTrustedUrl: isAppUrl,
    onDenied: (permission, url) => core.logger.info({ permission, url }, 'denied a page permission'),
  });
  serveRenderer(RENDERER_DIST);
  installAppMenu();

  const stateFile = windowStateFile(home);
  let window: BrowserWindow | undefined;
  const showWindow = (): BrowserWindow => {
    if (window && !window.isDestroyed()) return window;
    window = createWindow(
      stateFile,
      windowOpenHandler(platform.openExternal, (error, url) =>
        core.logger.warn({ err: error, url }, 'could not open a link in the browser'),
      ),
    );
    return window;
  };

  const ports = wirePortRequests({
    ipcMain: ipcMain as unknown as IpcMainLike,
    createChannel: () => new MessageChannelMain() as unknown as ReturnType<PortWiringOptions['createChannel']>,
    serve: (transport) => api.serve(transport),
    isTrustedUrl: isAppUrl,
    onRefused: (url) => core.logger.warn({ url }, 'refused a core port to a page that is not ours'),
  });
  const tray = createTray(core, showWindow);
  showWindow();

  app.on('second-instance', () => {
    const shown = showWindow();
    if (shown.isMinimized()) shown.restore();
    shown.focus();
  });
  app.on('activate', () => showWindow());
  // The tray keeps Hangar reachable on macOS; elsewhere closing the last window quits.
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });
  let quitting = false;
  app.on('will-quit', (event) => {
    if (quitting) return;
    quitting = true;
    event.preventDefault();
    tray.dispose();
    void (async () => {
      ports.dispose();
      await door?.dispose();
      await api.dispose();
      await agent?.dispose();
      await core.dispose();
      // A WebRTC connection stalled after ICE (README "Known issues"): the library may be
      // deadlocked, and the runtime's teardown would close it and wait forever. Not verified on
      // the Electron binary (it cannot be downloaded where this was written).
      if (webRtcHoldsProcess()) process.exit(0);
      app.quit();
    })();
  });
}

function createWindow(stateFile: string, onWindowOpen: ReturnType<typeof windowOpenHandler>): BrowserWindow {
  const state = loadWindowState(stateFile);
  const window = new BrowserWindow(windowOptions(state, PRELOAD));
  if (state.maximized) window.maximize();
  window.once('ready-to-show', () => window.show());
  guardNavigation(window.webContents, onWindowOpen, isAppUrl);
  window.on('close', () => {
    const bounds = window.getNormalBounds();
    saveWindowState(stateFile, { ...bounds, maximized: window.isMaximized() });
  });
  void window.loadURL(`${APP_ORIGIN}/`);
  return window;
}

/**
 * Started from a packaged app (not from `hangar up`): the embedded agent runs under the same
 * supervisor as in `hangar up` (restarts with backoff, a heartbeat, a bounded number of restarts),
 * with Electron's own Node. When it cannot be kept running, the user is told what to do.
 */
function startEmbeddedAgent(core: HangarCore, platform: Platform): EmbeddedAgent {
  const agent = new EmbeddedAgent({
    core,
    listen: '127.0.0.1:0',
    nodePath: process.execPath,
    env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
    remedy: 'Quit and reopen Hangar; if it stops again, check this computer with: hangar-agent doctor',
  });
  const log = core.logger.child({ component: 'embedded-agent' });
  agent.onStarted(({ value: address, pid }) => log.info({ address, pid }, 'embedded agent up'));
  agent.onRestarting((restart) => log.warn(restart, 'the embedded agent stopped; restarting it'));
  const failed = (error: unknown) => {
    log.error({ err: error }, 'the embedded agent is not running');
    platform.showNotification({
      title: 'Hangar: this computer’s agent is not running',
      body: error instanceof Error ? error.message : String(error),
    });
  };
  agent.onFailed(failed);
  agent.start().catch(failed);
  return agent;
}

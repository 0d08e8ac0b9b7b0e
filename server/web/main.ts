/**
 * The operator page of utils-hub: a live view of the hub and a playground for its services.
 * Plain TypeScript bundled by esbuild (server/scripts/build-web.mjs) into server/public/.
 */
import { askKey } from './api.js';
import { byId } from './dom.js';
import { startLive } from './live.js';
import { Playground } from './playground.js';

const playground = new Playground();
const live = startLive((o) => playground.update(o));
byId('key-button').addEventListener('click', () => void askKey('Enter the client key for this hub (kept in this browser).').then(() => live.refresh()));

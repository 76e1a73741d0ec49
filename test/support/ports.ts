// A port nothing listens on right now, for a server started as its own process.
export { freePort } from '../../deploy/ports.ts';

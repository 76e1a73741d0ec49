// The house's rules, checked by `npm test` (depcruise): no import circles, and no import from
// a lower layer back up. From the bottom: leaves (errors, reasons, config/, log, metrics, small
// helpers) -> request/ and introspection/ (request/ asks introspection/, never the reverse) ->
// authorization-server/ -> fleet/ -> http/ -> server.ts and admin.ts -> commands/ -> main.ts;
// webhook/ (the injector) stands on the leaves alone. src/ never
// imports the tests, the bench or deploy/.
const LEAVES = '^src/(errors|reasons|constant-time|json|media-type|path|thumbprint|vocabulary|seen-set|growing-lru|log|metrics|version|lazy)\\.ts$|^src/config/|^src/tracing/seam\\.ts$';
const TOP = '^src/(server|admin|main)\\.ts$';

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
    { name: 'src-not-to-tests-bench-deploy', severity: 'error', from: { path: '^src/' }, to: { path: '^(test|bench|deploy)/' } },
    { name: 'leaves-stay-leaves', severity: 'error', from: { path: LEAVES }, to: { path: `^src/(request|introspection|authorization-server|fleet|http)/|${TOP}` } },
    { name: 'introspection-below-request', severity: 'error', from: { path: '^src/introspection/' }, to: { path: `^src/(request|authorization-server|fleet|http)/|${TOP}` } },
    { name: 'request-below-clients', severity: 'error', from: { path: '^src/request/' }, to: { path: `^src/(authorization-server|fleet|http)/|${TOP}` } },
    { name: 'authorization-server-below-fleet', severity: 'error', from: { path: '^src/authorization-server/' }, to: { path: `^src/(request|fleet|http)/|${TOP}` } },
    { name: 'fleet-below-http', severity: 'error', from: { path: '^src/fleet/' }, to: { path: `^src/http/|${TOP}` } },
    { name: 'http-below-wiring', severity: 'error', from: { path: '^src/http/' }, to: { path: `^src/fleet/|${TOP}` } },
    { name: 'wiring-below-main', severity: 'error', from: { path: '^src/(server|admin)\\.ts$' }, to: { path: '^src/(main\\.ts$|commands/)' } },
    // The OpenTelemetry SDK is the wiring's to load (dynamically), nobody else's.
    { name: 'sdk-only-from-wiring', severity: 'error', from: { pathNot: '^src/server\\.ts$' }, to: { path: '^src/tracing/otel\\.ts$' } },
    // jose by its subpaths: the package's index loads all of it (JWE too), 2 MB of RSS in
    // every sidecar for code it never runs (measured). Types from the index cost nothing.
    { name: 'jose-by-subpath', severity: 'error', from: { path: '^src/' }, to: { path: '^node_modules/jose/dist/(webapi|node/esm)/index\\.js$', dependencyTypesNot: ['type-only'] } },
    // The injector is its own small program: it stands on the leaves only.
    { name: 'webhook-on-leaves', severity: 'error', from: { path: '^src/webhook/' }, to: { path: `^src/(request|introspection|authorization-server|fleet|http|commands)/|${TOP}` } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count: a circle of types is still a circle for a reader.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};

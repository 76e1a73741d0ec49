# syntax=docker/dockerfile:1
# phantom-sidecar production image: Node 24, production dependencies only, non-root, and no
# secrets or keys in any layer (certificates and credentials are mounted at run time).

# 1. Compile TypeScript to dist/ (the README's `npm ci` and `npm run build`).
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --ignore-scripts
COPY src ./src
RUN npm run build

# 2. Production dependencies only.
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts

# 3. The runtime image.
FROM node:24-slim AS sidecar
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root package.json ./
# The operator's command on the PATH: kubectl exec … -- phantom-sidecar check
RUN printf '#!/bin/sh\nexec node /app/dist/main.js "$@"\n' > /usr/local/bin/phantom-sidecar && chmod 0755 /usr/local/bin/phantom-sidecar
# The image's unprivileged user (uid 1000); the files above stay root-owned and read-only to it.
USER node
EXPOSE 8443 9090
ENTRYPOINT ["node", "dist/main.js"]

# One image for every Countersign process; the command chooses which (docker-compose.yml, the Helm chart):
#   dist/api.mjs | dist/worker.mjs | dist/publisher.mjs | dist/migrate.mjs | dist/init-keys.mjs | dist/seed.mjs
#   | dist/cli.mjs …   (the entrypoint is node)
# The build stage compiles everything (services/build/build.ts: the processes, the CLI and the workflow bundle;
# services/console/build.ts: the console's static files). The runtime stage holds that JavaScript, the files it
# reads at run time (RUNTIME_ASSETS in services/build/build.ts) and the production dependencies: no
# TypeScript source, no compilation at run time, and it runs as an unprivileged user.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY . .
RUN node --import tsx services/console/build.ts && node --import tsx services/build/build.ts

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Only node_modules leaves this stage (npm's cache stays behind). The Temporal core's native library comes for five
# platforms (about 140 MB); the image keeps the one it runs on, as the SDK itself names it.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
 && keep="$(node -p "require('./node_modules/@temporalio/core-bridge/common.js').getPrebuiltTargetName()")" \
 && find node_modules/@temporalio/core-bridge/releases -mindepth 1 -maxdepth 1 ! -name "$keep" -exec rm -rf {} + \
 && test -f "node_modules/@temporalio/core-bridge/releases/$keep/index.node"

FROM ${NODE_IMAGE} AS runtime
RUN groupadd --system --gid 10001 countersign \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/countersign --create-home --shell /usr/sbin/nologin countersign
WORKDIR /app
ENV NODE_ENV=production \
    COUNTERSIGN_HOST=0.0.0.0 \
    COUNTERSIGN_DATA_DIR=/var/lib/countersign \
    COUNTERSIGN_KEYS_DIR=/var/lib/countersign/keys \
    COUNTERSIGN_WORKFLOW_BUNDLE=/app/dist/workflow-bundle.js
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/dist/*.mjs ./dist/
COPY --from=build /app/dist/workflow-bundle.js ./dist/workflow-bundle.js
COPY --from=build /app/services/events/migrations ./services/events/migrations
COPY --from=build /app/services/console/dist ./services/console/dist
COPY --from=build /app/services/stack/example-policy.yaml ./services/stack/example-policy.yaml
USER 10001:10001
# The API; the worker's and publisher's metrics and probes when COUNTERSIGN_*_METRICS_PORT is 9464.
EXPOSE 8080 9464
ENTRYPOINT ["node"]
CMD ["dist/api.mjs"]

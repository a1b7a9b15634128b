# egress-authz image: compiled JavaScript + production dependencies on Node 20, run as a non-root user.
#   docker build -t egress-authz:dev .
#   docker run --rm --read-only --tmpfs /tmp -p 50051:50051 -p 8080:8080 egress-authz:dev
ARG NODE_IMAGE=node:20.20-bookworm-slim

# --- build: all dependencies, then tsc -> dist/ -------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would run tsc before the sources are here; the build is its own step below.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY proto/ proto/
COPY src/ src/
RUN npm run build

# --- prod-deps: production dependencies only (no TypeScript, vitest, tsx, ...) -------------------------------
FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# --- runtime ---------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ARG NODE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/egress-authz/egress-authz
LABEL org.opencontainers.image.title="egress-authz" \
      org.opencontainers.image.description="Envoy ext_authz server for egress gateways: workload identity, CEL policies, rate limits and credential injection" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="docker.io/library/${NODE_IMAGE}"
ENV NODE_ENV=production
WORKDIR /app
# Everything is owned by root and only readable by the runtime user: the server writes nothing, so the root
# filesystem can be mounted read-only (/tmp may be an emptyDir or tmpfs).
COPY --from=prod-deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY bin/ ./bin/
# The ext_authz protos are loaded at run time (src/envoy/codec.ts looks for proto/ beside the package).
COPY proto/ ./proto/
# Example policies, so that `docker run` serves something; Kubernetes mounts its own at /etc/egress-authz/policies.
COPY policies/ ./policies/
# The base image's `node` user; numeric so that runAsNonRoot can be verified without /etc/passwd.
USER 1000:1000
EXPOSE 50051 8080
# node is PID 1 (no npm or shell wrapper), so SIGTERM reaches the server, which drains and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "bin/egress-authz.js"]
CMD ["serve", "--policies", "policies", "--listen", "0.0.0.0:50051", "--admin-listen", "0.0.0.0:8080"]

# The one RobustMQ image: every role (meta, journal, broker) and the operator run from it.
# Build: docker build -t robustmq/robustmq:0.1.0 .   (e2e/test/dockerfile.test.ts checks what can be
# checked without a Docker engine: base, user, entrypoint, and that every copied path exists.)

# --- build: install with dev dependencies, compile every workspace ---------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
COPY common/package.json common/
COPY proto/package.json proto/
COPY journal/package.json journal/
COPY meta/package.json meta/
COPY broker/package.json broker/
COPY server/package.json server/
COPY ctl/package.json ctl/
COPY bench/package.json bench/
COPY operator/package.json operator/
COPY e2e/package.json e2e/
RUN npm ci --no-audit --no-fund
COPY . .
# The CRC-32C addon needs a compiler; without it the server falls back to @node-rs/crc32.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/* \
 && (npm_config_nodedir=/usr/local npm run build:native -w common || echo "native addons not built") \
 && mkdir -p common/native/build/Release
RUN npx tsc -b && npm prune --omit=dev --no-audit --no-fund

# --- runtime: compiled output and production dependencies only, as a non-root user ----------
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json /src/package-lock.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/bin ./bin
COPY --from=build /src/common/package.json ./common/
COPY --from=build /src/common/dist ./common/dist
COPY --from=build /src/common/native/build/Release ./common/native/build/Release
COPY --from=build /src/proto/package.json ./proto/
COPY --from=build /src/proto/dist ./proto/dist
COPY --from=build /src/journal/package.json ./journal/
COPY --from=build /src/journal/dist ./journal/dist
COPY --from=build /src/meta/package.json ./meta/
COPY --from=build /src/meta/dist ./meta/dist
COPY --from=build /src/broker/package.json ./broker/
COPY --from=build /src/broker/dist ./broker/dist
COPY --from=build /src/server/package.json ./server/
COPY --from=build /src/server/dist ./server/dist
COPY --from=build /src/ctl/package.json ./ctl/
COPY --from=build /src/ctl/dist ./ctl/dist
COPY --from=build /src/operator/package.json ./operator/
COPY --from=build /src/operator/dist ./operator/dist
RUN ln -s /app/bin/robust-server /usr/local/bin/robust-server \
 && ln -s /app/bin/robust-ctl /usr/local/bin/robust-ctl \
 && mkdir -p /data && chown node:node /data
USER node
VOLUME /data
ENV ROBUSTMQ_DATA_DIR=/data
# MQTT, MQTT/TLS, MQTT/WS, MQTT/WSS, Kafka, admin HTTP, gRPC
EXPOSE 1883 8883 8083 8084 9092 58080 1228
ENTRYPOINT ["robust-server"]
CMD ["start"]

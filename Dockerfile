# The filter as an OCI image for Istio (and any Envoy that pulls Wasm from a registry):
# a single layer holding /plugin.wasm, the layout Istio's agent expects.
#
#   docker build -t ghcr.io/your-org/llm-gateway-wasm:0.1.0 . && docker push ghcr.io/your-org/llm-gateway-wasm:0.1.0
#   docker build --output type=local,dest=out .      # or just extract out/plugin.wasm
#
# Reference it as oci://ghcr.io/your-org/llm-gateway-wasm:0.1.0 (deploy/istio/).
FROM rust:1.95-bookworm AS build
RUN rustup target add wasm32-wasip1
WORKDIR /src
COPY . .
RUN cargo build --locked --release --target wasm32-wasip1 -p llm-gateway

FROM scratch
COPY --from=build /src/target/wasm32-wasip1/release/llm_gateway.wasm /plugin.wasm

# syntax=docker/dockerfile:1
# gantry-vla: TwinBrainVLA vision-language-action control (`gantry serve vla`). GPU: CUDA
# runtime base, CUDA build of torch, the shared model code. The image serves a trained
# checkpoint (GANTRY_VLA_CHECKPOINT, e.g. on the data volume); Meta-World, which
# `gantry vla train` / `gantry vla eval` need, is not in it (it installs outside the lock,
# requirements-nodeps.txt): train and evaluate from the workspace (docs/vla.md).
#
# Build from the repository root (the build context must be the monorepo):
#   docker build -f deploy/vla.Dockerfile -t gantry-vla:0.1.0 .
# The node needs an NVIDIA driver new enough for CUDA_IMAGE and for the CUDA build of torch
# (torch's wheels carry their own CUDA libraries; the base image brings the NVIDIA runtime
# settings and matching user-space libraries).
ARG CUDA_IMAGE=nvidia/cuda:12.9.1-runtime-ubuntu24.04

# ---- build: a virtualenv holding vla and its dependencies -------------------------
FROM ${CUDA_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# Ubuntu's security updates replace exact package versions; the base image tag pins them.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/gantry
ENV PATH=/opt/gantry/bin:$PATH
WORKDIR /src
# Every third-party version comes from the workspace lock (requirements-gpu.lock, written by
# `make lock`; docs/development.md): pip picks nothing on its own. hatchling, pinned there
# too, builds the local distributions below.
COPY requirements-gpu.lock ./
RUN pip install --no-cache-dir -c requirements-gpu.lock hatchling
COPY libs/gantry-proto/pyproject.toml libs/gantry-proto/
COPY libs/gantry-proto/src libs/gantry-proto/src
COPY libs/gantry-core/pyproject.toml libs/gantry-core/
COPY libs/gantry-core/src libs/gantry-core/src
COPY libs/gantry-models/pyproject.toml libs/gantry-models/
COPY libs/gantry-models/src libs/gantry-models/src
COPY services/vla/pyproject.toml services/vla/
COPY services/vla/src services/vla/src
RUN pip install --no-cache-dir --no-build-isolation -c requirements-gpu.lock \
      ./libs/gantry-proto ./libs/gantry-core ./libs/gantry-models ./services/vla

# ---- runtime: the CUDA runtime, the interpreter, the virtualenv, a non-root user ---------
FROM ${CUDA_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# Same reason as above for not pinning apt versions.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 gantry \
 && useradd --system --uid 10001 --gid gantry --home-dir /home/gantry --create-home \
      --shell /usr/sbin/nologin gantry \
 && install -d -o gantry -g gantry /var/lib/gantry /var/cache/gantry
COPY --from=build /opt/gantry /opt/gantry
ENV PATH=/opt/gantry/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/gantry \
    HF_HOME=/home/gantry/.cache/huggingface \
    TRITON_CACHE_DIR=/var/cache/gantry/triton \
    TORCHINDUCTOR_CACHE_DIR=/var/cache/gantry/inductor \
    GANTRY_VLA_DATA_DIR=/var/lib/gantry
LABEL org.opencontainers.image.title="gantry-vla" \
      org.opencontainers.image.description="Gantry vla gRPC service (gantry serve vla)"
USER 10001:10001
WORKDIR /home/gantry
# gRPC, then Prometheus /metrics.
EXPOSE 50058 9090
ENTRYPOINT ["gantry", "serve", "vla"]

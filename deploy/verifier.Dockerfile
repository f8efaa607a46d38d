# syntax=docker/dockerfile:1
# gantry-verifier: rubric-guided verification of agent trajectories (DeepVerifier). No torch:
# its judges are models behind rollout (or an OpenAI-compatible endpoint), reached over the
# network; evidence comes from retrieval and envfarm.
#
# Build from the repository root (the build context must be the monorepo):
#   docker build -f deploy/verifier.Dockerfile -t gantry-verifier:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtualenv holding verifier and its dependencies -------------------------
FROM ${PYTHON_IMAGE} AS build
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
COPY services/verifier/pyproject.toml services/verifier/
COPY services/verifier/src services/verifier/src
RUN pip install --no-cache-dir --no-build-isolation -c requirements.lock \
      ./libs/gantry-proto ./libs/gantry-core ./services/verifier

# ---- runtime: the interpreter, the virtualenv, a non-root user ---------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 gantry \
 && useradd --system --uid 10001 --gid gantry --home-dir /home/gantry --create-home \
      --shell /usr/sbin/nologin gantry \
 && install -d -o gantry -g gantry /var/lib/gantry
COPY --from=build /opt/gantry /opt/gantry
ENV PATH=/opt/gantry/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/gantry \
    GANTRY_VERIFIER_DATA_DIR=/var/lib/gantry
LABEL org.opencontainers.image.title="gantry-verifier" \
      org.opencontainers.image.description="Gantry verifier gRPC service (gantry serve verifier)"
USER 10001:10001
WORKDIR /home/gantry
# gRPC, then Prometheus /metrics.
EXPOSE 50055 9090
ENTRYPOINT ["gantry", "serve", "verifier"]

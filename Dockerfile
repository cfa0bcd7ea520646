# syntax=docker/dockerfile:1
# Courtyard's image: `courtyard serve` as a non-root user, one worker per container (so the
# SIGTERM drain applies; scale with more containers behind a load balancer, see compose.yaml).
#
#   docker build -t courtyard .
#   docker run --rm -p 8000:8000 -e COURTYARD_SECRET_KEY=… -e COURTYARD_DATABASE_URL=… courtyard
#
# The same image runs the one-shot migration: `docker run … courtyard courtyard db upgrade`.
# EXTRAS picks the optional dependencies installed with it (comma-separated).

ARG PYTHON_VERSION=3.11

# ---- build: the wheel, from the source --------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md LICENSE ./
COPY core ./core
COPY plugins ./plugins
# PIP_CONSTRAINT (unlike -c) reaches the isolated build environment: setuptools and wheel
# are pinned too.
RUN PIP_CONSTRAINT=/src/constraints.txt python -m pip wheel --no-deps --wheel-dir /wheels .

# ---- runtime: the wheel and its pinned dependencies, nothing else -----------------------
FROM python:${PYTHON_VERSION}-slim AS runtime
ARG EXTRAS=s3
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 courtyard \
    && useradd --system --uid 10001 --gid courtyard --home-dir /app --shell /usr/sbin/nologin courtyard

# The wheel from the build stage (by its path: the name `courtyard` alone could be taken
# from the package index) with EXTRAS; constraints.txt pins every dependency as tested.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    --mount=type=bind,source=constraints.txt,target=/tmp/constraints.txt \
    set -- /wheels/courtyard-*.whl \
    && python -m pip install -c /tmp/constraints.txt "$1[${EXTRAS}]"

# The working directory is the app's: the SQLite default, ./var/uploads and ./var/mail are
# relative to it, so it belongs to the user the app runs as.
WORKDIR /app
RUN chown courtyard:courtyard /app
# Numeric, so that a platform can tell it is not root (Kubernetes runAsNonRoot).
USER 10001:10001

EXPOSE 8000
# `courtyard serve` leaves forwarded headers to the app (COURTYARD_FORWARDED_ALLOW_IPS:
# set it to the load balancer's address) and, on SIGTERM, drains for
# COURTYARD_SHUTDOWN_DRAIN seconds (/health/ready answers 503) before it exits 0: give the
# container a stop timeout longer than the drain plus the slowest request.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=4)"]
CMD ["courtyard", "serve", "--host", "0.0.0.0", "--port", "8000"]

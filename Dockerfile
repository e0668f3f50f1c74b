# syntax=docker/dockerfile:1
#
# The Kairos worker image. It runs `kairos worker`, the same entry point the integration tests
# run natively, configured only by KAIROS_* environment variables (app/settings.py). The other
# `kairos` commands (rules deploy, report, ...) run from the same image with another CMD.
#
#   docker build -t kairos .
#   docker compose run --rm kairos-worker-1 rules list   # any kairos command, same settings

# Python 3.11 as in pyproject.toml; slim, because every dependency ships a manylinux wheel
# (no compiler needed). Pinned to the Debian release so a rebuild does not change libc under
# rocksdict's wheel.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A virtualenv copied whole into the runtime stage: the runtime image has no source tree and
# no build leftovers, only the installed package.
RUN python -m venv /opt/kairos
WORKDIR /src
# Only what `pip install .` needs (README.md is the package's readme in pyproject.toml).
COPY pyproject.toml README.md ./
COPY app ./app
COPY agents ./agents
COPY rules ./rules
COPY schemas ./schemas
RUN /opt/kairos/bin/pip install . \
    && /opt/kairos/bin/kairos --help >/dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="kairos" \
      org.opencontainers.image.description="Kairos worker: real-time event marketing for retail banks" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed non-root uid/gid, so volume ownership is the same on every host and rebuild.
RUN groupadd --system --gid 10001 kairos \
    && useradd --system --uid 10001 --gid kairos --home-dir /var/lib/kairos --no-create-home \
       --shell /usr/sbin/nologin kairos \
    && install -d -o kairos -g kairos -m 0750 /var/lib/kairos

COPY --from=build /opt/kairos /opt/kairos

ENV PATH=/opt/kairos/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# RocksDB state lives on the volume below: a restarted container recovers from its local
# state plus the changelog tail instead of replaying the whole changelog.
ENV KAIROS_STATE_DIR=/var/lib/kairos
# In a container the web server must listen beyond loopback to be scraped and probed; the
# settings default (127.0.0.1) is right for a developer's machine, not here.
ENV KAIROS_WEB_HOST=0.0.0.0 \
    KAIROS_WEB_PORT=6066

USER kairos:kairos
WORKDIR /var/lib/kairos
# Declared after the directory is created and owned by kairos: a new named volume is
# initialised from it, so the non-root worker can write its state there.
VOLUME ["/var/lib/kairos"]

# /metrics, /healthz, /readyz (and the customer API when its token is set).
EXPOSE 6066

# Liveness, not readiness: a worker restoring a large table from its changelog is alive but
# not ready (/readyz says 503 for minutes); restarting it then would only start the restore
# again. Readiness is watched by the KairosRecoveryTooLong alert. Slim has no curl, so the
# check is Python's urllib (any error or non-2xx status raises, so the exit code is non-zero).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('KAIROS_WEB_PORT', '6066'), timeout=4)"]

# Faust handles SIGTERM: it leaves the group and flushes before exiting.
STOPSIGNAL SIGTERM
ENTRYPOINT ["kairos"]
CMD ["worker"]

# syntax=docker/dockerfile:1
#
# One image for all four Keymoment services. They are one code base (shared/
# plumbing + services/*) with one dependency set, so a single image gives
# identical plumbing everywhere, one dependency resolution and one thing to
# scan and sign; the service is chosen at run time:
#
#   docker run ... keymoment:TAG serve intake|survey|alerts|reporting
#   docker run ... keymoment:TAG migrate alerts
#
# The code is copied as a source tree on PYTHONPATH (exactly the tree the
# tests run against, data files and migrations included) rather than
# pip-installed, so nothing depends on the package-data globs in pyproject.
# The runtime stage runs as an unprivileged user that cannot write to the
# code, so containers work with a read-only root filesystem.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/keymoment
WORKDIR /build
# Runtime dependencies only (no dev extras), pinned by the constraints file CI
# tests with. This layer is reused until pyproject.toml or constraints.txt change.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
 && /opt/keymoment/bin/pip install -c constraints.txt -r requirements.txt

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="keymoment" \
      org.opencontainers.image.description="Keymoment services: intake, survey, alerts, reporting" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 keymoment \
 && useradd --system --uid 10001 --gid keymoment --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin keymoment
COPY --from=deps /opt/keymoment /opt/keymoment
WORKDIR /app
COPY shared ./shared
COPY services ./services
COPY keymoment ./keymoment
# Bytecode compiled at build time: the root filesystem is read-only at run time.
RUN /opt/keymoment/bin/python -m compileall -q /app
ENV PATH=/opt/keymoment/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KEYMOMENT_ENV=production \
    HOST=0.0.0.0
USER 10001:10001
EXPOSE 8001 8002 8003 8004
ENTRYPOINT ["python", "-m", "keymoment"]
CMD ["--help"]

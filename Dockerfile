# syntax=docker/dockerfile:1
#
# One image for all four Keymoment services. They are one Python package
# (shared/ plumbing + services/*) with one dependency set, so a single image
# gives identical plumbing everywhere, one dependency resolution and one thing
# to scan and sign; the service is chosen at run time:
#
#   docker run ... keymoment:TAG serve intake|survey|alerts|reporting
#   docker run ... keymoment:TAG migrate alerts
#
# The runtime stage runs as an unprivileged user with no write access to the
# code, so containers work with a read-only root filesystem (only /tmp needs
# to be writable, and only for libraries that insist on a temp dir).

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/keymoment
WORKDIR /src
# Dependencies first (their layer is reused until pyproject/constraints change),
# pinned by the same constraints file CI tests with.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && /opt/keymoment/bin/pip install -c constraints.txt -r /tmp/requirements.txt
COPY README.md ./
COPY shared ./shared
COPY services ./services
COPY keymoment ./keymoment
RUN /opt/keymoment/bin/pip install --no-deps . \
 && /opt/keymoment/bin/python -m compileall -q /opt/keymoment/lib

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="keymoment" \
      org.opencontainers.image.description="Keymoment services: intake, survey, alerts, reporting" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 keymoment \
 && useradd --system --uid 10001 --gid keymoment --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin keymoment
COPY --from=build /opt/keymoment /opt/keymoment
ENV PATH=/opt/keymoment/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KEYMOMENT_ENV=production \
    HOST=0.0.0.0
WORKDIR /tmp
USER 10001:10001
EXPOSE 8001 8002 8003 8004
ENTRYPOINT ["keymoment"]
CMD ["--help"]

# riverguard service image: `docker build -t riverguard:0.1.0 .`
#
# One process per container (`riverguard serve`: API + stream workers on one event loop). The
# models live in that process, so never run it with several workers; scale with replicas.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- uv, at the version and hashes pinned in the dev lock ---------------------------------------
# A stage of its own: a dev-lock change that leaves uv alone keeps the layers below cached.
FROM ${PYTHON_IMAGE} AS uv
COPY requirements-dev.lock /tmp/
RUN awk '/^uv==/ { keep = 1; print; next } keep && /^ / { print; next } { keep = 0 }' \
        /tmp/requirements-dev.lock > /tmp/uv.txt \
    && PIP_ROOT_USER_ACTION=ignore pip install --no-cache-dir --require-hashes --no-deps \
        -r /tmp/uv.txt

# ---- build: a virtualenv holding the hash-pinned dependencies ---------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1
COPY --from=uv /usr/local/bin/uv /usr/local/bin/uv
WORKDIR /build

# The dependency layer: rebuilt only when requirements.lock changes, not on a source edit.
COPY requirements.lock ./
RUN uv venv /opt/venv --python /usr/local/bin/python3.11 \
    && uv pip install --python /opt/venv/bin/python --require-hashes -r requirements.lock

# Our packages go on the venv's path and the console script is written by hand: installing the
# project would need a build backend fetched at build time, outside the hash-pinned lock.
COPY app /opt/riverguard/app
COPY features /opt/riverguard/features
COPY models /opt/riverguard/models
COPY simulator /opt/riverguard/simulator
RUN echo /opt/riverguard > /opt/venv/lib/python3.11/site-packages/riverguard.pth \
    && printf '%s\n' '#!/opt/venv/bin/python' 'import sys' 'from app.tools.cli import main' \
        'sys.exit(main())' > /opt/venv/bin/riverguard \
    && chmod 0755 /opt/venv/bin/riverguard \
    && /opt/venv/bin/python -m compileall -q /opt/riverguard \
    && /opt/venv/bin/riverguard --help > /dev/null

# ---- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="riverguard" \
      org.opencontainers.image.description="Online-learning fraud scoring service" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 riverguard \
    && useradd --system --uid 10001 --gid riverguard --home-dir /var/lib/riverguard \
        --create-home --shell /usr/sbin/nologin riverguard

COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/riverguard /opt/riverguard

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RIVERGUARD_HOST=0.0.0.0 \
    RIVERGUARD_PORT=8000

USER riverguard
WORKDIR /var/lib/riverguard
EXPOSE 8000

# Liveness only (the process answers); compose waits on /readyz, which also checks the backends.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('RIVERGUARD_PORT', '8000'), timeout=2)"

ENTRYPOINT ["riverguard"]
CMD ["serve"]

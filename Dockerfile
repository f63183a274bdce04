# remediator serve as a fixed non-root user (uid/gid 10001, as deploy/ runs it), state on a
# volume. Versions are pinned: the base image by its full tag, every Python package by
# requirements.lock. The build stage makes a virtual environment; the final stage gets only
# that, and no pip, setuptools or wheel (nothing to build or install with at run time).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/remediator
COPY requirements.lock ./
RUN /opt/remediator/bin/pip install -r requirements.lock
COPY pyproject.toml README.md ./
COPY remediator ./remediator
COPY playbooks ./playbooks
RUN /opt/remediator/bin/pip install --no-deps -c requirements.lock . \
 && /opt/remediator/bin/pip check \
 && /opt/remediator/bin/pip uninstall --yes pip setuptools wheel

FROM ${PYTHON_IMAGE}
RUN python -m pip uninstall --yes pip setuptools wheel \
 && groupadd --system --gid 10001 remediator \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/remediator \
      --shell /usr/sbin/nologin remediator \
 && mkdir -p /var/lib/remediator \
 && chown 10001:10001 /var/lib/remediator
COPY --from=build /opt/remediator /opt/remediator
ENV PATH=/opt/remediator/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    REMEDIATOR_SERVER__HOST=0.0.0.0 \
    REMEDIATOR_STATE__PATH=/var/lib/remediator/state.db \
    REMEDIATOR_LOGGING__FORMAT=json
USER 10001:10001
WORKDIR /var/lib/remediator
VOLUME ["/var/lib/remediator"]
EXPOSE 9095
# The image has python and nothing like curl or wget: the check is Python's own urllib.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9095/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["remediator", "serve"]

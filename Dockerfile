# Slim runtime image: remediator serve as a non-root user, state on a volume.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY remediator ./remediator
COPY playbooks ./playbooks
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/remediator --create-home remediator
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER remediator
WORKDIR /var/lib/remediator
ENV REMEDIATOR_SERVER__HOST=0.0.0.0 \
    REMEDIATOR_STATE__PATH=/var/lib/remediator/state.db \
    REMEDIATOR_LOGGING__FORMAT=json
VOLUME ["/var/lib/remediator"]
EXPOSE 9095
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9095/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["remediator", "serve"]

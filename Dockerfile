# One image for the five services and the one-shot migrate / connector-registrar jobs.
# Base: debian:bookworm-slim (its python3 is 3.11, as pyproject.toml requires), pulled or made
# locally by stack/docker/base-image.sh. Dependencies come from uv.lock, the dashboard's from
# its package-lock.json, through the same install step as natively.
FROM debian:bookworm-slim AS build
COPY .docker-ca/ca-certificates.crt /tmp/host-ca/
COPY stack/docker/trust-host-ca.sh /usr/local/bin/
RUN trust-host-ca.sh
# pip, uv and npm bring their own CA lists: point them at the system's.
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt UV_NATIVE_TLS=1
RUN apt-get install -y --no-install-recommends python3 python3-venv \
    && python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir -q uv==0.13.9
WORKDIR /app
ENV UV_PYTHON=/usr/bin/python3 UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 \
    CAMPUS_NO_ENV=1
COPY pyproject.toml uv.lock ./
COPY libs libs
COPY services services
COPY cli cli
RUN /opt/uv/bin/uv sync --frozen --no-dev
COPY stack/lib.sh stack/dashboard-install.sh stack/
RUN stack/dashboard-install.sh && rm -rf .stack

FROM debian:bookworm-slim
# psql for the migrate job, curl for the connector registrar and the healthchecks.
RUN apt-get update && apt-get install -y --no-install-recommends python3 postgresql-client-15 curl \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && useradd --system --uid 10001 --home-dir /app campus
WORKDIR /app
COPY --from=build /app /app
COPY stack stack
COPY sql sql
COPY connectors connectors
COPY TimeScaleDB.sql posts.json ./
# stack/lib.sh keeps its run files under .stack: the one place the service user may write.
RUN mkdir .stack && chown campus .stack
# Configuration comes only from the environment (CAMPUS_NO_ENV: no .env is read or generated).
ENV PATH=/app/.venv/bin:$PATH CAMPUS_ENVIRONMENT=production CAMPUS_NO_ENV=1 PYTHONUNBUFFERED=1
USER campus
EXPOSE 8000
HEALTHCHECK --interval=5s --retries=30 CMD curl -fsS -o /dev/null http://127.0.0.1:8000/health
CMD ["uvicorn", "campus_gateway.main:app", "--host", "0.0.0.0", "--port", "8000"]

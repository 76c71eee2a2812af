# One image for the five services and the one-shot migrate / connector-registrar jobs.
FROM python:3.11.7-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends curl postgresql-client \
    && rm -rf /var/lib/apt/lists/* && pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY libs libs
COPY services services
RUN uv sync --frozen --no-dev
COPY . .
ENV PATH=/app/.venv/bin:$PATH CAMPUS_ENVIRONMENT=production
